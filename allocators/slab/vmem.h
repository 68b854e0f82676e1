// vmem: Bonwick & Adams' resource arenas, over the page layer.
//
// An arena hands out quantum-multiple ranges of address space. Boundary tags
// keep every segment in address order so a free coalesces with its neighbours
// in O(1); power-of-two free lists give instant fit; allocated segments sit in
// a hash table so vmem_free finds them (and catches double and wrong-size
// frees). An arena imports spans from its source (another arena, or the page
// layer) and releases a span as soon as it is wholly free. Small sizes
// (up to qcache_max) are served by quantum caches: object caches of 1..n
// quanta whose slabs come from the arena itself.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "allocators/backend.h"

namespace kmbench::physmem {
class Machine;
}

namespace kmbench::slab {

class Kmem;
class ObjectCache;

inline constexpr std::size_t kPage = 4096;

/// The page layer as the slab allocator sees it: page-aligned runs on a node,
/// with the bytes held counted. Thread safe (the Machine is).
class PageSource {
 public:
  /// max_phys: every run lies below it (inclusive), e.g. 4 GiB - 1 for kmem_io_4G.
  explicit PageSource(physmem::Machine& machine, std::uint64_t max_phys = ~std::uint64_t{0})
      : machine_(machine), max_phys_(max_phys) {}
  /// post: page-aligned run of bytes (a page multiple) on node, or nullptr.
  void* alloc(std::size_t bytes, std::size_t align, NodeId node) noexcept;
  void free(void* p, std::size_t bytes) noexcept;
  physmem::Machine& machine() const noexcept { return machine_; }
  std::uint64_t held_bytes() const noexcept { return held_.load(std::memory_order_relaxed); }

 private:
  physmem::Machine& machine_;
  std::uint64_t max_phys_;
  std::atomic<std::uint64_t> held_{0};
};

/// Counters of one arena, read under its lock.
struct VmemStats {
  std::uint64_t spans = 0;          // spans currently held (imported or added)
  std::uint64_t span_bytes = 0;     // bytes in those spans
  std::uint64_t alloc_bytes = 0;    // bytes in allocated segments
  std::uint64_t alloc_segs = 0;
  std::uint64_t free_segs = 0;
  std::uint64_t imports = 0;        // spans imported from the source, cumulative
  std::uint64_t releases = 0;       // spans given back to the source, cumulative
  std::uint64_t xallocs = 0;        // segment allocations (quantum caches excluded)
  std::uint64_t xfrees = 0;
  std::uint64_t alloc_fails = 0;
  std::uint64_t seg_metadata_bytes = 0;  // pages holding boundary tags and the hash table
};

/// A vmem arena. Thread safe: one lock per arena; quantum caches in front.
class Vmem {
 public:
  /// pre: quantum is a power of two. source null: spans come from pages on node.
  ///      import_min: smallest span imported at once (rounded to the page).
  Vmem(std::string name, std::size_t quantum, Vmem* source, PageSource& pages, NodeId node,
       std::size_t import_min);
  ~Vmem();
  Vmem(const Vmem&) = delete;
  Vmem& operator=(const Vmem&) = delete;

  /// Puts quantum caches in front: caches[i] serves (i+1) quanta.
  /// pre: called once, before any allocation of up to caches.size() quanta.
  void set_quantum_caches(std::vector<ObjectCache*> caches);

  /// post: size rounded up to the quantum, quantum aligned; nullptr when no space.
  void* alloc(std::size_t size) noexcept;
  /// pre: p, size as given to or by alloc. A wrong size or double free panics.
  void free(void* p, std::size_t size) noexcept;
  /// Segment allocation aligned to align (a power of two ≥ quantum); never a quantum cache.
  void* xalloc(std::size_t size, std::size_t align) noexcept;
  void xfree(void* p, std::size_t size) noexcept;
  /// Adds [base, base+size) as a span of its own (not imported: never released).
  void add(void* base, std::size_t size);
  /// Releases every imported span to the source (whatever is still allocated in them).
  void release_all() noexcept;

  /// True when p lies in an allocated segment that starts at p (a lookup under the lock).
  bool contains_segment(const void* p) const;

  const std::string& name() const noexcept { return name_; }
  std::size_t quantum() const noexcept { return quantum_; }
  std::size_t qcache_max() const noexcept { return qcache_max_; }
  const std::vector<ObjectCache*>& quantum_caches() const noexcept { return qcache_; }
  VmemStats stats() const;

 private:
  struct Seg;
  static constexpr unsigned kFreeLists = 64;

  std::size_t round(std::size_t size) const noexcept { return (size + quantum_ - 1) & ~(quantum_ - 1); }
  void* xalloc_locked(std::size_t size, std::size_t align) noexcept;
  Seg* find_fit(std::size_t size, std::size_t align) noexcept;
  bool import_span(std::size_t size, std::size_t align) noexcept;
  void insert_span(std::uintptr_t base, std::size_t size, bool imported) noexcept;
  Seg* seg_get() noexcept;
  void seg_put(Seg* s) noexcept;
  bool seg_reserve(unsigned n) noexcept;
  void freelist_insert(Seg* s) noexcept;
  void freelist_remove(Seg* s) noexcept;
  void hash_insert(Seg* s) noexcept;
  Seg* hash_remove(std::uintptr_t addr) noexcept;
  Seg* hash_find(std::uintptr_t addr) const noexcept;
  void hash_rescale() noexcept;
  void list_insert_after(Seg* where, Seg* s) noexcept;
  void list_remove(Seg* s) noexcept;
  [[noreturn]] void panic(const char* what, std::uintptr_t addr, std::size_t size,
                          std::size_t expected) const noexcept;

  std::string name_;
  std::size_t quantum_;
  unsigned quantum_shift_;
  Vmem* source_;
  PageSource& pages_;
  NodeId node_;
  std::size_t import_min_;

  mutable std::mutex lock_;
  Seg* seg0_;                       // sentinel of the address-ordered segment list
  Seg* free_head_[kFreeLists];      // sentinels of the power-of-two free lists
  std::uint64_t freemap_ = 0;       // bit i: free list i is not empty
  Seg** hash_ = nullptr;
  std::size_t hash_buckets_ = 0;
  Seg* seg_pool_ = nullptr;         // unused boundary tags
  unsigned seg_pool_count_ = 0;
  std::vector<std::pair<void*, std::size_t>> meta_pages_;
  VmemStats st_;

  std::size_t qcache_max_ = 0;
  std::vector<ObjectCache*> qcache_;  // qcache_[i] serves (i+1) quanta
};

}  // namespace kmbench::slab
