// slab: the Bonwick & Adams (2001) kmem/vmem design as a kmbench backend.
//
// Per node: a vmem arena over the page layer (quantum caches up to 8 pages),
// kmalloc-style object caches at the illumos kmem_alloc sizes (16 … 128 KiB),
// and any named object caches the caller creates with a constructor and a
// destructor. Larger or over-aligned requests take segments from the arena.
// The sized free names the cache by table lookup; the CPU layer takes no lock.
//
// Parameters: debug=on|off (buftags: double, wrong-size and bad frees, redzones,
// writes after free, reported as a panic), magazines=on|off, update_ms=N
// (working-set and magazine-resize period, default 15000), depot_contention=N
// (contended depot locks per period that grow the magazine size, default 3),
// qcache_max=BYTES, import_min=BYTES, magazine_rounds=N (every cache starts at
// the first illumos magazine size of at least N rounds; default: by chunk size).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>
#include <utility>

#include "allocators/backend.h"
#include "allocators/params.h"
#include "allocators/slab/kmem.h"
#include "allocators/slab/vmem.h"

namespace kmbench {

namespace slab {

/// The illumos kmem_alloc sizes, aligned to kMinAlign (the 8-byte-odd classes 8,
/// 24, 40, 56 fold into their 16-byte neighbours), then the big sizes to 128 KiB.
inline constexpr std::size_t kClassSizes[] = {
    16,    32,    48,    64,    80,    96,    112,   128,   160,    192,    224,    256,
    320,   384,   448,   512,   640,   768,   896,   1024,  1152,   1344,   1600,   2048,
    2688,  4096,  8192,  12288, 16384, 24576, 32768, 40960, 49152,  57344,  65536,  73728,
    81920, 90112, 98304, 106496, 114688, 122880, 131072};
inline constexpr unsigned kClassCount = sizeof(kClassSizes) / sizeof(kClassSizes[0]);
inline constexpr std::size_t kSmallMax = 4096;    // classes found by (size + 15) / 16
inline constexpr std::size_t kBigMax = 131072;    // classes found by (size + 4095) / 4096
inline constexpr unsigned kMaxNodes = 8;

/// Size → class tables (illumos kmem_alloc_table / kmem_big_alloc_table).
struct ClassTables {
  std::uint8_t small[kSmallMax / 16 + 1];
  std::uint8_t big[kBigMax / 4096 + 1];
};
inline constexpr ClassTables kClassTables = [] {
  ClassTables t{};
  unsigned c = 0;
  for (std::size_t i = 0; i <= kSmallMax / 16; ++i) {
    while (kClassSizes[c] < i * 16) {
      ++c;
    }
    t.small[i] = static_cast<std::uint8_t>(c);
  }
  c = 0;
  for (std::size_t i = 0; i <= kBigMax / 4096; ++i) {
    while (kClassSizes[c] < i * 4096) {
      ++c;
    }
    t.big[i] = static_cast<std::uint8_t>(c);
  }
  return t;
}();

/// pre: size <= kBigMax.
inline unsigned class_of(std::size_t size) noexcept {
  return size <= kSmallMax ? kClassTables.small[(size + 15) >> 4]
                           : kClassTables.big[(size + 4095) >> 12];
}

}  // namespace slab

class SlabBackend {
 public:
  static constexpr BackendVariant kVariants[] = {
      {"slab", "Bonwick/Adams slab: object caches, per-CPU magazines + depot, vmem arena", ""},
      {"slab-debug", "slab with kmem debugging: buftags catch double/wrong-size frees, overruns",
       "debug=on"},
  };
  static constexpr ParamSpec kParams[] = {
      {"debug", ParamSpec::Kind::choice, "off", "kmem debugging: buftags, deadbeef and redzones", "on|off"},
      {"magazines", ParamSpec::Kind::choice, "on", "the per-CPU magazine layer", "on|off"},
      {"magazine_rounds", ParamSpec::Kind::integer, "0",
       "start every cache at the first illumos magazine of at least N rounds (0: by chunk size)", {}, 0, 143},
      {"depot_rate", ParamSpec::Kind::integer, "1000",
       "depot exchanges per millisecond that grow a cache's magazines (0: contention only)", {}, 0,
       1'000'000'000},
      {"depot_contention", ParamSpec::Kind::integer, "3",
       "depot lock contentions per update interval that grow magazines", {}, 0, 1'000'000},
      {"update_ms", ParamSpec::Kind::integer, "15000", "the depot's update interval (working-set reaping)", {}, 0,
       86'400'000},
      {"qcache_max", ParamSpec::Kind::integer, "32768",
       "largest vmem quantum cache, bytes (a multiple of 4096)", {}, 0, 262'144},
      {"import_min", ParamSpec::Kind::integer, "1048576", "smallest vmem import from the machine, bytes", {}, 4096,
       std::int64_t{1} << 40},
  };
  static constexpr std::uint32_t kFeatures = kKernelBackendFeatures;

  /// Throws UsageError on a bad parameter or a machine of more than kMaxNodes nodes.
  explicit SlabBackend(const BackendConfig& config);
  ~SlabBackend();
  SlabBackend(const SlabBackend&) = delete;
  SlabBackend& operator=(const SlabBackend&) = delete;

  void* allocate(std::size_t size, std::size_t align, TagId, NodeId node) noexcept {
    if (size <= slab::kSmallMax && align <= kMinAlign) [[likely]] {
      const unsigned slot = slab::current_slot();
      return kmalloc_[node_index(node, slot)][slab::kClassTables.small[(size + 15) >> 4]]
          ->alloc_at(slot, size);
    }
    return allocate_slow(size, align, node);
  }

  void free(void* p, std::size_t size) noexcept {
    if (p == nullptr) {
      return;
    }
    if (size <= slab::kSmallMax && aligned_live_.load(std::memory_order_relaxed) == 0) [[likely]] {
      const unsigned slot = slab::current_slot();
      kmalloc_[node_of(p)][slab::kClassTables.small[(size + 15) >> 4]]->free_at(slot, p, size);
      return;
    }
    free_slow(p, size);
  }

  /// allocate's and free's CPU-layer paths alone (kMinAlign, any node), for a
  /// caller that keeps its own slow path out of line, as the KPI's hot calls
  /// do: neither makes a call. nullptr or false: nothing was taken or written
  /// (no slot yet, a home node not yet known, a spent or full magazine), and
  /// the caller goes on to allocate or free.
  void* try_allocate(std::size_t size) noexcept {
    const int slot = slab::detail::t_slot;
    if (size <= slab::kSmallMax && slot >= 0) [[likely]] {
      const int node = nodes_ == 1 ? 0 : home_[static_cast<unsigned>(slot)];
      if (node >= 0) [[likely]] {
        return kmalloc_[node][slab::kClassTables.small[(size + 15) >> 4]]->try_alloc_at(static_cast<unsigned>(slot));
      }
    }
    return nullptr;
  }
  bool try_free(void* p, std::size_t size) noexcept {
    const int slot = slab::detail::t_slot;
    if (size <= slab::kSmallMax && slot >= 0 && nodes_ == 1 &&
        aligned_live_.load(std::memory_order_relaxed) == 0) [[likely]] {
      return kmalloc_[0][slab::kClassTables.small[(size + 15) >> 4]]->try_free_at(static_cast<unsigned>(slot), p);
    }
    return false;
  }

  /// Memory below 4 GiB, as illumos's kalloca serves DMA attributes: caches
  /// of the kmalloc sizes over their own arena (kmem_io_4G) on node 0.
  void* allocate_low(std::size_t size, std::size_t align, TagId, NodeId) noexcept;
  void free_low(void* p, std::size_t size) noexcept;

  std::size_t usable_size(void* p, std::size_t size) const noexcept;
  std::size_t reclaim(ReclaimLevel level);
  std::uint64_t physical_address(const void* p) const noexcept;
  /// Empties the calling slot's CPU layer of every kmalloc cache into the slab
  /// layer, so that stats().live_blocks holds only blocks callers hold once
  /// every thread using the backend has done so.
  void flush_thread_caches() noexcept;
  BackendStats stats() const;
  /// Magazine resizes so far, over every cache (AdaptingBackend).
  std::uint64_t adaptations() const;
  BackendFootprint footprint() const;  // stats()'s mapped and resident bytes, nothing else

  /// kmem_cache_create on a node (kAnyNode: the caller's). Objects come out of
  /// alloc() constructed. Throws UsageError on size 0 or a bad alignment.
  slab::ObjectCache* create_cache(std::string name, std::size_t size, std::size_t align = 0,
                                  slab::Constructor ctor = nullptr,
                                  slab::Destructor dtor = nullptr, void* priv = nullptr,
                                  NodeId node = kAnyNode);
  /// pre: every object of cp was freed.
  void destroy_cache(slab::ObjectCache* cp);

  unsigned node_count() const noexcept { return nodes_; }
  slab::Kmem& kmem(NodeId node) noexcept { return *kmem_[node]; }
  /// The node whose memory holds p.
  NodeId node_of(const void* p) const noexcept {
    return nodes_ == 1 ? 0 : node_of_slow(p);
  }
  slab::ObjectCache* kmalloc_cache(NodeId node, std::size_t size) noexcept {
    return kmalloc_[node][slab::class_of(size)];
  }

 private:
  unsigned node_index(NodeId node, unsigned slot) noexcept {
    if (nodes_ == 1) {
      return 0;
    }
    if (node >= 0 && static_cast<unsigned>(node) < nodes_) {
      return static_cast<unsigned>(node);
    }
    const int home = home_[slot];
    return home >= 0 ? static_cast<unsigned>(home) : home_node(slot);
  }
  unsigned home_node(unsigned slot) noexcept;
  NodeId node_of_slow(const void* p) const noexcept;
  void* allocate_slow(std::size_t size, std::size_t align, NodeId node) noexcept;
  void free_slow(void* p, std::size_t size) noexcept;
  bool is_aligned_block(const void* p) const noexcept;

  physmem::Machine* machine_;
  std::unique_ptr<slab::PageSource> pages_;
  unsigned nodes_ = 1;
  slab::KmemTunables tunables_;
  std::unique_ptr<slab::Kmem> kmem_[slab::kMaxNodes];
  static_assert(slab::kClassCount <= 64);
  slab::ObjectCache* kmalloc_[slab::kMaxNodes][64] = {};  // a power-of-two row: node * 64 + class
  // Below 4 GiB: its own page source, kmem and caches (illumos kmem_io_4G).
  std::unique_ptr<slab::PageSource> low_pages_;
  std::unique_ptr<slab::Kmem> io_;
  slab::ObjectCache* io_kmalloc_[64] = {};
  std::atomic<std::int64_t> io_segments_{0};  // low blocks taken from io_'s arena directly
  std::atomic<std::int64_t> io_segment_bytes_{0};
  std::array<std::int8_t, kMaxCpuSlots> home_;

  // Over-aligned blocks of kBigMax or less: segments the sized free must tell
  // apart from cache buffers (always page aligned, so only page-aligned frees look).
  std::atomic<std::uint64_t> aligned_live_{0};
  mutable std::mutex aligned_lock_;
  std::unordered_set<std::uintptr_t> aligned_;
  std::unordered_set<std::uintptr_t> io_aligned_;  // over-aligned low blocks of kBigMax or less

  std::atomic<std::uint64_t> large_allocs_{0}, large_frees_{0}, aligned_allocs_{0};
  std::atomic<std::int64_t> segment_bytes_{0};  // large and over-aligned blocks, page-rounded
  std::atomic<std::uint64_t> trims_{0}, drains_{0}, reclaimed_bytes_{0};
};

/// An object cache of T: T's constructor runs when a slab yields the object,
/// its destructor when the object goes back to a slab, so alloc() hands out a
/// constructed T that kept its state from its last free (the point of object caches).
template <class T>
class TypedCache {
 public:
  TypedCache(SlabBackend& backend, std::string name, NodeId node = kAnyNode)
      : backend_(backend),
        cache_(backend.create_cache(std::move(name), sizeof(T), alignof(T), &construct, &destroy,
                                    nullptr, node)) {}
  ~TypedCache() { backend_.destroy_cache(cache_); }
  TypedCache(const TypedCache&) = delete;
  TypedCache& operator=(const TypedCache&) = delete;

  /// post: a constructed T, or nullptr when memory ran out.
  T* alloc() noexcept { return static_cast<T*>(cache_->alloc()); }
  /// pre: p came from alloc() and is back in its constructed state.
  void free(T* p) noexcept { cache_->free(p); }
  slab::ObjectCache& cache() noexcept { return *cache_; }

 private:
  static int construct(void* buf, void*) {
    ::new (buf) T();
    return 0;
  }
  static void destroy(void* buf, void*) { static_cast<T*>(buf)->~T(); }

  SlabBackend& backend_;
  slab::ObjectCache* cache_;
};

}  // namespace kmbench
