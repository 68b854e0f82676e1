// IOMemoryDescriptor, IOMemoryMap, IOGeneralMemoryDescriptor and IODeviceMemory.
#include <IOKit/IODeviceMemory.h>
#include <IOKit/IOMemoryDescriptor.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "allocators/physmem/physmem.h"
#include "dma_internal.h"
#include "gathered_view.h"
#include "physical.h"

namespace kd = kmbench::kpi::detail;
namespace dma = kmbench::kpi::dma;

// ---- IOMemoryDescriptor ---------------------------------------------------

OSDefineMetaClassAndAbstractStructors(IOMemoryDescriptor, OSObject);

bool IOMemoryDescriptor::initDescriptor(IOByteCount length, IOOptionBits flags) {
  if (!OSObject::init()) {
    return false;
  }
  _length = length;
  _flags = flags;
  return true;
}

void IOMemoryDescriptor::free() {
  if (_dmaActive != 0) {
    kd::panic("IOMemoryDescriptor", this, _length, nullptr,
              "freed while %u DMA command(s) are active", _dmaActive);
  }
  OSObject::free();
}

IOByteCount IOMemoryDescriptor::getLength() const { return _length; }
IODirection IOMemoryDescriptor::getDirection() const { return _flags & kIOMemoryDirectionMask; }
void IOMemoryDescriptor::setTag(IOOptionBits tag) { _tag = tag; }
IOOptionBits IOMemoryDescriptor::getTag() { return _tag; }
IOOptionBits IOMemoryDescriptor::getFlags() { return _flags; }

IOReturn IOMemoryDescriptor::prepare(IODirection) {
  ++_wireCount;
  return kIOReturnSuccess;
}

IOReturn IOMemoryDescriptor::complete(IODirection) {
  if (_wireCount == 0) {
    return kIOReturnSuccess;
  }
  if (_wireCount <= _dmaActive) {
    kd::panic("IOMemoryDescriptor::complete", this, _length, nullptr,
              "complete() while dma active (wire count %u, active DMA commands %u)", _wireCount,
              _dmaActive);
  }
  --_wireCount;
  return kIOReturnSuccess;
}

void IOMemoryDescriptor::kmbenchSetDMAActive(bool active) {
  if (active) {
    ++_dmaActive;
  } else if (_dmaActive > 0) {
    --_dmaActive;
  }
}

void* IOMemoryDescriptor::kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) {
  IOByteCount run = 0;
  const addr64_t pa = getPhysicalSegment(offset, &run, 0);
  void* va = pa != 0 ? dma::virt_of(pa) : nullptr;
  if (va == nullptr) {
    run = 0;
  } else {
    // Virtual contiguity of a physical run: as far as the page after still follows.
    IOByteCount checked = std::min<IOByteCount>(run, dma::kPage - (pa & (dma::kPage - 1)));
    while (checked < run && dma::virt_of(pa + checked) == static_cast<char*>(va) + checked) {
      checked += std::min<IOByteCount>(run - checked, dma::kPage);
    }
    run = checked;
  }
  if (length != nullptr) {
    *length = run;
  }
  return va;
}

IOByteCount IOMemoryDescriptor::copyBytes(IOByteCount offset, void* bytes, IOByteCount withLength,
                                          bool toMemory) {
  if (bytes == nullptr || offset >= _length) {
    return 0;
  }
  const IOByteCount want = std::min(withLength, _length - offset);
  IOByteCount done = 0;
  while (done < want) {
    IOByteCount run = 0;
    void* va = kmbenchVirtualSegment(offset + done, &run);
    if (va == nullptr || run == 0) {
      break;
    }
    run = std::min(run, want - done);
    char* outside = static_cast<char*>(bytes) + done;
    std::memcpy(toMemory ? va : outside, toMemory ? outside : va, run);
    done += run;
  }
  return done;
}

IOByteCount IOMemoryDescriptor::readBytes(IOByteCount offset, void* bytes, IOByteCount withLength) {
  return copyBytes(offset, bytes, withLength, false);
}

IOByteCount IOMemoryDescriptor::writeBytes(IOByteCount offset, const void* bytes,
                                           IOByteCount withLength) {
  return copyBytes(offset, const_cast<void*>(bytes), withLength, true);
}

IOPhysicalAddress IOMemoryDescriptor::getPhysicalAddress() {
  return getPhysicalSegment(0, nullptr, 0);
}

