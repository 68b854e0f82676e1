// Shared by the DMA layer's sources: its counters, its panic and how it holds objects.
#pragma once

#include <atomic>
#include <cstdint>

#include "../core.h"
#include "kmbench/dma.h"

namespace kmbench::kpi::dma {

/// DmaStats as relaxed atomics; bumped where the work happens.
struct Counters {
  std::atomic<std::uint64_t> transfers{0}, transfer_bytes{0}, segments{0}, bounce_bytes{0},
      bounce_copies{0}, bounce_copy_bytes{0}, iommu_mappings{0}, iommu_pages{0}, buffers{0},
      buffer_bytes{0}, contiguous_failures{0}, gathered_maps{0}, maps_refused_unaligned{0},
      maps_refused_memory{0};
  std::atomic<std::uint64_t> maps_by_cache[8] = {};
};
Counters& counters() noexcept;

inline void count(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.fetch_add(n, std::memory_order_relaxed);
}

/// The node DMA memory is taken from (kAnyNode: the caller's).
NodeId node() noexcept;

/// `object`, retained: for a member that holds it until free() releases it (OSSafeReleaseNULL).
/// pre: object != nullptr.
template <class T>
T* retained(T* object) {
  object->retain();
  return object;
}

}  // namespace kmbench::kpi::dma
