// mimalloc: mimalloc 2 heaps, one per thread and node.
//
// Variant "mimalloc": each node has an exclusive mimalloc arena made with
// mi_manage_os_memory_ex over a run of the simulated machine's node memory
// (nodemem), committed and pinned, so mimalloc never resets or decommits it;
// a heap made with mi_heap_new_in_arena only ever takes that node's memory.
// A second arena below 4 GiB serves DMA32 requests (allocate_low) when node
// 0's arena lies above. Arenas are process wide (mimalloc cannot give an
// arena back), 32 MiB aligned, and keep their machine for the process's life.
// Variant "mimalloc-nonuma": one heap per thread in node 0's arena, whatever
// node is asked for: mimalloc without NUMA placement.
//
// mimalloc heaps allocate only on the thread that made them, so each thread
// makes its own on first use and deletes them when it exits. Frees go
// through mi_free_size from any thread.
//
// Debian's libmimalloc exports malloc: linking it makes it the process's
// malloc, so these backends live in the kmbench-mimalloc worker executable.
#pragma once

#include <mimalloc.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "allocators/backend.h"
#include "allocators/params.h"
#include "allocators/nodemem/nodemem.h"

namespace kmbench {

namespace mimalloc_detail {

struct Registry;  // one backend's heaps, for statistics and teardown

/// A thread's heap slot for memory below 4 GiB, after the nodes' slots.
inline constexpr unsigned kLowHeap = nodemem::kMaxNodes;

/// The calling thread's heaps of the backend it used last.
struct ThreadCache {
  std::uint64_t backend = 0;
  mi_heap_t** heaps = nullptr;  // [node], and [kLowHeap]
};
inline thread_local ThreadCache t_cache;

/// Exclusive arenas, one per node of a machine and one below 4 GiB, made once
/// per machine and process (mimalloc cannot give an arena back).
struct NodeArenas {
  std::array<mi_arena_id_t, nodemem::kMaxNodes> ids{};
  std::size_t bytes = 0;          // node 0's (other nodes' may differ)
  bool all_low = false;           // node 0's arena lies below 4 GiB: it serves DMA32 too
  std::atomic<mi_arena_id_t> low{0};  // the arena below 4 GiB, once made (0: not yet)
  std::size_t low_bytes = 0;
};

/// The arenas on memory's machine. mib: bytes per node on the first call for
/// that machine (0: the node's RAM above 4 GiB less 32 MiB, or half of it when
/// it has none above). The machine is kept for the process's life.
/// Throws RunError if there is no such memory or mimalloc refuses it.
NodeArenas& node_arenas(nodemem::NodeMemory& memory, std::size_t mib);
/// The arena below 4 GiB of that machine, made on first use; 0 when it cannot be.
mi_arena_id_t low_arena(nodemem::NodeMemory& memory, NodeArenas& arenas) noexcept;
/// Bytes of these arenas mimalloc holds: its 32 MiB blocks claimed by segments
/// in use, cached or abandoned (mi_debug_show_arenas).
std::uint64_t claimed_bytes(const NodeArenas& arenas, unsigned nodes);

inline constexpr ParamSpec kParams[] = {
    {"arena_mib", ParamSpec::Kind::integer, "0",
     "size of each node's exclusive arena, MiB (0: sized from the run's demand)", {}, 0, 1 << 20},
};

}  // namespace mimalloc_detail

template <bool kNodeArenas>
class BasicMimallocBackend {
 public:
  static constexpr BackendVariant kVariants[] = {
      kNodeArenas
          ? BackendVariant{"mimalloc",
                           "mimalloc heaps per thread and node in per-node exclusive arenas "
                           "(mi_manage_os_memory_ex on node-bound memory), mi_free_size",
                           ""}
          : BackendVariant{"mimalloc-nonuma",
                           "mimalloc heaps per thread in one arena (node 0's): no NUMA placement, "
                           "mi_free_size",
                           ""},
  };
  // Outside the template: the class is instantiated explicitly in mimalloc.cpp only.
  static constexpr std::span<const ParamSpec> kParams = mimalloc_detail::kParams;
  static constexpr std::uint32_t kFeatures =
      kFeatureSizedFree | kFeatureUsableSize | kFeatureReclaim | kFeaturePhysical |
      kFeatureLowMemory | kFeatureRealloc | (kNodeArenas ? std::uint32_t{kFeatureNuma} : 0u);

  /// params: arena_mib=N, memory per node arena (default: the node's RAM above
  /// 4 GiB less 32 MiB, or half the node without any; the first backend on a
  /// machine sets it).
  explicit BasicMimallocBackend(const BackendConfig& config);
  ~BasicMimallocBackend();
  BasicMimallocBackend(const BasicMimallocBackend&) = delete;
  BasicMimallocBackend& operator=(const BasicMimallocBackend&) = delete;

