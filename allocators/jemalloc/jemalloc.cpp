#include "allocators/jemalloc/jemalloc.h"

#include <sys/mman.h>

#include <cstring>
#include <string>

#include "base/errors.h"

namespace kmbench {
namespace {

constexpr std::size_t kGranule = std::size_t{1} << nodemem::GranuleMap::kShift;
// Simulated RAM per hook refill: an arena's first refill also holds its metadata.
constexpr std::size_t kChunk = 16u << 20;

std::size_t round_up(std::size_t v, std::size_t to) { return (v + to - 1) & ~(to - 1); }

bool on_off(const BackendConfig& config, const char* key) {
  return ParamReader("jemalloc", JemallocBackend::kParams, config).on(key);
}

template <class T>
T read_ctl(const std::string& name) {
  T value{};
  std::size_t len = sizeof value;
  if (mallctl(name.c_str(), &value, &len, nullptr, 0) != 0) {
    return T{};
  }
  return value;
}

}  // namespace

JemallocBackend::JemallocBackend(const BackendConfig& config)
    : memory_(config),
      nodes_(memory_.node_count()),
      tcache_(on_off(config, "tcache")),
      per_tag_(on_off(config, "arena_per_tag")) {
  const ParamReader params("jemalloc", kParams, config);
  decay_ms_ = static_cast<long>(params.integer("decay_ms"));
  per_node_ = static_cast<unsigned>(params.integer("arenas_per_node"));
  single_arena_ = nodes_ == 1 && !per_tag_ && per_node_ == 1;
  if (per_tag_) {
    tag_arenas_ = std::make_unique<std::atomic<std::uint16_t>[]>(kTagArenas * nodemem::kMaxNodes);
  }
  if (nodes_ * (per_node_ + (per_tag_ ? kTagArenas : 0)) + 1 > kMaxArenas) {
    throw UsageError("jemalloc: " + std::to_string(nodes_) + " nodes × " + std::to_string(per_node_) +
                     " arenas_per_node" + (per_tag_ ? " and the tag arenas" : "") + " exceed " +
                     std::to_string(kMaxArenas) + " arenas");
  }
  for (unsigned n = 0; n < nodes_; ++n) {
    for (unsigned k = 0; k < per_node_; ++k) {
      node_arena_[n * per_node_ + k] = create_arena(static_cast<NodeId>(n), kNoTag);
    }
  }
}

JemallocBackend::~JemallocBackend() {
  // Explicit tcaches first: an arena can only be destroyed once no tcache holds its blocks.
  for (auto& slot : tcaches_) {
    unsigned* row = slot.load(std::memory_order_acquire);
    if (row == nullptr) {
      continue;
    }
    for (unsigned i = 0; i < kMaxArenas; ++i) {
      if (row[i] != 0) {
        unsigned tc = row[i] - 1;
        mallctl("tcache.destroy", nullptr, nullptr, &tc, sizeof tc);
      }
    }
    delete[] row;
  }
  const unsigned count = arena_count_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < count; ++i) {
    Arena* a = arenas_[i].load(std::memory_order_acquire);
    mallctl(("arena." + std::to_string(a->index) + ".destroy").c_str(), nullptr, nullptr, nullptr,
            0);
    for (const auto& [p, bytes] : a->chunks) {
      nodemem::GranuleMap::instance().set(p, bytes, 0);
      memory_.unmap(p, bytes);
    }
    delete a;
  }
}

unsigned JemallocBackend::create_arena(NodeId node, TagId tag, std::uint64_t max_phys) {
  const unsigned local = arena_count_.load(std::memory_order_relaxed);
  if (local >= kNoArena) {
    return kNoArena;
  }
  auto* a = new Arena;
  a->owner = this;
  a->local = local;
  a->node = node;
  a->tag = tag;
  a->max_phys = max_phys;
  // No destroy, commit, decommit or purge hook: the machine's memory stays the
  // arena's and resident; jemalloc then only keeps its books.
  a->hooks.hooks = extent_hooks_t{hook_alloc, hook_dalloc, nullptr,    nullptr,   nullptr,
                                  nullptr,    nullptr,     hook_split, hook_merge};
  a->hooks.arena = a;
  extent_hooks_t* hooks = &a->hooks.hooks;
  std::size_t len = sizeof a->index;
  if (mallctl("arenas.create", &a->index, &len, &hooks, sizeof hooks) != 0) {
    delete a;
    throw RunError("jemalloc: arenas.create failed for node " + std::to_string(node));
  }
  const std::string arena = "arena." + std::to_string(a->index);
  ssize_t decay = decay_ms_;
  mallctl((arena + ".dirty_decay_ms").c_str(), nullptr, nullptr, &decay, sizeof decay);
  mallctl((arena + ".muzzy_decay_ms").c_str(), nullptr, nullptr, &decay, sizeof decay);
  arenas_[local].store(a, std::memory_order_release);
  arena_count_.store(local + 1, std::memory_order_release);
  return local;
}

