// IODMACommand: segments for a device, with bounce buffers and IOMMU mapping.
#include <IOKit/IODMACommand.h>
#include <IOKit/IOMapper.h>
#include <libkern/OSByteOrder.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "allocators/physmem/physmem.h"
#include "../record.h"
#include "dma_internal.h"
#include "physical.h"

namespace dma = kmbench::kpi::dma;

/// One piece of the prepared transfer as the device sees it.
struct IODMACommand::Run {
  UInt64 offset;         // within the prepared range
  UInt64 length;
  UInt64 address;        // device address: physical, bounce or I/O virtual
  UInt64 source;         // physical address of the memory itself
  void* bounce;          // bounce copy of this run, or NULL
  bool bounced;          // needs a bounce copy (bounce is set once the buffer exists)
};

OSDefineMetaClassAndStructors(IODMACommand, OSObject);

namespace {

constexpr UInt64 kBounceCeiling = 0xFFFFFFFFull;  // bounce pages: mask 0xFFFFF000, below 4 GiB

bool is_32bit_output(IODMACommand::SegmentFunction fn) {
  return fn == IODMACommand::OutputHost32 || fn == IODMACommand::OutputBig32 ||
         fn == IODMACommand::OutputLittle32;
}

bool fits32(IODMACommand::Segment64 s) {
  return s.fIOVMAddr <= 0xFFFFFFFFull && s.fLength <= 0xFFFFFFFFull &&
         s.fIOVMAddr + s.fLength <= 0x100000000ull;
}

/// Writes segment `index` into `segments` as an (address, length) pair of T, each in the byte
/// order `order` gives (a swap from host order, or none). A 32-bit pair takes only a segment
/// below 4 GiB: false for any other.
template <class T, class Order>
bool output(IODMACommand::Segment64 s, void* segments, UInt32 index, Order order) {
  if (sizeof(T) == 4 && !fits32(s)) {
    return false;
  }
  static_cast<T*>(segments)[2 * index] = order(static_cast<T>(s.fIOVMAddr));
  static_cast<T*>(segments)[2 * index + 1] = order(static_cast<T>(s.fLength));
  return true;
}

template <class T>
T host_order(T v) {
  return v;
}

}  // namespace

// ---- output functions -----------------------------------------------------

bool IODMACommand::OutputHost32(IODMACommand*, Segment64 s, void* segments, UInt32 i) {
  return output<UInt32>(s, segments, i, host_order<UInt32>);
}
bool IODMACommand::OutputBig32(IODMACommand*, Segment64 s, void* segments, UInt32 i) {
  return output<UInt32>(s, segments, i, [](UInt32 v) { return OSSwapHostToBigInt32(v); });
}
bool IODMACommand::OutputLittle32(IODMACommand*, Segment64 s, void* segments, UInt32 i) {
  return output<UInt32>(s, segments, i, [](UInt32 v) { return OSSwapHostToLittleInt32(v); });
}
bool IODMACommand::OutputHost64(IODMACommand*, Segment64 s, void* segments, UInt32 i) {
  return output<UInt64>(s, segments, i, host_order<UInt64>);
}
bool IODMACommand::OutputBig64(IODMACommand*, Segment64 s, void* segments, UInt32 i) {
  return output<UInt64>(s, segments, i, [](UInt64 v) { return OSSwapHostToBigInt64(v); });
}
bool IODMACommand::OutputLittle64(IODMACommand*, Segment64 s, void* segments, UInt32 i) {
  return output<UInt64>(s, segments, i, [](UInt64 v) { return OSSwapHostToLittleInt64(v); });
}

// ---- specification --------------------------------------------------------

