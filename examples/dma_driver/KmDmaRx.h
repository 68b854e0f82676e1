// A receive driver that lets a DMA engine fill its buffers, as a kext on a
// platform with a DMA controller is written: an IOService started with its
// parameters in an OSDictionary, its own work loop, an IODMAEventSource on
// the controller its provider names, and completions that check each
// buffer, free it and post a fresh one, all on the work loop's thread.
#ifndef KMDMARX_H
#define KMDMARX_H

#include <IOKit/IOBufferMemoryDescriptor.h>
#include <IOKit/IODMACommand.h>
#include <IOKit/IODMAEventSource.h>
#include <IOKit/IOLib.h>
#include <IOKit/IOService.h>
#include <IOKit/IOWorkLoop.h>
#include <libkern/OSMalloc.h>

/// The driver's counts, kept under its OSMalloc tag.
struct KmDmaRxStats {
  UInt32 packets;
  UInt64 bytes;
  UInt32 badPackets;
  UInt32 offLoop;  // completions that ran anywhere but on the work loop
};

class KmDmaRx : public IOService {
  OSDeclareDefaultStructors(KmDmaRx);

 public:
  /// Parameters: "BufferSize" and "Buffers" (OSNumber): receive buffer bytes and how many are posted.
  bool init(OSDictionary* dictionary = NULL) override;
  bool start(IOService* provider) override;
  void stop(IOService* provider) override;
  IOWorkLoop* getWorkLoop() const override { return fWorkLoop; }

  /// Posts no more buffers once `packets` have been posted in all.
  void setPacketLimit(UInt32 packets) { fLimit = packets; }
  /// The counts and the transfers still queued, read under the work loop's gate.
  KmDmaRxStats stats(UInt32* outstanding = NULL);

 protected:
  void free() override;

 private:
  static void dmaCompleted(OSObject* owner, IODMAEventSource* source, IODMACommand* command, IOReturn status,
                           IOByteCount bytes, AbsoluteTime when);
  bool post();
  static IOReturn postAll(OSObject* target, void*, void*, void*, void*);
  static IOReturn stopPosting(OSObject* target, void*, void*, void*, void*);
  static IOReturn readStats(OSObject* target, void* stats, void* outstanding, void*, void*);

  OSMallocTag fTag = NULL;
  KmDmaRxStats* fStats = NULL;
  IOWorkLoop* fWorkLoop = NULL;
  IODMAEventSource* fDMA = NULL;
  UInt32 fBufferSize = 2048;
  UInt32 fBuffers = 16;
  UInt32 fLimit = 0;
  UInt32 fPosted = 0;
  UInt32 fOutstanding = 0;  // posted, not yet completed
};

#endif
