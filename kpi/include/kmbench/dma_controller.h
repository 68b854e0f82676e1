// KmbenchDMAController: a simulated DMA engine behind IODMAController, for
// driver code that queues transfers through IODMAEventSource.
//
// Each channel runs its queued transfers in order on the engine's own thread
// (the "hardware"). A transfer takes latency + bytes / bandwidth of simulated
// time, measured on CLOCK_MONOTONIC; when it ends the engine moves the bytes
// through the command's generated segments (kmbenchDeviceRead/Write, so
// bounce buffers and IOMMU mappings are exercised), notifies the event source
// and completes the command, which the event source delivers on its work loop.
// A subclass can override deviceTransfer to play a particular device.
#ifndef KMBENCH_KPI_DMA_CONTROLLER_H
#define KMBENCH_KPI_DMA_CONTROLLER_H

#include <IOKit/IODMAController.h>

/// How long a transfer takes: latencyNs + bytes / bytesPerSecond.
struct KmbenchDMATiming {
  UInt64 latencyNs = 2000;                // from the start of a transfer to its first byte
  UInt64 bytesPerSecond = 4000000000ull;  // 0: bytes take no time
};

struct KmbenchDMAEngine;  // the channels, their queues and the engine thread (kpi/src/dma/dma_controller.cpp)

class KmbenchDMAController : public IODMAController {
  OSDeclareDefaultStructors(KmbenchDMAController);

 public:
  typedef KmbenchDMATiming Timing;
  /// post: a controller with `channels` channels (1..64) and the given phandle, not yet started; or NULL.
  static KmbenchDMAController* withChannels(UInt32 channels, UInt32 phandle = 0, Timing timing = Timing());
  virtual bool initWithChannels(UInt32 channels, UInt32 phandle, Timing timing);

  /// Starts the engine thread and registers the controller. post: false when it cannot.
  bool start(IOService* provider) override;
  /// Aborts every queued transfer (kIOReturnAborted) and stops the engine thread.
  void stop(IOService* provider) override;

  UInt32 getChannelCount() const;
  /// Transfers completed and bytes moved, over all channels, since the controller started.
  UInt64 getCompletedTransfers() const;
  UInt64 getCompletedBytes() const;

 protected:
  /// The device's side of one transfer of `length` bytes from `offset` in the
  /// command's prepared memory: the default writes a pattern for
  /// kIODirectionIn (byte i of the transfer is i & 0xff) and reads the bytes
  /// for kIODirectionOut. post: the bytes moved.
  virtual IOByteCount deviceTransfer(UInt32 dmaIndex, IODMACommand* dmaCommand, IODirection direction,
                                     IOByteCount offset, IOByteCount length);

  IOReturn initDMAChannel(IOService* provider, IODMAEventSource* dmaES, UInt32* dmaIndex, UInt32 reqIndex) override;
  IOReturn startDMACommand(UInt32 dmaIndex, IODMACommand* dmaCommand, IODirection direction,
                           IOByteCount byteCount = 0, IOByteCount byteOffset = 0) override;
  IOReturn stopDMACommand(UInt32 dmaIndex, bool flush = false, uint64_t timeout = UINT64_MAX) override;
  IOReturn queryDMACommand(UInt32 dmaIndex, IODMACommand** dmaCommand, IOByteCount* transferCount,
                           bool waitForIdle = false) override;
  IOByteCount getFIFODepth(UInt32 dmaIndex, IODirection direction) override;
  IOReturn setFIFODepth(UInt32 dmaIndex, IOByteCount depth) override;
  IOByteCount validFIFODepth(UInt32 dmaIndex, IOByteCount depth, IODirection direction) override;
  IOReturn setFrameSize(UInt32 dmaIndex, UInt8 byteCount) override;
  IOReturn setDMAConfig(UInt32 dmaIndex, IOService* provider, UInt32 reqIndex) override;
  bool validDMAConfig(UInt32 dmaIndex, IOService* provider, UInt32 reqIndex) override;
  void kmbenchReleaseChannel(UInt32 dmaIndex, IODMAEventSource* dmaES) override;
  UInt32 kmbenchPhandle() const override { return fPhandle; }
  void free() override;

 private:
  friend struct KmbenchDMAEngine;
  KmbenchDMAEngine* fEngine = NULL;
  UInt32 fPhandle = 0;
};

#endif
