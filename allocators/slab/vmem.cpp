#include "allocators/slab/vmem.h"

#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "allocators/physmem/physmem.h"
#include "allocators/slab/kmem.h"

namespace kmbench::slab {

void* PageSource::alloc(std::size_t bytes, std::size_t align, NodeId node) noexcept {
  bytes = (bytes + kPage - 1) & ~(kPage - 1);
  void* p = machine_.alloc_contiguous(bytes, align < kPage ? kPage : align, node, max_phys_);
  if (p != nullptr) {
    held_.fetch_add(bytes, std::memory_order_relaxed);
  }
  return p;
}

void PageSource::free(void* p, std::size_t bytes) noexcept {
  bytes = (bytes + kPage - 1) & ~(kPage - 1);
  machine_.free_contiguous(p, bytes);
  held_.fetch_sub(bytes, std::memory_order_relaxed);
}

/// A boundary tag (illumos vmem_seg_t).
struct Vmem::Seg {
  enum Type : std::uint8_t { kFree, kAlloc, kSpan, kSentinel };
  std::uintptr_t start = 0, end = 0;
  Seg* knext = nullptr;  // address-ordered list of every segment and span marker
  Seg* kprev = nullptr;
  Seg* fnext = nullptr;  // free list, or hash chain of an allocated segment
  Seg* fprev = nullptr;
  Type type = kSentinel;
  bool imported = false;  // span markers: came from the source
};

namespace {
unsigned floor_log2(std::size_t x) { return 63u - static_cast<unsigned>(std::countl_zero(x)); }
unsigned ceil_log2(std::size_t x) { return x <= 1 ? 0 : floor_log2(x - 1) + 1; }
constexpr unsigned kSegsPerPage = kPage / 64;
}  // namespace

Vmem::Vmem(std::string name, std::size_t quantum, Vmem* source, PageSource& pages, NodeId node,
           std::size_t import_min)
    : name_(std::move(name)),
      quantum_(quantum),
      quantum_shift_(floor_log2(quantum)),
      source_(source),
      pages_(pages),
      node_(node),
      import_min_((import_min + kPage - 1) & ~(kPage - 1)) {
  static_assert(sizeof(Seg) <= 64);
  std::lock_guard g(lock_);
  if (!seg_reserve(kFreeLists + 1)) {
    std::fprintf(stderr, "kmbench: slab panic: vmem %s: no page for boundary tags\n", name_.c_str());
    std::abort();
  }
  seg0_ = seg_get();
  seg0_->knext = seg0_->kprev = seg0_;
  for (Seg*& head : free_head_) {
    head = seg_get();
    head->fnext = head->fprev = head;
  }
  hash_buckets_ = kPage / sizeof(Seg*);
  hash_ = static_cast<Seg**>(pages_.alloc(kPage, kPage, node_));
  if (hash_ == nullptr) {
    std::fprintf(stderr, "kmbench: slab panic: vmem %s: no page for the hash table\n", name_.c_str());
    std::abort();
  }
  for (std::size_t i = 0; i < hash_buckets_; ++i) {
    hash_[i] = nullptr;
  }
  st_.seg_metadata_bytes += kPage;
}

Vmem::~Vmem() {
  release_all();
  pages_.free(hash_, hash_buckets_ * sizeof(Seg*));
  for (auto& [p, bytes] : meta_pages_) {
    pages_.free(p, bytes);
  }
}

void Vmem::release_all() noexcept {
  std::lock_guard g(lock_);
  for (Seg* s = seg0_->knext; s != seg0_;) {
    Seg* next = s->knext;
    if (s->type == Seg::kSpan && s->imported) {
      if (source_ != nullptr) {
        source_->xfree(reinterpret_cast<void*>(s->start), s->end - s->start);
      } else {
        pages_.free(reinterpret_cast<void*>(s->start), s->end - s->start);
      }
      st_.releases++;
    }
    s = next;
  }
  seg0_->knext = seg0_->kprev = seg0_;
  for (Seg* head : free_head_) {
    head->fnext = head->fprev = head;
  }
  freemap_ = 0;
  for (std::size_t i = 0; i < hash_buckets_; ++i) {
    hash_[i] = nullptr;
  }
  st_.spans = st_.span_bytes = st_.alloc_bytes = st_.alloc_segs = st_.free_segs = 0;
}

void Vmem::set_quantum_caches(std::vector<ObjectCache*> caches) {
  qcache_ = std::move(caches);
  qcache_max_ = qcache_.size() * quantum_;
}

// --- boundary tag pool -----------------------------------------------------

bool Vmem::seg_reserve(unsigned n) noexcept {
  while (seg_pool_count_ < n) {
    void* page = pages_.alloc(kPage, kPage, node_);
    if (page == nullptr) {
      return false;
    }
    meta_pages_.emplace_back(page, kPage);
    st_.seg_metadata_bytes += kPage;
    auto* segs = static_cast<Seg*>(page);
    for (unsigned i = 0; i < kSegsPerPage; ++i) {
      Seg* s = new (reinterpret_cast<char*>(segs) + i * 64) Seg();
      seg_put(s);
    }
  }
  return true;
}

Vmem::Seg* Vmem::seg_get() noexcept {
  Seg* s = seg_pool_;
  seg_pool_ = s->fnext;
  seg_pool_count_--;
  *s = Seg();
  return s;
}

void Vmem::seg_put(Seg* s) noexcept {
  s->fnext = seg_pool_;
  seg_pool_ = s;
  seg_pool_count_++;
}

// --- lists -----------------------------------------------------------------

void Vmem::list_insert_after(Seg* where, Seg* s) noexcept {
  s->kprev = where;
  s->knext = where->knext;
  where->knext->kprev = s;
  where->knext = s;
}

void Vmem::list_remove(Seg* s) noexcept {
  s->kprev->knext = s->knext;
  s->knext->kprev = s->kprev;
}

void Vmem::freelist_insert(Seg* s) noexcept {
  const unsigned i = floor_log2(s->end - s->start);
  Seg* head = free_head_[i];
  s->fnext = head->fnext;
  s->fprev = head;
  head->fnext->fprev = s;
  head->fnext = s;
  freemap_ |= std::uint64_t{1} << i;
  st_.free_segs++;
}

void Vmem::freelist_remove(Seg* s) noexcept {
  const unsigned i = floor_log2(s->end - s->start);
  s->fprev->fnext = s->fnext;
  s->fnext->fprev = s->fprev;
  if (free_head_[i]->fnext == free_head_[i]) {
    freemap_ &= ~(std::uint64_t{1} << i);
  }
  st_.free_segs--;
}

// --- hash of allocated segments -----------------------------------------------

Vmem::Seg* Vmem::hash_find(std::uintptr_t addr) const noexcept {
  const std::size_t b = ((addr >> quantum_shift_) * 0x9E3779B97F4A7C15ull) & (hash_buckets_ - 1);
  for (Seg* s = hash_[b]; s != nullptr; s = s->fnext) {
    if (s->start == addr) {
      return s;
    }
  }
  return nullptr;
}

void Vmem::hash_insert(Seg* s) noexcept {
  const std::size_t b = ((s->start >> quantum_shift_) * 0x9E3779B97F4A7C15ull) & (hash_buckets_ - 1);
  s->fnext = hash_[b];
  hash_[b] = s;
  st_.alloc_segs++;
  st_.alloc_bytes += s->end - s->start;
  if (st_.alloc_segs > 2 * hash_buckets_) {
    hash_rescale();
  }
}

Vmem::Seg* Vmem::hash_remove(std::uintptr_t addr) noexcept {
  const std::size_t b = ((addr >> quantum_shift_) * 0x9E3779B97F4A7C15ull) & (hash_buckets_ - 1);
  for (Seg** pp = &hash_[b]; *pp != nullptr; pp = &(*pp)->fnext) {
    Seg* s = *pp;
    if (s->start == addr) {
      *pp = s->fnext;
      st_.alloc_segs--;
      st_.alloc_bytes -= s->end - s->start;
      return s;
    }
  }
  return nullptr;
}

void Vmem::hash_rescale() noexcept {
  const std::size_t buckets = hash_buckets_ * 4;
  auto* table = static_cast<Seg**>(pages_.alloc(buckets * sizeof(Seg*), kPage, node_));
  if (table == nullptr) {
    return;  // keep the old table: longer chains, still correct
  }
  for (std::size_t i = 0; i < buckets; ++i) {
    table[i] = nullptr;
  }
  for (std::size_t i = 0; i < hash_buckets_; ++i) {
    for (Seg* s = hash_[i]; s != nullptr;) {
      Seg* next = s->fnext;
      const std::size_t b = ((s->start >> quantum_shift_) * 0x9E3779B97F4A7C15ull) & (buckets - 1);
      s->fnext = table[b];
      table[b] = s;
      s = next;
    }
  }
  pages_.free(hash_, hash_buckets_ * sizeof(Seg*));
  st_.seg_metadata_bytes += (buckets - hash_buckets_) * sizeof(Seg*);
  hash_ = table;
  hash_buckets_ = buckets;
}

// --- spans -------------------------------------------------------------------

void Vmem::insert_span(std::uintptr_t base, std::size_t size, bool imported) noexcept {
  Seg* span = seg_get();
  span->type = Seg::kSpan;
  span->start = base;
  span->end = base + size;
  span->imported = imported;
  list_insert_after(seg0_->kprev, span);
  Seg* free_seg = seg_get();
  free_seg->type = Seg::kFree;
  free_seg->start = base;
  free_seg->end = base + size;
  list_insert_after(span, free_seg);
  freelist_insert(free_seg);
  st_.spans++;
  st_.span_bytes += size;
}

void Vmem::add(void* base, std::size_t size) {
  std::lock_guard g(lock_);
  if (!seg_reserve(2)) {
    panic("no page for boundary tags", reinterpret_cast<std::uintptr_t>(base), size, 0);
  }
  insert_span(reinterpret_cast<std::uintptr_t>(base), size & ~(quantum_ - 1), false);
}

bool Vmem::import_span(std::size_t size, std::size_t align) noexcept {
  std::size_t bytes = (size + kPage - 1) & ~(kPage - 1);
  if (bytes < import_min_) {
    bytes = import_min_;
  }
  void* p;
  if (source_ != nullptr) {
    p = source_->xalloc(bytes, align > source_->quantum() ? align : source_->quantum());
  } else {
    p = pages_.alloc(bytes, align, node_);
  }
  if (p == nullptr) {
    return false;
  }
  insert_span(reinterpret_cast<std::uintptr_t>(p), bytes, true);
  st_.imports++;
  return true;
}

// --- allocation ----------------------------------------------------------------

Vmem::Seg* Vmem::find_fit(std::size_t size, std::size_t align) noexcept {
  if (align <= quantum_) {
    // Instant fit: any segment on a list of sizes ≥ the next power of two fits.
    const unsigned k = ceil_log2(size);
    const std::uint64_t mask = k >= 64 ? 0 : freemap_ & (~std::uint64_t{0} << k);
    if (mask != 0) {
      return free_head_[std::countr_zero(mask)]->fnext;
    }
    const unsigned below = floor_log2(size);
    if (below != k) {
      Seg* head = free_head_[below];
      for (Seg* s = head->fnext; s != head; s = s->fnext) {
        if (s->end - s->start >= size) {
          return s;
        }
      }
    }
    return nullptr;
  }
  for (unsigned i = floor_log2(size); i < kFreeLists; ++i) {
    if ((freemap_ & (std::uint64_t{1} << i)) == 0) {
      continue;
    }
    Seg* head = free_head_[i];
    for (Seg* s = head->fnext; s != head; s = s->fnext) {
      const std::uintptr_t a = (s->start + align - 1) & ~(align - 1);
      if (a + size <= s->end && a >= s->start) {
        return s;
      }
    }
  }
  return nullptr;
}

void* Vmem::xalloc_locked(std::size_t size, std::size_t align) noexcept {
  if (!seg_reserve(4)) {
    st_.alloc_fails++;
    return nullptr;
  }
  Seg* seg = find_fit(size, align);
  if (seg == nullptr) {
    if (!import_span(size, align) || !seg_reserve(4) || (seg = find_fit(size, align)) == nullptr) {
      st_.alloc_fails++;
      return nullptr;
    }
  }
  const std::uintptr_t addr = (seg->start + align - 1) & ~(align - 1);
  freelist_remove(seg);
  if (addr > seg->start) {
    Seg* left = seg_get();
    left->type = Seg::kFree;
    left->start = seg->start;
    left->end = addr;
    list_insert_after(seg->kprev, left);
    freelist_insert(left);
    seg->start = addr;
  }
  if (addr + size < seg->end) {
    Seg* right = seg_get();
    right->type = Seg::kFree;
    right->start = addr + size;
    right->end = seg->end;
    list_insert_after(seg, right);
    freelist_insert(right);
    seg->end = addr + size;
  }
  seg->type = Seg::kAlloc;
  hash_insert(seg);
  st_.xallocs++;
  return reinterpret_cast<void*>(addr);
}

void* Vmem::xalloc(std::size_t size, std::size_t align) noexcept {
  size = round(size == 0 ? 1 : size);
  if (align < quantum_) {
    align = quantum_;
  }
  std::lock_guard g(lock_);
  return xalloc_locked(size, align);
}

void* Vmem::alloc(std::size_t size) noexcept {
  size = round(size == 0 ? 1 : size);
  if (size <= qcache_max_) {
    return qcache_[(size >> quantum_shift_) - 1]->alloc();
  }
  std::lock_guard g(lock_);
  return xalloc_locked(size, quantum_);
}

void Vmem::free(void* p, std::size_t size) noexcept {
  size = round(size == 0 ? 1 : size);
  if (size <= qcache_max_) {
    qcache_[(size >> quantum_shift_) - 1]->free(p);
    return;
  }
  xfree(p, size);
}

void Vmem::xfree(void* p, std::size_t size) noexcept {
  size = round(size == 0 ? 1 : size);
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::unique_lock g(lock_);
  Seg* seg = hash_remove(addr);
  if (seg == nullptr) {
    panic("bad free (not allocated: double free or wrong address)", addr, size, 0);
  }
  if (seg->end - seg->start != size) {
    panic("wrong-size free", addr, size, seg->end - seg->start);
  }
  seg->type = Seg::kFree;
  st_.xfrees++;
  if (Seg* next = seg->knext; next->type == Seg::kFree) {
    freelist_remove(next);
    seg->end = next->end;
    list_remove(next);
    seg_put(next);
  }
  if (Seg* prev = seg->kprev; prev->type == Seg::kFree) {
    freelist_remove(prev);
    seg->start = prev->start;
    list_remove(prev);
    seg_put(prev);
  }
  Seg* span = seg->kprev;
  if (span->type == Seg::kSpan && span->imported && span->start == seg->start &&
      span->end == seg->end) {
    // The whole span is free: give it back to the source at once.
    const std::uintptr_t base = span->start;
    const std::size_t bytes = span->end - span->start;
    list_remove(seg);
    list_remove(span);
    seg_put(seg);
    seg_put(span);
    st_.spans--;
    st_.span_bytes -= bytes;
    st_.releases++;
    g.unlock();
    if (source_ != nullptr) {
      source_->xfree(reinterpret_cast<void*>(base), bytes);
    } else {
      pages_.free(reinterpret_cast<void*>(base), bytes);
    }
    return;
  }
  freelist_insert(seg);
}

bool Vmem::contains_segment(const void* p) const {
  std::lock_guard g(lock_);
  return hash_find(reinterpret_cast<std::uintptr_t>(p)) != nullptr;
}

VmemStats Vmem::stats() const {
  std::lock_guard g(lock_);
  return st_;
}

void Vmem::panic(const char* what, std::uintptr_t addr, std::size_t size,
                 std::size_t expected) const noexcept {
  if (expected != 0) {
    std::fprintf(stderr,
                 "kmbench: slab panic: %s: address 0x%" PRIxPTR ", size %zu (allocated %zu), "
                 "arena %s\n",
                 what, addr, size, expected, name_.c_str());
  } else {
    std::fprintf(stderr, "kmbench: slab panic: %s: address 0x%" PRIxPTR ", size %zu, arena %s\n",
                 what, addr, size, name_.c_str());
  }
  std::abort();
}

}  // namespace kmbench::slab
