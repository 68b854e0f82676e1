// IOBufferMemoryDescriptor: a descriptor that owns its buffer.
#include <IOKit/IOBufferMemoryDescriptor.h>
#include <IOKit/IOLib.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "allocators/physmem/physmem.h"
#include "../record.h"
#include "dma_internal.h"
#include "physical.h"

namespace dma = kmbench::kpi::dma;

OSDefineMetaClassAndStructors(IOBufferMemoryDescriptor, IOGeneralMemoryDescriptor);

namespace {

UInt64 round_up_power_of_two(UInt64 v) {
  return v <= 1 ? 1 : UInt64{1} << (64 - __builtin_clzll(v - 1));
}

}  // namespace

bool IOBufferMemoryDescriptor::initWithPhysicalMask(task_t inTask, IOOptionBits options,
                                                    mach_vm_size_t capacity,
                                                    mach_vm_address_t alignment,
                                                    mach_vm_address_t physicalMask) {
  if (capacity == 0 || inTask == nullptr) {
    return false;
  }
  UInt64 align = alignment;
  UInt64 max_phys = ~UInt64{0};
  if (physicalMask != 0) {
    if (align <= 1) {
      align = std::max<UInt64>(physicalMask & (~physicalMask + 1), dma::kPage);
    }
    max_phys = physicalMask | (align - 1);
  }
  align = round_up_power_of_two(align);
  const bool contiguous =
      (options & (kIOMemoryPhysicallyContiguous | kIOMemoryHostPhysicallyContiguous)) != 0 ||
      align > dma::kPage;
  if (align >= dma::kPage) {
    capacity = (capacity + dma::kPage - 1) & ~(dma::kPage - 1);
  }
  // As XNU: small unrestricted buffers come from the kalloc heap (the active
  // backend); the rest from the page layer.
  _fromPages = contiguous || physicalMask != 0 || align >= dma::kPage ||
               capacity >= dma::kPage || (options & kIOMemoryPageable) != 0;
  if (_fromPages) {
    _allocated = (capacity + dma::kPage - 1) & ~(dma::kPage - 1);
    _buffer = dma::machine().alloc_contiguous(_allocated, std::max<UInt64>(align, dma::kPage),
                                              dma::node(), max_phys);
    if (_buffer == nullptr) {
      dma::count(dma::counters().contiguous_failures);
    }
  } else {
    _allocated = capacity;
    const kmbench::kpi::detail::RecordQuiet quiet;  // the descriptor's record stands for its buffer
    _buffer = IOMallocAligned(capacity, align);
  }
  if (_buffer == nullptr) {
    return false;
  }
  _capacity = capacity;
  _alignment = align;
  IOAddressRange range = {reinterpret_cast<mach_vm_address_t>(_buffer), capacity};
  const IOOptionBits flags = (options & ~kIOMemoryTypeMask) | kIOMemoryTypeVirtual64;
  if (!initWithOptions(&range, 1, 0, kernel_task, flags)) {
    return false;  // free() gives the buffer back
  }
  dma::count(dma::counters().buffers);
  dma::count(dma::counters().buffer_bytes, capacity);
  return true;
}

void IOBufferMemoryDescriptor::free() {
  if (_buffer != nullptr) {  // a descriptor whose init failed was recorded as a failed allocation
    KMBENCH_KPI_RECORD(kmbench::ops::Call::io_buffer_free, this, _capacity, 0, 0);
  }
  if (_ranges != nullptr) {
    _ranges[0].length = _capacity;  // frames were lent for the capacity, whatever the length now
  }
  releaseRanges();
  if (_buffer != nullptr) {
    if (_fromPages) {
      dma::machine().free_contiguous(_buffer, _allocated);
    } else {
      const kmbench::kpi::detail::RecordQuiet quiet;
      IOFreeAligned(_buffer, _allocated);
    }
    _buffer = nullptr;
  }
  IOGeneralMemoryDescriptor::free();
}