IOMemoryMap* IOMemoryDescriptor::map(IOOptionBits options) {
  return createMappingInTask(kernel_task, 0, options | kIOMapAnywhere, 0, 0);
}

// One address space exists here (the kernel's). Memory in one virtual run maps
// at its own address; pieces in several runs are gathered end to end into a
// new range (gathered_view.h), as XNU's doMap lays them over one reserved
// range. A fixed address elsewhere cannot be honoured.
IOMemoryMap* IOMemoryDescriptor::createMappingInTask(task_t intoTask, mach_vm_address_t atAddress,
                                                     IOOptionBits options, mach_vm_size_t offset,
                                                     mach_vm_size_t length) {
  if (intoTask == nullptr || offset > _length) {
    return nullptr;
  }
  if (length == 0) {
    length = _length - offset;
  }
  if (length > _length - offset || length == 0) {
    return nullptr;
  }
  // The virtual runs of [offset, offset + length), adjacent runs joined.
  std::vector<dma::ViewPiece> runs;
  for (IOByteCount done = 0; done < length;) {
    IOByteCount run = 0;
    void* va = kmbenchVirtualSegment(offset + done, &run);
    if (va == nullptr || run == 0) {
      return nullptr;  // memory with no virtual address (device memory) maps nowhere here
    }
    run = std::min<IOByteCount>(run, length - done);
    const auto at = reinterpret_cast<std::uintptr_t>(va);
    if (!runs.empty() && runs.back().address + runs.back().length == at) {
      runs.back().length += run;
    } else {
      runs.push_back({at, run});
    }
    done += run;
  }
  dma::GatheredView* view = nullptr;
  void* address = reinterpret_cast<void*>(runs.front().address);
  if (runs.size() > 1) {
    IOReturn why = kIOReturnSuccess;
    view = dma::GatheredView::make(runs, (options & kIOMapReadOnly) != 0, &why);
    if (view == nullptr) {
      dma::count(why == kIOReturnNotAligned ? dma::counters().maps_refused_unaligned
                                            : dma::counters().maps_refused_memory);
      return nullptr;
    }
    address = view->address();
    dma::count(dma::counters().gathered_maps);
  }
  if ((options & kIOMapAnywhere) == 0 && atAddress != 0 &&
      atAddress != reinterpret_cast<mach_vm_address_t>(address)) {
    delete view;
    return nullptr;
  }
  IOMemoryMap* m = new IOMemoryMap;
  if (m == nullptr) {
    delete view;
  } else if (!m->kmbenchInit(this, address, offset, length, options, view)) {
    OSSafeReleaseNULL(m);  // free() deletes the view it took
  } else {
    dma::count(dma::counters().maps_by_cache[(options & kIOMapCacheMask) >> kIOMapCacheShift]);
  }
  return m;
}

// ---- IOMemoryMap ----------------------------------------------------------

OSDefineMetaClassAndStructors(IOMemoryMap, OSObject);

bool IOMemoryMap::kmbenchInit(IOMemoryDescriptor* memory, void* address, IOByteCount offset,
                              IOByteCount length, IOOptionBits options,
                              dma::GatheredView* view) {
  _view = view;  // free() gives it back, whatever happens below
  if (!OSObject::init()) {
    return false;
  }
  _memory = dma::retained(memory);
  _address = address;
  _offset = offset;
  _length = length;
  _options = options;
  return true;
}

void IOMemoryMap::free() {
  unmap();
  OSSafeReleaseNULL(_memory);
  OSObject::free();
}

IOVirtualAddress IOMemoryMap::getVirtualAddress() {
  return reinterpret_cast<IOVirtualAddress>(_address);
}
mach_vm_address_t IOMemoryMap::getAddress() { return reinterpret_cast<mach_vm_address_t>(_address); }
mach_vm_size_t IOMemoryMap::getSize() { return _length; }
IOByteCount IOMemoryMap::getLength() { return _length; }
task_t IOMemoryMap::getAddressTask() { return kernel_task; }
IOOptionBits IOMemoryMap::getMapOptions() { return _options; }
IOMemoryDescriptor* IOMemoryMap::getMemoryDescriptor() { return _memory; }
IOPhysicalAddress IOMemoryMap::getPhysicalAddress() { return getPhysicalSegment(0, nullptr, 0); }

