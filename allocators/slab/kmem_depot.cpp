// The depot (illumos kmem_depot_*): full and empty magazines under one lock,
// each list with the working set reaping keeps, and the magazine resize that
// follows contention or traffic. CPU slots come here only when both of their
// magazines are spent, so one lock for the whole cache is enough.
#include "allocators/slab/kmem_internal.h"

namespace kmbench::slab {

void ObjectCache::depot_lock() noexcept {
  if (!depot_lock_.try_lock()) {
    depot_lock_.lock();
    depot_contention_++;
  }
}

Magazine* ObjectCache::depot_exchange(MagList& from, MagList& to, Magazine* give,
                                      int magsize) noexcept {
  depot_lock();
  Magazine* mp = nullptr;
  if (kMagTypes[magtype_.load(std::memory_order_relaxed)].size == magsize) {
    mp = from.list;
    if (mp != nullptr) {
      from.list = mp->next;
      if (--from.total < from.min) {
        from.min = from.total;
      }
      from.alloc++;
      depot_hits_++;
      if (give != nullptr) {
        give->next = to.list;
        to.list = give;
        to.total++;
      }
    } else {
      depot_misses_++;
    }
  }
  bool due = false;
  bool busy = false;
  if ((++exchanges_ & 63) == 0) {
    const std::uint64_t now = now_ns();
    due = now - last_update_ns_ >= kmem_.tunables().update_interval_ns;
    if ((exchanges_ & (kRateWindow - 1)) == 0) {
      const std::uint64_t rate = kmem_.tunables().depot_rate;
      busy = rate > 0 && now - rate_mark_ns_ < kRateWindow * 1'000'000 / rate;
      rate_mark_ns_ = now;
    }
  }
  const unsigned mt = magtype_.load(std::memory_order_relaxed);
  depot_lock_.unlock();
  if (due) {
    update();
  } else if (busy && can_grow(mt)) {
    magazine_resize(mt);
  }
  return mp;
}

void ObjectCache::depot_free(MagList& ml, Magazine* mp) noexcept {
  depot_lock();
  if (static_cast<int>(mp->size) != kMagTypes[magtype_.load(std::memory_order_relaxed)].size) {
    // A magazine of the size before a resize: it does not go back in the depot.
    depot_lock_.unlock();
    magazine_destroy(mp, &ml == &full_ ? static_cast<int>(mp->size) : 0);
    return;
  }
  mp->next = ml.list;
  ml.list = mp;
  ml.total++;
  depot_lock_.unlock();
}

void ObjectCache::magazine_destroy(Magazine* mp, int rounds) noexcept {
  const bool debug = (flags_ & kCacheDebug) != 0;
  for (int i = 0; i < rounds; ++i) {
    void* buf = mp->rounds[i];
    if (!debug) {
      destruct(buf);
    }
    slab_free(buf);
  }
  kmem_.magazine_cache(mp->pad)->slab_free(mp);
}

void ObjectCache::update() {
  bool resize = false;
  unsigned mt;
  {
    std::lock_guard g(depot_lock_);
    for (MagList* ml : {&full_, &empty_}) {
      ml->reaplimit = ml->min;
      ml->min = ml->total;
    }
    mt = magtype_.load(std::memory_order_relaxed);
    const auto contention = static_cast<std::int64_t>(depot_contention_ - depot_contention_prev_);
    resize = can_grow(mt) && contention > kmem_.tunables().depot_contention;
    depot_contention_prev_ = depot_contention_;
    last_update_ns_ = now_ns();
  }
  if (resize) {
    magazine_resize(mt);
  }
}

bool ObjectCache::can_grow(unsigned mt) const noexcept {
  return (flags_ & kCacheNoMagazine) == 0 && mt + 1 < kMagTypeCount && chunksize_ < kMagTypes[mt].maxbuf;
}

void ObjectCache::magazine_resize(unsigned mt) noexcept {
  // illumos kmem_cache_magazine_resize: empty the depot and move to the next
  // size; every slot flushes its old-size magazines at its next slow path.
  Magazine* lists[2] = {nullptr, nullptr};
  {
    std::lock_guard g(depot_lock_);
    if (magtype_.load(std::memory_order_relaxed) != mt) {
      return;  // another thread resized first
    }
    lists[0] = full_.list;
    lists[1] = empty_.list;
    full_ = MagList{};
    empty_ = MagList{};
    magtype_.store(mt + 1, std::memory_order_release);
  }
  resizes_.fetch_add(1, std::memory_order_relaxed);
  for (int l = 0; l < 2; ++l) {
    for (Magazine* mp = lists[l]; mp != nullptr;) {
      Magazine* next = mp->next;
      magazine_destroy(mp, l == 0 ? static_cast<int>(mp->size) : 0);
      mp = next;
    }
  }
}

std::size_t ObjectCache::reap(ReclaimLevel level) {
  std::size_t n = 0;
  if (level == ReclaimLevel::drain) {
    n += purge_magazines();
  }
  for (int l = 0; l < 2; ++l) {
    MagList& ml = l == 0 ? full_ : empty_;
    Magazine* taken = nullptr;
    {
      std::lock_guard g(depot_lock_);
      if (level == ReclaimLevel::trim) {
        ml.reaplimit = ml.min;
        ml.min = ml.total;
      }
      std::uint64_t reap = level == ReclaimLevel::drain ? ml.total
                                                        : std::min(ml.reaplimit, ml.min);
      while (reap-- > 0 && ml.list != nullptr) {
        Magazine* mp = ml.list;
        ml.list = mp->next;
        if (--ml.total < ml.min) {
          ml.min = ml.total;
        }
        mp->next = taken;
        taken = mp;
      }
    }
    while (taken != nullptr) {
      Magazine* next = taken->next;
      magazine_destroy(taken, l == 0 ? static_cast<int>(taken->size) : 0);
      taken = next;
      ++n;
    }
  }
  reaped_.fetch_add(n, std::memory_order_relaxed);
  return n;
}

}  // namespace kmbench::slab
