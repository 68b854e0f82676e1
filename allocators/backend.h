// The backend interface: what every allocator in kmbench is, as a concept.
//
// Backends are plain classes checked at compile time, so the replay loop is
// instantiated per backend and allocate/free inline; the run-time choice is
// made once per run (registry.h), never per operation.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kmbench {

namespace physmem {
class Machine;  // simulated physical memory and NUMA topology (allocators/physmem)
}

/// Allocation tag: an OSMalloc tag, a kmem cache or a call site. 0 means untagged.
using TagId = std::uint32_t;
inline constexpr TagId kNoTag = 0;

/// NUMA node index in the run's topology; kAnyNode lets the backend choose (local).
using NodeId = std::int32_t;
inline constexpr NodeId kAnyNode = -1;

/// Alignment every backend guarantees without being asked (as malloc and kalloc do).
inline constexpr std::size_t kMinAlign = 16;

/// Optional capabilities. A backend claims a bit in kFeatures; the concept then
/// requires the matching method.
enum Feature : std::uint32_t {
  kFeatureSizedFree = 1u << 0,   // free(p, size) uses size instead of looking it up
  kFeatureNuma = 1u << 1,        // allocate(.., node) really places memory on node
  kFeatureUsableSize = 1u << 2,  // usable_size(p, size): bytes actually handed out
  kFeatureReclaim = 1u << 3,     // reclaim(level): return cached memory (zone GC, reap)
  kFeaturePhysical = 1u << 4,    // memory lies in simulated physical memory: physical_address(p)
  kFeatureTags = 1u << 5,        // the backend keeps per-tag state of its own (arena per tag)
  kFeatureLowMemory = 1u << 6,   // allocate_low/free_low: blocks below 4 GiB physical (DMA32)
  kFeatureRealloc = 1u << 7,     // reallocate(..): the allocator's own realloc (may grow or shrink in place)
};

/// What a kernel-style backend over simulated physical memory claims (buddy,
/// slab, zones): every feature but per-tag state.
inline constexpr std::uint32_t kKernelBackendFeatures = kFeatureSizedFree | kFeatureNuma |
                                                        kFeatureUsableSize | kFeatureReclaim |
                                                        kFeaturePhysical | kFeatureLowMemory;

/// Physical addresses a 32-bit device reaches (GFP_DMA32, a 0xFFFFFFFF mask).
inline constexpr std::uint64_t kLowMemoryLimit = std::uint64_t{1} << 32;

/// How hard reclaim() works: trim caches beyond the working set, or drain them all.
enum class ReclaimLevel { trim, drain };

/// One named statistic in jemalloc-style dotted form, e.g. "backend.slab.magazine.depot_hits".
struct Metric {
  std::string name;
  double value = 0;
};

/// A backend's footprint alone: what the footprint sampler reads at every
/// sample, while every replay thread stands stopped. A backend whose stats()
/// builds many metrics provides footprint() too; the two agree.
struct BackendFootprint {
  std::uint64_t mapped_bytes = 0;
  std::uint64_t resident_bytes = 0;
};

/// What a backend itself knows about its memory (the counting decorator adds
/// what the caller asked for). Bytes are exact where the backend can know them.
struct BackendStats {
  std::uint64_t mapped_bytes = 0;    // memory the backend holds: from the simulated machine, or
                                     // (system, bump) from the process; its footprint
  std::uint64_t resident_bytes = 0;  // of which touched/committed, as far as the backend knows
  std::uint64_t metadata_bytes = 0;  // bookkeeping outside the blocks handed out
  /// What the backend's own structures say is handed out and not yet freed
  /// (magazines, tcaches and free lists are not), counted by the backend
  /// itself, independently of Counting; -1 when it cannot tell. Exact once the
  /// threads using the backend are quiet.
  std::int64_t live_blocks = -1;
  std::int64_t live_bytes = -1;      // their bytes as handed out (usable sizes)
  std::vector<Metric> metrics;       // backend-specific counters
};

/// What a backend is constructed with. params holds variant settings
/// ("tcache=off"), from the registry entry and then the user (later wins).
struct BackendConfig {
  physmem::Machine* machine = nullptr;  // null: the backend uses its own memory source
  unsigned cpus = 0;                    // CPU slots expected (0: the machine's count)
  std::uint64_t demand_bytes = 0;       // bytes the run will ask for in all, when known (0: unknown)
  std::map<std::string, std::string> params;

  std::string param(std::string_view key, std::string_view fallback = {}) const {
    auto it = params.find(std::string(key));
    return it == params.end() ? std::string(fallback) : it->second;
  }
};

/// A named configuration of a backend type: "jemalloc" and "jemalloc-notcache"
/// are two variants of one class.
struct BackendVariant {
  std::string_view name;     // short stable name, used on the command line and in results
  std::string_view summary;  // one line for `kmbench list`
  std::string_view params;   // "key=value,key=value" applied before the user's
};

