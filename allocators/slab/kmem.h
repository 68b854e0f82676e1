// kmem: Bonwick & Adams object caches (the illumos kmem design).
//
// Three layers per cache. The CPU layer: each CPU slot has a loaded and a
// previous magazine (arrays of constructed objects) and allocates or frees
// with no lock. The depot: full and empty magazines under one lock, with a
// working set per list so reaping keeps what was recently needed; when the
// depot lock is contended the cache moves to the next, larger magazine size.
// The slab layer: slabs from a vmem arena, coloured so that equal offsets of
// different slabs fall on different cache lines; small buffers keep their slab
// header at the end of the page and link free buffers through themselves,
// large ones use external bufctls found through a hash table.
// Objects are constructed when they leave the slab layer and destroyed when
// they return to it, so magazine rounds are constructed objects.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "allocators/backend.h"
#include "allocators/cpu_slot.h"
#include "allocators/slab/vmem.h"
#include "base/spin_lock.h"

namespace kmbench::slab {

/// Object constructor: 0 on success (kmem_cache_create's int-returning constructor).
using Constructor = int (*)(void* buf, void* priv);
using Destructor = void (*)(void* buf, void* priv);

/// Cache creation flags (illumos KMC_* / KMF_*).
enum CacheFlags : unsigned {
  kCacheDebug = 1u << 0,       // buftag with redzone, alloc/free state and size: catches double,
                               // wrong-size and bad frees, overruns, writes after free (KMF_BUFTAG|KMF_DEADBEEF|KMF_REDZONE)
  kCacheNoMagazine = 1u << 1,  // no CPU layer (KMC_NOMAGAZINE: the magazine caches themselves)
  kCacheNoTouch = 1u << 2,     // never write into buffers (KMC_NOTOUCH: quantum caches)
  kCacheNoHash = 1u << 3,      // keep the slab header in the slab (KMC_NOHASH)
  kCacheQuantum = 1u << 4,     // a vmem quantum cache (KMC_QCACHE)
  kCacheMetadata = 1u << 5,    // slabs straight from arena segments, never a quantum cache
                               // (illumos kmem_msb_arena): quantum caches need these caches
};

/// A magazine: an array of constructed objects (illumos kmem_magazine_t).
struct Magazine {
  Magazine* next;
  std::uint32_t size;  // capacity in rounds
  std::uint32_t pad;
  void* rounds[1];     // really `size` entries
};

/// One entry of the illumos magazine type table.
struct MagType {
  int size;            // rounds per magazine
  std::size_t minbuf;  // chunks larger than this may start at this type
  std::size_t maxbuf;  // chunks this large or larger never grow past it
};

/// The illumos kmem_magtype[] table: 1..143 rounds.
inline constexpr MagType kMagTypes[] = {
    {1, 3200, 65536}, {3, 256, 32768}, {7, 64, 16384}, {15, 0, 8192}, {31, 0, 4096},
    {47, 0, 2048},    {63, 0, 1024},   {95, 0, 512},    {143, 0, 0},
};
inline constexpr unsigned kMagTypeCount = sizeof(kMagTypes) / sizeof(kMagTypes[0]);

namespace detail {
// initial-exec, as kmbench::detail::tls_cpu_slot: one load, no call to the TLS resolver.
[[gnu::tls_model("initial-exec")]] inline thread_local int t_slot = -1;
unsigned claim_slot() noexcept;  // this_cpu_slot(), registered so reclaim can flush it once idle
}  // namespace detail

/// The calling thread's CPU slot (kmbench::this_cpu_slot()), known to reclaim.
inline unsigned current_slot() noexcept {
  const int s = detail::t_slot;
  if (s >= 0) [[likely]] {
    return static_cast<unsigned>(s);
  }
  return detail::claim_slot();
}

/// Statistics of one cache, for dotted metrics.
struct CacheStats {
  std::uint64_t slabs = 0, slab_creates = 0, slab_destroys = 0, buf_total = 0, buf_inuse_slab = 0;
  std::uint64_t buf_depot = 0;  // rounds in the depot's full magazines (out of slabs, not in use)
  std::uint64_t slab_allocs = 0, slab_frees = 0;  // buffers to and from the slab layer
  std::uint64_t cpu_alloc_misses = 0, cpu_free_misses = 0;  // the CPU layer's loaded magazine could not serve
  std::uint64_t depot_full = 0, depot_empty = 0;  // magazines in the depot now
  std::uint64_t depot_hits = 0, depot_misses = 0, depot_contention = 0;
  std::uint64_t magazine_resizes = 0, reaped_magazines = 0, alloc_fails = 0;
  std::uint64_t constructs = 0, destructs = 0;
  int magsize = 0;
  std::size_t bufsize = 0, chunksize = 0, slabsize = 0, align = 0, maxcolor = 0, color = 0;
};

/// A kmem cache of equal-sized objects. Thread safe; alloc/free take no lock
/// while the calling slot's magazines can serve them.
class ObjectCache {
 public:
  /// Created through Kmem::create_cache.
  ObjectCache(Kmem& kmem, std::string name, std::size_t size, std::size_t align, Constructor ctor,
              Destructor dtor, void* priv, Vmem& arena, unsigned flags);
  ~ObjectCache();
  ObjectCache(const ObjectCache&) = delete;
  ObjectCache& operator=(const ObjectCache&) = delete;

