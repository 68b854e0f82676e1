#include "allocators/mimalloc/mimalloc.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <map>
#include <atomic>
#include <mutex>
#include <vector>

#include "base/errors.h"

namespace kmbench {
namespace mimalloc_detail {

/// One backend's heaps across threads. The backend and the threads share it;
/// whoever goes last frees it.
struct Registry {
  std::mutex mu;
  bool alive = true;
  std::vector<mi_heap_t*> heaps;  // every live heap of the backend, any thread
};

namespace {

constexpr std::size_t kArenaAlign = 32u << 20;  // mimalloc 2.0.9 needs 32 MiB-aligned arenas

std::atomic<std::uint64_t> g_next_id{1};

/// A thread's heaps of one backend.
struct Entry {
  std::uint64_t backend = 0;
  std::shared_ptr<Registry> registry;
  std::array<mi_heap_t*, kLowHeap + 1> heaps{};
};

/// A thread's heaps go when it exits or their backend ends. While the backend
/// lives, its blocks may outlive the thread: mi_heap_delete moves them to the
/// thread's default heap. Once it has ended, mi_heap_destroy gives every page
/// back to its arena at once (as jemalloc's arena.<i>.destroy does).
void release(Entry& e) {
  std::lock_guard lock(e.registry->mu);
  for (mi_heap_t*& h : e.heaps) {
    if (h != nullptr) {
      auto& all = e.registry->heaps;
      all.erase(std::remove(all.begin(), all.end(), h), all.end());
      if (e.registry->alive) {
        mi_heap_delete(h);
      } else {
        mi_heap_destroy(h);
      }
      h = nullptr;
    }
  }
}

/// The calling thread's heaps; deleted by the thread itself when it exits.
struct ThreadHeaps {
  std::vector<std::unique_ptr<Entry>> entries;
  ~ThreadHeaps() {
    t_cache = {};
    for (auto& e : entries) {
      release(*e);
    }
  }
  Entry& find(std::uint64_t backend, const std::shared_ptr<Registry>& registry) {
    for (auto& e : entries) {
      if (e->backend == backend) {
        return *e;
      }
    }
    // Drop the heaps of backends that are gone (only this thread may delete them).
    std::erase_if(entries, [](const std::unique_ptr<Entry>& e) {
      bool alive;
      {
        std::lock_guard lock(e->registry->mu);
        alive = e->registry->alive;
      }
      if (!alive) {
        release(*e);
      }
      return !alive;
    });
    auto e = std::make_unique<Entry>();
    e->backend = backend;
    e->registry = registry;
    entries.push_back(std::move(e));
    return *entries.back();
  }
  void forget(std::uint64_t backend) {
    std::erase_if(entries, [&](const std::unique_ptr<Entry>& e) {
      if (e->backend != backend) {
        return false;
      }
      release(*e);
      return true;
    });
  }
};
thread_local ThreadHeaps t_heaps;

std::mutex g_arena_mu;
std::map<const physmem::Machine*, std::unique_ptr<NodeArenas>> g_arenas;

}  // namespace

namespace {

/// Gives mimalloc `bytes` of the machine (below max_phys) as an exclusive arena.
mi_arena_id_t make_arena(nodemem::NodeMemory& memory, std::size_t bytes, NodeId node,
                         std::uint64_t max_phys) {
  void* region = memory.map(bytes, kArenaAlign, node, max_phys);
  if (region == nullptr) {
    throw RunError("mimalloc: cannot take " + std::to_string(bytes >> 20) + " MiB of node " +
                   std::to_string(node) + (max_phys < kLowMemoryLimit ? " below 4 GiB" : "") +
                   " (" + memory.description() + ")");
  }
  // Zero, and said to be. The machine's RAM holds what other backends wrote
  // there, and mimalloc 2.0 reads parts of an arena as zero even when told it
  // is not (microsoft/mimalloc#703): it crashed on a free list it found in a
  // slab's old blocks. A resident machine's pages are cleared in place; else
  // they are dropped, to read as zero when touched.
  if (memory.machine().populated()) {
    std::memset(region, 0, bytes);
  } else if (::madvise(region, bytes, MADV_DONTNEED) != 0) {
    std::memset(region, 0, bytes);
  }
  // Committed and pinned: mimalloc then never resets, decommits or purges it.
  // Exclusive: only heaps made in this arena use it, and they use nothing else.
  // No numa_node: mimalloc would then refuse it to threads of other nodes, but
  // a remote allocation is a placement kmbench measures.
  mi_arena_id_t id = 0;
  if (!mi_manage_os_memory_ex(region, bytes, /*is_committed=*/true, /*is_large=*/false,
                              /*is_zero=*/true, /*numa_node=*/-1, /*exclusive=*/true, &id)) {
    memory.unmap(region, bytes);
    throw RunError("mimalloc: mi_manage_os_memory_ex refused the arena of node " +
                   std::to_string(node));
  }
  return id;
}

std::uint64_t ram_at_or_above(const physmem::Machine& m, NodeId node, std::uint64_t pa) {
  std::uint64_t bytes = 0;
  for (const physmem::RamRange& r : m.ram()) {
    const std::uint64_t begin = m.phys_of(reinterpret_cast<const void*>(r.va));
    if (r.node == node && begin >= pa) {
      bytes += r.bytes;
    }
  }
  return bytes;
}

}  // namespace

NodeArenas& node_arenas(nodemem::NodeMemory& memory, std::size_t mib) {
  std::lock_guard lock(g_arena_mu);
  auto found = g_arenas.find(&memory.machine());
  if (found != g_arenas.end()) {
    return *found->second;
  }
  physmem::Machine& m = memory.machine();
  auto arenas = std::make_unique<NodeArenas>();
  for (unsigned n = 0; n < memory.node_count(); ++n) {
    std::size_t bytes = mib << 20;
    if (mib == 0) {
      const std::uint64_t high = ram_at_or_above(m, static_cast<NodeId>(n), kLowMemoryLimit);
      bytes = high >= 2 * kArenaAlign ? high - kArenaAlign : m.node(static_cast<NodeId>(n)).sim_bytes / 2;
      if (n == 0) {
        arenas->all_low = high < 2 * kArenaAlign;
      }
    }
    bytes = bytes / kArenaAlign * kArenaAlign;
    if (bytes < kArenaAlign) {
      throw RunError("mimalloc: a node arena needs at least 32 MiB");
    }
    if (n == 0) {
      arenas->bytes = bytes;
    }
    arenas->ids[n] = make_arena(memory, bytes, static_cast<NodeId>(n), ~std::uint64_t{0});
  }
  if (mib != 0) {
    const physmem::Machine& mm = memory.machine();
    void* area = mi_arena_area(arenas->ids[0], nullptr);
    arenas->all_low = mm.phys_of(area) + arenas->bytes <= kLowMemoryLimit;
  }
  m.keep_for_process();  // mimalloc may hold pages of it until the process ends
  return *g_arenas.emplace(&m, std::move(arenas)).first->second;
}

mi_arena_id_t low_arena(nodemem::NodeMemory& memory, NodeArenas& arenas) noexcept {
  if (mi_arena_id_t id = arenas.low.load(std::memory_order_acquire)) {
    return id;
  }
  std::lock_guard lock(g_arena_mu);
  if (mi_arena_id_t id = arenas.low.load(std::memory_order_acquire)) {
    return id;
  }
  // Half of what lies between the DMA zone and 4 GiB: the rest stays for bounce
  // buffers and the KPI's contiguous memory.
  const physmem::Machine& m = memory.machine();
  const std::uint64_t low = m.node(0).sim_bytes - ram_at_or_above(m, 0, kLowMemoryLimit);
  const std::uint64_t bytes = low > (16u << 20) ? (low - (16u << 20)) / 2 / kArenaAlign * kArenaAlign : 0;
  if (bytes < kArenaAlign) {
    return 0;
  }
  try {
    const mi_arena_id_t id = make_arena(memory, bytes, 0, kLowMemoryLimit - 1);
    arenas.low_bytes = bytes;
    arenas.low.store(id, std::memory_order_release);
    return id;
  } catch (const RunError&) {
    return 0;
  }
}

namespace {

/// What mi_debug_show_arenas prints, caught (mi_register_output).
void catch_output(const char* msg, void* arg) { static_cast<std::string*>(arg)->append(msg); }

}  // namespace

std::uint64_t claimed_bytes(const NodeArenas& arenas, unsigned nodes) {
  std::vector<std::size_t> wanted;  // mimalloc's arena indices: id - 1
  for (unsigned n = 0; n < nodes; ++n) {
    wanted.push_back(static_cast<std::size_t>(arenas.ids[n] - 1));
  }
  if (const mi_arena_id_t low = arenas.low.load(std::memory_order_acquire)) {
    wanted.push_back(static_cast<std::size_t>(low - 1));
  }
  std::string text;
  {
    std::lock_guard lock(g_arena_mu);  // the output handler and verbose flag are global
    const long verbose = mi_option_get(mi_option_verbose);
    mi_register_output(catch_output, &text);
    mi_option_set(mi_option_verbose, 1);
    mi_debug_show_arenas();
    mi_option_set(mi_option_verbose, verbose);
    mi_register_output(nullptr, nullptr);
  }
  // "arena I: B blocks with F fields", the bitmap, then "blocks in use ('x'): N";
  // the bits beyond B in the last field are claimed at creation.
  std::uint64_t blocks = 0;
  std::size_t index = 0, block_count = 0, fields = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t eol = text.find('\n', at);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(at, eol - at);
    at = eol + 1;
    std::size_t used = 0;
    if (const auto a = line.find("arena "); a != std::string::npos &&
        std::sscanf(line.c_str() + a, "arena %zu: %zu blocks with %zu fields", &index,
                    &block_count, &fields) == 3) {
      continue;
    }
    if (const auto b = line.find("blocks in use ('x'): "); b != std::string::npos &&
        std::sscanf(line.c_str() + b, "blocks in use ('x'): %zu", &used) == 1) {
      if (std::find(wanted.begin(), wanted.end(), index) != wanted.end()) {
        blocks += used - (fields * 64 - block_count);
      }
    }
  }
  return blocks * kArenaAlign;
}

}  // namespace mimalloc_detail