unsigned JemallocBackend::create_low_arena() noexcept {
  std::lock_guard lock(create_mu_);
  unsigned local = low_arena_.load(std::memory_order_acquire);
  if (local == kNoArena) {
    try {
      // DMA32 memory exists on node 0 only, as on x86 machines.
      local = create_arena(0, kNoTag, kLowMemoryLimit - 1);
    } catch (const RunError&) {
      return kNoArena;
    }
    low_arena_.store(local, std::memory_order_release);
  }
  return local;
}

unsigned JemallocBackend::tag_arena(TagId tag, NodeId node) noexcept {
  const unsigned slot = (tag < kTagArenas ? tag : kTagArenas - 1) * nodemem::kMaxNodes +
                        static_cast<unsigned>(node);
  const std::uint16_t known = tag_arenas_[slot].load(std::memory_order_acquire);
  if (known != 0) [[likely]] {
    return known - 1u;
  }
  std::lock_guard lock(create_mu_);
  std::uint16_t again = tag_arenas_[slot].load(std::memory_order_acquire);
  if (again == 0) {
    unsigned local = kNoArena;
    try {
      local = create_arena(node, tag < kTagArenas ? tag : kTagArenas - 1);
    } catch (const RunError&) {
    }
    if (local == kNoArena) {
      return kNoArena;
    }
    again = static_cast<std::uint16_t>(local + 1);
    tag_arenas_[slot].store(again, std::memory_order_release);
  }
  return again - 1u;
}

int JemallocBackend::create_tcache(unsigned local) noexcept {
  if (local >= kNoArena) {
    return static_cast<int>(MALLOCX_TCACHE_NONE);
  }
  std::atomic<unsigned*>& slot = tcaches_[this_cpu_slot()];
  unsigned* row = slot.load(std::memory_order_acquire);
  if (row == nullptr) {
    row = new (std::nothrow) unsigned[kMaxArenas]();
    if (row == nullptr) {
      return static_cast<int>(MALLOCX_TCACHE_NONE);
    }
    slot.store(row, std::memory_order_release);
  }
  unsigned tc = 0;
  std::size_t len = sizeof tc;
  if (mallctl("tcache.create", &tc, &len, nullptr, 0) != 0) {
    return static_cast<int>(MALLOCX_TCACHE_NONE);  // out of tcache ids: uncached, still correct
  }
  row[local] = tc + 1;
  return static_cast<int>(MALLOCX_TCACHE(tc));
}

void* JemallocBackend::allocate_aligned(std::size_t size, std::size_t align, int flags) noexcept {
  const int aligned = flags | static_cast<int>(MALLOCX_ALIGN(align));
  void* p = mallocx(size, aligned);
  if (p == nullptr || nallocx(size, aligned) == nallocx(size, 0)) {
    return p;  // same size class as the plain request: sdallocx(p, size) finds it
  }
  try {
    std::lock_guard lock(odd_mu_);
    odd_.emplace(p, align);
  } catch (...) {
    dallocx(p, flags);
    return nullptr;
  }
  odd_live_.fetch_add(1, std::memory_order_relaxed);
  return p;
}

bool JemallocBackend::free_odd(void* p, unsigned local) noexcept {
  std::size_t align = 0;
  {
    std::lock_guard lock(odd_mu_);
    auto it = odd_.find(p);
    if (it == odd_.end()) {
      return false;
    }
    align = it->second;
    odd_.erase(it);
  }
  odd_live_.fetch_sub(1, std::memory_order_relaxed);
  dallocx(p, tcache_flag(local) | static_cast<int>(MALLOCX_ALIGN(align)));
  return true;
}

