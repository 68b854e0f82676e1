// zones' private header: what the backend's parts share (zones.h stays the
// public one; only allocators/zones/*.cpp include this). README.md says which
// file holds which part.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "allocators/physmem/physmem.h"
#include "allocators/zones/zones.h"

namespace kmbench {
namespace zones {

/// The emulated panic: one line on stderr, then abort (zones_panic.cpp).
[[noreturn]] __attribute__((format(printf, 1, 2))) void panic(const char* fmt, ...);

enum class ChunkList : std::uint8_t { empty, partial, full };

/// Out-of-line metadata of one chunk; its free bitmap (bit set: element free) follows it.
struct ChunkMeta {
  Zone* zone = nullptr;
  char* base = nullptr;
  ChunkMeta* prev = nullptr;
  ChunkMeta* next = nullptr;
  std::uint32_t nfree = 0;
  std::uint32_t hint = 0;  // first bitmap word that may have a free bit
  ChunkList list = ChunkList::empty;
  std::uint64_t* bitmap() noexcept { return reinterpret_cast<std::uint64_t*>(this + 1); }
};

/// A doubly linked list of chunks with a count.
struct ChunkQueue {
  ChunkMeta* head = nullptr;
  std::uint64_t count = 0;
  void push(ChunkMeta* c) noexcept {
    c->prev = nullptr;
    c->next = head;
    if (head != nullptr) {
      head->prev = c;
    }
    head = c;
    ++count;
  }
  void remove(ChunkMeta* c) noexcept {
    (c->prev ? c->prev->next : head) = c->next;
    if (c->next != nullptr) {
      c->next->prev = c->prev;
    }
    --count;
  }
};

enum class CachePolicy { automatic, on, off };

/// One size class on one node: chunks, the recirculation depot, counters.
/// Everything below `mu` is guarded by it.
struct Zone {
  std::string name;  // "kalloc.256"
  unsigned cls = 0;
  unsigned node = 0;
  std::uint32_t element_size = 0;
  std::uint32_t chunk_pages = 0;
  std::uint32_t elems_per_chunk = 0;
  std::uint32_t bitmap_words = 0;
  std::uint64_t reciprocal = 0;  // ceil(2^32 / element_size): element index without division
  std::atomic<bool> caching{false};

  std::mutex mu;  // a sleeping lock: a user-space holder can be preempted (XNU spins)
  ChunkQueue empty, partial, full;
  std::uint64_t elems_total = 0;
  std::uint64_t elems_free = 0;      // free in chunks (not cached)
  std::uint64_t free_min = 0;        // low water of elems_free since the last GC period
  std::uint64_t ws_free_ema = 0;     // working set of free elements (EMA over GC periods)
  Magazine* recirc = nullptr;        // full magazines (from spills), newest first
  std::uint64_t recirc_count = 0;
  std::uint64_t recirc_min = 0;
  std::uint64_t ws_recirc_ema = 0;
  Magazine* spare_mags = nullptr;    // empty magazines
  std::uint64_t zone_allocs = 0;     // elements taken from chunks
  std::uint64_t zone_frees = 0;      // elements returned to chunks
  std::uint64_t contentions = 0;
  std::int64_t window_start_ns = 0;
  std::uint64_t window_contentions = 0;
  std::uint64_t chunks_freed = 0;
};

}  // namespace zones

using namespace zones;

/// The backend's state outside the hot path.
struct ZonesBackend::State {
  physmem::Machine* machine = nullptr;
  CachePolicy policy = CachePolicy::automatic;
  std::uint64_t contention_threshold = 10;
  std::uint32_t magazine_size = 8;
  std::uint64_t percpu_cap_bytes = 128 * 1024;
  std::vector<std::unique_ptr<Zone>> zones;  // node-major: zones[node * classes + cls]

  struct Large {
    std::uint64_t bytes;
    TagId tag;
    unsigned node;
  };
  mutable std::mutex large_mu;
  std::unordered_map<void*, Large> large;
  std::uint64_t large_bytes = 0;
  std::uint64_t large_allocs = 0;
  std::map<TagId, std::uint64_t> large_bytes_by_tag;