  /// post: a constructed object of size() bytes aligned to align(), or nullptr.
  void* alloc() noexcept { return alloc_at(current_slot(), bufsize_); }
  /// pre: buf came from this cache's alloc and is in its constructed state.
  void free(void* buf) noexcept { free_at(current_slot(), buf, bufsize_); }

  /// The CPU-layer fast paths with the caller's slot; size is the caller's
  /// request (checked against the buftag in debug caches).
  void* alloc_at(unsigned slot, std::size_t size) noexcept {
    CpuCache& cc = cpu_[slot];
    if (cc.rounds > 0) [[likely]] {
      void* buf = cc.loaded->rounds[--cc.rounds];
      if (cc.debug) [[unlikely]] {
        return alloc_debug(buf, size);
      }
      return buf;
    }
    return alloc_slow(cc, size);
  }
  void free_at(unsigned slot, void* buf, std::size_t size) noexcept {
    CpuCache& cc = cpu_[slot];
    if (cc.debug) [[unlikely]] {
      free_debug(buf, size);
    }
    if (static_cast<unsigned>(cc.rounds) < static_cast<unsigned>(cc.magsize)) [[likely]] {
      cc.loaded->rounds[cc.rounds++] = buf;
      return;
    }
    free_slow(cc, buf);
  }

  /// alloc_at's and free_at's loaded-magazine paths alone, for a caller that
  /// keeps its own slow path out of line: neither makes a call. nullptr or
  /// false: nothing was taken or written (the magazine is spent or full, or
  /// the cache debugs), and the caller goes on to alloc_at or free_at.
  void* try_alloc_at(unsigned slot) noexcept {
    CpuCache& cc = cpu_[slot];
    if (cc.rounds > 0 && !cc.debug) [[likely]] {
      return cc.loaded->rounds[--cc.rounds];
    }
    return nullptr;
  }
  bool try_free_at(unsigned slot, void* buf) noexcept {
    CpuCache& cc = cpu_[slot];
    if (static_cast<unsigned>(cc.rounds) < static_cast<unsigned>(cc.magsize) && !cc.debug) [[likely]] {
      cc.loaded->rounds[cc.rounds++] = buf;
      return true;
    }
    return false;
  }

  /// Returns magazines beyond the depot's working set (trim) or every magazine
  /// (drain) to the slab layer. Returns the number of magazines destroyed.
  std::size_t reap(ReclaimLevel level);
  /// Empties the CPU layer of the slot into the slab layer.
  /// pre: the calling thread owns the slot (or the slot is idle).
  void flush_slot(unsigned slot) noexcept { cpu_flush(cpu_[slot]); }
  /// Periodic work (illumos kmem_cache_update): working set, magazine resize.
  void update();

  const std::string& name() const noexcept { return name_; }
  std::size_t size() const noexcept { return bufsize_; }
  std::size_t align() const noexcept { return align_; }
  std::size_t chunk_size() const noexcept { return chunksize_; }
  std::size_t slab_size() const noexcept { return slabsize_; }
  int magazine_size() const noexcept { return kMagTypes[magtype_.load(std::memory_order_relaxed)].size; }
  unsigned flags() const noexcept { return flags_; }
  Vmem& arena() const noexcept { return arena_; }
  CacheStats stats() const;
  /// The colour (offset of the first buffer) of the slab holding buf.
  std::size_t colour_of(const void* buf) const;
  /// Bytes of slabs this cache holds from its arena.
  std::uint64_t slab_bytes() const;
  /// Bytes of its bufctl hash table (hashed caches).
  std::uint64_t hash_bytes() const;

