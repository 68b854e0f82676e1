#include "allocators/slab/slab.h"

#include <charconv>
#include <map>

#include "allocators/physmem/physmem.h"
#include "base/errors.h"

namespace kmbench {
namespace {

std::size_t page_round(std::size_t size) {
  return (std::max<std::size_t>(size, 1) + slab::kPage - 1) & ~(slab::kPage - 1);
}

/// Caches summed per name over the nodes, in the order first seen. Only caches
/// that have been used get a row, so idle size classes add no metrics.
struct CacheRows {
  std::map<std::string, slab::CacheStats> by_name;
  std::vector<std::string> order;
};

/// Adds one cache's counters to the backend's totals and to its name's row.
void sum_cache(const std::string& name, const slab::CacheStats& s, slab::CacheStats& total,
               CacheRows& rows) {
  total.depot_hits += s.depot_hits;
  total.depot_misses += s.depot_misses;
  total.depot_contention += s.depot_contention;
  total.magazine_resizes += s.magazine_resizes;
  total.reaped_magazines += s.reaped_magazines;
  total.cpu_alloc_misses += s.cpu_alloc_misses;
  total.cpu_free_misses += s.cpu_free_misses;
  total.slab_creates += s.slab_creates;
  total.slab_destroys += s.slab_destroys;
  total.slabs += s.slabs;
  if (s.slab_creates == 0 && s.cpu_alloc_misses == 0) {
    return;
  }
  auto [it, fresh] = rows.by_name.try_emplace(name, s);
  if (fresh) {
    rows.order.push_back(name);
    return;
  }
  slab::CacheStats& a = it->second;
  a.slabs += s.slabs;
  a.buf_total += s.buf_total;
  a.buf_inuse_slab += s.buf_inuse_slab;
  a.slab_creates += s.slab_creates;
  a.slab_destroys += s.slab_destroys;
  a.slab_allocs += s.slab_allocs;
  a.slab_frees += s.slab_frees;
  a.cpu_alloc_misses += s.cpu_alloc_misses;
  a.cpu_free_misses += s.cpu_free_misses;
  a.depot_full += s.depot_full;
  a.depot_empty += s.depot_empty;
  a.depot_contention += s.depot_contention;
  a.magazine_resizes += s.magazine_resizes;
  a.magsize = std::max(a.magsize, s.magsize);
}

void sum_arena(const slab::VmemStats& v, slab::VmemStats& vtotal) {
  vtotal.spans += v.spans;
  vtotal.span_bytes += v.span_bytes;
  vtotal.alloc_bytes += v.alloc_bytes;
  vtotal.alloc_segs += v.alloc_segs;
  vtotal.free_segs += v.free_segs;
  vtotal.imports += v.imports;
  vtotal.releases += v.releases;
  vtotal.xallocs += v.xallocs;
  vtotal.xfrees += v.xfrees;
  vtotal.alloc_fails += v.alloc_fails;
}

/// The backend.slab.cache.<name>.* metrics of one row.
void add_cache_metrics(std::vector<Metric>& m, const std::string& cache, const slab::CacheStats& s) {
  auto add = [&m](std::string name, double v) { m.push_back({std::move(name), v}); };
  const std::string p = "backend.slab.cache." + cache;
  add(p + ".slabs", static_cast<double>(s.slabs));
  add(p + ".buf_total", static_cast<double>(s.buf_total));
  add(p + ".buf_inuse_slab", static_cast<double>(s.buf_inuse_slab));
  add(p + ".slab_creates", static_cast<double>(s.slab_creates));
  add(p + ".slab_destroys", static_cast<double>(s.slab_destroys));
  add(p + ".slab_allocs", static_cast<double>(s.slab_allocs));
  add(p + ".slab_frees", static_cast<double>(s.slab_frees));
  add(p + ".cpu_alloc_misses", static_cast<double>(s.cpu_alloc_misses));
  add(p + ".cpu_free_misses", static_cast<double>(s.cpu_free_misses));
  add(p + ".depot_full", static_cast<double>(s.depot_full));
  add(p + ".depot_empty", static_cast<double>(s.depot_empty));
  add(p + ".depot_contention", static_cast<double>(s.depot_contention));
  add(p + ".magazine_size", static_cast<double>(s.magsize));
  add(p + ".chunk_size", static_cast<double>(s.chunksize));
  add(p + ".slab_size", static_cast<double>(s.slabsize));
}

}  // namespace

SlabBackend::SlabBackend(const BackendConfig& config)
    : machine_(config.machine != nullptr ? config.machine : &physmem::current_machine()) {
  const ParamReader params("slab", kParams, config);
  static_assert(slab::kMagTypes[slab::kMagTypeCount - 1].size == 143, "magazine_rounds' range in kParams");
  tunables_.debug = params.on("debug");
  tunables_.magazines = params.on("magazines");
  tunables_.update_interval_ns = static_cast<std::uint64_t>(params.integer("update_ms")) * 1'000'000;
  tunables_.depot_contention = static_cast<int>(params.integer("depot_contention"));
  tunables_.qcache_max = static_cast<std::uint64_t>(params.integer("qcache_max"));
  tunables_.import_min = static_cast<std::uint64_t>(params.integer("import_min"));
  tunables_.magazine_rounds = static_cast<int>(params.integer("magazine_rounds"));
  tunables_.depot_rate = static_cast<std::uint64_t>(params.integer("depot_rate"));
  if (tunables_.qcache_max % slab::kPage != 0) {
    throw UsageError("slab: qcache_max=" + params.text("qcache_max") + " is not a multiple of 4096");
  }
  nodes_ = machine_->node_count();
  if (nodes_ == 0 || nodes_ > slab::kMaxNodes) {
    throw UsageError("slab: the machine has " + std::to_string(nodes_) + " nodes; at most " +
                     std::to_string(slab::kMaxNodes) + " are supported");
  }
  home_.fill(-1);
  // The kmalloc caches of one kmem: illumos aligns multiples of the coherency
  // granule to 64 bytes, multiples of the page to the page.
  auto kmalloc_caches = [](slab::Kmem& kmem, slab::ObjectCache** row, const std::string& prefix) {
    for (unsigned c = 0; c < slab::kClassCount; ++c) {
      const std::size_t size = slab::kClassSizes[c];
      std::size_t align = kMinAlign;
      if (size % 64 == 0) {
        align = 64;
      }
      if (size % slab::kPage == 0) {
        align = slab::kPage;
      }
      row[c] = kmem.create_cache(prefix + std::to_string(size), size, align);
    }
  };
  pages_ = std::make_unique<slab::PageSource>(*machine_);
  for (unsigned n = 0; n < nodes_; ++n) {
    kmem_[n] = std::make_unique<slab::Kmem>(*pages_, static_cast<NodeId>(n), tunables_);
    kmalloc_caches(*kmem_[n], kmalloc_[n], "kmalloc-");
  }
  // DMA32 memory lies on node 0 only, as on x86 machines.
  low_pages_ = std::make_unique<slab::PageSource>(*machine_, kLowMemoryLimit - 1);
  io_ = std::make_unique<slab::Kmem>(*low_pages_, 0, tunables_, "kmem_io_4G");
  kmalloc_caches(*io_, io_kmalloc_, "kmem_io_4G_");
}

SlabBackend::~SlabBackend() = default;

unsigned SlabBackend::home_node(unsigned slot) noexcept {
  NodeId node = machine_->local_node();
  if (node < 0 || static_cast<unsigned>(node) >= nodes_) {
    node = 0;
  }
  home_[slot] = static_cast<std::int8_t>(node);
  return static_cast<unsigned>(node);
}

NodeId SlabBackend::node_of_slow(const void* p) const noexcept {
  const NodeId n = machine_->node_of(p);
  return n >= 0 && static_cast<unsigned>(n) < nodes_ ? n : 0;
}

bool SlabBackend::is_aligned_block(const void* p) const noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  if ((a & (slab::kPage - 1)) != 0 || (aligned_live_.load(std::memory_order_relaxed) == 0 &&
                                       io_segments_.load(std::memory_order_relaxed) == 0)) {
    return false;
  }
  std::lock_guard g(aligned_lock_);
  return aligned_.contains(a) || io_aligned_.contains(a);
}

