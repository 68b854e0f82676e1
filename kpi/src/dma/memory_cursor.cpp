// IOMemoryCursor and its Natural/Big/Little forms.
#include <IOKit/IOMemoryCursor.h>
#include <IOKit/IOMemoryDescriptor.h>
#include <libkern/OSByteOrder.h>

#include <algorithm>

#include "dma_internal.h"

namespace dma = kmbench::kpi::dma;

OSDefineMetaClassAndStructors(IOMemoryCursor, OSObject);

IOMemoryCursor* IOMemoryCursor::withSpecification(SegmentFunction outSegFunc,
                                                  IOPhysicalLength maxSegmentSize,
                                                  IOPhysicalLength maxTransferSize,
                                                  IOPhysicalLength alignment) {
  auto* me = new IOMemoryCursor;
  if (me != nullptr &&
      !me->initWithSpecification(outSegFunc, maxSegmentSize, maxTransferSize, alignment)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool IOMemoryCursor::initWithSpecification(SegmentFunction outSegFunc,
                                           IOPhysicalLength inMaxSegmentSize,
                                           IOPhysicalLength inMaxTransferSize,
                                           IOPhysicalLength alignment) {
  if (outSegFunc == nullptr || !OSObject::init() || (alignment & (alignment - 1)) != 0) {
    return false;
  }
  outSeg = outSegFunc;
  maxSegmentSize = inMaxSegmentSize == 0 ? ~IOPhysicalLength{0} : inMaxSegmentSize;
  maxTransferSize = inMaxTransferSize == 0 ? ~IOPhysicalLength{0} : inMaxTransferSize;
  alignMask = alignment == 0 ? 0 : alignment - 1;
  return true;
}

UInt32 IOMemoryCursor::genPhysicalSegments(IOMemoryDescriptor* descriptor,
                                           IOByteCount fromPosition, void* segments,
                                           UInt32 maxSegments, UInt32 inMaxTransferSize,
                                           IOByteCount* transferSize) {
  IOByteCount moved = 0;
  UInt32 produced = 0;
  if (descriptor != nullptr && segments != nullptr) {
    const IOByteCount limit =
        std::min<IOByteCount>(inMaxTransferSize == 0 ? ~IOByteCount{0} : inMaxTransferSize,
                              maxTransferSize);
    IOByteCount offset = fromPosition;
    while (produced < maxSegments && moved < limit && offset < descriptor->getLength()) {
      IOByteCount run = 0;
      const addr64_t pa = descriptor->getPhysicalSegment(offset, &run, 0);
      if (pa == 0 || run == 0) {
        break;
      }
      const IOByteCount len = std::min({run, maxSegmentSize, limit - moved});
      outSeg({pa, len}, segments, produced++);
      moved += len;
      offset += len;
    }
  }
  if (transferSize != nullptr) {
    *transferSize = moved;
  }
  dma::count(dma::counters().segments, produced);
  return produced;
}

#define KMBENCH_DEFINE_CURSOR(Class, SWAP)                                                     \
  OSDefineMetaClassAndStructors(Class, IOMemoryCursor);                                        \
  void Class::outputSegment(PhysicalSegment segment, void* segments, UInt32 segmentIndex) {    \
    auto* out = static_cast<PhysicalSegment*>(segments) + segmentIndex;                        \
    out->location = SWAP(segment.location);                                                    \
    out->length = SWAP(segment.length);                                                        \
  }                                                                                            \
  Class* Class::withSpecification(IOPhysicalLength inMaxSegmentSize,                            \
                                  IOPhysicalLength inMaxTransferSize, IOPhysicalLength inAlign) { \
    auto* me = new Class;                                                                      \
    if (me != nullptr &&                                                                       \
        !me->initWithSpecification(inMaxSegmentSize, inMaxTransferSize, inAlign)) {            \
      OSSafeReleaseNULL(me);                                                                   \
    }                                                                                          \
    return me;                                                                                 \
  }                                                                                            \
  bool Class::initWithSpecification(IOPhysicalLength inMaxSegmentSize,                          \
                                    IOPhysicalLength inMaxTransferSize,                        \
                                    IOPhysicalLength inAlign) {                                 \
    return IOMemoryCursor::initWithSpecification(&Class::outputSegment, inMaxSegmentSize,      \
                                                 inMaxTransferSize, inAlign);                   \
  }

#define KMBENCH_SWAP_NONE(x) (x)
KMBENCH_DEFINE_CURSOR(IONaturalMemoryCursor, KMBENCH_SWAP_NONE)
KMBENCH_DEFINE_CURSOR(IOBigMemoryCursor, OSSwapHostToBigInt64)
KMBENCH_DEFINE_CURSOR(IOLittleMemoryCursor, OSSwapHostToLittleInt64)
