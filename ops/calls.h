// The call an operation was made by, when the trace knows it: a recording
// made through the KPI (KMBENCH_RECORD, kpi/README.md), a DTrace capture of a
// kext and the LD_PRELOAD recorder name each call. Streams keep them beside their ops (ops::Stream::calls),
// .kmt files in an optional section (docs/kmt-format.md).
#pragma once

#include <cstdint>
#include <string_view>

namespace kmbench::ops {

enum class Call : std::uint8_t {
  none,  // not known (ftrace captures, synthetic workloads)
  io_malloc,
  io_malloc_zero,
  io_malloc_aligned,
  io_malloc_pageable,
  io_malloc_contiguous,
  io_free,
  io_free_aligned,
  io_free_pageable,
  io_free_contiguous,
  os_malloc,
  os_malloc_noblock,
  os_malloc_nowait,
  os_free,
  os_object_new,     // OSObject::operator new; the op's tag names the class
  os_object_delete,
  io_buffer_alloc,   // IOBufferMemoryDescriptor::inTaskWithOptions and its siblings
  io_buffer_free,
  dma_prepare,       // IODMACommand::prepare
  dma_complete,      // IODMACommand::complete
  // User space (the LD_PRELOAD recorder): the C library's calls. A realloc
  // that moves a block is two ops, the free of the old block and the
  // allocation of the new one, both made by realloc.
  malloc,
  calloc,
  realloc,
  free,
  posix_memalign,
  aligned_alloc,
  memalign,
  valloc,
  pvalloc,
  mmap,    // anonymous mappings
  munmap,
};
inline constexpr int kCalls = 31;

/// The KPI's own spelling of each call, in Call's order ("" for none).
inline constexpr std::string_view kCallNames[kCalls] = {
    "",
    "IOMalloc",
    "IOMallocZero",
    "IOMallocAligned",
    "IOMallocPageable",
    "IOMallocContiguous",
    "IOFree",
    "IOFreeAligned",
    "IOFreePageable",
    "IOFreeContiguous",
    "OSMalloc",
    "OSMalloc_noblock",
    "OSMalloc_nowait",
    "OSFree",
    "OSObject::operator new",
    "OSObject::operator delete",
    "IOBufferMemoryDescriptor",
    "IOBufferMemoryDescriptor::free",
    "IODMACommand::prepare",
    "IODMACommand::complete",
    "malloc",
    "calloc",
    "realloc",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "mmap",
    "munmap",
};

/// The KPI family a call belongs to, named as kpi::family_usage() names it
/// (plus the DMA classes): the calls that allocate a family's blocks and the
/// one that frees them share it. OSMalloc on a pageable tag is the
/// "OSMalloc(pageable)" family; a trace tells it by the op's pageable flag.
inline constexpr std::string_view call_family(Call c, bool pageable = false) {
  switch (c) {
    case Call::none: return "";
    case Call::io_malloc: case Call::io_malloc_zero: case Call::io_free: return "IOMalloc";
    case Call::io_malloc_aligned: case Call::io_free_aligned: return "IOMallocAligned";
    case Call::io_malloc_pageable: case Call::io_free_pageable: return "IOMallocPageable";
    case Call::io_malloc_contiguous: case Call::io_free_contiguous: return "IOMallocContiguous";
    case Call::os_malloc: case Call::os_malloc_noblock: case Call::os_malloc_nowait: case Call::os_free:
      return pageable ? "OSMalloc(pageable)" : "OSMalloc";
    case Call::os_object_new: case Call::os_object_delete: return "OSObject";
    case Call::io_buffer_alloc: case Call::io_buffer_free: return "IOBufferMemoryDescriptor";
    case Call::dma_prepare: case Call::dma_complete: return "IODMACommand";
    case Call::malloc: case Call::calloc: case Call::realloc: case Call::free: case Call::posix_memalign:
    case Call::aligned_alloc: case Call::memalign: case Call::valloc: case Call::pvalloc:
      return "malloc";
    case Call::mmap: case Call::munmap: return "mmap";
  }
  return "";
}

inline constexpr std::string_view call_name(Call c) {
  const auto i = static_cast<unsigned>(c);
  return i < kCalls ? kCallNames[i] : std::string_view{};
}

/// The call of that name, or Call::none.
inline constexpr Call call_of_name(std::string_view name) {
  for (int i = 1; i < kCalls; ++i) {
    if (kCallNames[i] == name) return static_cast<Call>(i);
  }
  return Call::none;
}

}  // namespace kmbench::ops