 private:
  friend class Kmem;
  struct Slab;
  struct Bufctl;
  struct Buftag;
  /// One slot's magazines (illumos kmem_cpu_cache_t). Only the owning thread
  /// (or reclaim, once the slot is idle) touches it.
  struct alignas(64) CpuCache {
    Magazine* loaded = nullptr;
    Magazine* ploaded = nullptr;
    int rounds = -1;   // -1: no loaded magazine
    int prounds = -1;
    int magsize = 0;   // 0: magazines off
    bool debug = false;
    std::uint32_t seen_purge = 0;
    std::atomic<std::uint64_t> alloc_misses{0}, free_misses{0};  // slow-path entries
  };
  struct MagList {  // illumos kmem_maglist_t
    Magazine* list = nullptr;
    std::uint64_t total = 0, min = 0, reaplimit = 0, alloc = 0;
  };

  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void* alloc_slow(CpuCache& cc, std::size_t size) noexcept;
  void free_slow(CpuCache& cc, void* buf) noexcept;
  void* alloc_debug(void* buf, std::size_t size) noexcept;
  void free_debug(void* buf, std::size_t size) noexcept;
  bool owns(const void* buf) const noexcept;
  bool construct(void* buf) noexcept;
  void destruct(void* buf) noexcept;
  void cpu_reload(CpuCache& cc, Magazine* mp, int rounds) noexcept;
  void cpu_sync(CpuCache& cc) noexcept;
  void cpu_flush(CpuCache& cc) noexcept;
  /// One depot visit: takes a magazine from `from` and, if one was there, puts `give` (may be null) on `to`.
  Magazine* depot_exchange(MagList& from, MagList& to, Magazine* give, int magsize) noexcept;
  void depot_free(MagList& ml, Magazine* mp) noexcept;
  void depot_lock() noexcept;
  /// Whether magazines of type mt may grow to the next type (illumos's maxbuf limit).
  bool can_grow(unsigned mt) const noexcept;
  void magazine_resize(unsigned mt) noexcept;
  void magazine_destroy(Magazine* mp, int rounds) noexcept;
  std::size_t purge_magazines();  // magazines flushed from CPU slots
  void* slab_alloc() noexcept;
  void slab_free(void* buf) noexcept;
  Slab* slab_create(std::size_t colour) noexcept;
  void slab_destroy(Slab* sp) noexcept;
  void slab_mem_free(char* mem) noexcept;
  Slab* slab_of_small(const void* buf) const noexcept;
  void hash_insert(Bufctl* bcp) noexcept;
  Bufctl* hash_remove(const void* buf) noexcept;
  /// Grows the bufctl hash (makes it, the first time); false when there is still none.
  bool hash_rescale() noexcept;
  enum class ListEnd { head, tail };
  void partial_insert(Slab* sp, ListEnd at) noexcept;
  void partial_remove(Slab* sp) noexcept;
  [[noreturn]] void panic(const char* what, const void* buf, std::size_t size) const noexcept;
  Buftag* buftag(const void* buf) const noexcept;

  Kmem& kmem_;
  std::string name_;
  std::size_t bufsize_;   // object size
  std::size_t align_;
  std::size_t chunksize_;  // bufsize rounded to align, plus the buftag
  std::size_t slabsize_;
  std::size_t chunks_;     // buffers per slab
  std::size_t maxcolor_;
  Constructor ctor_;
  Destructor dtor_;
  void* priv_;
  Vmem& arena_;
  unsigned flags_;
  bool hashed_;             // external slab headers and bufctls (illumos KMF_HASH)
  bool abandon_ = false;    // teardown of an internal cache: no flush, the arena goes anyway

  // Slab layer, under lock_.
  mutable std::mutex lock_;
  Slab* partial_ = nullptr;   // slabs with free buffers, fullest first as far as cheap
  Slab* partial_tail_ = nullptr;
  std::uint64_t complete_slabs_ = 0, partial_slabs_ = 0;
  std::size_t colour_ = 0;
  Bufctl** hash_ = nullptr;
  std::size_t hash_buckets_ = 0;
  CacheStats sst_;            // slab-layer counters