void* JemallocBackend::hook_alloc(extent_hooks_t* hooks, void* new_addr, std::size_t size,
                                  std::size_t alignment, bool* zero, bool* commit, unsigned) {
  if (new_addr != nullptr) {
    return nullptr;  // extents are never grown in place: each range is handed out once
  }
  Arena& a = *reinterpret_cast<Hooks*>(hooks)->arena;
  std::lock_guard lock(a.mu);
  std::uintptr_t p = (a.cur + alignment - 1) & ~(alignment - 1);
  if (a.cur == 0 || p + size > a.end) {
    const std::size_t bytes = round_up(size > kChunk ? size : kChunk, kGranule);
    void* chunk = a.owner->memory_.map(bytes, alignment > kGranule ? alignment : kGranule, a.node,
                                       a.max_phys);
    if (chunk == nullptr) {
      return nullptr;
    }
    try {
      a.chunks.emplace_back(chunk, bytes);
    } catch (...) {
      a.owner->memory_.unmap(chunk, bytes);
      return nullptr;
    }
    nodemem::GranuleMap::instance().set(chunk, bytes, static_cast<std::uint16_t>(a.local + 1));
    a.chunk_bytes.fetch_add(bytes, std::memory_order_relaxed);
    p = reinterpret_cast<std::uintptr_t>(chunk);
    a.end = p + bytes;
  }
  a.cur = p + size;
  if (*zero) {
    std::memset(reinterpret_cast<void*>(p), 0, size);  // simulated RAM keeps old contents
  }
  *commit = true;
  return reinterpret_cast<void*>(p);
}

// Extents are retained (jemalloc reuses them); chunks go back when the backend ends.
bool JemallocBackend::hook_dalloc(extent_hooks_t*, void*, std::size_t, bool, unsigned) {
  return true;
}

bool JemallocBackend::hook_split(extent_hooks_t*, void*, std::size_t, std::size_t, std::size_t,
                                 bool, unsigned) {
  return false;
}

bool JemallocBackend::hook_merge(extent_hooks_t*, void*, std::size_t, void*, std::size_t, bool,
                                 unsigned) {
  return false;
}

unsigned JemallocBackend::lookup_arena(const void* p) {
  unsigned index = ~0u;
  std::size_t len = sizeof index;
  const void* ptr = p;
  if (mallctl("arenas.lookup", &index, &len, const_cast<void**>(&ptr), sizeof ptr) != 0) {
    return ~0u;
  }
  return index;
}

std::string JemallocBackend::runtime_version() {
  const char* v = read_ctl<const char*>("version");
  return v == nullptr ? "unknown" : v;
}

void JemallocBackend::flush_thread_caches() noexcept {
  // Only the calling thread's slot row may be flushed safely; others belong to live threads.
  if (unsigned* row = tcaches_[this_cpu_slot()].load(std::memory_order_acquire)) {
    for (unsigned i = 0; i < kMaxArenas; ++i) {
      if (row[i] != 0) {
        unsigned tc = row[i] - 1;
        mallctl("tcache.flush", nullptr, nullptr, &tc, sizeof tc);
      }
    }
  }
}

std::size_t JemallocBackend::reclaim(ReclaimLevel level) {
  const BackendStats before = stats();
  if (level == ReclaimLevel::drain) {
    flush_thread_caches();
  }
  // Purging moves dirty extents to the retained ones: bookkeeping only, as no
  // hook gives the machine's memory back.
  const unsigned count = arena_count_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < count; ++i) {
    const std::string arena = "arena." + std::to_string(arenas_[i].load()->index);
    mallctl((arena + (level == ReclaimLevel::drain ? ".purge" : ".decay")).c_str(), nullptr,
            nullptr, nullptr, 0);
  }
  const BackendStats after = stats();
  return before.mapped_bytes > after.mapped_bytes ? before.mapped_bytes - after.mapped_bytes : 0;
}

