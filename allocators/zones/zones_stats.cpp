// zones: statistics (README.md lists their names).
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "allocators/zones/zones_internal.h"

namespace kmbench {
namespace {

/// The chunks a zone holds. pre: z.mu held.
std::uint64_t chunks_of(const Zone& z) { return z.empty.count + z.partial.count + z.full.count; }

}  // namespace

BackendFootprint ZonesBackend::footprint() const {
  const State& s = *state_;
  std::uint64_t pages = 0;
  for (const auto& zone : s.zones) {
    std::lock_guard lock(zone->mu);
    pages += chunks_of(*zone) * zone->chunk_pages;
  }
  std::uint64_t large_bytes = 0;
  {
    std::lock_guard lock(s.large_mu);
    large_bytes = s.large_bytes;
  }
  const std::uint64_t mapped = pages * kPageBytes + large_bytes;
  return {mapped, mapped};
}

BackendStats ZonesBackend::stats() const {
  const State& s = *state_;
  BackendStats out;
  const std::string prefix = "backend.zones.";
  auto add = [&](const std::string& name, double v) { out.metrics.push_back({prefix + name, v}); };

  struct ClassTotals {
    double in_use = 0, free = 0, cached = 0, chunks = 0, pages = 0, allocs = 0, frees = 0,
           contentions = 0, caching = 0;
  };
  std::vector<ClassTotals> per_class(classes_.count);
  std::vector<double> node_pages(node_count_, 0);
  double zone_pages = 0, depot_hits = 0, recirc_hits = 0, zone_fills = 0, depot_spills = 0,
         caching_zones = 0, recirc_mags = 0;
  for (std::size_t i = 0; i < s.zones.size(); ++i) {
    Zone& z = *s.zones[i];
    double cached = 0;
    for (const auto& slot : percpu_) {
      PerCpu* pc = slot.load(std::memory_order_acquire);
      if (pc == unclaimed_) {
        continue;
      }
      const ZoneCache& zc = pc->cache(ZonesInternals::cache_index(z));
      cached += zc.alloc_cur.load(std::memory_order_relaxed) +
                zc.free_cur.load(std::memory_order_relaxed) +
                double(zc.depot_count.load(std::memory_order_relaxed)) * s.magazine_size;
      depot_hits += zc.depot_hits.load(std::memory_order_relaxed);
      recirc_hits += zc.recirc_hits.load(std::memory_order_relaxed);
      zone_fills += zc.zone_fills.load(std::memory_order_relaxed);
      depot_spills += zc.depot_spills.load(std::memory_order_relaxed);
    }
    std::lock_guard lock(z.mu);
    for (Magazine* m = z.recirc; m != nullptr; m = m->next) {
      cached += m->count;
    }
    recirc_mags += z.recirc_count;
    const double chunks = double(chunks_of(z));
    ClassTotals& t = per_class[z.cls];
    t.in_use += double(z.elems_total - z.elems_free) - cached;
    t.free += z.elems_free;
    t.cached += cached;
    t.chunks += chunks;
    t.pages += chunks * z.chunk_pages;
    t.allocs += z.zone_allocs;
    t.frees += z.zone_frees;
    t.contentions += z.contentions;
    t.caching += z.caching.load(std::memory_order_relaxed) ? 1 : 0;
    caching_zones += z.caching.load(std::memory_order_relaxed) ? 1 : 0;
    node_pages[z.node] += chunks * z.chunk_pages;
    zone_pages += chunks * z.chunk_pages;
  }
  for (unsigned c = 0; c < classes_.count; ++c) {
    const ClassTotals& t = per_class[c];
    const std::string z = std::string(classes_.heap) + "." + std::to_string(classes_.sizes[c]) + ".";
    add(z + "element_size", classes_.sizes[c]);
    add(z + "chunk_pages", chunk_pages_for(classes_.sizes[c]));
    add(z + "elements_in_use", t.in_use);
    add(z + "elements_free", t.free);
    add(z + "elements_cached", t.cached);
    add(z + "chunks", t.chunks);
    add(z + "pages", t.pages);
    add(z + "zone_allocs", t.allocs);
    add(z + "zone_frees", t.frees);
    add(z + "lock_contentions", t.contentions);
    add(z + "caching_nodes", t.caching);
  }
  add("cache.depot_hits", depot_hits);
  add("cache.recirc_hits", recirc_hits);
  add("cache.zone_fills", zone_fills);
  add("cache.depot_spills", depot_spills);
  add("cache.recirc_magazines", recirc_mags);
  add("cache.zones_caching", caching_zones);
  add("cache.magazine_size", s.magazine_size);
  add("cache.magazines", double(s.magazines.load(std::memory_order_relaxed)));
  add("gc.trims", double(s.gc_trims.load(std::memory_order_relaxed)));
  add("gc.drains", double(s.gc_drains.load(std::memory_order_relaxed)));
  add("gc.bytes_returned", double(s.gc_bytes_returned.load(std::memory_order_relaxed)));
  add("failed_allocs", double(s.failed_allocs.load(std::memory_order_relaxed)));
  for (unsigned n = 0; n < node_count_; ++n) {
    add("node." + std::to_string(n) + ".zone_pages", node_pages[n]);
  }
  std::uint64_t large_bytes = 0, large_blocks = 0;
  {
    std::lock_guard lock(s.large_mu);
    large_bytes = s.large_bytes;
    large_blocks = s.large.size();
    add("kalloc_large.allocations_in_use", double(s.large.size()));
    add("kalloc_large.allocs", double(s.large_allocs));
    add("kalloc_large.bytes_in_use", double(s.large_bytes));
    // VM tag accounting: zone pages count under KALLOC, large blocks under their caller's tag.
    std::map<TagId, std::uint64_t> tags = s.large_bytes_by_tag;
    tags[ZonesInternals::kVmTagKalloc] += static_cast<std::uint64_t>(zone_pages) * kPageBytes;
    for (const auto& [tag, bytes] : tags) {
      add("vmtag." + std::to_string(tag) + ".bytes", double(bytes));
    }
  }
  out.mapped_bytes = static_cast<std::uint64_t>(zone_pages) * kPageBytes + large_bytes;
  out.resident_bytes = out.mapped_bytes;
  out.live_blocks = static_cast<std::int64_t>(large_blocks);
  out.live_bytes = static_cast<std::int64_t>(large_bytes);
  for (unsigned c = 0; c < classes_.count; ++c) {
    out.live_blocks += static_cast<std::int64_t>(per_class[c].in_use);
    out.live_bytes += static_cast<std::int64_t>(per_class[c].in_use) * classes_.sizes[c];
  }
  out.metadata_bytes =
      s.chunk_meta_bytes.load(std::memory_order_relaxed) +
      s.magazines.load(std::memory_order_relaxed) *
          (sizeof(Magazine) + s.magazine_size * sizeof(void*)) +
      s.zones.size() * sizeof(Zone);
  const std::size_t percpu_bytes =
      sizeof(PerCpu) + (std::size_t{node_count_} << kClassShift) * sizeof(ZoneCache);
  out.metadata_bytes += percpu_bytes;  // unclaimed_
  for (const auto& slot : percpu_) {
    if (slot.load(std::memory_order_acquire) != unclaimed_) {
      out.metadata_bytes += percpu_bytes;
    }
  }
  return out;
}

double ZonesBackend::metric(std::string_view name) const {
  for (const Metric& m : stats().metrics) {
    if (m.name == name) {
      return m.value;
    }
  }
  return 0;
}

}  // namespace kmbench
