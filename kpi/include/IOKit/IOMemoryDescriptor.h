// IOMemoryDescriptor (IOKit/IOMemoryDescriptor.h): a description of memory
// for I/O — one or more ranges, their direction, and their physical pages.
//
// In kmbench every physical address is one of the simulated machine
// (allocators/physmem). Memory the page layer owns (IOBufferMemoryDescriptor,
// IOMallocContiguous, page-backed backends) has its own physical address;
// other memory (a glibc or mimalloc heap) is given scattered page frames of
// its own, above 4 GiB, for as long as a descriptor covers it — so such
// memory is, as on a real machine, not physically contiguous.
#ifndef KMBENCH_KPI_IOKIT_IOMEMORYDESCRIPTOR_H
#define KMBENCH_KPI_IOKIT_IOMEMORYDESCRIPTOR_H

#include <IOKit/IOTypes.h>
#include <libkern/c++/OSObject.h>

class IOMemoryMap;
class IOMapper;
namespace kmbench::kpi::dma {
class GatheredView;
}

#ifndef KMBENCH_KPI_IODIRECTION_DEFINED
#define KMBENCH_KPI_IODIRECTION_DEFINED
typedef IOOptionBits IODirection;
enum {
  kIODirectionNone = 0x0,
  kIODirectionIn = 0x1,   // device → memory
  kIODirectionOut = 0x2,  // memory → device
  kIODirectionOutIn = kIODirectionOut | kIODirectionIn,
  kIODirectionInOut = kIODirectionIn | kIODirectionOut,
  kIODirectionPrepareToPhys32 = 0x4,
  kIODirectionPrepareNoFault = 0x8,
  kIODirectionPrepareReserved1 = 0x10,
  kIODirectionPrepareNonCoherent = 0x20,
  kIODirectionCompleteWithError = 0x40,
  kIODirectionCompleteWithDataValid = 0x80,
};
#endif

/// Memory descriptor options (the low byte carries the direction).
enum {
  kIOMemoryDirectionMask = 0x00000007,
  kIOMemoryTypeVirtual = 0x00000010,
  kIOMemoryTypePhysical = 0x00000020,
  kIOMemoryTypeUPL = 0x00000030,
  kIOMemoryTypeVirtual64 = 0x00000040,
  kIOMemoryTypePhysical64 = 0x00000050,
  kIOMemoryTypeUIO = 0x00000060,
  kIOMemoryTypeMask = 0x000000f0,
  kIOMemoryAsReference = 0x00000100,
  kIOMemoryBufferPageable = 0x00000400,
  kIOMemoryMapperNone = 0x00000800,
  kIOMemoryHostOnly = 0x00001000,
  kIOMemoryPersistent = 0x00010000,
  kIOMemoryMapCopyOnWrite = 0x00020000,
  kIOMemoryRemote = 0x00040000,
  kIOMemoryThreadSafe = 0x00100000,
  kIOMemoryClearEncrypt = 0x00200000,
  kIOMemoryUseReserve = 0x00800000,
};

/// Buffer options (IOBufferMemoryDescriptor::withOptions).
enum {
  kIOMemoryPhysicallyContiguous = 0x00000010,
  kIOMemoryPageable = 0x00000020,
  kIOMemoryPurgeable = 0x00000040,
  kIOMemoryHostPhysicallyContiguous = 0x00000080,
  kIOMemoryKernelUserShared = 0x00010000,
};

/// Mapping options (IOMemoryDescriptor::map, createMappingInTask).
enum {
  kIOMapAnywhere = 0x00000001,
  kIOMapCacheMask = 0x00000700,
  kIOMapCacheShift = 8,
  kIOMapDefaultCache = kIODefaultCache << kIOMapCacheShift,
  kIOMapInhibitCache = kIOInhibitCache << kIOMapCacheShift,
  kIOMapWriteThruCache = kIOWriteThruCache << kIOMapCacheShift,
  kIOMapCopybackCache = kIOCopybackCache << kIOMapCacheShift,
  kIOMapWriteCombineCache = kIOWriteCombineCache << kIOMapCacheShift,
  kIOMapUserOptionsMask = 0x00000fff,
  kIOMapReadOnly = 0x00001000,
  kIOMapStatic = 0x01000000,
  kIOMapReference = 0x02000000,
  kIOMapUnique = 0x04000000,
  kIOMapPrefault = 0x10000000,
  kIOMapOverwrite = 0x20000000,
};

class IOMemoryDescriptor : public OSObject {
  OSDeclareAbstractStructors(IOMemoryDescriptor);

 public:
  static IOMemoryDescriptor* withAddress(void* address, IOByteCount withLength,
                                         IODirection withDirection);
  static IOMemoryDescriptor* withPhysicalAddress(IOPhysicalAddress address,
                                                 IOByteCount withLength,
                                                 IODirection withDirection);
  static IOMemoryDescriptor* withAddressRange(mach_vm_address_t address, mach_vm_size_t length,
                                              IOOptionBits options, task_t task);
  static IOMemoryDescriptor* withAddressRanges(IOAddressRange* ranges, UInt32 rangeCount,
                                               IOOptionBits options, task_t task);

