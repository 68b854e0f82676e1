// IOWorkLoop and IOEventSource: one thread per work loop, a recursive gate,
// and a retained list of event sources run in the order they were added.
#include <IOKit/IOEventSource.h>
#include <IOKit/IOWorkLoop.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

struct IOWorkLoopState {
  std::recursive_mutex gate;
  std::atomic<std::thread::id> gate_owner{};
  int gate_depth = 0;  // the owner's nesting; touched by the owner only

  std::mutex wake_lock;
  std::condition_variable wake;
  bool work = false;      // under wake_lock
  bool quit = false;      // under wake_lock
  bool orphaned = false;  // the loop was freed on its own thread: the thread frees this state

  std::thread thread;
  std::atomic<std::thread::id> thread_id{};
  std::vector<IOEventSource*> sources;  // under the gate; each retained

  void close() {
    gate.lock();
    if (gate_depth++ == 0) gate_owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
  }
  bool try_close() {
    if (!gate.try_lock()) return false;
    if (gate_depth++ == 0) gate_owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
    return true;
  }
  void open() {
    if (--gate_depth == 0) gate_owner.store(std::thread::id(), std::memory_order_relaxed);
    gate.unlock();
  }
};

OSDefineMetaClassAndStructors(IOWorkLoop, OSObject);

IOWorkLoop* IOWorkLoop::workLoop() {
  IOWorkLoop* me = new IOWorkLoop;
  if (me != NULL && !me->init()) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool IOWorkLoop::init() {
  if (!OSObject::init()) {
    return false;
  }
  fState = new (std::nothrow) IOWorkLoopState;
  if (fState == NULL) {
    return false;
  }
  try {
    fState->thread = std::thread(threadMain, fState);
  } catch (const std::system_error&) {
    return false;
  }
  fState->thread_id.store(fState->thread.get_id(), std::memory_order_relaxed);
  return true;
}

// The thread works on the state alone, never on the IOWorkLoop: an action may
// release the loop's last reference, and then the state outlives it.
void IOWorkLoop::threadMain(IOWorkLoopState* st) {
  for (;;) {
    {
      std::unique_lock lock(st->wake_lock);
      st->wake.wait(lock, [st] { return st->work || st->quit; });
      if (st->quit) break;
      st->work = false;
    }
    st->close();
    bool more = true;
    while (more && !st->orphaned) {
      more = false;
      for (std::size_t i = 0; i < st->sources.size() && !st->orphaned; ++i) {
        IOEventSource* es = st->sources[i];
        if (!__atomic_load_n(&es->enabled, __ATOMIC_RELAXED)) continue;
        es->retain();
        more |= es->checkForWork();
        es->release();
      }
    }
    st->open();
    if (st->orphaned) break;
  }
  bool orphaned;
  {
    std::lock_guard lock(st->wake_lock);
    orphaned = st->orphaned;
  }
  if (orphaned) {
    delete st;
  }
}

void IOWorkLoop::free() {
  if (IOWorkLoopState* st = fState) {
    const bool own_thread = onThread();
    closeGate();
    for (IOEventSource* es : st->sources) {
      es->setWorkLoop(NULL);
      es->release();
    }
    st->sources.clear();
    openGate();
    if (st->thread.joinable()) {
      if (own_thread) {
        // Freed by an action on the loop's own thread: it stops after this pass and frees the state.
        std::lock_guard lock(st->wake_lock);
        st->quit = true;
        st->orphaned = true;
        st->thread.detach();
      } else {
        {
          std::lock_guard lock(st->wake_lock);
          st->quit = true;
        }
        st->wake.notify_one();
        st->thread.join();
      }
    }
    if (!own_thread || !st->orphaned) {
      delete st;
    }
    fState = NULL;
  }
  OSObject::free();
}

IOReturn IOWorkLoop::addEventSource(IOEventSource* newEvent) {
  if (newEvent == NULL || fState == NULL) {
    return kIOReturnBadArgument;
  }
  closeGate();
  if (newEvent->getWorkLoop() != NULL) {
    openGate();
    return kIOReturnBadArgument;
  }
  newEvent->retain();
  fState->sources.push_back(newEvent);
  newEvent->setWorkLoop(this);
  openGate();
  signalWorkAvailable();  // it may hold work already
  return kIOReturnSuccess;
}

IOReturn IOWorkLoop::removeEventSource(IOEventSource* toRemove) {
  if (toRemove == NULL || fState == NULL) {
    return kIOReturnBadArgument;
  }
  closeGate();
  std::vector<IOEventSource*>& list = fState->sources;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i] == toRemove) {
      list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
      toRemove->setWorkLoop(NULL);
      openGate();
      toRemove->release();
      return kIOReturnSuccess;
    }
  }
  openGate();
  return kIOReturnBadArgument;
}