IODMACommand* IODMACommand::withSpecification(SegmentFunction outSegFunc, UInt8 numAddressBits,
                                              UInt64 maxSegmentSize, MappingOptions mappingOptions,
                                              UInt64 maxTransferSize, UInt32 alignment,
                                              IOMapper* mapper, void* refCon) {
  auto* me = new IODMACommand;
  if (me != nullptr &&
      !me->initWithSpecification(outSegFunc, numAddressBits, maxSegmentSize, mappingOptions,
                                 maxTransferSize, alignment, mapper, refCon)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool IODMACommand::initWithSpecification(SegmentFunction outSegFunc, UInt8 numAddressBits,
                                         UInt64 maxSegmentSize, MappingOptions mappingOptions,
                                         UInt64 maxTransferSize, UInt32 alignment,
                                         IOMapper* mapper, void* refCon) {
  if (outSegFunc == nullptr || !OSObject::init()) {
    return false;
  }
  const bool out32 = is_32bit_output(outSegFunc);
  if (numAddressBits == 0) {
    numAddressBits = out32 ? 32 : 64;
  }
  if (numAddressBits > 64 || (out32 && numAddressBits > 32) ||
      (alignment & (alignment - 1)) != 0) {
    return false;
  }
  fOutSeg = outSegFunc;
  fNumAddressBits = numAddressBits;
  fMaxSegmentSize = maxSegmentSize == 0 ? ~UInt64{0} : maxSegmentSize;
  fMaxTransferSize = maxTransferSize == 0 ? ~UInt64{0} : maxTransferSize;
  fAlignMask = alignment == 0 ? 0 : alignment - 1;
  fMappingOptions = mappingOptions;
  fRefCon = refCon;
  if ((mappingOptions & kTypeMask) == kMapped) {
    fMapper = mapper != nullptr ? mapper : IOMapper::gSystem;
  }
  if (fMapper != nullptr) {
    fMapper->retain();
  }
  return true;
}

IODMACommand* IODMACommand::cloneCommand(void* refCon) {
  return withSpecification(fOutSeg, fNumAddressBits,
                           fMaxSegmentSize == ~UInt64{0} ? 0 : fMaxSegmentSize, fMappingOptions,
                           fMaxTransferSize == ~UInt64{0} ? 0 : fMaxTransferSize,
                           static_cast<UInt32>(fAlignMask + 1), fMapper, refCon);
}

void IODMACommand::free() {
  clearMemoryDescriptor(true);
  OSSafeReleaseNULL(fMapper);
  OSObject::free();
}

// ---- memory descriptor ----------------------------------------------------

IOReturn IODMACommand::setMemoryDescriptor(const IOMemoryDescriptor* mem, bool autoPrepare) {
  if (mem == fMemory) {
    return autoPrepare && fActive == 0 ? prepare() : kIOReturnSuccess;
  }
  if (fActive != 0) {
    return kIOReturnBusy;
  }
  clearMemoryDescriptor(false);
  if (mem == nullptr) {
    return kIOReturnSuccess;
  }
  fMemory = dma::retained(const_cast<IOMemoryDescriptor*>(mem));
  return autoPrepare ? prepare() : kIOReturnSuccess;
}

IOReturn IODMACommand::clearMemoryDescriptor(bool autoComplete) {
  if (fActive != 0 && !autoComplete) {
    return kIOReturnNotReady;
  }
  while (fActive != 0) {
    complete();
  }
  OSSafeReleaseNULL(fMemory);
  return kIOReturnSuccess;
}

const IOMemoryDescriptor* IODMACommand::getMemoryDescriptor() const { return fMemory; }

// ---- prepare / complete ---------------------------------------------------

IOReturn IODMACommand::prepare(UInt64 offset, UInt64 length, bool, bool synchronize) {
  if (fMemory == nullptr) {
    return kIOReturnBadArgument;
  }
  const UInt64 total = fMemory->getLength();
  if (length == 0) {
    length = offset <= total ? total - offset : 0;
  }
  if (offset > total || length > total - offset) {
    return kIOReturnBadArgument;
  }
  if (fActive != 0) {
    // Nested: the same range again.
    if (offset != fPreparedOffset || length != fPreparedLength) {
      return kIOReturnNotReady;
    }
    ++fActive;
    return kIOReturnSuccess;
  }
  if (length > fMaxTransferSize) {
    return kIOReturnNoSpace;
  }
  IOReturn r = fMemory->prepare(fMemory->getDirection());
  if (r != kIOReturnSuccess) {
    return r;
  }
  fPreparedOffset = offset;
  fPreparedLength = length;
  r = buildRuns(synchronize);
  if (r != kIOReturnSuccess) {
    fMemory->complete(fMemory->getDirection());
    return r;
  }
  fMemory->kmbenchSetDMAActive(true);
  fActive = 1;
  dma::count(dma::counters().transfers);
  dma::count(dma::counters().transfer_bytes, length);
  if (kmbench::kpi::detail::recording()) [[unlikely]] {
    using namespace kmbench::ops::kpirec;
    const IODirection dir = fMemory->getDirection();
    std::uint32_t bits = fNumAddressBits <= 32 ? kPrepare32 : 0;
    bits |= (dir & kIODirectionIn) != 0 ? kPrepareIn : 0;
    bits |= (dir & kIODirectionOut) != 0 ? kPrepareOut : 0;
    for (UInt32 i = 0; i < fRunCount; ++i) {
      bits |= fRuns[i].bounced ? kPrepareBounced : 0;
    }
    bits |= std::min<std::uint32_t>(fRunCount, 0xffffff) << kPrepareRunsShift;
    kmbench::kpi::detail::record_call(static_cast<std::uint8_t>(kmbench::ops::Call::dma_prepare), this, length,
                                      reinterpret_cast<std::uintptr_t>(fMemory), bits,
                                      __builtin_return_address(0));
  }
  return kIOReturnSuccess;
}

IOReturn IODMACommand::complete(bool, bool synchronize) {
  if (fActive == 0) {
    return kIOReturnNotReady;
  }
  if (--fActive > 0) {
    return kIOReturnSuccess;
  }
  KMBENCH_KPI_RECORD(kmbench::ops::Call::dma_complete, this, fPreparedLength, 0, 0);
  releaseRuns(synchronize);
  fMemory->kmbenchSetDMAActive(false);
  fMemory->complete(fMemory->getDirection());
  return kIOReturnSuccess;
}

IOReturn IODMACommand::getPreparedOffsetAndLength(UInt64* offset, UInt64* length) {
  if (fActive == 0) {
    return kIOReturnNotReady;
  }
  if (offset != nullptr) {
    *offset = fPreparedOffset;
  }
  if (length != nullptr) {
    *length = fPreparedLength;
  }
  return kIOReturnSuccess;
}

IOReturn IODMACommand::synchronize(IOOptionBits options) {
  if (fActive == 0) {
    return kIOReturnNotReady;
  }
  if ((options & kForceDoubleBuffer) != 0 && !fForceDoubleBuffer) {
    releaseRuns(false);
    fForceDoubleBuffer = true;
    const IOReturn r = buildRuns(false);
    if (r != kIOReturnSuccess) {
      return r;
    }
  }
  if ((options & kIODirectionOut) != 0) {
    copyBounced(true);
  }
  if ((options & kIODirectionIn) != 0) {
    copyBounced(false);
  }
  return kIOReturnSuccess;
}

// Walks the prepared range's physical runs and decides, for each, the address
// the device will use: an IOMMU address, a bounce buffer below the device's
// limit, or the memory itself.
IOReturn IODMACommand::buildRuns(bool synchronize) {
  std::vector<Run> runs;
  const UInt64 limit = fNumAddressBits >= 64 ? ~UInt64{0} : (UInt64{1} << fNumAddressBits) - 1;
  UInt64 bounce_bytes = 0;
  for (UInt64 done = 0; done < fPreparedLength;) {
    IOByteCount len = 0;
    const addr64_t pa = fMemory->getPhysicalSegment(fPreparedOffset + done, &len, 0);
    if (pa == 0 || len == 0) {
      return kIOReturnVMError;
    }
    len = std::min<UInt64>(len, fPreparedLength - done);
    const bool bounce = fMapper == nullptr && (fMappingOptions & kIterateOnly) == 0 &&
                        (fForceDoubleBuffer || pa + len - 1 > limit || (pa & fAlignMask) != 0);
    runs.push_back({done, len, pa, pa, nullptr, bounce});
    if (bounce) {
      bounce_bytes += (len + dma::kPage - 1) & ~(dma::kPage - 1);
    }
    done += len;
  }

  // Bounce runs share one low buffer, each in page-aligned slots of its own.
  char* bounce_base = nullptr;
  if (bounce_bytes != 0) {
    // Low memory may lie on another node than the buffer: any node will do.
    bounce_base = static_cast<char*>(dma::machine().alloc_contiguous(
        bounce_bytes, dma::kPage, kmbench::kAnyNode, std::min(limit, kBounceCeiling)));
    if (bounce_base == nullptr) {
      dma::count(dma::counters().contiguous_failures);
      return kIOReturnNoResources;
    }
    UInt64 slot = 0;
    for (Run& run : runs) {
      if (run.bounced) {
        run.bounce = bounce_base + slot;
        run.address = dma::phys_of(run.bounce);
        slot += (run.length + dma::kPage - 1) & ~(dma::kPage - 1);
        dma::count(dma::counters().bounce_bytes, run.length);
      }
    }
  }

  // Through an IOMMU every page gets an I/O address in one contiguous window.
  if (fMapper != nullptr && !runs.empty()) {
    UInt64 pages = 0;
    for (const Run& run : runs) {
      pages += ((run.source & (dma::kPage - 1)) + run.length + dma::kPage - 1) / dma::kPage;
    }
    const ppnum_t base = fMapper->iovmAlloc(static_cast<IOItemCount>(pages));
    if (base == 0) {
      return kIOReturnNoResources;
    }
    UInt64 next = 0;
    for (Run& run : runs) {
      const UInt64 first = run.source / dma::kPage;
      const UInt64 count = ((run.source & (dma::kPage - 1)) + run.length + dma::kPage - 1) / dma::kPage;
      for (UInt64 p = 0; p < count; ++p) {
        fMapper->iovmInsert(base, static_cast<IOItemCount>(next + p),
                            static_cast<ppnum_t>(first + p));
      }
      run.address = (UInt64(base) + next) * dma::kPage + (run.source & (dma::kPage - 1));
      next += count;
    }
    fMappedBase = base;
    fMappedPages = pages;
    dma::count(dma::counters().iommu_mappings);
    dma::count(dma::counters().iommu_pages, pages);
  }

  fRuns = new (std::nothrow) Run[runs.size()];
  if (fRuns == nullptr && !runs.empty()) {
    return kIOReturnNoMemory;
  }
  std::copy(runs.begin(), runs.end(), fRuns);
  fRunCount = static_cast<UInt32>(runs.size());
  if (synchronize && (fMemory->getDirection() & kIODirectionOut) != 0) {
    copyBounced(true);
  }
  return kIOReturnSuccess;
}

void IODMACommand::releaseRuns(bool copyBack) {
  if (copyBack && (fMemory->getDirection() & kIODirectionIn) != 0) {
    copyBounced(false);
  }
  // Bounce slots were carved in order from one buffer: the first bounced run holds its base.
  void* bounce_base = nullptr;
  UInt64 bounce_bytes = 0;
  for (UInt32 i = 0; i < fRunCount; ++i) {
    if (fRuns[i].bounce != nullptr) {
      if (bounce_base == nullptr) {
        bounce_base = fRuns[i].bounce;
      }
      bounce_bytes += (fRuns[i].length + dma::kPage - 1) & ~(dma::kPage - 1);
    }
  }
  if (bounce_base != nullptr) {
    dma::machine().free_contiguous(bounce_base, bounce_bytes);
  }
  if (fMapper != nullptr && fMappedBase != 0) {
    fMapper->iovmFree(static_cast<ppnum_t>(fMappedBase), static_cast<IOItemCount>(fMappedPages));
  }
  fMappedBase = 0;
  fMappedPages = 0;
  delete[] fRuns;
  fRuns = nullptr;
  fRunCount = 0;
}

void IODMACommand::copyBounced(bool toDevice) {
  for (UInt32 i = 0; i < fRunCount; ++i) {
    const Run& run = fRuns[i];
    if (run.bounce == nullptr) {
      continue;
    }
    const UInt64 moved = toDevice ? dma::copy_from_phys(run.bounce, run.source, run.length)
                                  : dma::copy_to_phys(run.source, run.bounce, run.length);
    dma::count(dma::counters().bounce_copies);
    dma::count(dma::counters().bounce_copy_bytes, moved);
  }
}

// ---- segments -------------------------------------------------------------

IOReturn IODMACommand::generate(UInt64* offsetP, void* segments, UInt32* numSegmentsP,
                                SegmentFunction fn, bool counted) {
  if (offsetP == nullptr || segments == nullptr || numSegmentsP == nullptr) {
    return kIOReturnBadArgument;
  }
  if (fMemory == nullptr) {
    return kIOReturnBadArgument;
  }
  if (fActive == 0) {
    return kIOReturnNotReady;
  }
  UInt64 offset = *offsetP;
  const UInt32 room = *numSegmentsP;
  *numSegmentsP = 0;
  if (offset >= fPreparedLength) {
    return kIOReturnOverrun;
  }
  const UInt64 limit = fNumAddressBits >= 64 ? ~UInt64{0} : (UInt64{1} << fNumAddressBits) - 1;
  // The run holding offset: runs are in offset order.
  UInt32 r = static_cast<UInt32>(
      std::upper_bound(fRuns, fRuns + fRunCount, offset,
                       [](UInt64 off, const Run& run) { return off < run.offset; }) -
      fRuns - 1);
  UInt32 produced = 0;
  while (produced < room && offset < fPreparedLength) {
    // Start at offset, then swallow following runs while the device addresses touch.
    Segment64 seg = {fRuns[r].address + (offset - fRuns[r].offset),
                     fRuns[r].offset + fRuns[r].length - offset};
    UInt32 next = r + 1;
    while (next < fRunCount && seg.fIOVMAddr + seg.fLength == fRuns[next].address) {
      seg.fLength += fRuns[next].length;
      ++next;
    }
    seg.fLength = std::min(seg.fLength, fMaxSegmentSize);
    if (seg.fIOVMAddr + seg.fLength - 1 > limit && (fMappingOptions & kIterateOnly) == 0) {
      break;  // only iterate-only commands see memory beyond the limit
    }
    if (!fn(this, seg, segments, produced)) {
      *numSegmentsP = produced;
      *offsetP = offset;
      return kIOReturnMessageTooLarge;
    }
    ++produced;
    offset += seg.fLength;
    while (r < fRunCount && offset >= fRuns[r].offset + fRuns[r].length) {
      ++r;
    }
  }
  if (counted) {
    dma::count(dma::counters().segments, produced);
  }
  *numSegmentsP = produced;
  *offsetP = offset;
  return produced == 0 ? kIOReturnMessageTooLarge : kIOReturnSuccess;
}

IOReturn IODMACommand::genIOVMSegments(UInt64* offset, void* segments, UInt32* numSegments) {
  return generate(offset, segments, numSegments, fOutSeg);
}

IOReturn IODMACommand::gen32IOVMSegments(UInt64* offset, Segment32* segments,
                                         UInt32* numSegments) {
  return generate(offset, segments, numSegments, OutputHost32);
}

IOReturn IODMACommand::gen64IOVMSegments(UInt64* offset, Segment64* segments,
                                         UInt32* numSegments) {
  return generate(offset, segments, numSegments, OutputHost64);
}

// ---- the device side (kmbench) -------------------------------------------

IOReturn IODMACommand::kmbenchDeviceSegments(UInt64* offset, Segment64* segments, UInt32* numSegments) {
  return generate(offset, segments, numSegments, OutputHost64, false);
}

namespace {

/// Physical address behind a device address of this command.
UInt64 device_to_phys(IOMapper* mapper, UInt64 device) {
  return mapper != nullptr ? mapper->mapToPhysicalAddress(device) : device;
}

}  // namespace

UInt64 IODMACommand::kmbenchDeviceRead(UInt64 deviceAddress, void* bytes, UInt64 length) {
  UInt64 done = 0;
  while (done < length) {
    const UInt64 chunk = std::min(length - done, dma::kPage - ((deviceAddress + done) & (dma::kPage - 1)));
    const UInt64 pa = device_to_phys(fMapper, deviceAddress + done);
    if (pa == 0 || dma::copy_from_phys(static_cast<char*>(bytes) + done, pa, chunk) != chunk) {
      break;
    }
    done += chunk;
  }
  return done;
}

UInt64 IODMACommand::kmbenchDeviceWrite(UInt64 deviceAddress, const void* bytes, UInt64 length) {
  UInt64 done = 0;
  while (done < length) {
    const UInt64 chunk = std::min(length - done, dma::kPage - ((deviceAddress + done) & (dma::kPage - 1)));
    const UInt64 pa = device_to_phys(fMapper, deviceAddress + done);
    if (pa == 0 || dma::copy_to_phys(pa, static_cast<const char*>(bytes) + done, chunk) != chunk) {
      break;
    }
    done += chunk;
  }
  return done;
}
