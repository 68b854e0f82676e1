#include "allocators/mimalloc/mimalloc.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "allocators/errors.h"

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
  std::array<mi_heap_t*, nodemem::kMaxNodes> heaps{};
};

void release(Entry& e) {
  std::lock_guard lock(e.registry->mu);
  for (mi_heap_t*& h : e.heaps) {
    if (h != nullptr) {
      auto& all = e.registry->heaps;
      all.erase(std::remove(all.begin(), all.end(), h), all.end());
      mi_heap_delete(h);  // live blocks move to this thread's default heap
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
std::size_t g_arena_bytes = 0;
std::array<mi_arena_id_t, nodemem::kMaxNodes> g_arenas{};

}  // namespace

const std::array<mi_arena_id_t, nodemem::kMaxNodes>& node_arenas(nodemem::NodeMemory& memory,
                                                                  std::size_t mib) {
  std::lock_guard lock(g_arena_mu);
  if (g_arena_bytes != 0) {
    return g_arenas;
  }
  const std::size_t bytes = ((mib << 20) + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
  for (unsigned n = 0; n < memory.node_count(); ++n) {
    void* region = memory.map(bytes, kArenaAlign, static_cast<NodeId>(n));
    if (region == nullptr) {
      throw RunError("mimalloc: cannot map " + std::to_string(mib) + " MiB bound to node " +
                     std::to_string(n));
    }
    // Exclusive: only heaps made in this arena use it, and they use nothing else.
    if (!mi_manage_os_memory_ex(region, bytes, /*is_committed=*/true, /*is_large=*/false,
                                /*is_zero=*/true, static_cast<int>(n), /*exclusive=*/true,
                                &g_arenas[n])) {
      memory.unmap(region, bytes);
      throw RunError("mimalloc: mi_manage_os_memory_ex refused the arena of node " +
                     std::to_string(n));
    }
  }
  g_arena_bytes = bytes;
  return g_arenas;
}

std::size_t node_arena_bytes() {
  std::lock_guard lock(g_arena_mu);
  return g_arena_bytes;
}

}  // namespace mimalloc_detail

using mimalloc_detail::Registry;

template <bool kNodeArenas>
BasicMimallocBackend<kNodeArenas>::BasicMimallocBackend(const BackendConfig& config)
    : memory_(config),
      nodes_(kNodeArenas ? memory_.node_count() : 1),
      id_(mimalloc_detail::g_next_id.fetch_add(1)),
      registry_(std::make_shared<Registry>()) {
  std::size_t mib = 4096;
  for (const auto& [key, value] : config.params) {
    if (kNodeArenas && key == "arena_mib") {
      try {
        mib = std::stoul(value);
      } catch (const std::exception&) {
        mib = 0;
      }
      if (mib < 64 || mib > (1u << 20)) {
        throw UsageError("mimalloc: arena_mib=" + value + " must be a number of MiB, 64 or more");
      }
    } else {
      throw UsageError(std::string(kVariants[0].name) + ": unknown parameter '" + key + "'" +
                       (kNodeArenas ? " (known: arena_mib)" : ""));
    }
  }
  if constexpr (kNodeArenas) {
    arenas_ = &mimalloc_detail::node_arenas(memory_, mib);
  }
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
  if (node < 0 || static_cast<unsigned>(node) >= nodes_) {
    return nullptr;
  }
  try {
    mimalloc_detail::Entry& e = mimalloc_detail::t_heaps.find(id_, registry_);
    if (e.heaps[node] == nullptr) {
      mi_heap_t* h = kNodeArenas ? mi_heap_new_in_arena((*arenas_)[node]) : mi_heap_new();
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
  std::size_t count = 0, reserved = 0, committed = 0, used = 0;
};

bool visit_area(const mi_heap_t*, const mi_heap_area_t* area, void*, std::size_t, void* arg) {
  auto& a = *static_cast<Areas*>(arg);
  ++a.count;
  a.reserved += area->reserved;
  a.committed += area->committed;
  a.used += area->used * area->block_size;
  return true;
}

struct ProcessInfo {
  std::size_t rss = 0, peak_rss = 0, commit = 0, peak_commit = 0, faults = 0;
};

ProcessInfo process_info() {
  ProcessInfo p;
  std::size_t elapsed, user, sys;
  mi_process_info(&elapsed, &user, &sys, &p.rss, &p.peak_rss, &p.commit, &p.peak_commit,
                  &p.faults);
  return p;
}

}  // namespace

template <bool kNodeArenas>
std::size_t BasicMimallocBackend<kNodeArenas>::reclaim(ReclaimLevel level) {
  const std::size_t before = process_info().commit;
  // Only this thread's heaps may be collected here; mi_collect also frees
  // what other threads handed back to this one.
  for (NodeId n = 0; static_cast<unsigned>(n) < nodes_; ++n) {
    if (mi_heap_t* h = heap(n)) {
      mi_heap_collect(h, level == ReclaimLevel::drain);
    }
  }
  mi_collect(level == ReclaimLevel::drain);
  const std::size_t after = process_info().commit;
  return before > after ? before - after : 0;
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
  const ProcessInfo p = process_info();
  BackendStats s;
  s.mapped_bytes = areas.reserved;
  s.resident_bytes = areas.committed;
  auto metric = [&](const char* name, double value) {
    s.metrics.push_back({std::string("backend.mimalloc.") + name, value});
  };
  metric("node_arenas", kNodeArenas ? 1 : 0);
  metric("numa.nodes", nodes_);
  metric("numa.bound_to_real_nodes", kNodeArenas && !memory_.synthetic() ? 1 : 0);
  if constexpr (kNodeArenas) {
    metric("numa.arena_bytes_per_node", static_cast<double>(mimalloc_detail::node_arena_bytes()));
  }
  metric("heaps", static_cast<double>(heaps));
  metric("heap.areas", static_cast<double>(areas.count));
  metric("heap.reserved_bytes", static_cast<double>(areas.reserved));
  metric("heap.committed_bytes", static_cast<double>(areas.committed));
  metric("heap.used_bytes", static_cast<double>(areas.used));
  metric("process.current_rss", static_cast<double>(p.rss));
  metric("process.peak_rss", static_cast<double>(p.peak_rss));
  metric("process.current_commit", static_cast<double>(p.commit));
  metric("process.peak_commit", static_cast<double>(p.peak_commit));
  metric("process.page_faults", static_cast<double>(p.faults));
  return s;
}

template class BasicMimallocBackend<true>;
template class BasicMimallocBackend<false>;

}  // namespace kmbench
