// zones: XNU's zalloc/kalloc, over kmbench's simulated page layer.
//
// kalloc rounds a request up to one of a fixed set of size classes, each
// served by a zone per NUMA node. A zone carves chunks of one or more pages
// (as many as minimise waste) into elements and keeps per-chunk metadata out
// of line, with a free bitmap that catches double frees. In front of each
// zone sit per-CPU caches as in XNU: an alloc and a free magazine per CPU, a
// per-CPU depot of full magazines, and a recirculation depot under the zone
// lock; caching switches on when the zone lock is contended (or is forced on).
// zone GC trims what lies beyond the working set (an EMA) or drains it all.
// Requests above the largest class, or asking more than 16-byte alignment,
// go to the page layer (kalloc_large).
//
// The hot path is in this header: a sized free names its zone through a
// table lookup (no size search, no division), has the page map confirm the
// element's zone and node, and pushes into this CPU's free magazine without a
// lock; magazine exchanges with this CPU's depot take only its depot lock.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "allocators/backend.h"
#include "allocators/params.h"
#include "allocators/cpu_slot.h"
#include "base/spin_lock.h"

namespace kmbench {

namespace zones {

inline constexpr std::size_t kPageBytes = 4096;
inline constexpr std::size_t kMaxClasses = 32;
inline constexpr std::size_t kMaxSmall = 16384;  // largest kalloc class; beyond: kalloc_large
inline constexpr std::size_t kQuantum = 16;      // element sizes are multiples of this
inline constexpr unsigned kMaxChunkPages = 8;
// A class number is the class index + 1, so that a zero page-map entry means "no zone".
inline constexpr std::uint8_t kNoClass = 0;        // page-map mark of a page the zones do not own
inline constexpr std::uint8_t kLargeClass = 0xfe;  // page-map mark of a kalloc_large block

/// A heap's size classes (kalloc's or kalloc_type's) and the table that maps a
/// size to its class in one load.
struct ClassTable {
  std::string_view heap;  // "kalloc" or "kalloc_type": the prefix of statistic names
  unsigned count = 0;
  std::array<std::uint32_t, kMaxClasses> sizes{};  // by class index
  std::array<std::uint8_t, kMaxSmall / kQuantum + 1> number_by_quantum{};

