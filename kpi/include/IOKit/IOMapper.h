// IOMapper (IOKit/IOMapper.h): a simulated IOMMU. Each mapper owns an I/O
// virtual address space; mapping pages into it gives a device contiguous
// addresses for scattered memory, at a counted cost. IOMapper::gSystem is the
// system mapper the C functions below use (NULL: no IOMMU, the default).
#ifndef KMBENCH_KPI_IOKIT_IOMAPPER_H
#define KMBENCH_KPI_IOKIT_IOMAPPER_H

#include <IOKit/IOTypes.h>
#include <libkern/c++/OSObject.h>

typedef UInt32 ppnum_t;

class IORangeAllocator;

class IOMapper : public OSObject {
  OSDeclareDefaultStructors(IOMapper);

 public:
  static IOMapper* gSystem;

  /// kmbench: a mapper whose I/O virtual addresses have addressBits bits
  /// (at most 44: page numbers are ppnum_t) and start at one page.
  static IOMapper* withAddressBits(UInt8 addressBits);
  virtual bool initWithAddressBits(UInt8 addressBits);
  /// Makes `mapper` the system mapper (retained; NULL: none).
  static void setSystemMapper(IOMapper* mapper);

  /// I/O virtual page numbers for `pages` pages; 0 when the space is full.
  virtual ppnum_t iovmAlloc(IOItemCount pages);
  virtual void iovmFree(ppnum_t addr, IOItemCount pages);
  /// Maps physical page `page` at I/O page addr + offset.
  virtual void iovmInsert(ppnum_t addr, IOItemCount offset, ppnum_t page);
  /// The physical address behind an I/O virtual address; 0 when unmapped.
  virtual addr64_t mapToPhysicalAddress(UInt64 mappedAddress);
  UInt8 getAddressBits() const { return fAddressBits; }

 protected:
  void free() override;

 private:
  UInt8 fAddressBits = 32;
  IORangeAllocator* fSpace = nullptr;
  UInt64* fTable = nullptr;  // I/O page -> physical page + 1 (0: unmapped)
  UInt64 fTablePages = 0;
  void* fLock = nullptr;
};

extern "C" {
/// The system mapper's iovmAlloc/iovmFree/iovmInsert; 0 / no-ops without one.
ppnum_t IOMapperIOVMAlloc(unsigned pages);
void IOMapperIOVMFree(ppnum_t addr, unsigned pages);
ppnum_t IOMapperInsertPage(ppnum_t addr, unsigned offset, ppnum_t page);
}

#endif
