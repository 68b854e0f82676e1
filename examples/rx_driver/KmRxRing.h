// A NIC receive ring as a kext would write it: a tagged control block, a ring
// of DMA receive buffers with their physical addresses in the descriptors,
// and an OSObject subclass with a withParams factory.
#ifndef KMRXRING_H
#define KMRXRING_H

#include <IOKit/IOLib.h>
#include <libkern/OSMalloc.h>
#include <libkern/c++/OSObject.h>

/// What the device reads: where to DMA a packet, and where it reports the length.
struct KmRxDescriptor {
  IOPhysicalAddress bufferPhys;
  UInt32 length;  // written by the device
  UInt32 flags;   // kKmRxOwnedByDevice while the buffer waits for a packet
};
enum { kKmRxOwnedByDevice = 1 };

/// Driver-private state, kept under the driver's OSMalloc tag.
struct KmRxControlBlock {
  UInt32 head;
  UInt32 packets;
  UInt64 bytes;
  UInt32 checksumErrors;
};

class KmRxRing : public OSObject {
  OSDeclareDefaultStructors(KmRxRing);

 public:
  static KmRxRing* withParams(OSMallocTag tag, UInt32 slots, UInt32 bufferSize);
  virtual bool initWithParams(OSMallocTag tag, UInt32 slots, UInt32 bufferSize);

  UInt32 slots() const { return fSlots; }
  UInt32 bufferSize() const { return fBufferSize; }
  KmRxDescriptor* descriptor(UInt32 i) const { return &fDescriptors[i]; }
  /// Takes every packet the device has completed; returns how many.
  UInt32 service();
  const KmRxControlBlock* control() const { return fControl; }

 protected:
  void free() override;

 private:
  OSMallocTag fTag = NULL;
  UInt32 fSlots = 0;
  UInt32 fBufferSize = 0;
  KmRxControlBlock* fControl = NULL;
  KmRxDescriptor* fDescriptors = NULL;
  void** fBuffers = NULL;
};

#endif
