// jemalloc: jemalloc 5 as its experts configure it for node-bound memory.
//
// One arena per node, created with arenas.create and extent hooks that carve
// extents (and the arena's own metadata) from the simulated machine's node
// memory (nodemem), resident like a kernel's direct map; optionally one arena
// per (OSMalloc tag, node); and one arena over memory below 4 GiB for DMA32
// requests (allocate_low). Memory goes back to the machine the way jemalloc
// unmaps it with retain off: when it purges (decay, arena.<i>.purge, arena
// destruction) it offers each extent to the dalloc hook, which gives its
// pages back and takes the extent out of jemalloc's books; a later extent is
// taken from the machine again by the alloc hook (a single arena takes the
// pages it asks for; several take whole granules, for the granule map), and
// when the machine has no pages left that allocation fails. Nothing is
// retained. Decay is off (dirty_decay_ms = muzzy_decay_ms = -1 unless
// decay_ms says otherwise), so pages go back on reclaim. Explicit tcaches,
// one per (CPU slot, arena), so a cached block never crosses arenas; or no
// tcache at all (jemalloc-notcache). Blocks are freed with sdallocx; the
// arena of a block is read from the granule map, not looked up in jemalloc.
//
// Debian's libjemalloc is unprefixed: linking it makes it the process's
// malloc, so this backend lives in the kmbench-jemalloc worker executable.
#pragma once

#include <jemalloc/jemalloc.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "allocators/backend.h"
#include "allocators/params.h"
#include "allocators/cpu_slot.h"
#include "allocators/nodemem/nodemem.h"

namespace kmbench {

class JemallocBackend {
 public:
  static constexpr BackendVariant kVariants[] = {
      {"jemalloc",
       "jemalloc arenas per node (arenas.create, node-bound extent hooks), explicit tcache per "
       "CPU slot and arena, sdallocx",
       ""},
      {"jemalloc-notcache", "jemalloc arenas per node without a tcache (MALLOCX_TCACHE_NONE)",
       "tcache=off"},
  };
  static constexpr ParamSpec kParams[] = {
      {"tcache", ParamSpec::Kind::choice, "on", "an explicit tcache per CPU slot and arena", "on|off"},
      {"arena_per_tag", ParamSpec::Kind::choice, "off", "an arena per allocation tag and node", "on|off"},
      {"decay_ms", ParamSpec::Kind::integer, "-1",
       "dirty and muzzy decay of every arena, ms (-1: never purge; the replay's default)", {}, -1, 86'400'000},
      {"arenas_per_node", ParamSpec::Kind::integer, "1",
       "arenas on each node; CPU slot s allocates from arena s % N of its node, as jemalloc's narenas "
       "spreads threads over arenas (percpu_arena: one per CPU)",
       {}, 1, 16},
  };
  static constexpr std::uint32_t kFeatures = kFeatureRealloc | kFeatureSizedFree | kFeatureNuma |
                                             kFeatureUsableSize | kFeatureReclaim | kFeatureTags |
                                             kFeaturePhysical | kFeatureLowMemory;

  /// Arenas one backend can own: nodes × (arenas per node + tag arenas).
  static constexpr unsigned kMaxArenas = 1024;
  static constexpr unsigned kMaxArenasPerNode = 16;
  /// Tags with an arena of their own (arena_per_tag=on); larger tag ids share the last.
  static constexpr unsigned kTagArenas = 16;
  static constexpr unsigned kNoArena = kMaxArenas - 1;

  /// params: kParams (tcache, arena_per_tag, decay_ms, arenas_per_node).
  explicit JemallocBackend(const BackendConfig& config);
  ~JemallocBackend();
  JemallocBackend(const JemallocBackend&) = delete;
  JemallocBackend& operator=(const JemallocBackend&) = delete;

  void* allocate(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
    return allocate_flags(size, align, tag, node, 0);
  }
  /// As allocate, zero-filled (MALLOCX_ZERO): for IOMallocZero / kOpZero.
  void* allocate_zeroed(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
    return allocate_flags(size, align, tag, node, MALLOCX_ZERO);
  }

  void free(void* p, std::size_t size) noexcept {
    if (p == nullptr) {
      return;
    }
    free_in(p, size, single_arena_ ? 0 : nodemem::GranuleMap::instance().get(p) - 1u);
  }

