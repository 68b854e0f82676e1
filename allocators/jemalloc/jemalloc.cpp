#include "allocators/jemalloc/jemalloc.h"

#include <sys/mman.h>

#include <cstring>
#include <string>

#include "base/errors.h"

namespace kmbench {
namespace {

constexpr std::size_t kGranule = std::size_t{1} << nodemem::GranuleMap::kShift;

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
    // Destruction purges and deallocates every extent and the arena's metadata
    // through the hooks; what is left is the refill tail, or all of it if
    // jemalloc could not destroy the arena.
    mallctl(("arena." + std::to_string(a->index) + ".destroy").c_str(), nullptr, nullptr, nullptr,
            0);
    for (const auto& [begin, end] : a->held) {
      if (!single_arena_) {
        // A granule with a page still held was never another arena's: refills take whole free granules.
        const std::uintptr_t first = begin & ~(kGranule - 1);
        nodemem::GranuleMap::instance().set(reinterpret_cast<void*>(first),
                                            round_up(end, kGranule) - first, 0);
      }
      memory_.unmap(reinterpret_cast<void*>(begin), end - begin);
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
  // jemalloc offers every extent it purges to dalloc first, which gives the
  // pages back, so no decommit or purge hook would be asked. No commit hook
  // either: an extent's address is its physical page, which once given back
  // may be another's by the time jemalloc would commit it again; given up
  // altogether, the next extent is taken wherever the machine has pages.
  // Nothing is retained: hook_alloc declines the grows that would be.
  a->hooks.hooks = extent_hooks_t{hook_alloc, hook_dalloc, hook_destroy, nullptr,   nullptr,
                                  nullptr,    nullptr,     hook_split,   hook_merge};
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
  if (!*commit) {
    // jemalloc reserving address space to grow into (opt.retain): what it
    // keeps of a grow for later, retained, would hold the machine's pages
    // unused and out of purge's reach. Declined, jemalloc asks for each
    // extent as it needs it, committed.
    return nullptr;
  }
  Arena& a = *reinterpret_cast<Hooks*>(hooks)->arena;
  std::lock_guard lock(a.mu);
  std::uintptr_t p = (a.cur + alignment - 1) & ~(alignment - 1);
  if (a.cur == 0 || p + size > a.end) {
    if (!a.owner->refill(a, size, alignment)) {
      return nullptr;  // the machine is out of pages: jemalloc fails the allocation
    }
    p = a.cur;
  } else if (p != a.cur) {
    a.owner->give_back(a, a.cur, p);  // skipped to align p: no extent will begin there
  }
  a.cur = p + size;
  if (*zero) {
    std::memset(reinterpret_cast<void*>(p), 0, size);  // simulated RAM keeps old contents
  }
  *commit = true;
  return reinterpret_cast<void*>(p);
}

bool JemallocBackend::refill(Arena& a, std::size_t bytes, std::size_t align) noexcept {
  // With several arenas, a block's arena is read from the granule map: refills
  // are whole granules, so that no granule is shared by two arenas. A single
  // arena needs no map and takes no more pages than jemalloc asks for.
  const std::size_t unit = single_arena_ ? physmem::kPageSize : kGranule;
  bytes = round_up(bytes, unit);
  void* fresh = memory_.map(bytes, align > unit ? align : unit, a.node, a.max_phys);
  if (fresh == nullptr) {
    a.failed_refills.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  const auto begin = reinterpret_cast<std::uintptr_t>(fresh);
  try {
    a.held.emplace(begin, begin + bytes);
  } catch (...) {
    memory_.unmap(fresh, bytes);
    return false;
  }
  if (!single_arena_) {
    nodemem::GranuleMap::instance().set(fresh, bytes, static_cast<std::uint16_t>(a.local + 1));
  }
  a.hook_bytes.fetch_add(bytes, std::memory_order_relaxed);
  if (a.cur != a.end) {
    give_back(a, a.cur, a.end);  // too short for this request; the machine may have a use for it
  }
  a.cur = begin;
  a.end = begin + bytes;
  return true;
}

bool JemallocBackend::give_back(Arena& a, std::uintptr_t begin, std::uintptr_t end) noexcept {
  auto first = a.held.upper_bound(begin);
  if (begin >= end || first == a.held.begin() || (--first)->second <= begin) {
    return false;
  }
  // Held ranges must cover [begin, end) without a gap; checked before anything changes.
  auto last = first;
  while (last->second < end) {
    const auto next = std::next(last);
    if (next == a.held.end() || next->first != last->second) {
      return false;
    }
    last = next;
  }
  if (last->second > end) {
    try {
      a.held.emplace(end, last->second);  // the only step that can fail, so it goes first
    } catch (...) {
      return false;
    }
  }
  for (auto it = first; it != a.held.end() && it->first < end;) {
    const std::uintptr_t from = it->first > begin ? it->first : begin;
    const std::uintptr_t to = it->second < end ? it->second : end;
    memory_.unmap(reinterpret_cast<void*>(from), to - from);
    if (it->first < begin) {
      it->second = begin;
      ++it;
    } else {
      it = a.held.erase(it);
    }
  }
  a.hook_bytes.fetch_sub(end - begin, std::memory_order_relaxed);
  a.returned_bytes.fetch_add(end - begin, std::memory_order_relaxed);
  return true;
}

void JemallocBackend::give_back_tails() noexcept {
  const unsigned count = arena_count_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < count; ++i) {
    Arena& a = *arenas_[i].load(std::memory_order_acquire);
    std::lock_guard lock(a.mu);
    if (a.cur != a.end && give_back(a, a.cur, a.end)) {
      a.cur = a.end = 0;
    }
  }
}

// jemalloc forgets the extent: its pages are the machine's again, and a later
// extent is taken anew by hook_alloc. Declined only when the ranges cannot be
// recorded; jemalloc then keeps the extent retained, still held.
bool JemallocBackend::hook_dalloc(extent_hooks_t* hooks, void* addr, std::size_t size, bool,
                                  unsigned) {
  Arena& a = *reinterpret_cast<Hooks*>(hooks)->arena;
  const auto begin = reinterpret_cast<std::uintptr_t>(addr);
  std::lock_guard lock(a.mu);
  return !a.owner->give_back(a, begin, begin + size);
}

// Retained extents (those whose dalloc was declined), when the arena is destroyed.
void JemallocBackend::hook_destroy(extent_hooks_t* hooks, void* addr, std::size_t size, bool,
                                   unsigned arena_ind) {
  hook_dalloc(hooks, addr, size, true, arena_ind);
}

bool JemallocBackend::hook_split(extent_hooks_t*, void*, std::size_t, std::size_t, std::size_t,
                                 bool, unsigned) {
  return false;
}

// Extents of two refills may merge: held ranges are kept apart on their own.
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
  const std::uint64_t before = footprint().mapped_bytes;
  if (level == ReclaimLevel::drain) {
    flush_thread_caches();
  }
  // Purging offers the dirty extents to hook_dalloc, which gives their pages
  // back; decay does so for those older than decay_ms (none at -1).
  const unsigned count = arena_count_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < count; ++i) {
    const std::string arena = "arena." + std::to_string(arenas_[i].load()->index);
    mallctl((arena + (level == ReclaimLevel::drain ? ".purge" : ".decay")).c_str(), nullptr,
            nullptr, nullptr, 0);
  }
  if (level == ReclaimLevel::drain) {
    give_back_tails();
  }
  // Other threads may take memory meanwhile: then this counts less than was given.
  const std::uint64_t after = footprint().mapped_bytes;
  return before > after ? before - after : 0;
}

