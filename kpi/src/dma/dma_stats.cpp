// The DMA layer's counters and placement, as the harness reads and sets them.
#include <atomic>

#include "dma_internal.h"
#include "gathered_view.h"
#include "physical.h"

namespace kmbench::kpi {
namespace dma {
namespace {
std::atomic<NodeId> g_node{kAnyNode};
}

Counters& counters() noexcept {
  static Counters c;
  return c;
}

NodeId node() noexcept { return g_node.load(std::memory_order_relaxed); }

}  // namespace dma

DmaStats dma_stats() {
  const dma::Counters& c = dma::counters();
  auto get = [](const std::atomic<std::uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  DmaStats s;
  s.transfers = get(c.transfers);
  s.transfer_bytes = get(c.transfer_bytes);
  s.segments = get(c.segments);
  s.bounce_bytes = get(c.bounce_bytes);
  s.bounce_copies = get(c.bounce_copies);
  s.bounce_copy_bytes = get(c.bounce_copy_bytes);
  s.iommu_mappings = get(c.iommu_mappings);
  s.iommu_pages = get(c.iommu_pages);
  s.buffers = get(c.buffers);
  s.buffer_bytes = get(c.buffer_bytes);
  s.contiguous_failures = get(c.contiguous_failures);
  s.lent_pages = dma::lent_pages();
  s.gathered_maps = get(c.gathered_maps);
  s.gathered_pages = dma::GatheredView::shared_pages();
  s.maps_refused_unaligned = get(c.maps_refused_unaligned);
  s.maps_refused_memory = get(c.maps_refused_memory);
  for (int i = 0; i < 8; ++i) s.maps_by_cache[i] = get(c.maps_by_cache[i]);
  return s;
}

void reset_dma_stats() {
  dma::Counters& c = dma::counters();
  for (auto* v : {&c.transfers, &c.transfer_bytes, &c.segments, &c.bounce_bytes, &c.bounce_copies,
                  &c.bounce_copy_bytes, &c.iommu_mappings, &c.iommu_pages, &c.buffers,
                  &c.buffer_bytes, &c.contiguous_failures, &c.gathered_maps,
                  &c.maps_refused_unaligned, &c.maps_refused_memory}) {
    v->store(0, std::memory_order_relaxed);
  }
  for (auto& v : c.maps_by_cache) v.store(0, std::memory_order_relaxed);
}

const char* cache_mode_name(unsigned mode) {
  static const char* const names[8] = {"default",        "inhibit", "writethru", "copyback", "writecombine",
                                       "copyback-inner", "posted",  "realtime"};
  return mode < 8 ? names[mode] : "unknown";
}

void set_dma_node(NodeId node) { dma::g_node.store(node, std::memory_order_relaxed); }
NodeId dma_node() { return dma::node(); }

}  // namespace kmbench::kpi