  /// rallocx in the block's own arena, with its tcache: grows or shrinks in
  /// place where the size class allows, else moves within that arena. A block
  /// aligned beyond 16 bytes moves by allocate, copy and free.
  void* reallocate(void* p, std::size_t old_size, std::size_t new_size, std::size_t align, TagId tag,
                   NodeId node) noexcept {
    if (align > kMinAlign) {
      return copy_reallocate(*this, p, old_size, new_size, align, tag, node);
    }
    const unsigned local = single_arena_ ? 0 : nodemem::GranuleMap::instance().get(p) - 1u;
    const Arena* arena = arenas_[local].load(std::memory_order_acquire);
    nodemem::tsan_before_free(this);
    void* q = rallocx(p, effective(new_size), static_cast<int>(MALLOCX_ARENA(arena->index)) | tcache_flag(local));
    nodemem::tsan_after_allocate(this);
    return q;
  }

  /// A block below 4 GiB physical, from the low arena (made on first use).
  void* allocate_low(std::size_t size, std::size_t align, TagId tag, NodeId) noexcept {
    const unsigned local = low_arena();
    return local == kNoArena ? nullptr : allocate_in(local, size, align, tag, 0);
  }
  void free_low(void* p, std::size_t size) noexcept {
    if (p != nullptr) {
      free_in(p, size, low_arena_.load(std::memory_order_acquire));
    }
  }

  std::size_t usable_size(void* p, std::size_t) const noexcept { return sallocx(p, 0); }
  std::uint64_t physical_address(const void* p) const noexcept {
    return memory_.machine().phys_of(p);
  }
  std::size_t reclaim(ReclaimLevel level);
  /// Empties the calling CPU slot's tcaches into their arenas, so that the
  /// arenas' counts hold only the blocks callers hold (stats().live_blocks).
  void flush_thread_caches() noexcept;
  BackendStats stats() const;
  BackendFootprint footprint() const;  // stats()'s mapped and resident bytes, nothing else

  // For tests and tools.
  /// jemalloc's index of the arena serving (tag, node); creates it if needed.
  unsigned arena_index(TagId tag, NodeId node) noexcept {
    const Arena* a = arenas_[arena_for(tag, node)].load(std::memory_order_acquire);
    return a == nullptr ? ~0u : a->index;
  }
  /// jemalloc's own answer (mallctl arenas.lookup) for the arena that owns p.
  static unsigned lookup_arena(const void* p);
  /// The runtime version (mallctl "version").
  static std::string runtime_version();
  const nodemem::NodeMemory& memory() const noexcept { return memory_; }

 private:
  struct Arena;
  /// extent_hooks_t first, so a hook finds its arena from the pointer jemalloc passes.
  struct Hooks {
    extent_hooks_t hooks;
    Arena* arena;
  };
  struct Arena {
    JemallocBackend* owner = nullptr;
    unsigned local = 0;  // index in arenas_; granule owner = local + 1
    unsigned index = 0;  // jemalloc's arena index
    NodeId node = 0;
    TagId tag = kNoTag;
    std::uint64_t max_phys = ~std::uint64_t{0};  // the low arena's memory lies below 4 GiB
    Hooks hooks{};
    std::mutex mu;  // guards the refill's tail and the held ranges
    std::uintptr_t cur = 0, end = 0;  // the last refill's tail, not handed to jemalloc yet
    // The machine's pages this arena holds: begin → end, page granular. Ranges
    // of two refills are never joined, so each lies in one zone of the page
    // layer and goes back to it in one piece.
    std::map<std::uintptr_t, std::uintptr_t> held;
    std::atomic<std::uint64_t> hook_bytes{0};      // bytes in held
    std::atomic<std::uint64_t> returned_bytes{0};  // given back to the machine so far
    std::atomic<std::uint64_t> failed_refills{0};  // refills the machine had no pages for
  };

  static std::size_t effective(std::size_t size) noexcept { return size < kMinAlign ? kMinAlign : size; }

  void* allocate_flags(std::size_t size, std::size_t align, TagId tag, NodeId node,
                       int extra) noexcept {
    return allocate_in(arena_for(tag, node), size, align, tag, extra);
  }
  void* allocate_in(unsigned local, std::size_t size, std::size_t align, TagId, int extra) noexcept {
    const Arena* arena = arenas_[local].load(std::memory_order_acquire);
    if (arena == nullptr) [[unlikely]] {
      return nullptr;
    }
    int flags = static_cast<int>(MALLOCX_ARENA(arena->index)) | tcache_flag(local) | extra;
    void* p = align > kMinAlign ? allocate_aligned(effective(size), align, flags)
                                : mallocx(effective(size), flags);
    nodemem::tsan_after_allocate(this);
    return p;
  }
  void free_in(void* p, std::size_t size, unsigned local) noexcept {
    nodemem::tsan_before_free(this);
    if (odd_live_.load(std::memory_order_relaxed) != 0 && free_odd(p, local)) {
      return;
    }
    sdallocx(p, effective(size), tcache_flag(local));
  }

