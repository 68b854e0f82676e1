// nodemem: the simulated machine's node memory, for backends that map their
// own (jemalloc's extent hooks, mimalloc's arenas).
//
// Every backend draws from the run's simulated machine (allocators/physmem),
// whatever the topology: a region is a physically contiguous run of a node's
// RAM from the page layer, resident once the machine is populated, with a
// simulated physical address like the pages zones, slab and buddy take. On a
// real multi-node machine each node's range is bound to its node by the
// machine itself. The granule map tells, in O(1), which of a backend's arenas
// a block came from, so a sized free needs no allocator lookup.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "allocators/backend.h"
#include "allocators/physmem/physmem.h"
#include "base/errors.h"
#include "base/sanitizers.h"

#if defined(KMBENCH_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace kmbench::nodemem {

/// Nodes a backend can bind to; ids above are rejected by NodeMemory.
inline constexpr unsigned kMaxNodes = 64;

/// A backend's view of the machine's node memory.
class NodeMemory {
 public:
  /// Uses config.machine, else physmem::current_machine().
  explicit NodeMemory(const BackendConfig& config);

  physmem::Machine& machine() const noexcept { return *machine_; }
  unsigned node_count() const noexcept { return nodes_; }
  /// true: the nodes are simulated only (say so in results).
  bool synthetic() const noexcept { return machine_->synthetic(); }
  /// "real: 1 node; memory from the simulated machine's node ranges" and the like.
  std::string description() const;

  /// pre: align is a power of two.
  /// post: nullptr (node out of range, no memory), or bytes of the node's RAM
  ///       aligned to max(align, page), below max_phys (inclusive). Its old
  ///       contents are left as they are (not zeroed).
  void* map(std::size_t bytes, std::size_t align, NodeId node,
            std::uint64_t max_phys = ~std::uint64_t{0}) noexcept;
  /// Gives pages back, the whole range or any part of it (page granular).
  /// pre: [p, p + bytes) is page aligned, lies in one range map returned, and
  ///      none of it was unmapped yet.
  void unmap(void* p, std::size_t bytes) noexcept;

  /// The node of the calling thread (its CPU; on a synthetic topology, its CPU slot's node).
  NodeId local_node() const noexcept { return nodes_ == 1 ? 0 : machine_->local_node(); }

 private:
  physmem::Machine* machine_;
  unsigned nodes_ = 1;
};

/// ThreadSanitizer cannot see the locks inside an uninstrumented allocator
/// (jemalloc, mimalloc): these tell it that a free happens before any later
/// allocation from the same backend, as the allocator's own locks ensure.
/// No code outside TSan builds.
inline void tsan_before_free([[maybe_unused]] const void* backend) noexcept {
#if defined(KMBENCH_TSAN)
  __tsan_release(const_cast<void*>(backend));
#endif
}
inline void tsan_after_allocate([[maybe_unused]] const void* backend) noexcept {
#if defined(KMBENCH_TSAN)
  __tsan_acquire(const_cast<void*>(backend));
#endif
}

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