void* SlabBackend::allocate_slow(std::size_t size, std::size_t align, NodeId node) noexcept {
  const unsigned slot = slab::current_slot();
  const unsigned n = node_index(node, slot);
  if (size <= slab::kBigMax) {
    slab::ObjectCache* cp = kmalloc_[n][slab::class_of(size)];
    if (align <= cp->align()) {
      return cp->alloc_at(slot, size);
    }
    // Over-aligned: a segment of the arena, remembered so the sized free finds it.
    void* p = kmem_[n]->arena().xalloc(page_round(size), std::max(align, slab::kPage));
    if (p == nullptr) {
      return nullptr;
    }
    try {
      std::lock_guard g(aligned_lock_);
      aligned_.insert(reinterpret_cast<std::uintptr_t>(p));
    } catch (...) {
      kmem_[n]->arena().xfree(p, page_round(size));
      return nullptr;
    }
    aligned_live_.fetch_add(1, std::memory_order_relaxed);
    aligned_allocs_.fetch_add(1, std::memory_order_relaxed);
    segment_bytes_.fetch_add(static_cast<std::int64_t>(page_round(size)), std::memory_order_relaxed);
    return p;
  }
  void* p = kmem_[n]->arena().xalloc(page_round(size), std::max(align, slab::kPage));
  if (p != nullptr) {
    large_allocs_.fetch_add(1, std::memory_order_relaxed);
    segment_bytes_.fetch_add(static_cast<std::int64_t>(page_round(size)), std::memory_order_relaxed);
  }
  return p;
}