using mimalloc_detail::Registry;

template <bool kNodeArenas>
BasicMimallocBackend<kNodeArenas>::BasicMimallocBackend(const BackendConfig& config)
    : memory_(config),
      nodes_(kNodeArenas ? memory_.node_count() : 1),
      id_(mimalloc_detail::g_next_id.fetch_add(1)),
      registry_(std::make_shared<Registry>()) {
  const ParamReader params(kVariants[0].name, kParams, config);
  const auto mib = static_cast<std::size_t>(params.integer("arena_mib"));
  if (mib != 0 && mib < 64) {
    throw UsageError(std::string(kVariants[0].name) + ": arena_mib=" + params.text("arena_mib") +
                     " is below 64 (0 sizes the arena from the run's demand)");
  }
  arenas_ = &mimalloc_detail::node_arenas(memory_, mib);
}

template <bool kNodeArenas>
BasicMimallocBackend<kNodeArenas>::~BasicMimallocBackend() {
  {
    std::lock_guard lock(registry_->mu);
    registry_->alive = false;
  }
  if (mimalloc_detail::t_cache.backend == id_) {
    mimalloc_detail::t_cache = {};
  }
  mimalloc_detail::t_heaps.forget(id_);
}

template <bool kNodeArenas>
mi_heap_t* BasicMimallocBackend<kNodeArenas>::heap_slow(NodeId node) noexcept {
  const bool low = static_cast<unsigned>(node) == mimalloc_detail::kLowHeap;
  if (node < 0 || (static_cast<unsigned>(node) >= nodes_ && !low)) {
    return nullptr;
  }
  try {
    mimalloc_detail::Entry& e = mimalloc_detail::t_heaps.find(id_, registry_);
    if (e.heaps[node] == nullptr) {
      const mi_arena_id_t arena =
          low ? mimalloc_detail::low_arena(memory_, *arenas_) : arenas_->ids[node];
      mi_heap_t* h = arena != 0 ? mi_heap_new_in_arena(arena) : nullptr;
      if (h == nullptr) {
        return nullptr;
      }
      std::lock_guard lock(registry_->mu);
      registry_->heaps.push_back(h);
      e.heaps[node] = h;
    }
    mimalloc_detail::t_cache = {id_, e.heaps.data()};
    return e.heaps[node];
  } catch (...) {
    return nullptr;
  }
}