// Every byte the hooks took from the machine: active, dirty and retained
// extents and the arenas' metadata (jemalloc's mapped + retained).
BackendFootprint JemallocBackend::footprint() const {
  std::uint64_t hook_bytes = 0;
  const unsigned count = arena_count_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < count; ++i) {
    hook_bytes += arenas_[i].load(std::memory_order_acquire)->chunk_bytes.load(std::memory_order_relaxed);
  }
  return {hook_bytes, hook_bytes};
}

BackendStats JemallocBackend::stats() const {
  std::uint64_t epoch = 1;
  std::size_t len = sizeof epoch;
  mallctl("epoch", &epoch, &len, &epoch, sizeof epoch);
  const std::size_t page = read_ctl<std::size_t>("arenas.page");
  BackendStats s;
  auto metric = [&](std::string name, double value) {
    s.metrics.push_back({"backend.jemalloc." + std::move(name), value});
  };
  metric("tcache", tcache_ ? 1 : 0);
  metric("arena_per_tag", per_tag_ ? 1 : 0);
  metric("arenas_per_node", per_node_);
  metric("decay_ms", static_cast<double>(decay_ms_));
  metric("numa.nodes", nodes_);
  metric("numa.bound_to_real_nodes", !memory_.synthetic() && nodes_ > 1 ? 1 : 0);
  const unsigned count = arena_count_.load(std::memory_order_acquire);
  metric("arenas", count);
  std::int64_t live_blocks = 0, live_bytes = 0;
  for (unsigned i = 0; i < count; ++i) {
    const Arena* a = arenas_[i].load(std::memory_order_acquire);
    const std::string base = "stats.arenas." + std::to_string(a->index) + ".";
    const std::size_t mapped = read_ctl<std::size_t>(base + "mapped");
    const std::size_t meta = read_ctl<std::size_t>(base + "base") + read_ctl<std::size_t>(base + "internal");
    s.metadata_bytes += meta;
    // Blocks in tcaches count as allocated here: exact after flush_thread_caches on every thread.
    for (const char* kind : {"small.", "large."}) {
      live_blocks += static_cast<std::int64_t>(read_ctl<std::uint64_t>(base + kind + "nmalloc")) -
                     static_cast<std::int64_t>(read_ctl<std::uint64_t>(base + kind + "ndalloc"));
      live_bytes += static_cast<std::int64_t>(read_ctl<std::size_t>(base + kind + "allocated"));
    }
    const std::string m = "arena." + std::to_string(i) + ".";
    metric(m + "index", a->index);
    metric(m + "node", a->node);
    metric(m + "tag", a->tag);
    metric(m + "low", a->max_phys < kLowMemoryLimit ? 1 : 0);
    metric(m + "pactive", static_cast<double>(read_ctl<std::size_t>(base + "pactive")));
    metric(m + "pdirty", static_cast<double>(read_ctl<std::size_t>(base + "pdirty")));
    metric(m + "pmuzzy", static_cast<double>(read_ctl<std::size_t>(base + "pmuzzy")));
    metric(m + "active_bytes",
           static_cast<double>(read_ctl<std::size_t>(base + "pactive") * page));
    metric(m + "mapped", static_cast<double>(mapped));
    metric(m + "retained", static_cast<double>(read_ctl<std::size_t>(base + "retained")));
    metric(m + "hook_bytes", static_cast<double>(a->chunk_bytes.load(std::memory_order_relaxed)));
    metric(m + "metadata", static_cast<double>(meta));
  }
  const BackendFootprint f = footprint();
  s.mapped_bytes = f.mapped_bytes;
  s.resident_bytes = f.resident_bytes;
  s.live_blocks = live_blocks;
  s.live_bytes = live_bytes;
  metric("hook_mapped_bytes", static_cast<double>(f.mapped_bytes));
  // Process-wide figures (every arena, the process's own malloc included).
  metric("stats.allocated", static_cast<double>(read_ctl<std::size_t>("stats.allocated")));
  metric("stats.active", static_cast<double>(read_ctl<std::size_t>("stats.active")));
  metric("stats.resident", static_cast<double>(read_ctl<std::size_t>("stats.resident")));
  metric("stats.mapped", static_cast<double>(read_ctl<std::size_t>("stats.mapped")));
  metric("stats.metadata", static_cast<double>(read_ctl<std::size_t>("stats.metadata")));
  return s;
}

}  // namespace kmbench
