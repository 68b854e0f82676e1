// IODMAEventSource (IOKit/IODMAEventSource.h): a driver's channel on a DMA
// controller. startDMACommand queues a transfer on the controller; when the
// controller finishes it, the completion action runs on the work loop's
// thread, with the status, the bytes moved and the time. Without a
// completion action, startDMACommand waits for the transfer itself.
// The notification action, when given, runs in the controller's context as
// soon as it reports a transfer.
#ifndef KMBENCH_KPI_IOKIT_IODMAEVENTSOURCE_H
#define KMBENCH_KPI_IOKIT_IODMAEVENTSOURCE_H

#include <IOKit/IODMACommand.h>
#include <IOKit/IOEventSource.h>
#include <IOKit/IOService.h>

class IODMAController;
struct IODMAEventSourceState;  // kmbench: the completed queue and the synchronous wait

class IODMAEventSource : public IOEventSource {
  OSDeclareDefaultStructors(IODMAEventSource);
  friend class IODMAController;

 public:
  typedef void (*Action)(OSObject* owner, IODMAEventSource* dmaES, IODMACommand* dmaCommand, IOReturn status,
                         IOByteCount actualByteCount, AbsoluteTime timeStamp);
#define IODMAEventAction IODMAEventSource::Action

 protected:
  virtual void completeDMACommand(IODMACommand* dmaCommand);
  virtual void notifyDMACommand(IODMACommand* dmaCommand, IOReturn status, IOByteCount actualByteCount,
                                AbsoluteTime timeStamp);

 public:
  /// post: an event source on the channel dmaIndex of provider's controller, or NULL.
  static IODMAEventSource* dmaEventSource(OSObject* owner, IOService* provider, Action completion = NULL,
                                          Action notification = NULL, UInt32 dmaIndex = 0);

  virtual IOReturn startDMACommand(IODMACommand* dmaCommand, IODirection direction, IOByteCount byteCount = 0,
                                   IOByteCount byteOffset = 0);
  virtual IOReturn stopDMACommand(bool flush = false, uint64_t timeout = UINT64_MAX);
  virtual IOReturn queryDMACommand(IODMACommand** dmaCommand, IOByteCount* transferCount,
                                   bool waitForIdle = false);
  virtual IOByteCount getFIFODepth(IODirection direction = kIODirectionNone);
  virtual IOReturn setFIFODepth(IOByteCount depth);
  virtual IOByteCount validFIFODepth(IOByteCount depth, IODirection direction);
  virtual IOReturn setFrameSize(UInt8 byteCount);
  virtual IOReturn setDMAConfig(UInt32 dmaIndex);
  virtual bool validDMAConfig(UInt32 dmaIndex);

 private:
  IOService* dmaProvider = NULL;
  IODMAController* dmaController = NULL;
  UInt32 dmaIndex = 0xFFFFFFFF;
  Action dmaCompletionAction = NULL;
  Action dmaNotificationAction = NULL;
  IODMAEventSourceState* dmaState = NULL;

  virtual bool init(OSObject* owner, IOService* provider, Action completion = NULL, Action notification = NULL,
                    UInt32 dmaIndex = 0);
  bool checkForWork() override;
  void free() override;
};

#endif
