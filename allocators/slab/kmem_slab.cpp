// The slab layer (illumos kmem_slab_alloc / kmem_slab_free): slabs from the
// cache's arena, coloured so that equal offsets of different slabs fall on
// different cache lines. Small buffers keep the slab header at the end of the
// page and link free buffers through themselves; hashed caches take headers
// and bufctls from the metadata caches. The partial list and the counters are
// under the cache's lock_, which is dropped while a slab is created or
// destroyed (arena and metadata-cache work).
#include "allocators/slab/kmem_internal.h"

namespace kmbench::slab {

ObjectCache::Slab* ObjectCache::slab_of_small(const void* buf) const noexcept {
  const auto end = (reinterpret_cast<std::uintptr_t>(buf) | (slabsize_ - 1)) + 1;
  return reinterpret_cast<Slab*>(end - sizeof(Slab));
}

void ObjectCache::partial_insert(Slab* sp, ListEnd at) noexcept {
  // The list seen from the chosen end: `end` and the link pointing away from
  // it (`away`), or the link pointing back (`back`) and the far end.
  const bool head = at == ListEnd::head;
  Slab*& end = head ? partial_ : partial_tail_;
  Slab*& far_end = head ? partial_tail_ : partial_;
  Slab* Slab::*const away = head ? &Slab::next : &Slab::prev;
  Slab* Slab::*const back = head ? &Slab::prev : &Slab::next;
  sp->*back = nullptr;
  sp->*away = end;
  (end != nullptr ? end->*back : far_end) = sp;
  end = sp;
  partial_slabs_++;
}

void ObjectCache::partial_remove(Slab* sp) noexcept {
  (sp->prev != nullptr ? sp->prev->next : partial_) = sp->next;
  (sp->next != nullptr ? sp->next->prev : partial_tail_) = sp->prev;
  partial_slabs_--;
}

ObjectCache::Slab* ObjectCache::slab_create(std::size_t colour) noexcept {
  char* mem = static_cast<char*>((flags_ & (kCacheQuantum | kCacheMetadata)) != 0
                                     ? arena_.xalloc(slabsize_, arena_.quantum())
                                     : arena_.alloc(slabsize_));
  if (mem == nullptr) {
    return nullptr;
  }
  Slab* sp;
  if (hashed_) {
    sp = static_cast<Slab*>(kmem_.slab_cache_->alloc());
    if (sp == nullptr) {
      slab_mem_free(mem);
      return nullptr;
    }
  } else {
    sp = reinterpret_cast<Slab*>(mem + slabsize_ - sizeof(Slab));
  }
  sp->cache = this;
  sp->base = mem;
  sp->first = mem + colour;
  sp->refcnt = 0;
  sp->chunks = static_cast<std::uint32_t>(chunks_);
  sp->colour = colour;
  sp->head = nullptr;
  const bool debug = (flags_ & kCacheDebug) != 0;
  // Free list in address order: the lowest buffer is handed out first.
  for (std::size_t i = chunks_; i-- > 0;) {
    char* buf = sp->first + i * chunksize_;
    if (debug) {
      auto* w = reinterpret_cast<std::uint64_t*>(buf);
      for (std::size_t k = 0, n = round_up(bufsize_, 8) / 8; k < n; ++k) {
        w[k] = kFreePattern;
      }
      Buftag* bt = buftag(buf);
      bt->redzone = kRedzonePattern;
      bt->size = 0;
      bt->bxstat = reinterpret_cast<std::uintptr_t>(buf) ^ kBufFree;
    }
    if (hashed_) {
      auto* bcp = static_cast<Bufctl*>(kmem_.bufctl_cache_->alloc());
      if (bcp == nullptr) {
        slab_destroy(sp);  // the bufctls made so far, the slab header, the memory
        return nullptr;
      }
      bcp->addr = buf;
      bcp->slab = sp;
      bcp->next = static_cast<Bufctl*>(sp->head);
      sp->head = bcp;
    } else {
      void** link = debug ? &buftag(buf)->link : reinterpret_cast<void**>(buf);
      *link = sp->head;
      sp->head = buf;
    }
  }
  return sp;
}

void ObjectCache::slab_destroy(Slab* sp) noexcept {
  char* mem = sp->base;
  if (hashed_) {
    for (auto* b = static_cast<Bufctl*>(sp->head); b != nullptr;) {
      Bufctl* next = b->next;
      kmem_.bufctl_cache_->free(b);
      b = next;
    }
    kmem_.slab_cache_->free(sp);
  }
  slab_mem_free(mem);
}

void ObjectCache::slab_mem_free(char* mem) noexcept {
  if ((flags_ & (kCacheQuantum | kCacheMetadata)) != 0) {
    arena_.xfree(mem, slabsize_);
  } else {
    arena_.free(mem, slabsize_);
  }
}

void* ObjectCache::slab_alloc() noexcept {
  std::unique_lock g(lock_);
  Slab* sp = partial_;
  if (sp == nullptr) {
    // illumos kmem_slab_create: each new slab starts one alignment further, wrapping at maxcolor.
    std::size_t colour = colour_ + align_;
    if (colour > maxcolor_) {
      colour = 0;
    }
    colour_ = colour;
    g.unlock();
    sp = slab_create(colour);
    if (sp == nullptr) {
      return nullptr;
    }
    g.lock();
    sst_.slab_creates++;
    sst_.slabs++;
    sst_.buf_total += chunks_;
    partial_insert(sp, ListEnd::head);
  }
  // illumos makes a hashed cache's table when it makes the cache (KM_SLEEP);
  // here it is made on the first allocation, and with no page for it the
  // allocation fails as on any page shortage (the slab waits on the partial list).
  if (hashed_ && hash_ == nullptr && !hash_rescale()) {
    return nullptr;
  }
  void* buf;
  if (hashed_) {
    auto* bcp = static_cast<Bufctl*>(sp->head);
    sp->head = bcp->next;
    buf = bcp->addr;
    hash_insert(bcp);
  } else {
    buf = sp->head;
    void** link = (flags_ & kCacheDebug) != 0 ? &buftag(buf)->link : static_cast<void**>(buf);
    sp->head = *link;
  }
  sp->refcnt++;
  sst_.buf_inuse_slab++;
  sst_.slab_allocs++;
  if (sp->refcnt == sp->chunks) {
    partial_remove(sp);
    complete_slabs_++;
  }
  return buf;
}

void ObjectCache::slab_free(void* buf) noexcept {
  std::unique_lock g(lock_);
  Slab* sp;
  if (hashed_) {
    Bufctl* bcp = hash_remove(buf);
    if (bcp == nullptr) {
      g.unlock();
      panic("bad free (buffer not allocated from this cache: double free or wrong size)", buf,
            bufsize_);
    }
    sp = bcp->slab;
    bcp->next = static_cast<Bufctl*>(sp->head);
    sp->head = bcp;
  } else {
    sp = slab_of_small(buf);
    if (sp->cache != this) {
      g.unlock();
      panic("bad free (buffer not from this cache: wrong size or address)", buf, bufsize_);
    }
    void** link = (flags_ & kCacheDebug) != 0 ? &buftag(buf)->link : static_cast<void**>(buf);
    *link = sp->head;
    sp->head = buf;
  }
  if (sp->refcnt == sp->chunks) {
    complete_slabs_--;
    partial_insert(sp, ListEnd::head);
  }
  sp->refcnt--;
  sst_.buf_inuse_slab--;
  sst_.slab_frees++;
  if (sp->refcnt == 0) {
    // No object left in the slab: its memory goes back to the arena at once (illumos).
    partial_remove(sp);
    sst_.slab_destroys++;
    sst_.slabs--;
    sst_.buf_total -= chunks_;
    g.unlock();
    slab_destroy(sp);
    return;
  }
  if (sp->refcnt * 2 < sp->chunks && sp->next != nullptr) {
    // Allocate from the fullest slabs first so nearly empty ones can drain.
    partial_remove(sp);
    partial_insert(sp, ListEnd::tail);
  }
}

std::size_t ObjectCache::colour_of(const void* buf) const {
  const auto* p = static_cast<const char*>(buf);
  if (!hashed_) {
    return static_cast<std::size_t>(slab_of_small(buf)->first - slab_of_small(buf)->base);
  }
  std::lock_guard g(lock_);
  const std::size_t b =
      (reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull & (hash_buckets_ - 1);
  for (Bufctl* bcp = hash_ != nullptr ? hash_[b] : nullptr; bcp != nullptr; bcp = bcp->next) {
    if (bcp->addr == p) {
      return bcp->slab->colour;
    }
  }
  return ~std::size_t{0};
}

std::uint64_t ObjectCache::slab_bytes() const {
  std::lock_guard g(lock_);
  return sst_.slabs * slabsize_;
}

}  // namespace kmbench::slab
