// mimalloc: mimalloc 2 heaps, one per thread and node.
//
// Variant "mimalloc": each node has an exclusive mimalloc arena made with
// mi_manage_os_memory_ex over node-bound memory (nodemem), so a heap made
// with mi_heap_new_in_arena only ever takes that node's memory. Arenas are
// process wide (mimalloc cannot give an arena back) and 32 MiB aligned
// (2.0.9 crashes on other regions). Variant "mimalloc-nonuma": heaps on
// mimalloc's own OS memory, no per-node arenas.
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
#include <cstdint>
#include <memory>
#include <string>

#include "allocators/backend.h"
#include "allocators/nodemem/nodemem.h"

namespace kmbench {

namespace mimalloc_detail {

struct Registry;  // one backend's heaps, for statistics and teardown

/// The calling thread's heaps of the backend it used last.
struct ThreadCache {
  std::uint64_t backend = 0;
  mi_heap_t** heaps = nullptr;  // [node]
};
inline thread_local ThreadCache t_cache;

/// The per-node exclusive arenas of this process, made once.
/// pre: the first call's mib is the arena size for every node (later calls reuse them).
/// Throws RunError if mimalloc refuses the memory.
const std::array<mi_arena_id_t, nodemem::kMaxNodes>& node_arenas(nodemem::NodeMemory& memory,
                                                                  std::size_t mib);
std::size_t node_arena_bytes();

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
                           "mimalloc heaps per thread on mimalloc's own OS memory (no per-node "
                           "arenas), mi_free_size",
                           ""},
  };
  static constexpr std::uint32_t kFeatures = kFeatureSizedFree | kFeatureUsableSize |
                                             kFeatureReclaim | (kNodeArenas ? std::uint32_t{kFeatureNuma} : 0u);

  /// params (variant mimalloc): arena_mib=N, address space per node arena
  /// (default 4096; the first backend of the process sets it).
  explicit BasicMimallocBackend(const BackendConfig& config);
  ~BasicMimallocBackend();
  BasicMimallocBackend(const BasicMimallocBackend&) = delete;
  BasicMimallocBackend& operator=(const BasicMimallocBackend&) = delete;

  void* allocate(std::size_t size, std::size_t align, TagId, NodeId node) noexcept {
    mi_heap_t* h = heap(node);
    if (h == nullptr) [[unlikely]] {
      return nullptr;
    }
    size = size < kMinAlign ? kMinAlign : size;
    if (align <= kMinAlign) {
      return mi_heap_malloc(h, size);
    }
    void* p = mi_heap_malloc_aligned(h, size, align);
    return aligned(p, align) ? p : realign(h, p, size, align, false);
  }
  /// As allocate, zero-filled (mi_heap_zalloc): for IOMallocZero / kOpZero.
  void* allocate_zeroed(std::size_t size, std::size_t align, TagId, NodeId node) noexcept {
    mi_heap_t* h = heap(node);
    if (h == nullptr) [[unlikely]] {
      return nullptr;
    }
    size = size < kMinAlign ? kMinAlign : size;
    if (align <= kMinAlign) {
      return mi_heap_zalloc(h, size);
    }
    void* p = mi_heap_zalloc_aligned(h, size, align);
    return aligned(p, align) ? p : realign(h, p, size, align, true);
  }
  void free(void* p, std::size_t size) noexcept {
    mi_free_size(p, size < kMinAlign ? kMinAlign : size);
  }
  std::size_t usable_size(void* p, std::size_t) const noexcept { return mi_usable_size(p); }
  std::size_t reclaim(ReclaimLevel level);
  /// pre: the threads using this backend are quiet (heaps are visited).
  BackendStats stats() const;

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
  mi_arena_id_t arena(NodeId node) const noexcept { return (*arenas_)[node]; }
  /// The runtime version (mi_version()), as "2.0.9".
  static std::string runtime_version();
  const nodemem::NodeMemory& memory() const noexcept { return memory_; }

 private:
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
  const std::array<mi_arena_id_t, nodemem::kMaxNodes>* arenas_ = nullptr;
  std::shared_ptr<mimalloc_detail::Registry> registry_;
};

using MimallocBackend = BasicMimallocBackend<true>;
using MimallocNonumaBackend = BasicMimallocBackend<false>;

extern template class BasicMimallocBackend<true>;
extern template class BasicMimallocBackend<false>;

}  // namespace kmbench
