// KmbenchDMAController: per-channel queues served in order by one engine
// thread, each transfer due latency + bytes / bandwidth after the channel
// is free; the bytes move through the command's device addresses when due.
#include <kmbench/dma_controller.h>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

namespace {

constexpr UInt64 kDefaultFifo = 64;
constexpr UInt64 kMaxFifo = 1024;
constexpr UInt32 kMaxChannels = 64;

UInt64 now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<UInt64>(ts.tv_sec) * 1000000000ull + static_cast<UInt64>(ts.tv_nsec);
}

}  // namespace

struct KmbenchDMAEngine {
  struct Transfer {
    IODMACommand* command = nullptr;
    IODirection direction = kIODirectionNone;
    UInt64 offset = 0, length = 0;
    UInt64 start_ns = 0, due_ns = 0;
  };
  struct Channel {
    IODMAEventSource* source = nullptr;  // not retained: the source's free releases the channel
    std::deque<Transfer> queue;
    bool delivering = false;
    Transfer current;  // the transfer being delivered
    UInt64 busy_until = 0;
    UInt64 fifo_depth = kDefaultFifo;
    UInt8 frame_size = 1;
    UInt32 request = 0;
  };

  KmbenchDMAController::Timing timing;
  std::mutex lock;
  std::condition_variable work;  // the engine waits for a due transfer
  std::condition_variable idle;  // callers wait for a channel to drain
  std::vector<Channel> channels;
  std::thread thread;
  std::atomic<std::thread::id> thread_id{};
  bool running = false;
  bool quit = false;
  std::atomic<UInt64> completed{0}, bytes{0};

  UInt64 duration_ns(UInt64 length) const {
    const UInt64 wire = timing.bytesPerSecond == 0
                            ? 0
                            : static_cast<UInt64>(static_cast<double>(length) * 1e9 /
                                                  static_cast<double>(timing.bytesPerSecond));
    return timing.latencyNs + wire;
  }
  bool on_engine() const { return thread_id.load(std::memory_order_relaxed) == std::this_thread::get_id(); }
  /// pre: lock held. The channel has nothing queued and nothing in delivery (but the caller's own).
  bool drained(const Channel& ch) const { return ch.queue.empty() && (!ch.delivering || on_engine()); }

  /// Moves the bytes (unless aborted), then notifies and completes. post: the bytes moved.
  static IOByteCount deliver(KmbenchDMAController* owner, UInt32 index, IODMAEventSource* source, const Transfer& t,
                             bool aborted) {
    if (source == nullptr) {
      return 0;  // the channel's event source is gone: nobody to tell
    }
    const IOByteCount moved =
        aborted ? 0 : owner->deviceTransfer(index, t.command, t.direction, t.offset, t.length);
    const IOReturn status = aborted ? kIOReturnAborted : moved == t.length ? kIOReturnSuccess : kIOReturnDMAError;
    if (!aborted) {
      // Counted before the driver can hear of it: a completion never runs ahead of the counts.
      owner->fEngine->completed.fetch_add(1, std::memory_order_relaxed);
      owner->fEngine->bytes.fetch_add(moved, std::memory_order_relaxed);
    }
    owner->notifyDMACommand(source, t.command, status, moved, now_ns());
    owner->completeDMACommand(source, t.command);
    return moved;
  }

  static void run(KmbenchDMAController* owner, KmbenchDMAEngine* e) {
    std::unique_lock l(e->lock);
    while (!e->quit) {
      UInt32 best = kMaxChannels;
      UInt64 due = ~0ull;
      for (UInt32 i = 0; i < e->channels.size(); ++i) {
        const Channel& ch = e->channels[i];
        if (!ch.delivering && !ch.queue.empty() && ch.queue.front().due_ns < due) {
          best = i;
          due = ch.queue.front().due_ns;
        }
      }
      if (best == kMaxChannels) {
        e->work.wait(l);
        continue;
      }
      const UInt64 now = now_ns();
      if (now < due) {
        e->work.wait_for(l, std::chrono::nanoseconds(due - now));
        continue;
      }
      Channel& ch = e->channels[best];
      ch.current = ch.queue.front();
      ch.queue.pop_front();
      ch.delivering = true;
      IODMAEventSource* source = ch.source;
      l.unlock();
      deliver(owner, best, source, ch.current, false);
      l.lock();
      ch.delivering = false;
      e->idle.notify_all();
    }
  }
};