void IOWorkLoop::enableAllEventSources() const {
  IOWorkLoop* me = const_cast<IOWorkLoop*>(this);
  me->closeGate();
  for (IOEventSource* es : fState->sources) __atomic_store_n(&es->enabled, true, __ATOMIC_RELAXED);
  me->openGate();
  me->signalWorkAvailable();
}

void IOWorkLoop::disableAllEventSources() const {
  IOWorkLoop* me = const_cast<IOWorkLoop*>(this);
  me->closeGate();
  for (IOEventSource* es : fState->sources) __atomic_store_n(&es->enabled, false, __ATOMIC_RELAXED);
  me->openGate();
}

bool IOWorkLoop::onThread() const {
  return fState != NULL && fState->thread_id.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

bool IOWorkLoop::inGate() const {
  return fState != NULL && fState->gate_owner.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

void IOWorkLoop::closeGate() { fState->close(); }
void IOWorkLoop::openGate() { fState->open(); }
bool IOWorkLoop::tryCloseGate() { return fState->try_close(); }

IOReturn IOWorkLoop::runAction(Action action, OSObject* target, void* arg0, void* arg1, void* arg2, void* arg3) {
  if (action == NULL) {
    return kIOReturnBadArgument;
  }
  closeGate();
  const IOReturn r = action(target, arg0, arg1, arg2, arg3);
  openGate();
  return r;
}

void IOWorkLoop::signalWorkAvailable() {
  if (fState == NULL) return;
  {
    std::lock_guard lock(fState->wake_lock);
    fState->work = true;
  }
  fState->wake.notify_one();
}

// ---- IOEventSource

OSDefineMetaClassAndAbstractStructors(IOEventSource, OSObject);

bool IOEventSource::init(OSObject* inOwner, IOEventSource::Action inAction) {
  if (!OSObject::init()) {
    return false;
  }
  owner = inOwner;
  action = inAction;
  enabled = true;
  return true;
}

bool IOEventSource::checkForWork() { return false; }

void IOEventSource::setWorkLoop(IOWorkLoop* inWorkLoop) { __atomic_store_n(&workLoop, inWorkLoop, __ATOMIC_RELEASE); }
IOWorkLoop* IOEventSource::getWorkLoop() const { return __atomic_load_n(&workLoop, __ATOMIC_ACQUIRE); }
void IOEventSource::setAction(Action inAction) { action = inAction; }
IOEventSource::Action IOEventSource::getAction() const { return action; }

// The flag changes under the gate, so the work loop never runs a source in the middle of the change.
static void set_enabled(IOWorkLoop* wl, bool* enabled, bool on) {
  if (wl != NULL) wl->closeGate();
  __atomic_store_n(enabled, on, __ATOMIC_RELAXED);
  if (wl == NULL) return;
  wl->openGate();
  if (on) wl->signalWorkAvailable();
}

void IOEventSource::enable() { set_enabled(getWorkLoop(), &enabled, true); }
void IOEventSource::disable() { set_enabled(getWorkLoop(), &enabled, false); }

bool IOEventSource::isEnabled() const { return __atomic_load_n(&enabled, __ATOMIC_RELAXED); }

bool IOEventSource::onThread() const {
  IOWorkLoop* wl = getWorkLoop();
  return wl != NULL && wl->onThread();
}

void IOEventSource::signalWorkAvailable() {
  if (IOWorkLoop* wl = getWorkLoop()) {
    wl->signalWorkAvailable();
  }
}

void IOEventSource::closeGate() {
  if (IOWorkLoop* wl = getWorkLoop()) wl->closeGate();
}
void IOEventSource::openGate() {
  if (IOWorkLoop* wl = getWorkLoop()) wl->openGate();
}
bool IOEventSource::tryCloseGate() {
  IOWorkLoop* wl = getWorkLoop();
  return wl == NULL || wl->tryCloseGate();
}