IOPhysicalAddress IOMemoryMap::getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                                                  IOOptionBits options) {
  if (_memory == nullptr || offset >= _length) {
    if (length != nullptr) {
      *length = 0;
    }
    return 0;
  }
  IOByteCount run = 0;
  const addr64_t pa = _memory->getPhysicalSegment(_offset + offset, &run, options);
  if (length != nullptr) {
    *length = std::min(run, _length - offset);
  }
  return pa;
}

IOReturn IOMemoryMap::unmap() {
  delete _view;
  _view = nullptr;
  _address = nullptr;
  _length = 0;
  return kIOReturnSuccess;
}

// ---- IOGeneralMemoryDescriptor --------------------------------------------

OSDefineMetaClassAndStructors(IOGeneralMemoryDescriptor, IOMemoryDescriptor);

bool IOGeneralMemoryDescriptor::initWithOptions(void* buffers, UInt32 count, UInt32 offset,
                                                task_t task, IOOptionBits options,
                                                IOMapper*) {
  releaseRanges();
  const IOOptionBits type = options & kIOMemoryTypeMask;
  if (buffers == nullptr || count == 0) {
    return false;
  }
  _physical = type == kIOMemoryTypePhysical || type == kIOMemoryTypePhysical64 || task == nullptr;
  _ranges = new (std::nothrow) Range[count];
  if (_ranges == nullptr) {
    return false;
  }
  IOByteCount total = 0;
  for (UInt32 i = 0; i < count; ++i) {
    if (type == kIOMemoryTypeVirtual || type == kIOMemoryTypePhysical) {
      const auto* r = static_cast<const IOVirtualRange*>(buffers) + i;
      _ranges[i] = {r->address, r->length};
    } else {
      const auto* r = static_cast<const IOAddressRange*>(buffers) + i;
      _ranges[i] = {r->address, r->length};
    }
    if (_ranges[i].length > ~IOByteCount{0} - total) {
      delete[] _ranges;
      _ranges = nullptr;
      return false;
    }
    total += _ranges[i].length;
  }
  _rangeCount = count;
  if (offset > total) {
    releaseRanges();
    return false;
  }
  if (!initDescriptor(total, options & ~kIOMemoryTypeMask)) {
    releaseRanges();
    return false;
  }
  if (!_physical) {
    for (UInt32 i = 0; i < _rangeCount; ++i) {
      _framesLent |= dma::lend_frames(reinterpret_cast<const void*>(_ranges[i].address),
                                      _ranges[i].length);
    }
  }
  return true;
}

void IOGeneralMemoryDescriptor::releaseRanges() {
  if (_ranges != nullptr && _framesLent) {
    for (UInt32 i = 0; i < _rangeCount; ++i) {
      dma::return_frames(reinterpret_cast<const void*>(_ranges[i].address), _ranges[i].length);
    }
  }
  delete[] _ranges;
  _ranges = nullptr;
  _rangeCount = 0;
  _framesLent = false;
}

void IOGeneralMemoryDescriptor::free() {
  releaseRanges();
  IOMemoryDescriptor::free();
}

addr64_t IOGeneralMemoryDescriptor::getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                                                       IOOptionBits) {
  IOByteCount base = 0;
  UInt32 i = 0;
  for (; i < _rangeCount && offset >= base + _ranges[i].length; ++i) {
    base += _ranges[i].length;
  }
  if (i == _rangeCount) {
    if (length != nullptr) {
      *length = 0;
    }
    return 0;
  }
  auto phys_at = [this](UInt32 r, IOByteCount within) -> addr64_t {
    const UInt64 a = _ranges[r].address + within;
    return _physical ? a : dma::phys_of(reinterpret_cast<const void*>(a));
  };
  IOByteCount within = offset - base;
  const addr64_t pa = phys_at(i, within);
  if (pa == 0) {
    if (length != nullptr) {
      *length = 0;
    }
    return 0;
  }
  // Grow the run, on into the next ranges while physically adjacent. Machine
  // memory and physical ranges are linear, so a whole range is one step; lent
  // frames never touch, so those go a page at a time.
  IOByteCount run = 0;
  addr64_t expect = pa;
  for (UInt32 r = i; r < _rangeCount; ++r) {
    const UInt64 len = _ranges[r].length;
    const auto* first = reinterpret_cast<const void*>(_ranges[r].address);
    const auto* last = reinterpret_cast<const void*>(_ranges[r].address + len - 1);
    const bool linear = _physical || (dma::machine().owns(first) && dma::machine().owns(last));
    for (IOByteCount w = r == i ? within : 0; w < len;) {
      const addr64_t here = phys_at(r, w);
      if (here != expect) {
        r = _rangeCount - 1;  // ends the outer loop too
        break;
      }
      const IOByteCount step =
          linear ? len - w : std::min<IOByteCount>(len - w, dma::kPage - (here & (dma::kPage - 1)));
      run += step;
      w += step;
      expect = here + step;
    }
  }
  if (length != nullptr) {
    *length = run;
  }
  return pa;
}