namespace {

IOBufferMemoryDescriptor* make_buffer(task_t inTask, IOOptionBits options, mach_vm_size_t capacity,
                                      mach_vm_address_t alignment, mach_vm_address_t physicalMask) {
  auto* me = new IOBufferMemoryDescriptor;
  if (me != nullptr && !me->initWithPhysicalMask(inTask, options, capacity, alignment, physicalMask)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

unsigned log2_of(UInt64 alignment) { return alignment <= 1 ? 0 : std::bit_width(alignment) - 1; }

}  // namespace

// Each factory records the descriptor (record.h): aux its physical mask, aux2 its options.
#define KMBENCH_RECORD_BUFFER(me, capacity, options, alignment, mask)                                 \
  do {                                                                                                \
    if (kmbench::kpi::detail::recording()) [[unlikely]] {                                             \
      kmbench::kpi::detail::record_call(static_cast<std::uint8_t>(kmbench::ops::Call::io_buffer_alloc), \
                                        (me), (capacity), (mask), (options), __builtin_return_address(0), \
                                        static_cast<std::uint8_t>(log2_of(alignment)));               \
    }                                                                                                 \
  } while (0)

IOBufferMemoryDescriptor* IOBufferMemoryDescriptor::inTaskWithPhysicalMask(
    task_t inTask, IOOptionBits options, mach_vm_size_t capacity, mach_vm_address_t physicalMask) {
  IOBufferMemoryDescriptor* me = make_buffer(inTask, options, capacity, 1, physicalMask);
  KMBENCH_RECORD_BUFFER(me, capacity, options, 1, physicalMask);
  return me;
}

IOBufferMemoryDescriptor* IOBufferMemoryDescriptor::inTaskWithOptions(task_t inTask,
                                                                      IOOptionBits options,
                                                                      vm_size_t capacity,
                                                                      vm_offset_t alignment) {
  IOBufferMemoryDescriptor* me = make_buffer(inTask, options, capacity, alignment, 0);
  KMBENCH_RECORD_BUFFER(me, capacity, options, alignment, 0);
  return me;
}

IOBufferMemoryDescriptor* IOBufferMemoryDescriptor::withOptions(IOOptionBits options,
                                                                vm_size_t capacity,
                                                                vm_offset_t alignment) {
  IOBufferMemoryDescriptor* me = make_buffer(kernel_task, options, capacity, alignment, 0);
  KMBENCH_RECORD_BUFFER(me, capacity, options, alignment, 0);
  return me;
}

namespace {

IOOptionBits capacity_options(IODirection withDirection, bool withContiguousMemory) {
  return withDirection | (withContiguousMemory ? kIOMemoryPhysicallyContiguous : 0);
}

}  // namespace

IOBufferMemoryDescriptor* IOBufferMemoryDescriptor::withCapacity(vm_size_t capacity,
                                                                 IODirection withDirection,
                                                                 bool withContiguousMemory) {
  const IOOptionBits options = capacity_options(withDirection, withContiguousMemory);
  const vm_size_t alignment = withContiguousMemory ? capacity : 1;
  IOBufferMemoryDescriptor* me = make_buffer(kernel_task, options, capacity, alignment, 0);
  KMBENCH_RECORD_BUFFER(me, capacity, options, alignment, 0);
  return me;
}

IOBufferMemoryDescriptor* IOBufferMemoryDescriptor::withBytes(const void* bytes,
                                                              vm_size_t withLength,
                                                              IODirection withDirection,
                                                              bool withContiguousMemory) {
  const IOOptionBits options = capacity_options(withDirection, withContiguousMemory);
  const vm_size_t alignment = withContiguousMemory ? withLength : 1;
  IOBufferMemoryDescriptor* me = make_buffer(kernel_task, options, withLength, alignment, 0);
  KMBENCH_RECORD_BUFFER(me, withLength, options, alignment, 0);
  if (me != nullptr) {
    me->setLength(0);
    if (!me->appendBytes(bytes, withLength)) {
      OSSafeReleaseNULL(me);
    }
  }
  return me;
}

void IOBufferMemoryDescriptor::setLength(vm_size_t length) {
  if (length > _capacity) {
    return;
  }
  _length = length;
  _ranges[0].length = length;
}

void IOBufferMemoryDescriptor::setDirection(IODirection direction) {
  _flags = (_flags & ~IOOptionBits{kIOMemoryDirectionMask}) | (direction & kIOMemoryDirectionMask);
}

vm_size_t IOBufferMemoryDescriptor::getCapacity() const { return _capacity; }

void* IOBufferMemoryDescriptor::getBytesNoCopy() { return _buffer; }

void* IOBufferMemoryDescriptor::getBytesNoCopy(vm_size_t start, vm_size_t withLength) {
  if (start >= _length || withLength > _length - start) {
    return nullptr;
  }
  return static_cast<char*>(_buffer) + start;
}

bool IOBufferMemoryDescriptor::appendBytes(const void* bytes, vm_size_t withLength) {
  if (bytes == nullptr && withLength != 0) {
    return false;
  }
  const vm_size_t room = _capacity - _length;
  const vm_size_t n = std::min(withLength, room);
  std::memcpy(static_cast<char*>(_buffer) + _length, bytes, n);
  setLength(_length + n);
  return true;
}