  std::atomic<std::uint64_t> magazines{0};
  std::atomic<std::uint64_t> chunk_meta_bytes{0};
  std::atomic<std::uint64_t> gc_trims{0}, gc_drains{0}, gc_bytes_returned{0};
  std::atomic<std::uint64_t> failed_allocs{0};
};

/// The slow paths, with access to the backend's private parts.
///
/// Members are defined in their part's file, except those a per-element slow
/// path reaches from more than one part (a zone's lock, an element back to its
/// chunk, the CPU slot's caches), which are defined here. These, and the
/// members declared inline below, are inline so that the compiler can inline
/// them into the slow paths that call them.
struct ZonesInternals {
  ZonesBackend& b;
  ZonesBackend::State& s;

  static unsigned cache_index(const Zone& z) { return z.node << kClassShift | (z.cls + 1); }

  // -- the page map --

  /// Sets the entries of [base, base + pages * 4 KiB). pre: the machine's memory.
  void set_pages(const void* base, std::size_t pages, const PageEntry& e) {
    const std::uintptr_t first = b.map_page(base);
    for (std::size_t i = 0; i < pages; ++i) {
      b.map_[first + i] = e;
    }
  }

  Zone& zone(unsigned node, unsigned number) {
    return *s.zones[node * b.classes_.count + number - 1];
  }

  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  /// Takes the zone lock; a contended acquisition is counted and may switch caching on.
  void lock_zone(Zone& z) {
    if (z.mu.try_lock()) {
      return;
    }
    z.mu.lock();
    ++z.contentions;
    const std::int64_t now = now_ns();
    if (now - z.window_start_ns > 1'000'000'000) {
      z.window_start_ns = now;
      z.window_contentions = 0;
    }
    if (++z.window_contentions >= s.contention_threshold &&
        s.policy == CachePolicy::automatic) {
      z.caching.store(true, std::memory_order_relaxed);
    }
  }

  // -- chunks (zone lock held): the rest in zones_chunks.cpp --

  void relist(Zone& z, ChunkMeta* c) {
    const ChunkList want = c->nfree == 0                   ? ChunkList::full
                           : c->nfree == z.elems_per_chunk ? ChunkList::empty
                                                           : ChunkList::partial;
    if (want == c->list) {
      return;
    }
    queue(z, c->list).remove(c);
    c->list = want;
    queue(z, want).push(c);
  }
  static ChunkQueue& queue(Zone& z, ChunkList l) {
    return l == ChunkList::empty ? z.empty : l == ChunkList::partial ? z.partial : z.full;
  }

  inline bool grow(Zone& z);
  /// Gives an empty chunk back to the page layer; returns its bytes.
  std::size_t release(Zone& z, ChunkMeta* c);
  /// Takes a free element from the zone's chunks, growing it by a chunk when
  /// none has one; null when the page layer has no chunk to give.
  void* take(Zone& z);

  /// Returns an element to its chunk; a free bit already set is a double free.
  void put(Zone& z, void* p) {
    ChunkMeta* c = b.page_entry(p).chunk;
    const std::uint64_t offset = static_cast<std::uint64_t>(static_cast<char*>(p) - c->base);
    const std::uint32_t idx = static_cast<std::uint32_t>((offset * z.reciprocal) >> 32);
    if (std::uint64_t{idx} * z.element_size != offset || idx >= z.elems_per_chunk) {
      panic("free of %p (zone %s, element size %u): not the start of an element", p,
            z.name.c_str(), z.element_size);
    }
    std::uint64_t& word = c->bitmap()[idx / 64];
    const std::uint64_t bit = std::uint64_t{1} << (idx % 64);
    if ((word & bit) != 0) {
      panic("double free of %p (size %u) in zone %s", p, z.element_size, z.name.c_str());
    }
    word |= bit;
    c->hint = std::min(c->hint, idx / 64);
    ++c->nfree;
    relist(z, c);
    ++z.elems_free;
    ++z.zone_frees;
  }

