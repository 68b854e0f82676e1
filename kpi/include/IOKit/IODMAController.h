// IODMAController (IOKit/IODMAController.h): the abstract driver of a DMA
// engine that IODMAEventSources queue transfers on. A controller registers
// itself under a name made from its phandle; a provider names its controller
// in its "dma-parent" property (here an OSString or OSSymbol holding that
// name, where XNU's device tree holds the phandle). A provider without the property gets
// the only registered controller, if there is exactly one.
//
// kmbench's own controller, a simulated engine that completes transfers
// asynchronously, is KmbenchDMAController (<kmbench/dma_controller.h>).
// A controller's phandle, which XNU reads from the device tree, is what its
// kmbenchPhandle() returns.
#ifndef KMBENCH_KPI_IOKIT_IODMACONTROLLER_H
#define KMBENCH_KPI_IOKIT_IODMACONTROLLER_H

#include <IOKit/IODMACommand.h>
#include <IOKit/IODMAEventSource.h>
#include <IOKit/IOService.h>

class IODMAController : public IOService {
  OSDeclareAbstractStructors(IODMAController);
  friend class IODMAEventSource;

 private:
  IOService* _provider = NULL;
  const OSSymbol* _dmaControllerName = NULL;

 protected:
  /// Makes the controller findable by getController (under its name, set by start).
  virtual void registerDMAController(IOOptionBits options = 0);
  virtual IOReturn initDMAChannel(IOService* provider, IODMAEventSource* dmaES, UInt32* dmaIndex,
                                  UInt32 reqIndex) = 0;
  virtual IOReturn startDMACommand(UInt32 dmaIndex, IODMACommand* dmaCommand, IODirection direction,
                                   IOByteCount byteCount = 0, IOByteCount byteOffset = 0) = 0;
  virtual IOReturn stopDMACommand(UInt32 dmaIndex, bool flush = false, uint64_t timeout = UINT64_MAX) = 0;
  /// Hands a finished command to the event source (queued for its work loop).
  virtual void completeDMACommand(IODMAEventSource* dmaES, IODMACommand* dmaCommand);
  /// Records the outcome on the command and runs the notification action now.
  virtual void notifyDMACommand(IODMAEventSource* dmaES, IODMACommand* dmaCommand, IOReturn status,
                                IOByteCount actualByteCount, AbsoluteTime timeStamp);
  virtual IOReturn queryDMACommand(UInt32 dmaIndex, IODMACommand** dmaCommand, IOByteCount* transferCount,
                                   bool waitForIdle = false) = 0;
  virtual IOByteCount getFIFODepth(UInt32 dmaIndex, IODirection direction) = 0;
  virtual IOReturn setFIFODepth(UInt32 dmaIndex, IOByteCount depth) = 0;
  virtual IOByteCount validFIFODepth(UInt32 dmaIndex, IOByteCount depth, IODirection direction) = 0;
  virtual IOReturn setFrameSize(UInt32 dmaIndex, UInt8 byteCount) = 0;
  virtual IOReturn setDMAConfig(UInt32 dmaIndex, IOService* provider, UInt32 reqIndex) = 0;
  virtual bool validDMAConfig(UInt32 dmaIndex, IOService* provider, UInt32 reqIndex) = 0;
  /// kmbench: an event source on the channel is being freed; the controller forgets it
  /// (and no longer calls it once this returns).
  virtual void kmbenchReleaseChannel(UInt32 /*dmaIndex*/, IODMAEventSource* /*dmaES*/) {}
  /// kmbench: the phandle the controller is named after (0 unless a subclass says).
  virtual UInt32 kmbenchPhandle() const { return 0; }
  void free() override;

 public:
  /// "IODMAController" and the phandle in 8 hex digits, as XNU names them (retained for the caller).
  static const OSSymbol* createControllerName(UInt32 phandle);
  /// The controller serving provider (see above), not retained; NULL when none.
  static IODMAController* getController(IOService* provider, UInt32 dmaIndex);

  /// Attaches to provider and names the controller; registerDMAController makes it findable.
  bool start(IOService* provider) override;
  void stop(IOService* provider) override;
};

#endif
