// IOLib: IOMalloc and friends over the KPI core.
#include <IOKit/IOLib.h>

#include <errno.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <bit>
#include <cstring>

#include "core.h"

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

extern "C" {

void* IOMalloc(vm_size_t size) { return kd::allocate(Family::io_malloc, size, kmbench::kMinAlign, nullptr); }

void* IOMallocZero(vm_size_t size) {
  void* p = IOMalloc(size);
  if (p != nullptr) {
    std::memset(p, 0, size);
  }
  return p;
}

void IOFree(void* address, vm_size_t size) {
  kd::release(Family::io_malloc, "IOFree", address, size, nullptr);
}

void* IOMallocAligned(vm_size_t size, vm_offset_t alignment) {
  const std::size_t align = power_of_two_alignment(alignment);
  if (size == 0 || align == 0) {
    return nullptr;
  }
  return kd::allocate(Family::io_aligned, size, align, nullptr);
}

void IOFreeAligned(void* address, vm_size_t size) {
  kd::release(Family::io_aligned, "IOFreeAligned", address, size, nullptr);
}

void* IOMallocContiguous(vm_size_t size, vm_size_t alignment, IOPhysicalAddress* physicalAddress) {
  const std::size_t align = power_of_two_alignment(alignment);
  if (size == 0 || align == 0) {
    return nullptr;
  }
  // With an out-parameter XNU asks for mask 0xFFFFFFFF ^ (align - 1): below 4 GiB.
  const std::uint64_t max_phys = physicalAddress != nullptr ? 0xFFFFFFFFull : ~0ull;
  void* p = kd::allocate(Family::io_contiguous, size, align, nullptr, max_phys);
  if (p != nullptr && physicalAddress != nullptr) {
    *physicalAddress = kd::pages_phys(p);
  }
  return p;
}

void IOFreeContiguous(void* address, vm_size_t size) {
  kd::release(Family::io_contiguous, "IOFreeContiguous", address, size, nullptr);
}

void* IOMallocPageable(vm_size_t size, vm_size_t alignment) {
  const std::size_t align = power_of_two_alignment(alignment);
  if (size == 0 || align == 0 || align > kd::kPage || size > kd::kMaxPageable) {
    return nullptr;
  }
  return kd::allocate(Family::io_pageable, size, align, nullptr);
}

void* IOMallocPageableZero(vm_size_t size, vm_size_t alignment) {
  void* p = IOMallocPageable(size, alignment);
  if (p != nullptr) {
    std::memset(p, 0, size);
  }
  return p;
}

void IOFreePageable(void* address, vm_size_t size) {
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
