// The replay's DMA path: what a dma_map/dma_unmap (IODMACommand prepare and
// complete) does to a buffer the backend handed out. Kept in this one file
// so the KPI's DMA layer (kpi/: IOBufferMemoryDescriptor, IODMACommand,
// IOMapper) can take it over; the replay does not go through it yet.
//
// Here: buffers come from the backend, page-aligned; a transfer walks
// its pages' physical addresses when the backend has them (kFeaturePhysical),
// merging physically adjacent pages into segments and counting the bytes of
// pages above 4 GiB for 32-bit (kOpDma32) transfers as bounced. Without
// physical addresses only transfers are counted; no IOMMU is simulated.
#pragma once

#include <cstdint>
#include <string>

#include "allocators/backend.h"
#include "harness/ops/ops.h"
#include "harness/replay/program.h"

namespace kmbench::replay {

/// Per replay thread; summed after the run.
struct DmaCounters {
  std::uint64_t transfers = 0;
  std::uint64_t bytes = 0;
  std::uint64_t segments = 0;
  std::uint64_t bounce_bytes = 0;
  std::uint64_t bounce_copies = 0;
  std::uint64_t iommu_mappings = 0;

  void add(const DmaCounters& o) noexcept {
    transfers += o.transfers;
    bytes += o.bytes;
    segments += o.segments;
    bounce_bytes += o.bounce_bytes;
    bounce_copies += o.bounce_copies;
    iommu_mappings += o.iommu_mappings;
  }
};

inline constexpr std::uint64_t kDma32Limit = std::uint64_t{1} << 32;

template <class B>
inline constexpr bool kDmaMeasured = (B::kFeatures & kFeaturePhysical) != 0;

/// Says in a result what the DMA figures are and are not.
template <class B>
std::string dma_note() {
  if constexpr (kDmaMeasured<B>) {
    return "replay DMA path (not the KPI's IODMACommand): buffers allocated page-aligned through "
           "the backend; segments and 32-bit bounce bytes from the backend's simulated physical "
           "pages; no IOMMU";
  } else {
    return "replay DMA path (not the KPI's IODMACommand) on a backend without physical "
           "addresses: transfers counted, segments and bounce bytes not measured; no IOMMU";
  }
}

/// Walks [p, p + bytes) page by page. post: returns bytes above 4 GiB when dma32.
template <class B>
std::uint64_t walk_segments(const B& b, const void* p, std::uint64_t bytes, bool dma32,
                            std::uint64_t& segments) noexcept {
  auto at = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t end = at + bytes;
  std::uint64_t next_pa = ~std::uint64_t{0};
  std::uint64_t above = 0;
  while (at < end) {
    const std::uintptr_t page_end = (at | (kPageBytes - 1)) + 1;
    const std::uint64_t len = (page_end < end ? page_end : end) - at;
    const std::uint64_t pa = b.physical_address(reinterpret_cast<const void*>(at));
    if (pa != next_pa) {
      ++segments;
    }
    next_pa = pa + len;
    if (dma32 && pa + len > kDma32Limit) {
      above += len;
    }
    at += len;
  }
  return above;
}

/// IODMACommand::prepare on a buffer: one transfer of `bytes` in the step's direction.
template <class B>
inline void dma_prepare(const B& b, const void* p, const Step& s, DmaCounters& c) noexcept {
  ++c.transfers;
  c.bytes += s.size;
  if constexpr (kDmaMeasured<B>) {
    const std::uint64_t above =
        walk_segments(b, p, s.size, (s.flags & ops::kOpDma32) != 0, c.segments);
    if (above > 0) {
      c.bounce_bytes += above;
      if ((s.flags & ops::kOpDirIn) == 0) {
        ++c.bounce_copies;  // copied into the bounce buffer before the device reads it
      }
    }
  }
}

/// IODMACommand::complete: device-to-memory transfers are copied back out of the bounce buffer.
template <class B>
inline void dma_complete(const B& b, const void* p, const Step& s, DmaCounters& c) noexcept {
  if constexpr (kDmaMeasured<B>) {
    if ((s.flags & ops::kOpDma32) != 0 && (s.flags & ops::kOpDirIn) != 0) {
      std::uint64_t ignored = 0;
      if (walk_segments(b, p, s.size, true, ignored) > 0) {
        ++c.bounce_copies;
      }
    }
  }
}

}  // namespace kmbench::replay
