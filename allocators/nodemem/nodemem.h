// nodemem: memory bound to a NUMA node, for backends that take their memory
// from the operating system (jemalloc's extent hooks, mimalloc's arenas).
//
// On the real topology a region is an anonymous mapping bound to its node
// with mbind(MPOL_BIND) before it is touched; placement can be checked with
// resident_node(). The granule map tells, in O(1), which of a backend's
// arenas a block came from, so a sized free needs no allocator lookup.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "allocators/backend.h"
#include "allocators/errors.h"

namespace kmbench::nodemem {

/// Nodes a backend can bind to; ids above are rejected by NodeMemory.
inline constexpr unsigned kMaxNodes = 64;

/// Where a backend's node-bound memory comes from, for the run's topology.
class NodeMemory {
 public:
  explicit NodeMemory(const BackendConfig& config);

  unsigned node_count() const noexcept { return nodes_; }
  /// true: the memory is not bound to real nodes (say so in results).
  bool synthetic() const noexcept { return false; }
  /// "real: 1 node, mbind MPOL_BIND" and the like.
  std::string description() const;

  /// pre: node < node_count(), align is a power of two multiple of the page size.
  /// post: nullptr, or bytes of zeroed read-write memory aligned to align whose
  ///       pages can only be placed on node (committed on first touch).
  void* map(std::size_t bytes, std::size_t align, NodeId node) noexcept;
  /// pre: p, bytes as returned by / given to map.
  void unmap(void* p, std::size_t bytes) noexcept;
  /// Gives the pages' memory back; the range stays mapped and reads as zero.
  void discard(void* p, std::size_t bytes) noexcept;

  /// The node of the CPU this thread first asked from (replay threads are pinned).
  NodeId local_node() const noexcept;

 private:
  unsigned nodes_ = 1;
};

/// The node the page holding p is on now (move_pages with nodes=NULL):
/// >= 0, or -errno (-ENOENT: not resident yet).
int resident_node(const void* p) noexcept;

/// 2 MiB granules of the address space → a small owner index (0: none).
/// Process wide; a granule is registered by the one backend arena that owns it.
class GranuleMap {
 public:
  static constexpr unsigned kShift = 21;
  static GranuleMap& instance();

  /// pre: p and bytes are multiples of the granule size.
  void set(const void* p, std::size_t bytes, std::uint16_t owner) noexcept;
  std::uint16_t get(const void* p) const noexcept {
    return entries_[(reinterpret_cast<std::uintptr_t>(p) >> kShift) & kMask].load(
        std::memory_order_relaxed);
  }

 private:
  static constexpr std::size_t kEntries = std::size_t{1} << (47 - kShift);
  static constexpr std::size_t kMask = kEntries - 1;
  GranuleMap();
  std::atomic<std::uint16_t>* entries_;
};

}  // namespace kmbench::nodemem
