// The CPU layer (illumos kmem_cpu_cache_t): a loaded and a previous magazine
// per CPU slot, and the slots known to reclaim. The inline fast paths are
// ObjectCache::alloc_at / free_at in kmem.h; these are the slow paths behind
// them, which swap magazines with the depot or fall through to the slab layer.
#include <thread>

#include "allocators/slab/kmem_internal.h"

namespace kmbench::slab {

// --- CPU slots known to reclaim --------------------------------------------------
//
// A slot's magazines may be flushed by another thread only while no thread
// owns the slot: the owner marks it taken on first use and idle at exit;
// reclaim flushes an idle slot under kFlushing. A live owner is asked to flush
// itself (purge generation) at its next slow path.
namespace {

enum SlotState : int { kIdle = 0, kOwned = 1, kFlushing = 2 };
std::atomic<int> g_slot_state[kMaxCpuSlots];
thread_local bool t_slot_guard_gone = false;

struct SlotGuard {
  ~SlotGuard() {
    if (detail::t_slot >= 0) {
      g_slot_state[detail::t_slot].store(kIdle, std::memory_order_release);
      detail::t_slot = -1;
    }
    t_slot_guard_gone = true;
  }
};
thread_local SlotGuard t_slot_guard;

/// Runs f on slot s's state when no thread owns it; false if a thread does.
template <class F>
bool with_idle_slot(unsigned s, F&& f) {
  int expected = kIdle;
  if (!g_slot_state[s].compare_exchange_strong(expected, kFlushing, std::memory_order_acquire)) {
    return false;
  }
  f();
  g_slot_state[s].store(kIdle, std::memory_order_release);
  return true;
}

}  // namespace

unsigned detail::claim_slot() noexcept {
  const unsigned s = this_cpu_slot();
  for (;;) {
    int v = g_slot_state[s].load(std::memory_order_acquire);
    if (v == kFlushing) {
      std::this_thread::yield();
      continue;
    }
    // kOwned here is stale: the slot's previous thread used the allocator after
    // its guard was gone (thread exit). cpu_slot grants a slot to one live thread.
    if (g_slot_state[s].compare_exchange_weak(v, kOwned, std::memory_order_acq_rel)) {
      break;
    }
  }
  t_slot = static_cast<int>(s);
  if (!t_slot_guard_gone) {
    [[maybe_unused]] SlotGuard& g = t_slot_guard;  // constructs it: released at thread exit
  }
  return s;
}

// --- CPU layer -----------------------------------------------------------------

void ObjectCache::cpu_reload(CpuCache& cc, Magazine* mp, int rounds) noexcept {
  cc.ploaded = cc.loaded;
  cc.prounds = cc.rounds;
  cc.loaded = mp;
  cc.rounds = rounds;
}

void ObjectCache::cpu_flush(CpuCache& cc) noexcept {
  if (cc.loaded != nullptr) {
    magazine_destroy(cc.loaded, cc.rounds);
  }
  if (cc.ploaded != nullptr) {
    magazine_destroy(cc.ploaded, cc.prounds);
  }
  cc.loaded = cc.ploaded = nullptr;
  cc.rounds = cc.prounds = -1;
}

void ObjectCache::cpu_sync(CpuCache& cc) noexcept {
  const std::uint32_t gen = purge_gen_.load(std::memory_order_acquire);
  if (cc.seen_purge != gen) {
    cpu_flush(cc);
    cc.seen_purge = gen;
  }
  if (cc.magsize != 0) {
    const int want = kMagTypes[magtype_.load(std::memory_order_acquire)].size;
    if (cc.magsize != want) {
      cpu_flush(cc);
      cc.magsize = want;
    }
  }
}

void* ObjectCache::alloc_slow(CpuCache& cc, std::size_t size) noexcept {
  bump(cc.alloc_misses);
  for (;;) {
    cpu_sync(cc);
    if (cc.rounds > 0) {
      void* buf = cc.loaded->rounds[--cc.rounds];
      return cc.debug ? alloc_debug(buf, size) : buf;
    }
    if (cc.prounds > 0) {
      cpu_reload(cc, cc.ploaded, cc.prounds);
      continue;
    }
    if (cc.magsize == 0) {
      break;
    }
    // The previous magazine is empty (or absent): swap it for a full one.
    if (Magazine* fmp = depot_exchange(full_, empty_, cc.ploaded, cc.magsize)) {
      cpu_reload(cc, fmp, static_cast<int>(fmp->size));
      continue;
    }
    break;
  }
  void* buf = slab_alloc();
  if (buf == nullptr) {
    alloc_fails_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (cc.debug) {
    return alloc_debug(buf, size);
  }
  if (!construct(buf)) {
    slab_free(buf);
    alloc_fails_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  return buf;
}

void ObjectCache::free_slow(CpuCache& cc, void* buf) noexcept {
  bump(cc.free_misses);
  for (;;) {
    cpu_sync(cc);
    if (static_cast<unsigned>(cc.rounds) < static_cast<unsigned>(cc.magsize)) {
      cc.loaded->rounds[cc.rounds++] = buf;
      return;
    }
    if (cc.prounds == 0) {
      cpu_reload(cc, cc.ploaded, cc.prounds);
      continue;
    }
    if (cc.magsize == 0) {
      break;
    }
    // The previous magazine is full (or absent): swap it for an empty one.
    if (Magazine* emp = depot_exchange(empty_, full_, cc.ploaded, cc.magsize)) {
      cpu_reload(cc, emp, 0);
      continue;
    }
    // No empty magazine in the depot: make one (illumos allocates from the
    // magazine cache of the current type) and try again.
    unsigned mt = 0;
    while (kMagTypes[mt].size != cc.magsize) {
      ++mt;
    }
    auto* emp = static_cast<Magazine*>(kmem_.magazine_cache(mt)->slab_alloc());
    if (emp == nullptr) {
      break;
    }
    emp->next = nullptr;
    emp->size = static_cast<std::uint32_t>(cc.magsize);
    emp->pad = mt;
    depot_free(empty_, emp);
  }
  if (!cc.debug) {
    destruct(buf);
  }
  slab_free(buf);
}

std::size_t ObjectCache::purge_magazines() {
  const unsigned me = current_slot();
  const std::uint32_t gen = purge_gen_.fetch_add(1, std::memory_order_acq_rel) + 1;
  const unsigned slots = cpu_slots_in_use();
  std::size_t n = 0;
  auto flush = [&](CpuCache& cc) {
    n += (cc.loaded != nullptr) + (cc.ploaded != nullptr);
    cpu_flush(cc);
    cc.seen_purge = gen;
  };
  for (unsigned s = 0; s < slots; ++s) {
    CpuCache& cc = cpu_[s];
    if (s == me) {
      flush(cc);
    } else {
      with_idle_slot(s, [&] { flush(cc); });
    }
  }
  return n;
}

}  // namespace kmbench::slab