  unsigned arena_for(TagId tag, NodeId node) noexcept {
    if (single_arena_) [[likely]] {
      return node == kAnyNode || node == 0 ? 0 : kNoArena;
    }
    const NodeId n = node == kAnyNode ? memory_.local_node() : node;
    if (n < 0 || static_cast<unsigned>(n) >= nodes_) {
      return kNoArena;  // never populated: the allocation fails
    }
    if (!per_tag_ || tag == kNoTag) {
      const unsigned k = per_node_ == 1 ? 0 : this_cpu_slot() % per_node_;
      return node_arena_[static_cast<unsigned>(n) * per_node_ + k];
    }
    return tag_arena(tag, n);
  }

  int tcache_flag(unsigned local) noexcept {
    if (!tcache_) {
      return static_cast<int>(MALLOCX_TCACHE_NONE);
    }
    const unsigned* row = tcaches_[this_cpu_slot()].load(std::memory_order_acquire);
    if (row != nullptr && row[local] != 0) [[likely]] {
      return static_cast<int>(MALLOCX_TCACHE(row[local] - 1));
    }
    return create_tcache(local);
  }

  unsigned tag_arena(TagId tag, NodeId node) noexcept;
  int create_tcache(unsigned local) noexcept;
  void* allocate_aligned(std::size_t size, std::size_t align, int flags) noexcept;
  bool free_odd(void* p, unsigned local) noexcept;
  unsigned create_arena(NodeId node, TagId tag, std::uint64_t max_phys = ~std::uint64_t{0});
  unsigned low_arena() noexcept {
    const unsigned known = low_arena_.load(std::memory_order_acquire);
    return known != kNoArena ? known : create_low_arena();
  }
  unsigned create_low_arena() noexcept;
  /// Takes at least bytes of the machine, aligned to align, as a's refill in
  /// place of the last one, whose tail goes back; false when the machine has
  /// none. pre: a.mu held.
  bool refill(Arena& a, std::size_t bytes, std::size_t align) noexcept;
  /// Gives [begin, end) back to the machine; false (nothing given) when a part
  /// of it is not held or the ranges cannot be recorded. pre: a.mu held.
  bool give_back(Arena& a, std::uintptr_t begin, std::uintptr_t end) noexcept;
  /// Gives back each arena's refill tail, the part not handed to jemalloc yet.
  void give_back_tails() noexcept;

  static void* hook_alloc(extent_hooks_t*, void* new_addr, std::size_t size,
                          std::size_t alignment, bool* zero, bool* commit, unsigned arena_ind);
  static bool hook_dalloc(extent_hooks_t*, void*, std::size_t, bool, unsigned);
  static void hook_destroy(extent_hooks_t*, void*, std::size_t, bool, unsigned);
  static bool hook_split(extent_hooks_t*, void*, std::size_t, std::size_t, std::size_t, bool,
                         unsigned);
  static bool hook_merge(extent_hooks_t*, void*, std::size_t, void*, std::size_t, bool,
                         unsigned);

  nodemem::NodeMemory memory_;
  unsigned nodes_ = 1;
  bool tcache_ = true;
  bool per_tag_ = false;
  bool single_arena_ = true;
  unsigned per_node_ = 1;  // arenas_per_node
  long decay_ms_ = -1;
  std::atomic<unsigned> low_arena_{kNoArena};
  std::array<unsigned, nodemem::kMaxNodes * kMaxArenasPerNode> node_arena_{};  // [node * per_node_ + k]
  std::array<std::atomic<Arena*>, kMaxArenas> arenas_{};
  std::atomic<unsigned> arena_count_{0};
  std::unique_ptr<std::atomic<std::uint16_t>[]> tag_arenas_;  // [tag slot * kMaxNodes + node] = local + 1
  std::mutex create_mu_;
  // Per CPU slot: kMaxArenas tcache ids + 1 (0: none yet). Only the slot's owner writes its row.
  std::array<std::atomic<unsigned*>, kMaxCpuSlots> tcaches_{};
  // Aligned blocks whose size class differs from that of their size: sdallocx needs their alignment.
  std::atomic<std::size_t> odd_live_{0};
  std::mutex odd_mu_;
  std::unordered_map<void*, std::size_t> odd_;  // block → alignment
};

}  // namespace kmbench