  void* allocate(std::size_t size, std::size_t align, TagId, NodeId node) noexcept {
    return allocate_in(heap(node), size, align, false);
  }
  /// As allocate, zero-filled (mi_heap_zalloc): for IOMallocZero / kOpZero.
  void* allocate_zeroed(std::size_t size, std::size_t align, TagId, NodeId node) noexcept {
    return allocate_in(heap(node), size, align, true);
  }
  void free(void* p, std::size_t size) noexcept {
    nodemem::tsan_before_free(this);
    mi_free_size(p, size < kMinAlign ? kMinAlign : size);
  }
  /// mi_heap_realloc into the calling thread's heap for node: in place while
  /// the new size fits the block and keeps at least half of it, else a move.
  /// A block aligned beyond 16 bytes moves by allocate, copy and free.
  void* reallocate(void* p, std::size_t old_size, std::size_t new_size, std::size_t align, TagId tag,
                   NodeId node) noexcept {
    mi_heap_t* h = align > kMinAlign ? nullptr : heap(node);
    if (h == nullptr) {
      return align > kMinAlign ? copy_reallocate(*this, p, old_size, new_size, align, tag, node) : nullptr;
    }
    nodemem::tsan_before_free(this);
    void* q = mi_heap_realloc(h, p, new_size < kMinAlign ? kMinAlign : new_size);
    nodemem::tsan_after_allocate(this);
    return q;
  }
  /// A block below 4 GiB physical: from the arena below 4 GiB (node 0's own
  /// when it lies there).
  void* allocate_low(std::size_t size, std::size_t align, TagId, NodeId) noexcept {
    if (arenas_->all_low) {
      return allocate_in(heap(0), size, align, false);
    }
    mimalloc_detail::ThreadCache& t = mimalloc_detail::t_cache;
    mi_heap_t* h = t.backend == id_ ? t.heaps[mimalloc_detail::kLowHeap] : nullptr;
    if (h == nullptr) [[unlikely]] {
      h = heap_slow(static_cast<NodeId>(mimalloc_detail::kLowHeap));
    }
    return allocate_in(h, size, align, false);
  }
  void free_low(void* p, std::size_t size) noexcept { free(p, size); }
  std::uint64_t physical_address(const void* p) const noexcept {
    return memory_.machine().phys_of(p);
  }
  std::size_t usable_size(void* p, std::size_t) const noexcept { return mi_usable_size(p); }
  std::size_t reclaim(ReclaimLevel level);
  /// Collects the calling thread's heaps of this backend (the blocks other
  /// threads freed to them), so that their counts hold only what callers hold.
  void flush_thread_caches() noexcept;
  /// pre: the threads using this backend are quiet (heaps are visited).
  BackendStats stats() const;
  BackendFootprint footprint() const;  // stats()'s mapped and resident bytes, no heap visit

  /// The calling thread's heap for node (made on first use); nullptr for a node out of range.
  mi_heap_t* heap(NodeId node) noexcept {
    const NodeId n = !kNodeArenas ? 0 : node == kAnyNode ? memory_.local_node() : node;
    mimalloc_detail::ThreadCache& t = mimalloc_detail::t_cache;
    if (t.backend == id_ && n >= 0 && static_cast<unsigned>(n) < nodes_) [[likely]] {
      if (mi_heap_t* h = t.heaps[n]) [[likely]] {
        return h;
      }
    }
    return heap_slow(n);
  }
  /// The mimalloc arena of node (variant mimalloc).
  mi_arena_id_t arena(NodeId node) const noexcept { return arenas_->ids[node]; }
  /// The runtime version (mi_version()), as "2.0.9".
  static std::string runtime_version();
  const nodemem::NodeMemory& memory() const noexcept { return memory_; }

 private:
  void* allocate_in(mi_heap_t* h, std::size_t size, std::size_t align, bool zero) noexcept {
    if (h == nullptr) [[unlikely]] {
      return nullptr;
    }
    size = size < kMinAlign ? kMinAlign : size;
    void* p = align <= kMinAlign ? (zero ? mi_heap_zalloc(h, size) : mi_heap_malloc(h, size))
                                 : (zero ? mi_heap_zalloc_aligned(h, size, align)
                                         : mi_heap_malloc_aligned(h, size, align));
    if (!aligned(p, align)) [[unlikely]] {
      p = realign(h, p, size, align, zero);
    }
    nodemem::tsan_after_allocate(this);
    return p;
  }
  static bool aligned(const void* p, std::size_t align) noexcept {
    return (reinterpret_cast<std::uintptr_t>(p) & (align - 1)) == 0;
  }
  /// mimalloc 2.0.9 returns misaligned blocks for some requests whose size is a
  /// multiple of the alignment (256..1024 B: its small-block shortcut); asking
  /// one byte more takes its real aligned path.
  static void* realign(mi_heap_t* h, void* p, std::size_t size, std::size_t align,
                       bool zero) noexcept {
    mi_free(p);
    return zero ? mi_heap_zalloc_aligned(h, size + 1, align)
                : mi_heap_malloc_aligned(h, size + 1, align);
  }
  mi_heap_t* heap_slow(NodeId node) noexcept;

  nodemem::NodeMemory memory_;
  unsigned nodes_ = 1;
  std::uint64_t id_ = 0;  // never reused, so a thread's stale cache entry never matches
  mimalloc_detail::NodeArenas* arenas_ = nullptr;
  std::shared_ptr<mimalloc_detail::Registry> registry_;
};

using MimallocBackend = BasicMimallocBackend<true>;
using MimallocNonumaBackend = BasicMimallocBackend<false>;

extern template class BasicMimallocBackend<true>;
extern template class BasicMimallocBackend<false>;

}  // namespace kmbench
