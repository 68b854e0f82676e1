// Statistics of the page layer: free blocks per order, pcp counters, fragmentation.
#include <string>

#include "allocators/physmem/physmem.h"

namespace kmbench::physmem {

std::uint64_t NodeStats::largest_free_bytes() const noexcept {
  for (unsigned o = kMaxOrder + 1; o-- > 0;) {
    if (free_blocks[o] != 0) {
      return kPageSize << o;
    }
  }
  return 0;
}

double NodeStats::fragmentation_index(unsigned order) const noexcept {
  std::uint64_t blocks = 0;
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    if (o >= order && free_blocks[o] != 0) {
      return -1.0;
    }
    blocks += free_blocks[o];
  }
  if (blocks == 0) {
    return 0.0;
  }
  // Linux mm/vmstat.c __fragmentation_index, as a fraction.
  const double requested = static_cast<double>(1ull << order);
  return 1.0 - (1.0 + static_cast<double>(free_pages) / requested) / static_cast<double>(blocks);
}

double NodeStats::unusable_index(unsigned order) const noexcept {
  if (free_pages == 0) {
    return 1.0;
  }
  std::uint64_t usable = 0;
  for (unsigned o = order; o <= kMaxOrder; ++o) {
    usable += free_blocks[o] << o;
  }
  return static_cast<double>(free_pages - usable) / static_cast<double>(free_pages);
}

std::uint64_t PageStats::free_pages() const noexcept {
  std::uint64_t total = 0;
  for (const NodeStats& n : nodes) {
    total += n.free_pages;
  }
  return total;
}

std::vector<Metric> PageStats::metrics() const {
  std::vector<Metric> out = {
      {"physmem.pcp.hits", static_cast<double>(pcp_hits)},
      {"physmem.pcp.misses", static_cast<double>(pcp_misses)},
      {"physmem.pcp.refills", static_cast<double>(pcp_refills)},
      {"physmem.pcp.spills", static_cast<double>(pcp_spills)},
      {"physmem.pcp.high_pages", static_cast<double>(pcp_high_pages)},
      {"physmem.pcp.batch_pages", static_cast<double>(pcp_batch_pages)},
      {"physmem.metadata_bytes", static_cast<double>(metadata_bytes)},
      {"physmem.min_free_kbytes", static_cast<double>(min_free_kbytes)},
      {"physmem.watermark_scale_factor", static_cast<double>(watermark_scale_factor)},
  };
  for (const NodeStats& n : nodes) {
    const std::string p = "physmem.node" + std::to_string(n.node) + ".";
    out.push_back({p + "total_pages", static_cast<double>(n.total_pages)});
    out.push_back({p + "free_pages", static_cast<double>(n.free_pages)});
    out.push_back({p + "pcp_pages", static_cast<double>(n.pcp_pages)});
    out.push_back({p + "balloon_pages", static_cast<double>(n.balloon_pages)});
    out.push_back({p + "largest_free_bytes", static_cast<double>(n.largest_free_bytes())});
    out.push_back({p + "fragmentation_index.order3", n.fragmentation_index(3)});
    out.push_back({p + "fragmentation_index.order" + std::to_string(kMaxOrder),
                   n.fragmentation_index(kMaxOrder)});
    out.push_back({p + "unusable_index.order3", n.unusable_index(3)});
    out.push_back({p + "unusable_index.order" + std::to_string(kMaxOrder),
                   n.unusable_index(kMaxOrder)});
    for (unsigned o = 0; o <= kMaxOrder; ++o) {
      out.push_back({p + "free_pages.order" + std::to_string(o),
                     static_cast<double>(n.free_blocks[o] << o)});
    }
    out.push_back({p + "watermark.below_low_allocs", static_cast<double>(n.below_low_allocs)});
    out.push_back({p + "watermark.reserve_allocs", static_cast<double>(n.reserve_allocs)});
    out.push_back({p + "watermark.min_failures", static_cast<double>(n.min_failures)});
    out.push_back({p + "kswapd.wakeups", static_cast<double>(n.kswapd_wakeups)});
    out.push_back({p + "kswapd.passes", static_cast<double>(n.kswapd_passes)});
    out.push_back({p + "kswapd.reclaimed_pages", static_cast<double>(n.kswapd_reclaimed_pages)});
    out.push_back({p + "kswapd.failed_runs", static_cast<double>(n.kswapd_failed_runs)});
    out.push_back({p + "direct_reclaim.passes", static_cast<double>(n.direct_reclaims)});
    out.push_back({p + "direct_reclaim.reclaimed_pages", static_cast<double>(n.direct_reclaimed_pages)});
    for (const ZoneStats& z : n.zones) {
      const std::string zp = p + zone_name(z.kind) + ".";
      out.push_back({zp + "free_pages", static_cast<double>(z.free_pages)});
      out.push_back({zp + "wmark_min", static_cast<double>(z.wmark.min)});
      out.push_back({zp + "wmark_low", static_cast<double>(z.wmark.low)});
      out.push_back({zp + "wmark_high", static_cast<double>(z.wmark.high)});
    }
  }
  return out;
}

