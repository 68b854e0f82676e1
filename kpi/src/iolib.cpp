// IOLib: IOMalloc and friends over the KPI core.
#include <IOKit/IOLib.h>

#include <errno.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <bit>
#include <cstring>

#include "core.h"
#include "record.h"

using kmbench::kpi::detail::Family;
namespace kd = kmbench::kpi::detail;

struct task {
  int unused;
};
namespace {
task g_kernel_task{};
}
task_t kernel_task = &g_kernel_task;

uint64_t IOVMPageSize = kd::kPage;

namespace {

/// Alignment rounded up to a power of two (0 and 1 mean none); 0 when it cannot be.
std::size_t power_of_two_alignment(std::uint64_t alignment) {
  if (alignment <= 1) {
    return 1;
  }
  if (alignment > (std::uint64_t{1} << 62)) {
    return 0;
  }
  return static_cast<std::size_t>(std::bit_ceil(alignment));
}

template <class T>
T* mapped(IOPhysicalAddress address, const char* fn) {
  void* va = kd::pages_virt(address);
  if (va == nullptr || address % alignof(T) != 0) {
    kd::panic(fn, nullptr, sizeof(T), nullptr,
              "physical address 0x%llx is not in simulated physical memory or is misaligned",
              static_cast<unsigned long long>(address));
  }
  return static_cast<T*>(va);
}

}  // namespace

using kmbench::ops::Call;

namespace {

// IOMalloc's and IOFree's paths before the hot path is known, and while the
// calls are recorded (kd::HotCalls).
void* io_malloc_general(std::uint64_t size, __OSMallocTag__*, const void* site) noexcept {
  void* p = kd::allocate(Family::io_malloc, size, kmbench::kMinAlign, nullptr);
  KMBENCH_KPI_RECORD_AT(site, Call::io_malloc, p, size, 0, 0);
  return p;
}

void io_free_general(void* address, std::uint64_t size, __OSMallocTag__*, const void* site) noexcept {
  KMBENCH_KPI_RECORD_AT(site, Call::io_free, address, size, 0, 0);
  kd::release(Family::io_malloc, "IOFree", address, size, nullptr);
}

}  // namespace

constinit const kd::HotEntries kd::kIOMallocEntries =
    kd::kHeapEntries<Family::io_malloc, &io_malloc_general, &io_free_general>;
constinit kd::HotCalls kd::g_io_malloc_calls{&io_malloc_general, &io_free_general};