  // -- magazines and CPU slots --

  Magazine* new_magazine() {
    void* mem = ::operator new(sizeof(Magazine) + s.magazine_size * sizeof(void*));
    s.magazines.fetch_add(1, std::memory_order_relaxed);
    return new (mem) Magazine;
  }
  void delete_magazine(Magazine* m) {
    s.magazines.fetch_sub(1, std::memory_order_relaxed);
    m->~Magazine();
    ::operator delete(m);
  }

  /// Returns a magazine's elements to their zone (zone lock held).
  void empty_into_zone(Zone& z, Magazine* m, std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i) {
      put(z, m->elems()[i]);
    }
    m->count = 0;
  }

  /// This CPU slot's caches, created on the slot's first slow path.
  PerCpu& percpu() {
    const unsigned slot = this_cpu_slot();
    PerCpu* pc = b.percpu_[slot].load(std::memory_order_acquire);
    if (pc != b.unclaimed_) {
      return *pc;
    }
    const NodeId local = s.machine->local_node();
    pc = new_percpu(b.node_count_, local < 0 || static_cast<unsigned>(local) >= b.node_count_
                                       ? 0u
                                       : static_cast<unsigned>(local));
    b.home_caches_[slot].store(pc->home(), std::memory_order_relaxed);
    b.percpu_[slot].store(pc, std::memory_order_release);
    return *pc;
  }

  /// A CPU slot's caches for every zone of node_count nodes, all empty and not caching.
  static PerCpu* new_percpu(unsigned node_count, unsigned home) {
    const std::size_t caches = std::size_t{node_count} << kClassShift;
    void* mem = ::operator new(sizeof(PerCpu) + caches * sizeof(ZoneCache), std::align_val_t{64});
    auto* pc = new (mem) PerCpu;
    for (std::size_t i = 0; i < caches; ++i) {
      // Index node << kClassShift | number; the key is number | node << 8.
      new (&pc->cache(static_cast<unsigned>(i))) ZoneCache;
      pc->cache(static_cast<unsigned>(i)).owner = pc;
      pc->cache(static_cast<unsigned>(i)).key =
          static_cast<std::uint32_t>((i & ((1u << kClassShift) - 1)) | (i >> kClassShift) << 8);
    }
    pc->node = home;
    return pc;
  }
  /// pre: the caches hold no magazine.
  static void delete_percpu(PerCpu* pc, unsigned node_count) {
    for (std::size_t i = 0; i < (std::size_t{node_count} << kClassShift); ++i) {
      pc->cache(static_cast<unsigned>(i)).~ZoneCache();
    }
    pc->~PerCpu();
    ::operator delete(pc, std::align_val_t{64});
  }

  // -- per-CPU caching: zones_cache.cpp --

  inline void arm(ZoneCache& zc, Zone& z);
  /// Empties this CPU's loaded magazines of every zone into their zones (a drain asked for it).
  void flush_loaded(PerCpu& pc);
  inline bool refill(ZoneCache& zc, Zone& z);
  static inline std::uint32_t batch_of(const ZoneCache& zc);
  static inline std::uint32_t depot_room(const ZoneCache& zc);
  inline std::uint32_t recirculate(ZoneCache& zc, Zone& z);
  void make_room(ZoneCache& zc, Zone& z);

  // -- kalloc_large: zones_large.cpp --

  void* large_alloc(std::size_t size, std::size_t align, TagId tag, NodeId node,
                    std::uint64_t max_phys = ~std::uint64_t{0});
  void large_free(void* p, std::size_t size);

  // -- zone GC: zones_gc.cpp --

  std::vector<Magazine*> collect_depots();
  static inline std::uint64_t ema(std::uint64_t old, std::uint64_t sample);
  inline std::size_t gc_zone(std::size_t i, ReclaimLevel level, Magazine* depots);

  static constexpr TagId kVmTagKalloc = 13;  // VM_KERN_MEMORY_KALLOC
};

}  // namespace kmbench
