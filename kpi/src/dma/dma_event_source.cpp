// IODMAEventSource and IODMAController: the event source queues a
// controller's completions and delivers them on its work loop; controllers
// are found by name in a process-wide list.
#include <IOKit/IODMAController.h>
#include <IOKit/IODMAEventSource.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <new>
#include <vector>

struct IODMAEventSourceState {
  std::mutex lock;
  std::condition_variable synch;  // startDMACommand without a completion action waits here
  IODMACommand* head = nullptr;   // completed, not yet delivered
  IODMACommand* tail = nullptr;
  bool synchBusy = false;
};

// ---- IODMAEventSource

OSDefineMetaClassAndStructors(IODMAEventSource, IOEventSource);

IODMAEventSource* IODMAEventSource::dmaEventSource(OSObject* owner, IOService* provider, Action completion,
                                                   Action notification, UInt32 inDMAIndex) {
  IODMAEventSource* me = new IODMAEventSource;
  if (me != NULL && !me->init(owner, provider, completion, notification, inDMAIndex)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool IODMAEventSource::init(OSObject* inOwner, IOService* provider, Action completion, Action notification,
                            UInt32 inDMAIndex) {
  if (!IOEventSource::init(inOwner) || provider == NULL) {
    return false;
  }
  dmaProvider = provider;
  dmaIndex = 0xFFFFFFFF;
  dmaCompletionAction = completion;
  dmaNotificationAction = notification;
  dmaState = new (std::nothrow) IODMAEventSourceState;
  if (dmaState == NULL) {
    return false;
  }
  dmaController = IODMAController::getController(provider, inDMAIndex);
  if (dmaController == NULL) {
    return false;
  }
  dmaController->retain();
  return dmaController->initDMAChannel(provider, this, &dmaIndex, inDMAIndex) == kIOReturnSuccess;
}

void IODMAEventSource::free() {
  if (dmaController != NULL) {
    if (dmaIndex != 0xFFFFFFFF) {
      dmaController->kmbenchReleaseChannel(dmaIndex, this);
    }
    OSSafeReleaseNULL(dmaController);
  }
  delete dmaState;
  dmaState = NULL;
  IOEventSource::free();
}

IOReturn IODMAEventSource::startDMACommand(IODMACommand* dmaCommand, IODirection direction, IOByteCount byteCount,
                                           IOByteCount byteOffset) {
  if (dmaController == NULL || dmaIndex == 0xFFFFFFFF) {
    return kIOReturnError;
  }
  const bool synchronous = dmaCompletionAction == NULL;
  {
    std::lock_guard guard(dmaState->lock);
    if (dmaState->synchBusy) {
      return kIOReturnBusy;
    }
    dmaState->synchBusy = synchronous;
  }
  const IOReturn result = dmaController->startDMACommand(dmaIndex, dmaCommand, direction, byteCount, byteOffset);
  std::unique_lock lock(dmaState->lock);
  if (result != kIOReturnSuccess) {
    dmaState->synchBusy = false;
    return result;
  }
  dmaState->synch.wait(lock, [this] { return !dmaState->synchBusy; });
  return kIOReturnSuccess;
}

IOReturn IODMAEventSource::stopDMACommand(bool flush, uint64_t timeout) {
  if (dmaController == NULL || dmaIndex == 0xFFFFFFFF) {
    return kIOReturnError;
  }
  return dmaController->stopDMACommand(dmaIndex, flush, timeout);
}

IOReturn IODMAEventSource::queryDMACommand(IODMACommand** dmaCommand, IOByteCount* transferCount,
                                           bool waitForIdle) {
  if (dmaController == NULL || dmaIndex == 0xFFFFFFFF) {
    return kIOReturnError;
  }
  return dmaController->queryDMACommand(dmaIndex, dmaCommand, transferCount, waitForIdle);
}

IOByteCount IODMAEventSource::getFIFODepth(IODirection direction) {
  if (dmaController == NULL || dmaIndex == 0xFFFFFFFF) {
    return 0;
  }
  return dmaController->getFIFODepth(dmaIndex, direction);
}

IOReturn IODMAEventSource::setFIFODepth(IOByteCount depth) {
  if (dmaController == NULL || dmaIndex == 0xFFFFFFFF) {
    return kIOReturnError;
  }
  return dmaController->setFIFODepth(dmaIndex, depth);
}

IOByteCount IODMAEventSource::validFIFODepth(IOByteCount depth, IODirection direction) {
  if (dmaController == NULL || dmaIndex == 0xFFFFFFFF) {
    return 0;
  }
  return dmaController->validFIFODepth(dmaIndex, depth, direction);
}

IOReturn IODMAEventSource::setFrameSize(UInt8 byteCount) {
  if (dmaController == NULL || dmaIndex == 0xFFFFFFFF) {
    return kIOReturnError;
  }
  return dmaController->setFrameSize(dmaIndex, byteCount);
}

IOReturn IODMAEventSource::setDMAConfig(UInt32 newReqIndex) {
  if (dmaController == NULL || dmaIndex == 0xFFFFFFFF) {
    return kIOReturnError;
  }
  return dmaController->setDMAConfig(dmaIndex, dmaProvider, newReqIndex);
}

bool IODMAEventSource::validDMAConfig(UInt32 newReqIndex) {
  return dmaController != NULL && dmaIndex != 0xFFFFFFFF &&
         dmaController->validDMAConfig(dmaIndex, dmaProvider, newReqIndex);
}

// On the work loop, gate closed: one completed command to the completion action.
bool IODMAEventSource::checkForWork() {
  IODMACommand* done;
  bool again;
  {
    std::lock_guard guard(dmaState->lock);
    done = dmaState->head;
    if (done != NULL) {
      dmaState->head = done->kmbenchDMAResult.next;
      if (dmaState->head == NULL) dmaState->tail = NULL;
      done->kmbenchDMAResult.next = NULL;
    }
    again = dmaState->head != NULL;
  }
  if (done != NULL && dmaCompletionAction != NULL) {
    const IODMACommand::KmbenchDMAResult& r = done->kmbenchDMAResult;
    dmaCompletionAction(owner, this, done, r.status, r.actualByteCount, r.timeStamp);
  }
  return again;
}

// In the controller's context: queue for the work loop, or end a synchronous start.
void IODMAEventSource::completeDMACommand(IODMACommand* dmaCommand) {
  if (dmaCompletionAction != NULL) {
    {
      std::lock_guard guard(dmaState->lock);
      dmaCommand->kmbenchDMAResult.next = NULL;
      if (dmaState->tail != NULL) {
        dmaState->tail->kmbenchDMAResult.next = dmaCommand;
      } else {
        dmaState->head = dmaCommand;
      }
      dmaState->tail = dmaCommand;
    }
    signalWorkAvailable();
  } else {
    {
      std::lock_guard guard(dmaState->lock);
      dmaState->synchBusy = false;
    }
    dmaState->synch.notify_all();
  }
}

void IODMAEventSource::notifyDMACommand(IODMACommand* dmaCommand, IOReturn status, IOByteCount actualByteCount,
                                        AbsoluteTime timeStamp) {
  dmaCommand->kmbenchDMAResult.status = status;
  dmaCommand->kmbenchDMAResult.actualByteCount = actualByteCount;
  dmaCommand->kmbenchDMAResult.timeStamp = timeStamp;
  if (dmaNotificationAction != NULL) {
    dmaNotificationAction(owner, this, dmaCommand, status, actualByteCount, timeStamp);
  }
}

// ---- IODMAController

OSDefineMetaClassAndAbstractStructors(IODMAController, IOService);

namespace {
/// Registered controllers (not retained: a controller leaves the list when stopped or freed).
struct ControllerList {
  std::mutex lock;
  std::vector<IODMAController*> controllers;
};
ControllerList& controller_list() {
  static ControllerList* list = new ControllerList;  // never destroyed: controllers may be freed at exit
  return *list;
}
void unlist(IODMAController* c) {
  ControllerList& list = controller_list();
  std::lock_guard guard(list.lock);
  list.controllers.erase(std::remove(list.controllers.begin(), list.controllers.end(), c), list.controllers.end());
}
}  // namespace

const OSSymbol* IODMAController::createControllerName(UInt32 phandle) {
  char name[32];
  std::snprintf(name, sizeof(name), "IODMAController%08x", static_cast<unsigned>(phandle));
  return OSSymbol::withCString(name);
}

IODMAController* IODMAController::getController(IOService* provider, UInt32) {
  if (provider == NULL) {
    return NULL;
  }
  const OSString* parent = OSDynamicCast(OSString, provider->getProperty("dma-parent"));
  ControllerList& list = controller_list();
  std::lock_guard guard(list.lock);
  if (parent == NULL) {
    return list.controllers.size() == 1 ? list.controllers.front() : NULL;
  }
  for (IODMAController* c : list.controllers) {
    if (c->_dmaControllerName != NULL && c->_dmaControllerName->isEqualTo(parent->getCStringNoCopy())) {
      return c;
    }
  }
  return NULL;
}

bool IODMAController::start(IOService* provider) {
  if (!IOService::start(provider)) {
    return false;
  }
  _provider = provider;
  OSSafeReleaseNULL(_dmaControllerName);
  _dmaControllerName = createControllerName(kmbenchPhandle());
  return _dmaControllerName != NULL;
}

void IODMAController::stop(IOService* provider) {
  unlist(this);
  IOService::stop(provider);
}

void IODMAController::registerDMAController(IOOptionBits options) {
  {
    ControllerList& list = controller_list();
    std::lock_guard guard(list.lock);
    if (std::find(list.controllers.begin(), list.controllers.end(), this) == list.controllers.end()) {
      list.controllers.push_back(this);
    }
  }
  registerService(options);
}

void IODMAController::completeDMACommand(IODMAEventSource* dmaES, IODMACommand* dmaCommand) {
  dmaES->completeDMACommand(dmaCommand);
}

void IODMAController::notifyDMACommand(IODMAEventSource* dmaES, IODMACommand* dmaCommand, IOReturn status,
                                       IOByteCount actualByteCount, AbsoluteTime timeStamp) {
  dmaES->notifyDMACommand(dmaCommand, status, actualByteCount, timeStamp);
}

void IODMAController::free() {
  unlist(this);
  OSSafeReleaseNULL(_dmaControllerName);
  IOService::free();
}