OSDefineMetaClassAndStructors(KmbenchDMAController, IODMAController);

KmbenchDMAController* KmbenchDMAController::withChannels(UInt32 channels, UInt32 phandle, Timing timing) {
  KmbenchDMAController* me = new KmbenchDMAController;
  if (me != NULL && !me->initWithChannels(channels, phandle, timing)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool KmbenchDMAController::initWithChannels(UInt32 channels, UInt32 phandle, Timing timing) {
  if (!IOService::init((OSDictionary*)NULL) || channels == 0 || channels > kMaxChannels) {
    return false;
  }
  fEngine = new (std::nothrow) KmbenchDMAEngine;
  if (fEngine == NULL) {
    return false;
  }
  fEngine->timing = timing;
  fEngine->channels.resize(channels);
  fPhandle = phandle;
  return true;
}

bool KmbenchDMAController::start(IOService* provider) {
  if (fEngine == NULL || !IODMAController::start(provider)) {
    return false;
  }
  {
    std::lock_guard guard(fEngine->lock);
    if (fEngine->running) {
      return false;
    }
    fEngine->quit = false;
    try {
      fEngine->thread = std::thread(KmbenchDMAEngine::run, this, fEngine);
    } catch (const std::system_error&) {
      return false;
    }
    fEngine->thread_id.store(fEngine->thread.get_id(), std::memory_order_relaxed);
    fEngine->running = true;
  }
  registerDMAController();
  return true;
}

void KmbenchDMAController::stop(IOService* provider) {
  IODMAController::stop(provider);
  if (fEngine == NULL) {
    return;
  }
  for (UInt32 i = 0; i < getChannelCount(); ++i) {
    stopDMACommand(i, true, 0);
  }
  std::thread engine;
  {
    std::lock_guard guard(fEngine->lock);
    if (!fEngine->running) {
      return;
    }
    fEngine->quit = true;
    fEngine->running = false;
    engine = std::move(fEngine->thread);
  }
  fEngine->work.notify_all();
  if (engine.get_id() == std::this_thread::get_id()) {
    engine.detach();  // stopped from a notification on the engine itself: it ends after this delivery
  } else {
    engine.join();
  }
}

void KmbenchDMAController::free() {
  if (fEngine != NULL) {
    stop(NULL);
    delete fEngine;
    fEngine = NULL;
  }
  IODMAController::free();
}

UInt32 KmbenchDMAController::getChannelCount() const {
  return fEngine != NULL ? static_cast<UInt32>(fEngine->channels.size()) : 0;
}
UInt64 KmbenchDMAController::getCompletedTransfers() const {
  return fEngine != NULL ? fEngine->completed.load(std::memory_order_relaxed) : 0;
}
UInt64 KmbenchDMAController::getCompletedBytes() const {
  return fEngine != NULL ? fEngine->bytes.load(std::memory_order_relaxed) : 0;
}

IOReturn KmbenchDMAController::initDMAChannel(IOService*, IODMAEventSource* dmaES, UInt32* dmaIndex,
                                              UInt32 reqIndex) {
  if (dmaES == NULL || dmaIndex == NULL) {
    return kIOReturnBadArgument;
  }
  std::lock_guard guard(fEngine->lock);
  if (!fEngine->running) {
    return kIOReturnNotReady;
  }
  if (reqIndex >= fEngine->channels.size()) {
    return kIOReturnNoChannels;
  }
  KmbenchDMAEngine::Channel& ch = fEngine->channels[reqIndex];
  if (ch.source != NULL) {
    return kIOReturnExclusiveAccess;
  }
  ch.source = dmaES;
  ch.request = reqIndex;
  *dmaIndex = reqIndex;
  return kIOReturnSuccess;
}

void KmbenchDMAController::kmbenchReleaseChannel(UInt32 dmaIndex, IODMAEventSource* dmaES) {
  std::unique_lock l(fEngine->lock);
  if (dmaIndex >= fEngine->channels.size() || fEngine->channels[dmaIndex].source != dmaES) {
    return;
  }
  KmbenchDMAEngine::Channel& ch = fEngine->channels[dmaIndex];
  ch.source = NULL;
  ch.queue.clear();  // nobody is left to deliver them to
  fEngine->idle.wait(l, [&] { return fEngine->drained(ch); });
}

IOReturn KmbenchDMAController::startDMACommand(UInt32 dmaIndex, IODMACommand* dmaCommand, IODirection direction,
                                               IOByteCount byteCount, IOByteCount byteOffset) {
  if (dmaCommand == NULL) {
    return kIOReturnBadArgument;
  }
  const IODirection dir = direction & kIODirectionOutIn;
  if (dir != kIODirectionIn && dir != kIODirectionOut) {
    return kIOReturnBadArgument;
  }
  UInt64 prepared = 0;
  if (dmaCommand->getPreparedOffsetAndLength(NULL, &prepared) != kIOReturnSuccess) {
    return kIOReturnNotReady;
  }
  if (byteOffset > prepared) {
    return kIOReturnBadArgument;
  }
  if (byteCount == 0) {
    byteCount = prepared - byteOffset;
  }
  if (byteCount == 0 || byteCount > prepared - byteOffset) {
    return kIOReturnBadArgument;
  }
  {
    std::lock_guard guard(fEngine->lock);
    if (!fEngine->running) {
      return kIOReturnNotReady;
    }
    if (dmaIndex >= fEngine->channels.size() || fEngine->channels[dmaIndex].source == NULL) {
      return kIOReturnBadArgument;
    }
    KmbenchDMAEngine::Channel& ch = fEngine->channels[dmaIndex];
    if (ch.queue.size() + (ch.delivering ? 1 : 0) >= ch.fifo_depth) {
      return kIOReturnBusy;
    }
    KmbenchDMAEngine::Transfer t;
    t.command = dmaCommand;
    t.direction = dir;
    t.offset = byteOffset;
    t.length = byteCount;
    t.start_ns = std::max(now_ns(), ch.busy_until);
    t.due_ns = t.start_ns + fEngine->duration_ns(byteCount);
    ch.busy_until = t.due_ns;
    ch.queue.push_back(t);
  }
  fEngine->work.notify_one();
  return kIOReturnSuccess;
}

IOReturn KmbenchDMAController::stopDMACommand(UInt32 dmaIndex, bool flush, uint64_t timeout) {
  std::unique_lock l(fEngine->lock);
  if (dmaIndex >= fEngine->channels.size()) {
    return kIOReturnBadArgument;
  }
  KmbenchDMAEngine::Channel& ch = fEngine->channels[dmaIndex];
  if (flush && !ch.queue.empty()) {
    std::deque<KmbenchDMAEngine::Transfer> aborted;
    aborted.swap(ch.queue);
    ch.busy_until = 0;
    IODMAEventSource* source = ch.source;
    l.unlock();
    for (const KmbenchDMAEngine::Transfer& t : aborted) {
      KmbenchDMAEngine::deliver(this, dmaIndex, source, t, true);
    }
    l.lock();
  }
  if (timeout == UINT64_MAX) {
    fEngine->idle.wait(l, [&] { return fEngine->drained(ch); });
    return kIOReturnSuccess;
  }
  const bool idle = fEngine->idle.wait_for(l, std::chrono::nanoseconds(timeout), [&] { return fEngine->drained(ch); });
  return idle ? kIOReturnSuccess : kIOReturnTimeout;
}

IOReturn KmbenchDMAController::queryDMACommand(UInt32 dmaIndex, IODMACommand** dmaCommand,
                                               IOByteCount* transferCount, bool waitForIdle) {
  std::unique_lock l(fEngine->lock);
  if (dmaIndex >= fEngine->channels.size()) {
    return kIOReturnBadArgument;
  }
  KmbenchDMAEngine::Channel& ch = fEngine->channels[dmaIndex];
  if (waitForIdle) {
    fEngine->idle.wait(l, [&] { return fEngine->drained(ch); });
  }
  const KmbenchDMAEngine::Transfer* t = ch.delivering ? &ch.current : ch.queue.empty() ? NULL : &ch.queue.front();
  if (dmaCommand != NULL) {
    *dmaCommand = t != NULL ? t->command : NULL;
  }
  if (transferCount != NULL) {
    // Bytes on the wire so far: none during the latency, then at the channel's bandwidth.
    IOByteCount done = 0;
    if (t != NULL) {
      const UInt64 now = now_ns(), first = t->start_ns + fEngine->timing.latencyNs;
      done = now >= t->due_ns ? t->length
             : now <= first   ? 0
                              : std::min<UInt64>(t->length, static_cast<UInt64>(
                                                                static_cast<double>(now - first) *
                                                                static_cast<double>(fEngine->timing.bytesPerSecond) / 1e9));
    }
    *transferCount = done;
  }
  return kIOReturnSuccess;
}

IOByteCount KmbenchDMAController::getFIFODepth(UInt32 dmaIndex, IODirection) {
  std::lock_guard guard(fEngine->lock);
  return dmaIndex < fEngine->channels.size() ? fEngine->channels[dmaIndex].fifo_depth : 0;
}

IOReturn KmbenchDMAController::setFIFODepth(UInt32 dmaIndex, IOByteCount depth) {
  std::lock_guard guard(fEngine->lock);
  if (dmaIndex >= fEngine->channels.size() || depth == 0 || depth > kMaxFifo) {
    return kIOReturnBadArgument;
  }
  fEngine->channels[dmaIndex].fifo_depth = depth;
  return kIOReturnSuccess;
}

IOByteCount KmbenchDMAController::validFIFODepth(UInt32 dmaIndex, IOByteCount depth, IODirection) {
  if (dmaIndex >= getChannelCount()) {
    return 0;
  }
  return std::clamp<IOByteCount>(depth, 1, kMaxFifo);
}

IOReturn KmbenchDMAController::setFrameSize(UInt32 dmaIndex, UInt8 byteCount) {
  std::lock_guard guard(fEngine->lock);
  if (dmaIndex >= fEngine->channels.size() ||
      (byteCount != 1 && byteCount != 2 && byteCount != 4 && byteCount != 8)) {
    return kIOReturnBadArgument;
  }
  fEngine->channels[dmaIndex].frame_size = byteCount;
  return kIOReturnSuccess;
}

IOReturn KmbenchDMAController::setDMAConfig(UInt32 dmaIndex, IOService* provider, UInt32 reqIndex) {
  if (!validDMAConfig(dmaIndex, provider, reqIndex)) {
    return kIOReturnBadArgument;
  }
  std::lock_guard guard(fEngine->lock);
  fEngine->channels[dmaIndex].request = reqIndex;
  return kIOReturnSuccess;
}

bool KmbenchDMAController::validDMAConfig(UInt32 dmaIndex, IOService*, UInt32 reqIndex) {
  const UInt32 n = getChannelCount();
  return dmaIndex < n && reqIndex < n;
}

IOByteCount KmbenchDMAController::deviceTransfer(UInt32, IODMACommand* dmaCommand, IODirection direction,
                                                 IOByteCount offset, IOByteCount length) {
  constexpr UInt32 kBatch = 16;
  IODMACommand::Segment64 segments[kBatch];
  std::vector<unsigned char> bytes;
  const UInt64 end = offset + length;
  UInt64 at = offset;
  while (at < end) {
    UInt64 cursor = at;
    UInt32 n = kBatch;
    if (dmaCommand->kmbenchDeviceSegments(&cursor, segments, &n) != kIOReturnSuccess || n == 0) {
      break;
    }
    for (UInt32 i = 0; i < n && at < end; ++i) {
      const UInt64 piece = std::min<UInt64>(segments[i].fLength, end - at);
      bytes.resize(piece);
      UInt64 moved;
      if (direction == kIODirectionIn) {
        for (UInt64 j = 0; j < piece; ++j) bytes[j] = static_cast<unsigned char>((at - offset + j) & 0xff);
        moved = dmaCommand->kmbenchDeviceWrite(segments[i].fIOVMAddr, bytes.data(), piece);
      } else {
        moved = dmaCommand->kmbenchDeviceRead(segments[i].fIOVMAddr, bytes.data(), piece);
      }
      at += moved;
      if (moved != piece) {
        return at - offset;
      }
    }
  }
  return at - offset;
}