  virtual IOByteCount getLength() const;
  virtual IODirection getDirection() const;
  virtual void setTag(IOOptionBits tag);
  virtual IOOptionBits getTag();
  IOOptionBits getFlags();

  /// Wires the memory for I/O; nests (each prepare needs a complete).
  virtual IOReturn prepare(IODirection forDirection = kIODirectionNone);
  /// Unwires; completing memory an active IODMACommand still uses panics.
  virtual IOReturn complete(IODirection forDirection = kIODirectionNone);

  /// post: bytes copied; 0 when offset lies outside the descriptor.
  virtual IOByteCount readBytes(IOByteCount offset, void* bytes, IOByteCount withLength);
  virtual IOByteCount writeBytes(IOByteCount offset, const void* bytes, IOByteCount withLength);

  /// The physical run at offset and its length (to the end of the run or the
  /// descriptor); 0 and *length = 0 past the end.
  virtual addr64_t getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                                      IOOptionBits options = 0) = 0;
  IOPhysicalAddress getPhysicalAddress();

  /// A mapping of the whole descriptor into the kernel task. Memory in one virtual run maps
  /// at its own address; pieces that are not virtually adjacent are gathered end to end into
  /// a new range, as XNU maps them (docs/dma.md). NULL when pieces meet inside a page, or lie
  /// in memory other than private anonymous read-write memory.
  IOMemoryMap* map(IOOptionBits options = 0);
  IOMemoryMap* createMappingInTask(task_t intoTask, mach_vm_address_t atAddress,
                                   IOOptionBits options, mach_vm_size_t offset = 0,
                                   mach_vm_size_t length = 0);

  /// kmbench: the virtual address holding the byte at offset and how many
  /// bytes follow contiguously (NULL past the end). Not part of Apple's KPI.
  virtual void* kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length);
  /// kmbench: IODMACommand bookkeeping (XNU's dmaCommandOperation).
  void kmbenchSetDMAActive(bool active);
  UInt32 kmbenchWireCount() const { return _wireCount; }

 protected:
  bool initDescriptor(IOByteCount length, IOOptionBits flags);
  /// readBytes (toMemory false) and writeBytes (true): bytes copied.
  IOByteCount copyBytes(IOByteCount offset, void* bytes, IOByteCount withLength, bool toMemory);
  void free() override;

  IOByteCount _length = 0;
  IOOptionBits _flags = 0;
  IOOptionBits _tag = 0;
  UInt32 _wireCount = 0;
  UInt32 _dmaActive = 0;
};

/// A mapping of a descriptor: an address range in a task (here, the kernel's).
class IOMemoryMap : public OSObject {
  OSDeclareDefaultStructors(IOMemoryMap);

 public:
  virtual IOVirtualAddress getVirtualAddress();
  virtual mach_vm_address_t getAddress();
  virtual mach_vm_size_t getSize();
  virtual IOByteCount getLength();
  virtual task_t getAddressTask();
  virtual IOOptionBits getMapOptions();
  virtual IOMemoryDescriptor* getMemoryDescriptor();
  virtual IOPhysicalAddress getPhysicalAddress();
  virtual IOPhysicalAddress getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                                               IOOptionBits options = 0);
  virtual IOReturn unmap();

  /// kmbench: pre: `address` holds `length` bytes of `memory` from `offset` on; the map
  /// owns `view` (the range gathering the descriptor's pieces) when there is one.
  bool kmbenchInit(IOMemoryDescriptor* memory, void* address, IOByteCount offset,
                   IOByteCount length, IOOptionBits options,
                   kmbench::kpi::dma::GatheredView* view = nullptr);

 protected:
  void free() override;

 private:
  IOMemoryDescriptor* _memory = nullptr;
  kmbench::kpi::dma::GatheredView* _view = nullptr;
  void* _address = nullptr;
  IOByteCount _offset = 0;
  IOByteCount _length = 0;
  IOOptionBits _options = 0;
};

/// The descriptor over ranges of virtual (or physical) addresses.
class IOGeneralMemoryDescriptor : public IOMemoryDescriptor {
  OSDeclareDefaultStructors(IOGeneralMemoryDescriptor);

 public:
  /// pre: options carries a kIOMemoryType* and a direction; ranges are copied
  /// unless kIOMemoryAsReference.
  virtual bool initWithOptions(void* buffers, UInt32 count, UInt32 offset, task_t task,
                               IOOptionBits options, IOMapper* mapper = NULL);

  addr64_t getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                              IOOptionBits options = 0) override;
  void* kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) override;

 protected:
  void free() override;
  /// Forgets the ranges (and the page frames lent to them).
  void releaseRanges();

  struct Range {
    UInt64 address;  // virtual, or physical for kIOMemoryTypePhysical*
    UInt64 length;
  };
  Range* _ranges = nullptr;
  UInt32 _rangeCount = 0;
  bool _physical = false;
  bool _framesLent = false;  // frames were lent to pages outside the simulated RAM
};

#endif
