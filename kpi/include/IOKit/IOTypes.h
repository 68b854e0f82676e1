/* IOKit's scalar types, as on a 64-bit kernel (iokit/IOKit/IOTypes.h). */
#ifndef KMBENCH_KPI_IOKIT_IOTYPES_H
#define KMBENCH_KPI_IOKIT_IOTYPES_H

#include <IOKit/IOReturn.h>
#include <libkern/OSTypes.h>
#include <mach/mach_types.h>

#ifndef NULL
#define NULL 0
#endif

typedef UInt32 IOOptionBits;
typedef SInt32 IOFixed;
typedef UInt32 IOVersion;
typedef UInt32 IOItemCount;
typedef UInt32 IOCacheMode;

typedef UInt32 IOByteCount32;
typedef UInt64 IOByteCount64;
typedef UInt64 IOByteCount;

typedef UInt32 IOPhysicalAddress32;
typedef UInt64 IOPhysicalAddress64;
typedef UInt32 IOPhysicalLength32;
typedef UInt64 IOPhysicalLength64;
typedef IOPhysicalAddress64 IOPhysicalAddress;
typedef IOPhysicalLength64 IOPhysicalLength;

typedef mach_vm_address_t IOVirtualAddress;
typedef IOVirtualAddress IOLogicalAddress;

typedef struct {
  IOPhysicalAddress address;
  IOByteCount length;
} IOPhysicalRange;

typedef struct {
  IOVirtualAddress address;
  IOByteCount length;
} IOVirtualRange;

typedef IOVirtualRange IOAddressRange64;

typedef struct {
  mach_vm_address_t address;
  mach_vm_size_t length;
} IOAddressRange;

enum {
  kIODefaultCache = 0,
  kIOInhibitCache = 1,
  kIOWriteThruCache = 2,
  kIOCopybackCache = 3,
  kIOWriteCombineCache = 4,
  kIOCopybackInnerCache = 5,
  kIOPostedWrite = 6,
  kIORealTimeCache = 7,
  kIOPostedReordered = 8,
  kIOPostedCombinedReordered = 9,
};

enum {
  kIODefaultMemoryType = 0,
};

#endif
