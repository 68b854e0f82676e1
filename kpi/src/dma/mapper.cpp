// IOMapper: a simulated IOMMU — an I/O virtual page space (IORangeAllocator)
// and a flat page table from I/O pages to physical pages.
#include <IOKit/IOMapper.h>
#include <IOKit/IORangeAllocator.h>
#include <sys/mman.h>

#include <mutex>
#include <new>

#include "dma_internal.h"
#include "physical.h"

namespace dma = kmbench::kpi::dma;

OSDefineMetaClassAndStructors(IOMapper, OSObject);

IOMapper* IOMapper::gSystem = nullptr;

namespace {
constexpr UInt8 kMaxAddressBits = 36;  // a flat table of 2^24 entries (reserved, touched as used)
}

IOMapper* IOMapper::withAddressBits(UInt8 addressBits) {
  auto* me = new IOMapper;
  if (me != nullptr && !me->initWithAddressBits(addressBits)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool IOMapper::initWithAddressBits(UInt8 addressBits) {
  if (!OSObject::init() || addressBits < 13 || addressBits > kMaxAddressBits) {
    return false;
  }
  fAddressBits = addressBits;
  fTablePages = UInt64{1} << (addressBits - 12);
  void* table = mmap(nullptr, fTablePages * sizeof(UInt64), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (table == MAP_FAILED) {
    return false;
  }
  fTable = static_cast<UInt64*>(table);
  // I/O page 0 stays unused, so 0 can mean "no address".
  fSpace = IORangeAllocator::withRange(fTablePages - 1, 1, 64, 0);
  if (fSpace == nullptr || !fSpace->allocateRange(0, 1)) {
    return false;
  }
  fLock = new (std::nothrow) std::mutex;
  return fLock != nullptr;
}

void IOMapper::free() {
  if (fTable != nullptr) {
    munmap(fTable, fTablePages * sizeof(UInt64));
  }
  OSSafeReleaseNULL(fSpace);
  delete static_cast<std::mutex*>(fLock);
  OSObject::free();
}

void IOMapper::setSystemMapper(IOMapper* mapper) {
  if (mapper != nullptr) {
    mapper->retain();
  }
  IOMapper* old = gSystem;
  gSystem = mapper;
  OSSafeReleaseNULL(old);
}

ppnum_t IOMapper::iovmAlloc(IOItemCount pages) {
  if (pages == 0) {
    return 0;
  }
  std::lock_guard lock(*static_cast<std::mutex*>(fLock));
  IORangeScalar start = 0;
  return fSpace->allocate(pages, &start, 1) ? static_cast<ppnum_t>(start) : 0;
}

void IOMapper::iovmFree(ppnum_t addr, IOItemCount pages) {
  if (addr == 0 || pages == 0 || addr + UInt64{pages} > fTablePages) {
    return;
  }
  std::lock_guard lock(*static_cast<std::mutex*>(fLock));
  for (IOItemCount i = 0; i < pages; ++i) {
    fTable[addr + i] = 0;
  }
  fSpace->deallocate(addr, pages);
}

void IOMapper::iovmInsert(ppnum_t addr, IOItemCount offset, ppnum_t page) {
  if (UInt64{addr} + offset >= fTablePages) {
    return;
  }
  fTable[addr + offset] = UInt64{page} + 1;
}

addr64_t IOMapper::mapToPhysicalAddress(UInt64 mappedAddress) {
  const UInt64 page = mappedAddress / dma::kPage;
  if (page >= fTablePages || fTable[page] == 0) {
    return 0;
  }
  return (fTable[page] - 1) * dma::kPage + (mappedAddress & (dma::kPage - 1));
}

extern "C" {

ppnum_t IOMapperIOVMAlloc(unsigned pages) {
  return IOMapper::gSystem != nullptr ? IOMapper::gSystem->iovmAlloc(pages) : 0;
}

void IOMapperIOVMFree(ppnum_t addr, unsigned pages) {
  if (IOMapper::gSystem != nullptr) {
    IOMapper::gSystem->iovmFree(addr, pages);
  }
}

ppnum_t IOMapperInsertPage(ppnum_t addr, unsigned offset, ppnum_t page) {
  if (IOMapper::gSystem == nullptr) {
    return page;  // no IOMMU: the device sees the physical page itself
  }
  IOMapper::gSystem->iovmInsert(addr, offset, page);
  return addr + offset;
}

}  // extern "C"