// Every byte the hooks hold of the machine's: active, dirty and retained
// extents, the arenas' metadata, and the refill tails.
BackendFootprint JemallocBackend::footprint() const {
  std::uint64_t hook_bytes = 0;
  const unsigned count = arena_count_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < count; ++i) {
    hook_bytes += arenas_[i].load(std::memory_order_acquire)->hook_bytes.load(std::memory_order_relaxed);
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
  std::uint64_t returned = 0, failed_refills = 0;
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
    metric(m + "hook_bytes", static_cast<double>(a->hook_bytes.load(std::memory_order_relaxed)));
    metric(m + "hook_returned_bytes", static_cast<double>(a->returned_bytes.load(std::memory_order_relaxed)));
    metric(m + "hook_failed_refills", static_cast<double>(a->failed_refills.load(std::memory_order_relaxed)));
    returned += a->returned_bytes.load(std::memory_order_relaxed);
    failed_refills += a->failed_refills.load(std::memory_order_relaxed);
    metric(m + "metadata", static_cast<double>(meta));
  }
  const BackendFootprint f = footprint();
  s.mapped_bytes = f.mapped_bytes;
  s.resident_bytes = f.resident_bytes;
  s.live_blocks = live_blocks;
  s.live_bytes = live_bytes;
  metric("hook_mapped_bytes", static_cast<double>(f.mapped_bytes));
  metric("hook_returned_bytes", static_cast<double>(returned));
  metric("hook_failed_refills", static_cast<double>(failed_refills));
  // Process-wide figures (every arena, the process's own malloc included).
  metric("stats.allocated", static_cast<double>(read_ctl<std::size_t>("stats.allocated")));
  metric("stats.active", static_cast<double>(read_ctl<std::size_t>("stats.active")));
  metric("stats.resident", static_cast<double>(read_ctl<std::size_t>("stats.resident")));
  metric("stats.mapped", static_cast<double>(read_ctl<std::size_t>("stats.mapped")));
  metric("stats.metadata", static_cast<double>(read_ctl<std::size_t>("stats.metadata")));
  return s;
}

}  // namespace kmbench