void* SlabBackend::allocate_low(std::size_t size, std::size_t align, TagId, NodeId) noexcept {
  if (size <= slab::kBigMax) {
    slab::ObjectCache* cp = io_kmalloc_[slab::class_of(size)];
    if (align <= cp->align()) {
      return cp->alloc_at(slab::current_slot(), size);
    }
  }
  // Larger or over-aligned: a segment of the low arena (over-aligned ones remembered).
  void* p = io_->arena().xalloc(page_round(size), std::max(align, slab::kPage));
  if (p == nullptr) {
    return nullptr;
  }
  if (size <= slab::kBigMax) {
    try {
      std::lock_guard g(aligned_lock_);
      io_aligned_.insert(reinterpret_cast<std::uintptr_t>(p));
    } catch (...) {
      io_->arena().xfree(p, page_round(size));
      return nullptr;
    }
  }
  io_segments_.fetch_add(1, std::memory_order_relaxed);
  io_segment_bytes_.fetch_add(static_cast<std::int64_t>(page_round(size)),
                              std::memory_order_relaxed);
  return p;
}

void SlabBackend::free_low(void* p, std::size_t size) noexcept {
  if (p == nullptr) {
    return;
  }
  bool segment = size > slab::kBigMax;
  if (!segment && io_segments_.load(std::memory_order_relaxed) != 0) {
    std::lock_guard g(aligned_lock_);
    segment = io_aligned_.erase(reinterpret_cast<std::uintptr_t>(p)) != 0;
  }
  if (!segment) {
    io_kmalloc_[slab::class_of(size)]->free_at(slab::current_slot(), p, size);
    return;
  }
  io_segments_.fetch_sub(1, std::memory_order_relaxed);
  io_segment_bytes_.fetch_sub(static_cast<std::int64_t>(page_round(size)),
                              std::memory_order_relaxed);
  io_->arena().xfree(p, page_round(size));
}

void SlabBackend::flush_thread_caches() noexcept {
  const unsigned slot = slab::current_slot();
  for (unsigned n = 0; n < nodes_; ++n) {
    for (unsigned c = 0; c < slab::kClassCount; ++c) {
      kmalloc_[n][c]->flush_slot(slot);
    }
  }
  for (unsigned c = 0; c < slab::kClassCount; ++c) {
    io_kmalloc_[c]->flush_slot(slot);
  }
}

void SlabBackend::free_slow(void* p, std::size_t size) noexcept {
  const NodeId n = node_of(p);
  if (size <= slab::kBigMax) {
    if (is_aligned_block(p)) {
      {
        std::lock_guard g(aligned_lock_);
        aligned_.erase(reinterpret_cast<std::uintptr_t>(p));
      }
      aligned_live_.fetch_sub(1, std::memory_order_relaxed);
      segment_bytes_.fetch_sub(static_cast<std::int64_t>(page_round(size)), std::memory_order_relaxed);
      kmem_[n]->arena().xfree(p, page_round(size));
      return;
    }
    kmalloc_[n][slab::class_of(size)]->free_at(slab::current_slot(), p, size);
    return;
  }
  large_frees_.fetch_add(1, std::memory_order_relaxed);
  segment_bytes_.fetch_sub(static_cast<std::int64_t>(page_round(size)), std::memory_order_relaxed);
  kmem_[n]->arena().xfree(p, page_round(size));
}