template <bool kNodeArenas>
std::string BasicMimallocBackend<kNodeArenas>::runtime_version() {
  const int v = mi_version();
  return std::to_string(v / 100) + "." + std::to_string(v % 100 / 10) + "." +
         std::to_string(v % 10);
}

namespace {

struct Areas {
  std::size_t count = 0, reserved = 0, committed = 0, used_blocks = 0, used_bytes = 0;
};

bool visit_area(const mi_heap_t*, const mi_heap_area_t* area, void*, std::size_t, void* arg) {
  auto& a = *static_cast<Areas*>(arg);
  ++a.count;
  a.reserved += area->reserved;
  a.committed += area->committed;
  a.used_blocks += area->used;
  a.used_bytes += area->used * area->block_size;
  return true;
}

}  // namespace

template <bool kNodeArenas>
void BasicMimallocBackend<kNodeArenas>::flush_thread_caches() noexcept {
  if (mimalloc_detail::t_cache.backend != id_) {
    return;  // this thread has no heap of this backend
  }
  for (unsigned n = 0; n <= mimalloc_detail::kLowHeap; ++n) {
    if (mi_heap_t* h = mimalloc_detail::t_cache.heaps[n]) {
      mi_heap_collect(h, false);
    }
  }
}

template <bool kNodeArenas>
std::size_t BasicMimallocBackend<kNodeArenas>::reclaim(ReclaimLevel level) {
  const std::uint64_t before = mimalloc_detail::claimed_bytes(*arenas_, nodes_);
  // Only this thread's heaps may be collected here; mi_collect also frees
  // what other threads handed back to this one, and (drain) empties the
  // segment cache back into the arenas.
  if (mimalloc_detail::t_cache.backend == id_) {
    for (unsigned n = 0; n <= mimalloc_detail::kLowHeap; ++n) {
      if (mi_heap_t* h = mimalloc_detail::t_cache.heaps[n]) {
        mi_heap_collect(h, level == ReclaimLevel::drain);
      }
    }
  }
  mi_collect(level == ReclaimLevel::drain);
  const std::uint64_t after = mimalloc_detail::claimed_bytes(*arenas_, nodes_);
  return before > after ? before - after : 0;
}