  // Depot, under depot_lock_.
  // Held for a few loads and stores; a failed try_lock counts as contention.
  mutable base::SpinLock depot_lock_;
  MagList full_, empty_;
  std::uint64_t depot_contention_ = 0, depot_contention_prev_ = 0;
  // Depot traffic: every kRateWindow exchanges, the time they took (KmemTunables::depot_rate).
  static constexpr std::uint64_t kRateWindow = 1024;
  std::uint64_t exchanges_ = 0;
  std::uint64_t rate_mark_ns_ = 0;
  std::uint64_t depot_hits_ = 0, depot_misses_ = 0;
  std::uint64_t last_update_ns_ = 0;
  std::atomic<unsigned> magtype_;
  std::atomic<std::uint32_t> purge_gen_{0};
  std::atomic<std::uint64_t> resizes_{0}, reaped_{0}, constructs_{0}, destructs_{0}, alloc_fails_{0};

  CpuCache cpu_[kMaxCpuSlots];
};

/// Settings shared by the caches of one kmem instance.
struct KmemTunables {
  bool debug = false;                  // kCacheDebug on every cache created
  std::uint64_t update_interval_ns = 15'000'000'000;  // illumos kmem_reap_interval
  int depot_contention = 3;            // illumos kmem_depot_contention
  /// Depot exchanges per millisecond above which a cache's magazines grow at once
  /// (0: only contention grows them, as in illumos). A magazine layer is there
  /// to make depot visits rare; with one thread per CPU slot the depot lock is
  /// never contended, however often a small magazine sends a slot there.
  std::uint64_t depot_rate = 1000;
  std::size_t qcache_max = 8 * kPage;  // largest size a quantum cache serves
  std::size_t import_min = 1u << 20;   // smallest span the arena imports from the page layer
  bool magazines = true;               // false: no CPU layer anywhere (for comparison)
  int magazine_rounds = 0;             // > 0: every cache starts at the first magazine type this
                                       // large, instead of illumos's choice by chunk size
};

/// One node's kmem: its arena, the metadata caches (slab headers, bufctls,
/// magazines) and every cache created on it. Thread safe.
class Kmem {
 public:
  /// arena_name: the arena's name (default kmem_va, kmem_va-n<node> beyond node 0).
  Kmem(PageSource& pages, NodeId node, const KmemTunables& tunables, std::string arena_name = {});
  ~Kmem();
  Kmem(const Kmem&) = delete;
  Kmem& operator=(const Kmem&) = delete;

  /// kmem_cache_create: pre align is 0 or a power of two; size > 0.
  ObjectCache* create_cache(std::string name, std::size_t size, std::size_t align,
                            Constructor ctor = nullptr, Destructor dtor = nullptr,
                            void* priv = nullptr, unsigned flags = 0);
  /// kmem_cache_destroy: pre every object of the cache has been freed.
  void destroy_cache(ObjectCache* cp);

  /// kmem_reap (trim) or a full purge (drain) over every cache, in layer order.
  std::size_t reclaim(ReclaimLevel level);

  Vmem& arena() noexcept { return *arena_; }
  PageSource& pages() noexcept { return pages_; }
  NodeId node() const noexcept { return node_; }
  const KmemTunables& tunables() const noexcept { return tunables_; }
  /// Every cache (user caches first, then metadata and quantum caches).
  std::vector<ObjectCache*> caches() const;
  /// Bytes of slabs and arena metadata that hold bookkeeping rather than objects.
  std::uint64_t metadata_bytes() const;

 private:
  friend class ObjectCache;
  ObjectCache* magazine_cache(unsigned magtype) const noexcept { return mag_caches_[magtype]; }

  PageSource& pages_;
  NodeId node_;
  KmemTunables tunables_;
  std::unique_ptr<Vmem> arena_;
  ObjectCache* slab_cache_ = nullptr;    // external slab headers
  ObjectCache* bufctl_cache_ = nullptr;  // external bufctls
  ObjectCache* mag_caches_[kMagTypeCount] = {};
  mutable std::mutex list_lock_;
  std::vector<ObjectCache*> user_caches_;  // created by create_cache, in creation order
  std::vector<ObjectCache*> meta_caches_;  // slab/bufctl/magazine caches
};

}  // namespace kmbench::slab