std::size_t SlabBackend::usable_size(void* p, std::size_t size) const noexcept {
  if (size > slab::kBigMax || is_aligned_block(p)) {
    return page_round(size);
  }
  return slab::kClassSizes[slab::class_of(size)];
}

std::uint64_t SlabBackend::physical_address(const void* p) const noexcept {
  return machine_->phys_of(p);
}

std::size_t SlabBackend::reclaim(ReclaimLevel level) {
  std::size_t bytes = 0;
  for (unsigned n = 0; n < nodes_; ++n) {
    bytes += kmem_[n]->reclaim(level);
  }
  (level == ReclaimLevel::trim ? trims_ : drains_).fetch_add(1, std::memory_order_relaxed);
  reclaimed_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  return bytes;
}

slab::ObjectCache* SlabBackend::create_cache(std::string name, std::size_t size, std::size_t align,
                                             slab::Constructor ctor, slab::Destructor dtor,
                                             void* priv, NodeId node) {
  if (size == 0) {
    throw UsageError("slab: cache '" + name + "': object size 0");
  }
  if (align != 0 && ((align & (align - 1)) != 0 || align > slab::kPage)) {
    throw UsageError("slab: cache '" + name + "': alignment " + std::to_string(align) +
                     " is not a power of two up to 4096");
  }
  if (node != kAnyNode && (node < 0 || static_cast<unsigned>(node) >= nodes_)) {
    throw UsageError("slab: cache '" + name + "': no node " + std::to_string(node));
  }
  const unsigned n = node_index(node, slab::current_slot());
  return kmem_[n]->create_cache(std::move(name), size, align, ctor, dtor, priv);
}

void SlabBackend::destroy_cache(slab::ObjectCache* cp) {
  for (unsigned n = 0; n < nodes_; ++n) {
    if (&kmem_[n]->arena() == &cp->arena()) {
      kmem_[n]->destroy_cache(cp);
      return;
    }
  }
}

BackendFootprint SlabBackend::footprint() const {
  const std::uint64_t held = pages_->held_bytes() + low_pages_->held_bytes();
  return {held, held};
}

std::uint64_t SlabBackend::adaptations() const {
  std::uint64_t n = 0;
  const auto add = [&n](const slab::Kmem& kmem) {
    for (const slab::ObjectCache* cp : kmem.caches()) n += cp->stats().magazine_resizes;
  };
  for (unsigned node = 0; node < nodes_; ++node) add(*kmem_[node]);
  add(*io_);
  return n;
}