// Whole 32 MiB arena blocks: what mimalloc holds of the machine, segments in
// use, cached or abandoned alike.
template <bool kNodeArenas>
BackendFootprint BasicMimallocBackend<kNodeArenas>::footprint() const {
  const std::uint64_t claimed = mimalloc_detail::claimed_bytes(*arenas_, nodes_);
  return {claimed, claimed};
}

template <bool kNodeArenas>
BackendStats BasicMimallocBackend<kNodeArenas>::stats() const {
  Areas areas;
  std::size_t heaps = 0;
  {
    std::lock_guard lock(registry_->mu);
    heaps = registry_->heaps.size();
    for (mi_heap_t* h : registry_->heaps) {
      mi_heap_visit_blocks(h, false, visit_area, &areas);
    }
  }
  BackendStats s;
  const BackendFootprint f = footprint();
  s.mapped_bytes = f.mapped_bytes;
  s.resident_bytes = f.resident_bytes;
  s.live_blocks = static_cast<std::int64_t>(areas.used_blocks);
  s.live_bytes = static_cast<std::int64_t>(areas.used_bytes);
  auto metric = [&](const char* name, double value) {
    s.metrics.push_back({std::string("backend.mimalloc.") + name, value});
  };
  metric("node_arenas", kNodeArenas ? 1 : 0);
  metric("numa.nodes", nodes_);
  metric("numa.bound_to_real_nodes", kNodeArenas && !memory_.synthetic() && nodes_ > 1 ? 1 : 0);
  metric("arena_bytes_per_node", static_cast<double>(arenas_->bytes));
  metric("low_arena_bytes", static_cast<double>(arenas_->low_bytes));
  metric("heaps", static_cast<double>(heaps));
  metric("heap.areas", static_cast<double>(areas.count));
  metric("heap.reserved_bytes", static_cast<double>(areas.reserved));
  metric("heap.committed_bytes", static_cast<double>(areas.committed));
  metric("heap.used_bytes", static_cast<double>(areas.used_bytes));
  metric("claimed_bytes", static_cast<double>(s.mapped_bytes));
  return s;
}

template class BasicMimallocBackend<true>;
template class BasicMimallocBackend<false>;

}  // namespace kmbench
