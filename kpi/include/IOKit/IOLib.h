/* IOLib: the kernel's general memory KPI (iokit/IOKit/IOLib.h), with Apple's
 * names and signatures, served by the active kmbench backend. Misuse (wrong
 * size, double free, wrong free function) is reported as an emulated panic;
 * see kpi/README.md for what is checked in the strict and xnu modes. */
#ifndef KMBENCH_KPI_IOKIT_IOLIB_H
#define KMBENCH_KPI_IOKIT_IOLIB_H

#include <stddef.h>
#include <stdint.h>

#include <IOKit/IOReturn.h>
#include <IOKit/IOTypes.h>
#include <libkern/OSTypes.h>
#include <mach/mach_types.h>
#include <os/overflow.h>

#ifndef PAGE_SHIFT
#define PAGE_SHIFT 12
#endif
#ifndef PAGE_SIZE
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#endif
#ifndef PAGE_MASK
#define PAGE_MASK (PAGE_SIZE - 1)
#endif
#ifndef round_page
#define round_page(x) (((vm_offset_t)(x) + PAGE_MASK) & ~((vm_offset_t)PAGE_MASK))
#endif
#ifndef trunc_page
#define trunc_page(x) ((vm_offset_t)(x) & ~((vm_offset_t)PAGE_MASK))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* General purpose wired memory. post: NULL on failure; IOMalloc(0) is a real 16-byte element. */
void* IOMalloc(vm_size_t size) __attribute__((alloc_size(1)));
void* IOMallocZero(vm_size_t size) __attribute__((alloc_size(1)));
/* pre: address came from IOMalloc/IOMallocZero(size), or is NULL (a no-op). */
void IOFree(void* address, vm_size_t size);

/* Wired memory aligned to `alignment` (rounded up to a power of two). post: NULL for size 0. */
void* IOMallocAligned(vm_size_t size, vm_offset_t alignment) __attribute__((alloc_size(1)));
/* pre: address came from IOMallocAligned(size, ...), or is NULL. */
void IOFreeAligned(void* address, vm_size_t size);

/* Physically contiguous wired memory (deprecated in IOKit). With physicalAddress
 * non-NULL the block lies below 4 GiB and its physical address is stored there. */
void* IOMallocContiguous(vm_size_t size, vm_size_t alignment, IOPhysicalAddress* physicalAddress);
void IOFreeContiguous(void* address, vm_size_t size);

/* Pageable memory. post: NULL when alignment > page size or size > 512 MiB. */
void* IOMallocPageable(vm_size_t size, vm_size_t alignment) __attribute__((alloc_size(1)));
void* IOMallocPageableZero(vm_size_t size, vm_size_t alignment) __attribute__((alloc_size(1)));
void IOFreePageable(void* address, vm_size_t size);

/* kIOReturnUnsupported for any task but kernel_task. */
IOReturn IOFlushProcessorCache(task_t task, IOVirtualAddress address, IOByteCount length);

/* Waiting: IOSleep blocks the thread for milliseconds, IODelay spins for microseconds. */
void IOSleep(unsigned milliseconds);
void IODelay(unsigned microseconds);

/* Byte access to simulated physical memory ("physical IOSpace"). */
UInt8 IOMappedRead8(IOPhysicalAddress address);
UInt16 IOMappedRead16(IOPhysicalAddress address);
UInt32 IOMappedRead32(IOPhysicalAddress address);
UInt64 IOMappedRead64(IOPhysicalAddress address);
void IOMappedWrite8(IOPhysicalAddress address, UInt8 value);
void IOMappedWrite16(IOPhysicalAddress address, UInt16 value);
void IOMappedWrite32(IOPhysicalAddress address, UInt32 value);
void IOMappedWrite64(IOPhysicalAddress address, UInt64 value);

/* DriverKit's page size of the VM system, in bytes. */
extern uint64_t IOVMPageSize;

#ifdef __cplusplus
}
#endif

/* Typed allocation: count * sizeof(type) with an overflow check (overflow gives NULL). */
#define IONew(type, count)                                                          \
  ({                                                                                \
    size_t __kmbench_size;                                                          \
    (os_mul_overflow(sizeof(type), (count), &__kmbench_size) ? ((type*)NULL)        \
                                                             : ((type*)IOMalloc(__kmbench_size))); \
  })

#define IONewZero(type, count)                                                      \
  ({                                                                                \
    size_t __kmbench_size;                                                          \
    (os_mul_overflow(sizeof(type), (count), &__kmbench_size)                        \
         ? ((type*)NULL)                                                            \
         : ((type*)IOMallocZero(__kmbench_size)));                                  \
  })

#define IODelete(ptr, type, count)                                                  \
  ({                                                                                \
    size_t __kmbench_size;                                                          \
    if (!os_mul_overflow(sizeof(type), (count), &__kmbench_size)) {                 \
      IOFree((ptr), __kmbench_size);                                                \
    }                                                                               \
  })

#define IOSafeDeleteNULL(ptr, type, count)                                          \
  do {                                                                              \
    if (NULL != (ptr)) {                                                            \
      IODelete((ptr), type, (count));                                               \
      (ptr) = NULL;                                                                 \
    }                                                                               \
  } while (0)

#endif