BackendStats SlabBackend::stats() const {
  BackendStats out;
  const BackendFootprint f = footprint();
  out.mapped_bytes = f.mapped_bytes;
  out.resident_bytes = f.resident_bytes;
  // Blocks out of the kmalloc caches' slabs and not in their depots (nor, once
  // flush_thread_caches ran on every thread, in their CPU layers), and segments.
  std::int64_t live_blocks = 0, live_bytes = 0;
  auto count_live = [&](slab::ObjectCache* const* row) {
    for (unsigned c = 0; c < slab::kClassCount; ++c) {
      const slab::CacheStats cs = row[c]->stats();
      const auto in_use = static_cast<std::int64_t>(cs.buf_inuse_slab - cs.buf_depot);
      live_blocks += in_use;
      live_bytes += in_use * static_cast<std::int64_t>(cs.bufsize);
    }
  };
  for (unsigned n = 0; n < nodes_; ++n) {
    count_live(kmalloc_[n]);
  }
  count_live(io_kmalloc_);
  live_blocks += static_cast<std::int64_t>(aligned_live_.load(std::memory_order_relaxed) +
                                           large_allocs_.load(std::memory_order_relaxed) -
                                           large_frees_.load(std::memory_order_relaxed)) +
                 io_segments_.load(std::memory_order_relaxed);
  live_bytes += segment_bytes_.load(std::memory_order_relaxed) +
                io_segment_bytes_.load(std::memory_order_relaxed);
  out.live_blocks = live_blocks;
  out.live_bytes = live_bytes;
  auto& m = out.metrics;
  auto add = [&m](std::string name, double v) { m.push_back({std::move(name), v}); };

  CacheRows rows;
  slab::CacheStats total;
  slab::VmemStats vtotal;
  std::vector<const slab::Kmem*> kmems;
  for (unsigned n = 0; n < nodes_; ++n) {
    kmems.push_back(kmem_[n].get());
  }
  kmems.push_back(io_.get());
  for (const slab::Kmem* km : kmems) {
    slab::Kmem& kmem = const_cast<slab::Kmem&>(*km);
    out.metadata_bytes += kmem.metadata_bytes();
    const slab::VmemStats v = kmem.arena().stats();
    const std::string arena = "backend.slab.vmem." + kmem.arena().name();
    add(arena + ".spans", static_cast<double>(v.spans));
    add(arena + ".span_bytes", static_cast<double>(v.span_bytes));
    add(arena + ".alloc_bytes", static_cast<double>(v.alloc_bytes));
    add(arena + ".imports", static_cast<double>(v.imports));
    add(arena + ".releases", static_cast<double>(v.releases));
    sum_arena(v, vtotal);
    for (slab::ObjectCache* cp : kmem.caches()) {
      sum_cache(cp->name(), cp->stats(), total, rows);
    }
  }
  add("backend.slab.nodes", nodes_);
  add("backend.slab.magazine.depot_hits", static_cast<double>(total.depot_hits));
  add("backend.slab.magazine.depot_misses", static_cast<double>(total.depot_misses));
  add("backend.slab.magazine.depot_contention", static_cast<double>(total.depot_contention));
  add("backend.slab.magazine.resizes", static_cast<double>(total.magazine_resizes));
  add("backend.slab.magazine.reaped", static_cast<double>(total.reaped_magazines));
  add("backend.slab.magazine.cpu_alloc_misses", static_cast<double>(total.cpu_alloc_misses));
  add("backend.slab.magazine.cpu_free_misses", static_cast<double>(total.cpu_free_misses));
  add("backend.slab.slabs", static_cast<double>(total.slabs));
  add("backend.slab.slab_creates", static_cast<double>(total.slab_creates));
  add("backend.slab.slab_destroys", static_cast<double>(total.slab_destroys));
  add("backend.slab.vmem.spans", static_cast<double>(vtotal.spans));
  add("backend.slab.vmem.span_bytes", static_cast<double>(vtotal.span_bytes));
  add("backend.slab.vmem.alloc_bytes", static_cast<double>(vtotal.alloc_bytes));
  add("backend.slab.vmem.segments_allocated", static_cast<double>(vtotal.alloc_segs));
  add("backend.slab.vmem.segments_free", static_cast<double>(vtotal.free_segs));
  add("backend.slab.vmem.imports", static_cast<double>(vtotal.imports));
  add("backend.slab.vmem.releases", static_cast<double>(vtotal.releases));
  add("backend.slab.vmem.xallocs", static_cast<double>(vtotal.xallocs));
  add("backend.slab.vmem.xfrees", static_cast<double>(vtotal.xfrees));
  add("backend.slab.vmem.alloc_fails", static_cast<double>(vtotal.alloc_fails));
  add("backend.slab.large.allocs", static_cast<double>(large_allocs_.load(std::memory_order_relaxed)));
  add("backend.slab.large.frees", static_cast<double>(large_frees_.load(std::memory_order_relaxed)));
  add("backend.slab.aligned.allocs",
      static_cast<double>(aligned_allocs_.load(std::memory_order_relaxed)));
  add("backend.slab.aligned.live", static_cast<double>(aligned_live_.load(std::memory_order_relaxed)));
  add("backend.slab.reclaim.trims", static_cast<double>(trims_.load(std::memory_order_relaxed)));
  add("backend.slab.reclaim.drains", static_cast<double>(drains_.load(std::memory_order_relaxed)));
  add("backend.slab.reclaim.bytes",
      static_cast<double>(reclaimed_bytes_.load(std::memory_order_relaxed)));
  for (const std::string& name : rows.order) {
    add_cache_metrics(m, name, rows.by_name[name]);
  }
  return out;
}

}  // namespace kmbench