extern "C" {

// Each call records itself (record.h) with the caller's return address: an
// allocation once it has its block (nullptr when it failed), a free before the
// block can be handed out again, so that a reader ordering the records by time
// never sees a block's next allocation before its free.

void* IOMallocZero(vm_size_t size) {
  void* p = kd::allocate(Family::io_malloc, size, kmbench::kMinAlign, nullptr);
  if (p != nullptr) {
    std::memset(p, 0, size);
  }
  KMBENCH_KPI_RECORD(Call::io_malloc_zero, p, size, 0, 0);
  return p;
}

void* IOMallocAligned(vm_size_t size, vm_offset_t alignment) {
  const std::size_t align = power_of_two_alignment(alignment);
  void* p = size == 0 || align == 0 ? nullptr : kd::allocate(Family::io_aligned, size, align, nullptr);
  KMBENCH_KPI_RECORD(Call::io_malloc_aligned, p, size, align, 0);
  return p;
}

void IOFreeAligned(void* address, vm_size_t size) {
  KMBENCH_KPI_RECORD(Call::io_free_aligned, address, size, 0, 0);
  kd::release(Family::io_aligned, "IOFreeAligned", address, size, nullptr);
}

void* IOMallocContiguous(vm_size_t size, vm_size_t alignment, IOPhysicalAddress* physicalAddress) {
  const std::size_t align = power_of_two_alignment(alignment);
  void* p = nullptr;
  if (size != 0 && align != 0) {
    // With an out-parameter XNU asks for mask 0xFFFFFFFF ^ (align - 1): below 4 GiB.
    const std::uint64_t max_phys = physicalAddress != nullptr ? 0xFFFFFFFFull : ~0ull;
    p = kd::allocate(Family::io_contiguous, size, align, nullptr, max_phys);
    if (p != nullptr && physicalAddress != nullptr) {
      *physicalAddress = kd::pages_phys(p);
    }
  }
  // aux2: 1 when the caller asked for the physical address (the block then lies below 4 GiB).
  KMBENCH_KPI_RECORD(Call::io_malloc_contiguous, p, size, align, physicalAddress != nullptr ? 1u : 0u);
  return p;
}

void IOFreeContiguous(void* address, vm_size_t size) {
  KMBENCH_KPI_RECORD(Call::io_free_contiguous, address, size, 0, 0);
  kd::release(Family::io_contiguous, "IOFreeContiguous", address, size, nullptr);
}

namespace {

void* malloc_pageable(vm_size_t size, vm_size_t alignment, bool zero) {
  const std::size_t align = power_of_two_alignment(alignment);
  if (size == 0 || align == 0 || align > kd::kPage || size > kd::kMaxPageable) {
    return nullptr;
  }
  void* p = kd::allocate(Family::io_pageable, size, align, nullptr);
  if (p != nullptr && zero) {
    std::memset(p, 0, size);
  }
  return p;
}

}  // namespace

// aux2 of a pageable allocation: 1 when it was zeroed.
void* IOMallocPageable(vm_size_t size, vm_size_t alignment) {
  void* p = malloc_pageable(size, alignment, false);
  KMBENCH_KPI_RECORD(Call::io_malloc_pageable, p, size, power_of_two_alignment(alignment), 0);
  return p;
}

void* IOMallocPageableZero(vm_size_t size, vm_size_t alignment) {
  void* p = malloc_pageable(size, alignment, true);
  KMBENCH_KPI_RECORD(Call::io_malloc_pageable, p, size, power_of_two_alignment(alignment), 1);
  return p;
}

void IOFreePageable(void* address, vm_size_t size) {
  KMBENCH_KPI_RECORD(Call::io_free_pageable, address, size, 0, 0);
  kd::release(Family::io_pageable, "IOFreePageable", address, size, nullptr);
}

void IOSleep(unsigned milliseconds) {
  timespec ts{static_cast<time_t>(milliseconds / 1000), static_cast<long>(milliseconds % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void IODelay(unsigned microseconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(microseconds);
  while (std::chrono::steady_clock::now() < until) {
  }
}

IOReturn IOFlushProcessorCache(task_t task, IOVirtualAddress, IOByteCount) {
  if (task != kernel_task) {
    return kIOReturnUnsupported;
  }
  // x86 caches are coherent with DMA; what remains to order is the CPU's own stores.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return kIOReturnSuccess;
}

UInt8 IOMappedRead8(IOPhysicalAddress address) {
  return *mapped<volatile UInt8>(address, "IOMappedRead8");
}
UInt16 IOMappedRead16(IOPhysicalAddress address) {
  return *mapped<volatile UInt16>(address, "IOMappedRead16");
}
UInt32 IOMappedRead32(IOPhysicalAddress address) {
  return *mapped<volatile UInt32>(address, "IOMappedRead32");
}
UInt64 IOMappedRead64(IOPhysicalAddress address) {
  return *mapped<volatile UInt64>(address, "IOMappedRead64");
}
void IOMappedWrite8(IOPhysicalAddress address, UInt8 value) {
  *mapped<volatile UInt8>(address, "IOMappedWrite8") = value;
}
void IOMappedWrite16(IOPhysicalAddress address, UInt16 value) {
  *mapped<volatile UInt16>(address, "IOMappedWrite16") = value;
}
void IOMappedWrite32(IOPhysicalAddress address, UInt32 value) {
  *mapped<volatile UInt32>(address, "IOMappedWrite32") = value;
}
void IOMappedWrite64(IOPhysicalAddress address, UInt64 value) {
  *mapped<volatile UInt64>(address, "IOMappedWrite64") = value;
}

}  // extern "C"