PageStats Machine::stats() const {
  PageStats out;
  out.metadata_bytes = meta_bytes_ + pcp_bytes_;
  out.pcp_high_pages = pcp_high_pages();
  out.pcp_batch_pages = pcp_batch_pages();
  out.min_free_kbytes = min_free_kbytes_;
  out.watermark_scale_factor = watermark_scale_factor_;
  const unsigned slots = cpu_slots_in_use();
  for (std::size_t k = 0; k < mem_.size(); ++k) {
    const Node& n = mem_[k];
    NodeStats ns;
    ns.node = static_cast<NodeId>(k);
    ns.total_pages = n.ram_pages - n.reserved;
    ns.balloon_pages = balloon_pages(static_cast<NodeId>(k));
    for (const auto& zp : n.zones) {
      const Zone& z = *zp;
      ZoneStats zs;
      zs.kind = z.kind;
      zs.phys_begin = nodes_[k].phys_base + (std::uint64_t{z.begin} << kPageShift);
      zs.phys_end = nodes_[k].phys_base + (std::uint64_t{z.end} << kPageShift);
      zs.managed_pages = z.managed;
      {
        std::lock_guard<std::mutex> hold(z.lock);
        zs.free_pages = z.free_pages;
        zs.wmark = {z.wmark[0], z.wmark[1], z.wmark[2]};
        for (unsigned o = 0; o <= kMaxOrder; ++o) {
          zs.free_blocks[o] = z.count[o];
        }
        zs.free_blocks[kMaxOrder] += (z.end - z.frontier) >> kMaxOrder;
      }
      ns.free_pages += zs.free_pages;
      for (unsigned o = 0; o <= kMaxOrder; ++o) {
        ns.free_blocks[o] += zs.free_blocks[o];
      }
      ns.zones.push_back(zs);
    }
    const NodeReclaim& r = reclaim_[k];
    ns.below_low_allocs = r.below_low.load(std::memory_order_acquire);
    ns.reserve_allocs = r.reserve.load(std::memory_order_acquire);
    ns.min_failures = r.min_failures.load(std::memory_order_acquire);
    ns.kswapd_wakeups = r.wakeups.load(std::memory_order_acquire);
    ns.kswapd_passes = r.passes.load(std::memory_order_acquire);
    ns.kswapd_reclaimed_pages = r.reclaimed_pages.load(std::memory_order_acquire);
    ns.kswapd_failed_runs = r.failed_runs.load(std::memory_order_acquire);
    ns.direct_reclaims = r.direct.load(std::memory_order_acquire);
    ns.direct_reclaimed_pages = r.direct_pages.load(std::memory_order_acquire);
    for (unsigned slot = 0; slot < slots; ++slot) {
      const PcpSet& set = pcp(slot, static_cast<NodeId>(k));
      for (unsigned o = 0; o < kPcpOrders; ++o) {
        ns.pcp_pages += std::uint64_t{load(set.count[o])} << o;
      }
      out.pcp_hits += load(set.hits);
      out.pcp_misses += load(set.misses);
      out.pcp_refills += load(set.refills);
      out.pcp_spills += load(set.spills);
    }
    out.nodes.push_back(std::move(ns));
  }
  return out;
}

}  // namespace kmbench::physmem
