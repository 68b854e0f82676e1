#include "KmRxRing.h"

#include <string.h>

#define super OSObject
OSDefineMetaClassAndStructors(KmRxRing, OSObject);

KmRxRing* KmRxRing::withParams(OSMallocTag tag, UInt32 slots, UInt32 bufferSize) {
  KmRxRing* me = OSTypeAlloc(KmRxRing);
  if (me && !me->initWithParams(tag, slots, bufferSize)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool KmRxRing::initWithParams(OSMallocTag tag, UInt32 slots, UInt32 bufferSize) {
  if (!super::init() || tag == NULL || slots == 0 || bufferSize == 0) {
    return false;
  }
  fTag = tag;
  fControl = (KmRxControlBlock*)OSMalloc(sizeof(KmRxControlBlock), fTag);
  if (!fControl) {
    return false;
  }
  bzero(fControl, sizeof(*fControl));
  fSlots = slots;
  fBufferSize = bufferSize;
  fDescriptors = IONewZero(KmRxDescriptor, slots);
  fBuffers = IONewZero(void*, slots);
  if (!fDescriptors || !fBuffers) {
    return false;
  }
  for (UInt32 i = 0; i < slots; i++) {
    IOPhysicalAddress phys = 0;
    fBuffers[i] = IOMallocContiguous(bufferSize, PAGE_SIZE, &phys);
    if (!fBuffers[i]) {
      return false;
    }
    fDescriptors[i].bufferPhys = phys;
    fDescriptors[i].flags = kKmRxOwnedByDevice;
  }
  return true;
}

UInt32 KmRxRing::service() {
  UInt32 taken = 0;
  while (!(fDescriptors[fControl->head].flags & kKmRxOwnedByDevice)) {
    KmRxDescriptor* d = &fDescriptors[fControl->head];
    const UInt8* frame = (const UInt8*)fBuffers[fControl->head];
    // Copy the frame out (as into an mbuf) and check its trailer byte.
    UInt8* copy = (UInt8*)IOMalloc(d->length);
    if (copy) {
      memcpy(copy, frame, d->length);
      UInt8 sum = 0;
      for (UInt32 i = 0; i + 1 < d->length; i++) {
        sum = (UInt8)(sum + copy[i]);
      }
      if (sum != copy[d->length - 1]) {
        fControl->checksumErrors++;
      }
      fControl->bytes += d->length;
      IOFree(copy, d->length);
    }
    fControl->packets++;
    d->length = 0;
    d->flags = kKmRxOwnedByDevice;
    fControl->head = (fControl->head + 1) % fSlots;
    taken++;
  }
  return taken;
}

void KmRxRing::free() {
  if (fBuffers) {
    for (UInt32 i = 0; i < fSlots; i++) {
      if (fBuffers[i]) {
        IOFreeContiguous(fBuffers[i], fBufferSize);
      }
    }
  }
  IOSafeDeleteNULL(fBuffers, void*, fSlots);
  IOSafeDeleteNULL(fDescriptors, KmRxDescriptor, fSlots);
  if (fControl) {
    OSFree(fControl, sizeof(KmRxControlBlock), fTag);
    fControl = NULL;
  }
  super::free();
}
