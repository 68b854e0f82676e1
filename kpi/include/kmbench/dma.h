// The harness's handle on the DMA layer: where DMA buffers are placed and
// what DMA cost (segments, bounce copies, IOMMU work).
#pragma once

#include <cstdint>

#include "allocators/backend.h"

namespace kmbench::kpi {

/// Counters of the DMA layer since the last reset (all threads).
struct DmaStats {
  std::uint64_t transfers = 0;            // IODMACommand prepares (outermost)
  std::uint64_t transfer_bytes = 0;
  std::uint64_t segments = 0;             // segments generated
  std::uint64_t bounce_bytes = 0;         // bytes that needed a bounce buffer
  std::uint64_t bounce_copies = 0;        // copies between memory and bounce buffers
  std::uint64_t bounce_copy_bytes = 0;
  std::uint64_t iommu_mappings = 0;       // transfers mapped through an IOMapper
  std::uint64_t iommu_pages = 0;          // pages inserted into an IOMapper
  std::uint64_t buffers = 0;              // IOBufferMemoryDescriptors created
  std::uint64_t buffer_bytes = 0;
  std::uint64_t contiguous_failures = 0;  // page-layer requests that found no memory
  std::uint64_t lent_pages = 0;           // heap pages holding lent frames now
  /// IOMemoryMaps made, by the cache mode they asked for (kIOMapCacheMask >> kIOMapCacheShift:
  /// default, inhibit, write-through, copyback, write-combine, copyback-inner, posted-write,
  /// real-time). Recorded only: the simulated memory has no caches to change.
  std::uint64_t maps_by_cache[8] = {};
  std::uint64_t gathered_maps = 0;           // maps that gathered non-adjacent pieces into one range
  std::uint64_t gathered_pages = 0;          // pages shown by such maps now (shared while shown)
  std::uint64_t maps_refused_unaligned = 0;  // maps refused: two pieces meet inside a page
  std::uint64_t maps_refused_memory = 0;     // maps refused: a piece cannot be shared (read-only,
                                             // a file mapping) or the kernel said no

  double segments_per_transfer() const {
    return transfers == 0 ? 0.0 : static_cast<double>(segments) / static_cast<double>(transfers);
  }
};

DmaStats dma_stats();
/// "default", "inhibit", "writethru", "copyback", "writecombine", "copyback-inner", "posted", "realtime".
const char* cache_mode_name(unsigned mode);
void reset_dma_stats();

/// The node IOBufferMemoryDescriptor and bounce buffers come from (kAnyNode: the caller's).
void set_dma_node(NodeId node);
NodeId dma_node();

}  // namespace kmbench::kpi