  /// The class number (index + 1) of a size. pre: size <= kMaxSmall
  unsigned number_of(std::size_t size) const noexcept {
    return number_by_quantum[(size + kQuantum - 1) / kQuantum];
  }
  /// The class index of a size. pre: size <= kMaxSmall
  unsigned class_of(std::size_t size) const noexcept { return number_of(size) - 1; }
};

/// kalloc's x86_64 classes: 16 … 16384.
const ClassTable& kalloc_classes();
/// kalloc_type's classes: 16 32 48 64 80 96 … 16384.
const ClassTable& kalloc_type_classes();

/// Pages per chunk for an element size: the count in 1..kMaxChunkPages that
/// wastes the smallest fraction of the chunk (fewest pages on a tie).
unsigned chunk_pages_for(std::uint32_t element_size) noexcept;

struct ChunkMeta;

/// What the zones know about one 4 KiB page. All zeros: a page no zone owns.
/// A backend's page map holds one per page of its machine's memory.
///
/// Where the map's words sit matters to speed. A CPU that sees a load match
/// an older, still unfinished store in the low 12 address bits may hold the
/// load back, or replay it, as if it read what the store writes ("4K
/// aliasing"). A free stores the cookie at 8 mod 16 (elements are multiples
/// of 16 bytes) right after loading the page map, so every word a free loads
/// from the map sits at 0..7 mod 16: the number and node lead the 16-byte
/// entry, and the map starts on a page. With the number and node at bytes 8
/// and 9 instead, every 16-byte LIFO pair waited on the previous free's store.
struct PageEntry {
  std::uint8_t number;  // class number, kLargeClass or kNoClass
  std::uint8_t node;
  /// number | node << 8, read in one load (the two lead the entry).
  unsigned key() const noexcept {
    std::uint16_t k;
    std::memcpy(&k, this, sizeof k);
    if constexpr (std::endian::native == std::endian::big) {
      k = static_cast<std::uint16_t>(k >> 8 | k << 8);
    }
    return k;
  }
  union {
    ChunkMeta* chunk;           // a zone's page: the chunk it is part of
    std::uint64_t large_bytes;  // kLargeClass: bytes of the block starting here
  };
};
static_assert(offsetof(PageEntry, number) == 0 && offsetof(PageEntry, node) == 1);
static_assert(sizeof(PageEntry) == 16);

/// The all-zero entry of a page no zone owns: what an address outside the map
/// reads, and what a page given back is set to.
inline constexpr PageEntry kNoPage{};

/// A stack of free elements moved as one unit between a CPU and the depots.
struct Magazine {
  Magazine* next = nullptr;  // in a zone's lists (recirculation, spares) and GC's
  std::uint32_t count = 0;   // valid while the magazine sits in a zone's list
  /// The element slots, allocated right after the header.
  void** elems() noexcept { return reinterpret_cast<void**>(this + 1); }
};

using base::SpinLock;  // the depot locks and a zone's lock

namespace detail {
/// True when this process can have all its threads run a memory barrier
/// (membarrier(2), registered on first use); DepotLock is biased only then.
bool process_barrier_available() noexcept;
}  // namespace detail

/// The per-CPU depot lock, biased to the thread that owns the CPU slot.
///
/// The owner takes it on each magazine exchange with its depot, others (GC)
/// rarely. So the owner gets in with two plain stores and a load, no atomic
/// read-modify-write and no fence: it says it is in, then checks that nobody
/// has claimed the lock. Anyone else takes the spinlock, claims, has every
/// thread of the process run a memory barrier (publish_claims: membarrier)
/// and waits for the owner to be out. That barrier puts the owner's "in"
/// before its read of the claim, or the claim before that read, at no cost to
/// the owner: what a kernel gets by owning its CPU with preemption disabled.
/// An owner that finds a claim waits on the spinlock. Without the process
/// barrier every lock is born claimed: the owner always takes the spinlock.
/// (The owner so saves an uncontended atomic exchange per depot trade.)
class DepotLock {
 public:
  /// For the CPU slot's owner: goes in when nobody has claimed the lock
  /// (then leave_as_owner() lets it go); false, and not in, otherwise.
  bool try_enter_as_owner() noexcept {
    owner_in_.store(true, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the barrier is the claimer's
    if (claimed_.load(std::memory_order_acquire)) [[unlikely]] {
      owner_in_.store(false, std::memory_order_release);
      return false;
    }
    return true;
  }
  void leave_as_owner() noexcept { owner_in_.store(false, std::memory_order_release); }

  /// For the CPU slot's owner, whatever the claims. Returns whether it went in
  /// without the spinlock, which unlock_as_owner needs back.
  bool lock_as_owner() noexcept {
    if (try_enter_as_owner()) [[likely]] {
      return true;
    }
    slow_.lock();
    return false;
  }
  void unlock_as_owner(bool fast) noexcept {
    if (fast) {
      leave_as_owner();
    } else {
      slow_.unlock();
    }
  }

  /// For anyone else, in steps so that one barrier serves many locks: claim
  /// each, publish_claims() once, await_owner() on each; then release each.
  void claim() noexcept {
    slow_.lock();
    claimed_.store(true, std::memory_order_seq_cst);
  }
  static void publish_claims() noexcept;
  void await_owner() const noexcept {
    for (unsigned spins = 0; owner_in_.load(std::memory_order_acquire); ++spins) {
      if (spins < 128) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }
  void release() noexcept {
    claimed_.store(!detail::process_barrier_available(), std::memory_order_release);
    slow_.unlock();
  }
  void lock_as_other() noexcept {
    claim();
    publish_claims();
    await_owner();
  }

 private:
  std::atomic<bool> owner_in_{false};
  std::atomic<bool> claimed_{!detail::process_barrier_available()};
  SpinLock slow_;
};

/// Holds a DepotLock as its CPU slot's owner.
class OwnerGuard {
 public:
  explicit OwnerGuard(DepotLock& l) noexcept : lock_(l), fast_(l.lock_as_owner()) {}
  ~OwnerGuard() { lock_.unlock_as_owner(fast_); }
  OwnerGuard(const OwnerGuard&) = delete;
  OwnerGuard& operator=(const OwnerGuard&) = delete;

 private:
  DepotLock& lock_;
  bool fast_;
};

struct PerCpu;

/// One CPU's cache in front of one zone. The loaded magazines are touched only
/// by the CPU slot's owner; the per-CPU depot also by GC, under depot_lock.
///
/// Every word the inline alloc and free load sits at 0..7 mod 16, the cold
/// ones at 8..15, for the reason PageEntry gives: a free stores its element's
/// cookie at 8 mod 16, and a later load that matches that store in the low 12
/// bits waits for it. Before this layout, some orders of running the
/// benchmarks put such a word at a cookie's page offset, and every LIFO pair
/// of 4 KiB elements waited on the previous free's store.
struct alignas(64) ZoneCache {
  std::atomic<std::uint32_t> alloc_cur{0};  // elements in alloc_mag
  std::atomic<std::uint32_t> free_cur{0};   // elements in free_mag
  // Magazine exchanges and slow paths: GC takes the depot lock too.
  DepotLock depot_lock;
  std::uint32_t depot_max = 0;  // full magazines before the depot spills
  Magazine* alloc_mag = nullptr;
  /// The per-CPU depot, in one array: [0, depot_count) holds full magazines,
  /// oldest first, and [depot_count, depot_held) the empty ones traded for
  /// them, so that a trade is one swap at the boundary. Room for depot_max + 2.
  /// A full magazine here holds free_limit elements (only full ones come in).
  Magazine** depot = nullptr;
  Magazine* free_mag = nullptr;
  std::atomic<std::uint32_t> depot_count{0};  // full magazines
  std::uint32_t depot_held = 0;               // full and empty magazines
  std::uint32_t free_limit = 0;               // magazine capacity while caching, else 0
  std::uint32_t key = 0;                      // its zone's PageEntry::key()
  PerCpu* owner = nullptr;                    // the CPU slot this cache is one of
  // Counters, on the next line.
  alignas(64) std::atomic<std::uint64_t> depot_hits{0};
  std::atomic<std::uint64_t> recirc_hits{0}, zone_fills{0}, depot_spills{0};
};
static_assert(offsetof(ZoneCache, alloc_cur) % 16 < 8 && offsetof(ZoneCache, free_cur) % 16 < 8 &&
              offsetof(ZoneCache, alloc_mag) % 16 < 8 && offsetof(ZoneCache, free_mag) % 16 < 8 &&
              offsetof(ZoneCache, free_limit) % 16 < 8 && offsetof(ZoneCache, key) % 16 < 8,
              "the words the inline paths load sit at 0..7 mod 16");
static_assert(offsetof(ZoneCache, depot_hits) == 64, "the hot words share one line");

inline constexpr unsigned kClassShift = 5;  // a node's caches span 1 << kClassShift entries
static_assert(kMaxClasses <= 1u << kClassShift);  // class numbers run 1..kMaxClasses - 1

/// A CPU slot's caches for every zone, created on the slot's first use. The
/// caches follow it in memory, indexed node << kClassShift | class number (no
/// pointer to chase, no multiply on the hot path).
struct alignas(64) PerCpu {
  unsigned node = 0;                         // the slot's home node (kAnyNode requests go there)
  std::atomic<bool> flush_requested{false};  // set by a drain: empty the loaded magazines
  ZoneCache& cache(unsigned index) noexcept { return reinterpret_cast<ZoneCache*>(this + 1)[index]; }
  /// The home node's caches, by class number.
  ZoneCache* home() noexcept { return &cache(node << kClassShift); }
};

struct Zone;

}  // namespace zones

/// XNU zalloc/kalloc: kalloc size classes, per-node zones, per-CPU magazines,
/// depots, zone GC; large sizes from the page layer.
///  params: cache=auto|on|off (auto: on once the zone lock is contended
///          `contention` times within a second), contention=N (default 10),
///          magazine=N elements (default 8), classes=kalloc|kalloc_type.
class ZonesBackend {
 public:
  static constexpr BackendVariant kVariants[] = {
      {"zones", "XNU zalloc/kalloc: kalloc classes, per-node zones, per-CPU magazines, zone GC",
       "classes=kalloc"},
      {"zones-kt", "zones with the kalloc_type size classes", "classes=kalloc_type"},
  };
  static constexpr ParamSpec kParams[] = {
      {"classes", ParamSpec::Kind::choice, "kalloc", "size classes: XNU's kalloc heap or the kalloc_type heaps",
       "kalloc|kalloc_type"},
      {"cache", ParamSpec::Kind::choice, "auto",
       "per-CPU magazines: auto switches a zone's on once its lock is contended `contention` times in a second",
       "auto|on|off"},
      {"contention", ParamSpec::Kind::integer, "10", "contended lock acquisitions per second that switch caching on",
       {}, 1, 1'000'000'000},
      {"magazine", ParamSpec::Kind::integer, "8", "elements per per-CPU magazine", {}, 1, 1024},
  };
  static constexpr std::uint32_t kFeatures = kKernelBackendFeatures | kFeatureRealloc;

  /// Throws UsageError on an unknown or malformed parameter.
  explicit ZonesBackend(const BackendConfig& config);
  ~ZonesBackend();
  ZonesBackend(const ZonesBackend&) = delete;
  ZonesBackend& operator=(const ZonesBackend&) = delete;

  void* allocate(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
    if (size <= zones::kMaxSmall && align <= zones::kQuantum) [[likely]] {
      const unsigned slot = this_cpu_slot_or_unclaimed();
      if (node < 0 || static_cast<unsigned>(node) < node_count_) [[likely]] {
        zones::ZoneCache* caches =
            node < 0 ? home_caches_[slot].load(std::memory_order_relaxed)
                     : &percpu_[slot].load(std::memory_order_relaxed)->cache(
                           static_cast<unsigned>(node) << zones::kClassShift);
        zones::ZoneCache& zc = caches[classes_.number_of(size)];
        std::uint32_t cur = zc.alloc_cur.load(std::memory_order_relaxed);
        if (cur == 0) [[unlikely]] {
          cur = reload(zc);
          if (cur == 0) {
            return allocate_slow(size, align, tag, node);
          }
        }
        return take(zc, cur);
      }
    }
    return allocate_slow(size, align, tag, node);
  }

  /// pre: size is the size p was allocated with (or one of the same class).
  /// A double free, a free of a foreign pointer, or a size of another class panics.
  void free(void* p, std::size_t size) noexcept {
    if (size <= zones::kMaxSmall) [[likely]] {
      zones::ZoneCache& zc = home_cache(size);
      if (is_home_element(zc, p)) {
        std::uint32_t cur = zc.free_cur.load(std::memory_order_relaxed);
        if (cur >= zc.free_limit) [[unlikely]] {
          cur = unload(zc);
        }
        if (cur < zc.free_limit) [[likely]] {
          put(zc, cur, p);
          return;
        }
      }
    }
    if (p != nullptr) {
      free_slow(p, size);
    }
  }

  /// allocate's and free's per-CPU paths alone (kMinAlign, any node), for a
  /// caller that keeps its own slow path out of line, as the KPI's hot calls
  /// do: neither makes a call. nullptr or false: nothing was taken or written,
  /// and the caller goes on to allocate or free.
  void* try_allocate(std::size_t size) noexcept {
    if (size <= zones::kMaxSmall) [[likely]] {
      zones::ZoneCache& zc = home_cache(size);
      const std::uint32_t cur = zc.alloc_cur.load(std::memory_order_relaxed);
      if (cur != 0) [[likely]] {
        return take(zc, cur);
      }
    }
    return nullptr;
  }
  bool try_free(void* p, std::size_t size) noexcept {
    if (size <= zones::kMaxSmall) [[likely]] {
      zones::ZoneCache& zc = home_cache(size);
      if (is_home_element(zc, p)) {
        const std::uint32_t cur = zc.free_cur.load(std::memory_order_relaxed);
        if (cur < zc.free_limit) [[likely]] {
          put(zc, cur, p);
          return true;
        }
      }
    }
    return false;
  }

  /// kalloc's realloc (krealloc): the block stays where it is when the new
  /// size lands in the same kalloc class as the old one; else a new block,
  /// the bytes both sizes hold copied, the old block freed. kalloc_large
  /// blocks and blocks aligned beyond the quantum always move.
  void* reallocate(void* p, std::size_t old_size, std::size_t new_size, std::size_t align, TagId tag,
                   NodeId node) noexcept {
    if (old_size <= zones::kMaxSmall && new_size <= zones::kMaxSmall && align <= zones::kQuantum &&
        classes_.number_of(old_size) == classes_.number_of(new_size)) {
      return p;
    }
    return copy_reallocate(*this, p, old_size, new_size, align, tag, node);
  }

  /// Below 4 GiB, as IOMallocContiguous and a 32-bit-mask IOBufferMemoryDescriptor
  /// place it: whole pages from the page layer (kalloc_large's path, with a ceiling).
  void* allocate_low(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept;
  /// The page map knows a low block as kalloc_large's: free takes it.
  void free_low(void* p, std::size_t size) noexcept { free(p, size); }

  /// Bytes handed out: the element size, or the page-rounded size of a large block.
  std::size_t usable_size(void* p, std::size_t size) const noexcept {
    const zones::PageEntry& e = page_entry(p);
    if (e.number == zones::kLargeClass) {
      return static_cast<std::size_t>(e.large_bytes);
    }
    return e.number != zones::kNoClass ? classes_.sizes[e.number - 1u] : size;
  }

  std::uint64_t physical_address(const void* p) const noexcept;

  /// zone GC: trim (caches and free chunks beyond the working set) or drain
  /// (everything cached). Returns the bytes given back to the page layer.
  std::size_t reclaim(ReclaimLevel level);

  BackendStats stats() const;
  BackendFootprint footprint() const;  // stats()'s mapped and resident bytes, nothing else

  // For tests and tools.
  const zones::ClassTable& classes() const noexcept { return classes_; }
  unsigned node_count() const noexcept { return node_count_; }
  /// True once the zone of that class on that node caches per CPU.
  bool caching_enabled(unsigned node, unsigned cls) const noexcept;
  /// Zones whose per-CPU caching is on (AdaptingBackend: cache=auto turns it on under contention).
  std::uint64_t adaptations() const;
  /// One statistic by name (0 when there is none): a convenience over stats().
  double metric(std::string_view name) const;

 private:
  /// The page map index of p's page; map_pages_ or more when p is not the machine's memory.
  std::uintptr_t map_page(const void* p) const noexcept {
    return (reinterpret_cast<std::uintptr_t>(p) - map_base_) >> 12;
  }
  /// The entry of the page holding p (kNoPage when p is not the machine's memory).
  const zones::PageEntry& page_entry(const void* p) const noexcept {
    const std::uintptr_t page = map_page(p);
    return page < map_pages_ ? map_[page] : zones::kNoPage;
  }

  std::uint64_t cookie(const void* p) const noexcept {
    return reinterpret_cast<std::uintptr_t>(p) ^ secret_;
  }

  // The inline paths' pieces.
  /// This CPU's home-node cache of size's class. The cache is named by the
  /// size and this CPU's node, not by the page entry, so a free's stores need
  /// not wait for the page map, which only confirms them (an element of
  /// another node takes the slow path to that node's cache).
  zones::ZoneCache& home_cache(std::size_t size) noexcept {
    return home_caches_[this_cpu_slot_or_unclaimed()].load(std::memory_order_relaxed)[classes_.number_of(size)];
  }
  /// Whether p is a live element of zc's zone: its page is the zone's and its
  /// free cookie is not set (a double free or a foreign pointer is not).
  bool is_home_element(const zones::ZoneCache& zc, const void* p) const noexcept {
    const std::uintptr_t page = map_page(p);
    // Each test expected on its own: [[likely]] on the whole condition
    // left the fast path out of line, a taken jump more per free.
    return __builtin_expect(page < map_pages_, 1) && __builtin_expect(map_[page].key() == zc.key, 1) &&
           __builtin_expect(static_cast<const std::uint64_t*>(p)[1] != cookie(p), 1);
  }
  /// Takes the element below alloc_cur (cur, nonzero) and clears its free cookie.
  static void* take(zones::ZoneCache& zc, std::uint32_t cur) noexcept {
    --cur;
    zc.alloc_cur.store(cur, std::memory_order_relaxed);
    void* p = zc.alloc_mag->elems()[cur];
    static_cast<std::uint64_t*>(p)[1] = 0;
    return p;
  }
  /// Puts p at free_cur (cur, below free_limit) and sets its free cookie.
  void put(zones::ZoneCache& zc, std::uint32_t cur, void* p) noexcept {
    zc.free_mag->elems()[cur] = p;
    zc.free_cur.store(cur + 1, std::memory_order_relaxed);
    static_cast<std::uint64_t*>(p)[1] = cookie(p);
  }

  // Magazine exchanges that stay on this CPU (defined in zones_cache.cpp).
  /// Loads a non-empty alloc magazine: the free magazine (XNU's first refill)
  /// or a full one from this CPU's depot. Returns its count, 0 when neither has one.
  std::uint32_t reload(zones::ZoneCache& zc) noexcept;
  /// Empties a full free magazine: swaps it with an empty alloc magazine, or
  /// trades it for an empty one in this CPU's depot. Returns free_cur after.
  std::uint32_t unload(zones::ZoneCache& zc) noexcept;
  void* allocate_slow(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept;
  void free_slow(void* p, std::size_t size) noexcept;

  // Defined in zones_internal.h.
  friend struct ZonesInternals;

  zones::ClassTable classes_;
  unsigned node_count_ = 1;
  // The page map: one entry per 4 KiB page of the machine's memory, which is
  // one reserved range, so an entry is a subtraction and a shift away.
  // Reserved, not committed: only the pages of entries ever written become
  // resident. Written under the zone lock (chunks) or the large-block lock.
  // Each at 0 mod 16, as the inline free loads them all (see ZoneCache).
  alignas(16) zones::PageEntry* map_ = nullptr;
  alignas(16) std::uintptr_t map_base_ = 0;   // the machine's first byte
  alignas(16) std::uintptr_t map_pages_ = 0;  // entries
  alignas(16) std::uint64_t secret_ = 0;
  // By CPU slot: its caches, and its home node's caches by class number
  // (percpu_[slot]->home(), one dependent load nearer for the inline paths).
  // A slot whose thread has not yet taken the slow path, and the extra entry
  // at kUnclaimedSlot, hold `unclaimed_`: empty caches with a free limit of
  // 0, so the inline paths need no null test and fall through to
  // reload/unload (which find nothing and write nothing), then to the slow
  // path.
  // (Odd slots sit at 8 mod 16, unlike the other words the inline paths
  // load: see ZoneCache. Slots 16 bytes apart cost two instructions per
  // operation to index, for a stall that needs this one word at a cookie's
  // page offset.)
  std::array<std::atomic<zones::PerCpu*>, kMaxCpuSlots + 1> percpu_{};
  std::array<std::atomic<zones::ZoneCache*>, kMaxCpuSlots + 1> home_caches_{};
  zones::PerCpu* unclaimed_ = nullptr;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace kmbench