void* IOGeneralMemoryDescriptor::kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) {
  if (_physical) {
    return IOMemoryDescriptor::kmbenchVirtualSegment(offset, length);
  }
  IOByteCount base = 0;
  for (UInt32 i = 0; i < _rangeCount; ++i) {
    if (offset < base + _ranges[i].length) {
      IOByteCount run = base + _ranges[i].length - offset;
      // Virtually adjacent ranges continue the segment.
      for (UInt32 j = i + 1;
           j < _rangeCount && _ranges[j].address == _ranges[j - 1].address + _ranges[j - 1].length;
           ++j) {
        run += _ranges[j].length;
      }
      if (length != nullptr) {
        *length = run;
      }
      return reinterpret_cast<void*>(_ranges[i].address + (offset - base));
    }
    base += _ranges[i].length;
  }
  if (length != nullptr) {
    *length = 0;
  }
  return nullptr;
}

// ---- factories ------------------------------------------------------------

IOMemoryDescriptor* IOMemoryDescriptor::withAddressRanges(IOAddressRange* ranges, UInt32 rangeCount,
                                                          IOOptionBits options, task_t task) {
  auto* md = new IOGeneralMemoryDescriptor;
  const IOOptionBits type = task == nullptr ? kIOMemoryTypePhysical64 : kIOMemoryTypeVirtual64;
  if (md != nullptr &&
      !md->initWithOptions(ranges, rangeCount, 0, task, (options & ~kIOMemoryTypeMask) | type)) {
    OSSafeReleaseNULL(md);
  }
  return md;
}

IOMemoryDescriptor* IOMemoryDescriptor::withAddressRange(mach_vm_address_t address,
                                                         mach_vm_size_t length,
                                                         IOOptionBits options, task_t task) {
  IOAddressRange range = {address, length};
  return withAddressRanges(&range, 1, options, task);
}

IOMemoryDescriptor* IOMemoryDescriptor::withAddress(void* address, IOByteCount withLength,
                                                    IODirection withDirection) {
  return withAddressRange(reinterpret_cast<mach_vm_address_t>(address), withLength, withDirection,
                          kernel_task);
}

IOMemoryDescriptor* IOMemoryDescriptor::withPhysicalAddress(IOPhysicalAddress address,
                                                            IOByteCount withLength,
                                                            IODirection withDirection) {
  return withAddressRange(address, withLength, withDirection, nullptr);
}

// ---- IODeviceMemory -------------------------------------------------------

OSDefineMetaClassAndStructors(IODeviceMemory, IOGeneralMemoryDescriptor);

IODeviceMemory* IODeviceMemory::withRange(IOPhysicalAddress start, IOPhysicalLength length) {
  auto* md = new IODeviceMemory;
  IOAddressRange range = {start, length};
  if (md != nullptr && !md->initWithOptions(&range, 1, 0, nullptr, IOOptionBits{kIODirectionNone} |
                                            IOOptionBits{kIOMemoryMapperNone} |
                                                kIOMemoryTypePhysical64)) {
    OSSafeReleaseNULL(md);
  }
  return md;
}

IODeviceMemory* IODeviceMemory::withSubRange(IODeviceMemory* of, IOPhysicalAddress offset,
                                             IOPhysicalLength length) {
  if (of == nullptr || offset > of->getLength() || length > of->getLength() - offset) {
    return nullptr;
  }
  IOByteCount run = 0;
  const addr64_t pa = of->getPhysicalSegment(offset, &run, 0);
  if (run < length) {
    return nullptr;
  }
  return withRange(pa, length);
}