/// An allocator kmbench can measure.
///  pre  allocate: align is a power of two; node is kAnyNode or a node of the machine
///  post allocate: nullptr on failure (never throws, never waits), else a block of
///       at least size bytes aligned to max(align, kMinAlign); size 0 gives a unique block
///  pre  free: p came from this backend's allocate with this size (or p is nullptr: no-op)
///  Thread safe: any thread may free what another allocated.
template <class B>
concept Backend =
    requires(B& b, const B& cb, std::size_t size, std::size_t align, TagId tag, NodeId node,
             void* p, const BackendConfig& config) {
      { B::kVariants[0] } -> std::convertible_to<const BackendVariant&>;
      { B::kFeatures } -> std::convertible_to<std::uint32_t>;
      requires std::constructible_from<B, const BackendConfig&>;
      { b.allocate(size, align, tag, node) } noexcept -> std::same_as<void*>;
      { b.free(p, size) } noexcept;
      { cb.stats() } -> std::same_as<BackendStats>;
    } &&
    (!(B::kFeatures & kFeatureUsableSize) ||
     requires(const B& cb, void* p, std::size_t size) {
       { cb.usable_size(p, size) } noexcept -> std::same_as<std::size_t>;
     }) &&
    (!(B::kFeatures & kFeatureReclaim) ||
     requires(B& b, ReclaimLevel level) {
       { b.reclaim(level) } -> std::same_as<std::size_t>;  // bytes given back
     }) &&
    (!(B::kFeatures & kFeaturePhysical) ||
     requires(const B& cb, const void* p) {
       { cb.physical_address(p) } noexcept -> std::same_as<std::uint64_t>;
     }) &&
    // post allocate_low: as allocate, and the block lies below kLowMemoryLimit physically
    // pre  free_low: p came from allocate_low with this size
    (!(B::kFeatures & kFeatureLowMemory) ||
     requires(B& b, std::size_t size, std::size_t align, TagId tag, NodeId node, void* p) {
       { b.allocate_low(size, align, tag, node) } noexcept -> std::same_as<void*>;
       { b.free_low(p, size) } noexcept;
     }) &&
    // pre  reallocate: p came from allocate with old_size and this align (not from allocate_low)
    // post reallocate: nullptr on failure, p untouched and still live; else a block of
    //      new_size aligned as allocate's, holding p's first min(old_size, new_size)
    //      bytes, and p is gone unless it is the block returned
    (!(B::kFeatures & kFeatureRealloc) ||
     requires(B& b, std::size_t size, std::size_t align, TagId tag, NodeId node, void* p) {
       { b.reallocate(p, size, size, align, tag, node) } noexcept -> std::same_as<void*>;
     });

/// Optional: a backend's per-CPU paths alone, for a caller that keeps its own
/// slow path out of line (the KPI's hot calls try them inline, so they need
/// no frame). Neither makes a call.
///  post try_allocate: a block as allocate(size, kMinAlign, any tag, kAnyNode)
///       gives, or nullptr with nothing changed (the caller then calls allocate)
///  pre  try_free: as free's, and p is not nullptr
///  post try_free: true once p is freed as free(p, size) frees it, or false with
///       nothing changed (the caller then calls free, which also reports misuse)
template <class B>
concept TriesInline = requires(B& b, void* p, std::size_t size) {
  { b.try_allocate(size) } noexcept -> std::same_as<void*>;
  { b.try_free(p, size) } noexcept -> std::same_as<bool>;
};

/// Optional: calls for a request that may not wait (buddy: GFP_ATOMIC, which
/// never reclaims and may take the zones' reserve below min): the replay's
/// noblock steps and the KPI's OSMalloc_noblock and _nowait come through them.
///  post: as allocate and allocate_low
template <class B>
concept NowaitBackend = requires(B& b, std::size_t size, TagId tag, NodeId node) {
  { b.allocate_nowait(size, size, tag, node) } noexcept -> std::same_as<void*>;
  { b.allocate_low_nowait(size, size, tag, node) } noexcept -> std::same_as<void*>;
};

/// Optional: a backend that tunes itself as it runs (slab grows a cache's
/// magazines when its depot lock is contended; zones with cache=auto turn a
/// zone's per-CPU caching on) counts the changes it made so far. A replay's
/// warm-up goes on until a pass makes none, so the timed pass measures the
/// state the backend settles in, not wherever one warm-up pass left it.
///  post: adaptations() never decreases; call it when no other thread uses the backend
template <class B>
concept AdaptingBackend = requires(const B& b) {
  { b.adaptations() } -> std::same_as<std::uint64_t>;
};

/// realloc for every backend: the backend's own where it has one
/// (kFeatureRealloc); else what a kernel does across size classes (krealloc,
/// kalloc's realloc): allocate the new block, copy what both hold, free the old.
/// The contract is reallocate's above.
template <Backend B>
inline void* copy_reallocate(B& b, void* p, std::size_t old_size, std::size_t new_size, std::size_t align,
                             TagId tag, NodeId node) noexcept {
  void* q = b.allocate(new_size, align, tag, node);
  if (q != nullptr) {
    std::memcpy(q, p, old_size < new_size ? old_size : new_size);
    b.free(p, old_size);
  }
  return q;
}
template <Backend B>
inline void* reallocate(B& b, void* p, std::size_t old_size, std::size_t new_size, std::size_t align, TagId tag,
                        NodeId node) noexcept {
  if constexpr ((B::kFeatures & kFeatureRealloc) != 0) {
    return b.reallocate(p, old_size, new_size, align, tag, node);
  } else {
    return copy_reallocate(b, p, old_size, new_size, align, tag, node);
  }
}

/// Bytes a backend handed out for a request: usable_size when it can tell, else size.
template <Backend B>
inline std::size_t handed_out(const B& b, void* p, std::size_t size) noexcept {
  if constexpr ((B::kFeatures & kFeatureUsableSize) != 0) {
    return b.usable_size(p, size);
  } else {
    return size;
  }
}

/// A backend that can tell its footprint without building its statistics.
template <class B>
concept ReportsFootprint = requires(const B& cb) {
  { cb.footprint() } -> std::same_as<BackendFootprint>;
};

/// The footprint: footprint() where the backend has it, else from stats().
template <Backend B>
BackendFootprint footprint_of(const B& b) {
  if constexpr (ReportsFootprint<B>) {
    return b.footprint();
  } else {
    const BackendStats s = b.stats();
    return {s.mapped_bytes, s.resident_bytes};
  }
}

/// Names of the feature bits, for `kmbench list` and result files.
std::string feature_names(std::uint32_t features);

}  // namespace kmbench
