#include "KmDmaRx.h"

#include <libkern/c++/OSNumber.h>
#include <string.h>

#define super IOService
OSDefineMetaClassAndStructors(KmDmaRx, IOService);

bool KmDmaRx::init(OSDictionary* dictionary) {
  if (!super::init(dictionary)) {
    return false;
  }
  if (OSNumber* size = OSDynamicCast(OSNumber, getProperty("BufferSize"))) {
    fBufferSize = size->unsigned32BitValue();
  }
  if (OSNumber* count = OSDynamicCast(OSNumber, getProperty("Buffers"))) {
    fBuffers = count->unsigned32BitValue();
  }
  return fBufferSize >= 64 && fBuffers > 0;
}

bool KmDmaRx::start(IOService* provider) {
  if (!super::start(provider)) {
    return false;
  }
  fTag = OSMalloc_Tagalloc("com.kmbench.example.dmarx", OSMT_DEFAULT);
  fStats = (KmDmaRxStats*)OSMalloc(sizeof(KmDmaRxStats), fTag);
  fWorkLoop = IOWorkLoop::workLoop();
  if (!fTag || !fStats || !fWorkLoop) {
    return false;
  }
  bzero(fStats, sizeof(*fStats));
  fDMA = IODMAEventSource::dmaEventSource(this, provider, &KmDmaRx::dmaCompleted);
  if (!fDMA || fWorkLoop->addEventSource(fDMA) != kIOReturnSuccess) {
    return false;
  }
  fDMA->setFIFODepth(fBuffers);
  // Under the gate: completions of the first buffers may run while the others are posted.
  return fWorkLoop->runAction(&KmDmaRx::postAll, this) == kIOReturnSuccess;
}

IOReturn KmDmaRx::postAll(OSObject* target, void*, void*, void*, void*) {
  KmDmaRx* me = (KmDmaRx*)target;
  for (UInt32 i = 0; i < me->fBuffers; i++) {
    if (!me->post()) {
      return kIOReturnNoMemory;
    }
  }
  return kIOReturnSuccess;
}

IOReturn KmDmaRx::readStats(OSObject* target, void* stats, void* outstanding, void*, void*) {
  KmDmaRx* me = (KmDmaRx*)target;
  *(KmDmaRxStats*)stats = *me->fStats;
  if (outstanding) {
    *(UInt32*)outstanding = me->fOutstanding;
  }
  return kIOReturnSuccess;
}

IOReturn KmDmaRx::stopPosting(OSObject* target, void*, void*, void*, void*) {
  KmDmaRx* me = (KmDmaRx*)target;
  me->fLimit = me->fPosted;
  return kIOReturnSuccess;
}

KmDmaRxStats KmDmaRx::stats(UInt32* outstanding) {
  KmDmaRxStats s;
  bzero(&s, sizeof(s));
  if (fWorkLoop && fStats) {
    fWorkLoop->runAction(&KmDmaRx::readStats, this, &s, outstanding);
  }
  return s;
}

// A fresh receive buffer, prepared for the device, queued on the engine.
bool KmDmaRx::post() {
  if (fLimit != 0 && fPosted >= fLimit) {
    return true;
  }
  IOBufferMemoryDescriptor* buffer = IOBufferMemoryDescriptor::withCapacity(fBufferSize, kIODirectionIn);
  IODMACommand* command = IODMACommand::withSpecification(kIODMACommandOutputHost64, 32, 0);
  bool ok = buffer && command && command->setMemoryDescriptor(buffer) == kIOReturnSuccess &&
            fDMA->startDMACommand(command, kIODirectionIn) == kIOReturnSuccess;
  OSSafeReleaseNULL(buffer);  // the command holds it while the transfer lasts
  if (!ok) {
    if (command) {
      command->clearMemoryDescriptor();
      command->release();
    }
    return false;
  }
  fPosted++;
  fOutstanding++;
  return true;
}

// On the work loop: take the packet out, give the buffer back, post another.
void KmDmaRx::dmaCompleted(OSObject* owner, IODMAEventSource*, IODMACommand* command, IOReturn status,
                           IOByteCount bytes, AbsoluteTime) {
  KmDmaRx* me = (KmDmaRx*)owner;
  me->fOutstanding--;
  if (!me->fWorkLoop->onThread()) {
    me->fStats->offLoop++;
  }
  IOMemoryDescriptor* buffer = (IOMemoryDescriptor*)command->getMemoryDescriptor();
  buffer->retain();
  command->clearMemoryDescriptor();  // complete(): a bounced buffer is copied back here
  if (status == kIOReturnSuccess) {
    UInt8* packet = (UInt8*)IOMalloc(bytes);  // the copy the stack would get (an mbuf)
    if (packet) {
      buffer->readBytes(0, packet, bytes);
      for (IOByteCount i = 0; i < bytes; i++) {
        if (packet[i] != (UInt8)(i & 0xff)) {
          me->fStats->badPackets++;
          break;
        }
      }
      IOFree(packet, bytes);
    }
    me->fStats->packets++;
    me->fStats->bytes += bytes;
  }
  buffer->release();
  command->release();
  if (status == kIOReturnSuccess) {
    me->post();
  }
}

void KmDmaRx::stop(IOService* provider) {
  if (fDMA) {
    fWorkLoop->runAction(&KmDmaRx::stopPosting, this);
    fDMA->stopDMACommand(true);  // aborts what is still queued; their completions free the buffers
    UInt32 outstanding = 1;
    for (int waited = 0; waited < 10000; waited++) {  // the work loop delivers the aborted ones
      stats(&outstanding);
      if (outstanding == 0) {
        break;
      }
      IOSleep(1);
    }
    fWorkLoop->removeEventSource(fDMA);
  }
  super::stop(provider);
}

void KmDmaRx::free() {
  OSSafeReleaseNULL(fDMA);
  OSSafeReleaseNULL(fWorkLoop);
  if (fStats) {
    OSFree(fStats, sizeof(KmDmaRxStats), fTag);
    fStats = NULL;
  }
  if (fTag) {
    OSMalloc_Tagfree(fTag);
    fTag = NULL;
  }
  super::free();
}
