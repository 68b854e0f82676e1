// zones: per-CPU caching (a CPU slot's loaded magazines and depot, the biased
// depot lock, the zone's recirculation depot and spare magazines), and the
// slow paths of the inline allocate and free.
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "allocators/zones/zones_internal.h"

namespace kmbench {

/// Gives this CPU's cache its two loaded magazines once its zone caches.
inline void ZonesInternals::arm(ZoneCache& zc, Zone& z) {
  if (zc.alloc_mag != nullptr) {
    return;
  }
  zc.alloc_mag = new_magazine();
  zc.free_mag = new_magazine();
  const std::uint64_t mag_bytes = std::uint64_t{s.magazine_size} * z.element_size;
  const std::uint64_t fits = s.percpu_cap_bytes / std::max<std::uint64_t>(mag_bytes, 1);
  zc.depot_max = static_cast<std::uint32_t>(fits > 2 ? fits - 2 : 0);
  zc.depot = new Magazine*[depot_room(zc)];
  zc.free_limit = s.magazine_size;
}

void ZonesInternals::flush_loaded(PerCpu& pc) {
  pc.flush_requested.store(false, std::memory_order_relaxed);
  for (std::size_t i = 0; i < s.zones.size(); ++i) {
    ZoneCache& zc = pc.cache(cache_index(*s.zones[i]));
    const std::uint32_t a = zc.alloc_cur.load(std::memory_order_relaxed);
    const std::uint32_t f = zc.free_cur.load(std::memory_order_relaxed);
    if (a + f == 0) {
      continue;
    }
    Zone& z = *s.zones[i];
    lock_zone(z);
    empty_into_zone(z, zc.alloc_mag, a);
    empty_into_zone(z, zc.free_mag, f);
    z.mu.unlock();
    zc.alloc_cur.store(0, std::memory_order_relaxed);
    zc.free_cur.store(0, std::memory_order_relaxed);
  }
}

/// Loads a non-empty alloc magazine: the free magazine or this CPU's depot
/// (ZonesBackend::reload), else the recirculation depot, else a fill from
/// the zone's chunks.
inline bool ZonesInternals::refill(ZoneCache& zc, Zone& z) {
  if (b.reload(zc) != 0) {
    return true;
  }
  lock_zone(z);
  if (z.recirc != nullptr && batch_of(zc) > 1) {
    const std::uint32_t moved = recirculate(zc, z);
    z.mu.unlock();
    zc.recirc_hits.store(zc.recirc_hits.load(std::memory_order_relaxed) + moved,
                         std::memory_order_relaxed);
    if (b.reload(zc) != 0) {
      return true;
    }
    lock_zone(z);  // GC took the depot meanwhile
  }
  if (Magazine* full = z.recirc) {
    // A depot too small to batch (large elements): straight into the alloc slot.
    z.recirc = full->next;
    --z.recirc_count;
    z.recirc_min = std::min(z.recirc_min, z.recirc_count);
    zc.alloc_mag->next = z.spare_mags;
    z.spare_mags = zc.alloc_mag;
    z.mu.unlock();
    zc.recirc_hits.store(zc.recirc_hits.load(std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
    zc.alloc_mag = full;
    zc.alloc_cur.store(full->count, std::memory_order_relaxed);
    return true;
  }
  std::uint32_t n = 0;
  void** slots = zc.alloc_mag->elems();
  while (n < s.magazine_size) {
    void* p = take(z);
    if (p == nullptr) {
      break;
    }
    slots[n++] = p;
  }
  z.mu.unlock();
  zc.zone_fills.store(zc.zone_fills.load(std::memory_order_relaxed) + 1,
                      std::memory_order_relaxed);
  zc.alloc_cur.store(n, std::memory_order_relaxed);
  return n != 0;
}

/// Half a depot: how many magazines one hold of the zone lock moves between
/// this CPU's depot and the zone (at least one).
inline std::uint32_t ZonesInternals::batch_of(const ZoneCache& zc) {
  return std::max<std::uint32_t>(zc.depot_max / 2, 1);
}
/// The depot array's size. Full magazines number at most max(depot_max, 1)
/// (a push past depot_max spills at once; recirculation fills at most that
/// far), and a push without an empty adds one slot: two beyond depot_max.
inline std::uint32_t ZonesInternals::depot_room(const ZoneCache& zc) { return zc.depot_max + 2; }

/// XNU's zalloc_cached_depot_recirculate: with the zone lock held, moves up
/// to half a depot of full magazines from the zone's recirculation depot
/// into this CPU's depot, so that one hold of the zone lock serves many
/// reloads; empties that would leave them no room go to the zone's spares.
/// Returns how many it moved.
inline std::uint32_t ZonesInternals::recirculate(ZoneCache& zc, Zone& z) {
  const std::uint32_t room = depot_room(zc);
  OwnerGuard lock(zc.depot_lock);
  const std::uint32_t count = zc.depot_count.load(std::memory_order_relaxed);
  const std::uint32_t fulls = std::max<std::uint32_t>(zc.depot_max, 1);
  const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::uint64_t>(
      {batch_of(zc), z.recirc_count, count < fulls ? fulls - count : 0}));
  while (zc.depot_held + n > room) {
    Magazine* m = zc.depot[--zc.depot_held];
    m->next = z.spare_mags;
    z.spare_mags = m;
  }
  // The empties move up; the full magazines go in at the boundary.
  std::copy_backward(zc.depot + count, zc.depot + zc.depot_held, zc.depot + zc.depot_held + n);
  // The newest spill goes on top, so that reloads take magazines in the
  // order the zone would have handed them out one by one (LIFO keeps a
  // batch's elements in the reverse order of its frees, which prefetches).
  for (std::uint32_t i = n; i-- > 0;) {
    Magazine* m = z.recirc;  // full: only spills come into recirculation
    z.recirc = m->next;
    zc.depot[count + i] = m;
  }
  zc.depot_held += n;
  zc.depot_count.store(count + n, std::memory_order_relaxed);
  z.recirc_count -= n;
  z.recirc_min = std::min(z.recirc_min, z.recirc_count);
  return n;
}

/// Makes room in a full free magazine when ZonesBackend::unload could not:
/// pushes it to this CPU's depot (spilling the older half of the depot to
/// recirculation when the depot passes its cap) and loads an empty one
/// from the depot, else from the zone's spares (taking up to half a depot
/// more for the trades to come, in the same hold), else a new one.
void ZonesInternals::make_room(ZoneCache& zc, Zone& z) {
  if (b.unload(zc) == 0) {
    return;
  }
  Magazine* spill = nullptr;  // newest first, down to spill_tail
  Magazine* spill_tail = nullptr;
  std::uint64_t spilled = 0;
  Magazine* empty = nullptr;
  std::uint32_t room = 0;  // empties the depot can take from the zone's spares
  {
    OwnerGuard lock(zc.depot_lock);
    std::uint32_t count = zc.depot_count.load(std::memory_order_relaxed);
    if (count < zc.depot_held) {
      empty = zc.depot[count];
    } else {
      ++zc.depot_held;  // within depot_room: see there
    }
    zc.depot[count++] = zc.free_mag;
    if (count > zc.depot_max) {
      // Keep the newest half, spill the rest (the oldest, at the bottom).
      const std::uint32_t keep = zc.depot_max / 2;
      spilled = count - keep;
      spill_tail = zc.depot[0];
      for (std::uint32_t i = 0; i < spilled; ++i) {
        Magazine* m = zc.depot[i];
        m->count = s.magazine_size;
        m->next = spill;
        spill = m;
      }
      std::copy(zc.depot + spilled, zc.depot + zc.depot_held, zc.depot);
      zc.depot_held -= static_cast<std::uint32_t>(spilled);
      count = keep;
    }
    zc.depot_count.store(count, std::memory_order_relaxed);
    if (batch_of(zc) > 1) {  // else a depot too small to batch
      room = std::min(depot_room(zc) - zc.depot_held, batch_of(zc));
    }
  }
  Magazine* spares = nullptr;  // for the depot, beyond the one that becomes the free magazine
  std::uint32_t nspares = 0;
  if (spill != nullptr || empty == nullptr) {
    lock_zone(z);
    if (spill != nullptr) {
      spill_tail->next = z.recirc;
      z.recirc = spill;
      z.recirc_count += spilled;
    }
    if (empty == nullptr && (empty = z.spare_mags) != nullptr) {
      z.spare_mags = empty->next;
      // The next trades need empties too: take them in this same hold.
      while (nspares < room && z.spare_mags != nullptr) {
        Magazine* m = z.spare_mags;
        z.spare_mags = m->next;
        m->next = spares;
        spares = m;
        ++nspares;
      }
    }
    z.mu.unlock();
  }
  if (spill != nullptr) {
    zc.depot_spills.store(zc.depot_spills.load(std::memory_order_relaxed) + 1,
                          std::memory_order_relaxed);
  }
  if (spares != nullptr) {
    // GC may have emptied the depot meanwhile; it only ever makes more room.
    OwnerGuard lock(zc.depot_lock);
    for (Magazine* m = spares; m != nullptr; m = m->next) {
      zc.depot[zc.depot_held++] = m;
    }
  }
  zc.free_mag = empty != nullptr ? empty : new_magazine();
  zc.free_cur.store(0, std::memory_order_relaxed);
}

// ---- the biased depot lock ------------------------------------------------

bool zones::detail::process_barrier_available() noexcept {
  static const bool available = [] {
#ifdef SYS_membarrier
    const long commands = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return commands > 0 && (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
           syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
    return false;
#endif
  }();
  return available;
}

void DepotLock::publish_claims() noexcept {
  if (!detail::process_barrier_available()) {
    return;  // every lock stays claimed: owners take the spinlock
  }
#ifdef SYS_membarrier
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
    std::fprintf(stderr, "kmbench: zones: membarrier failed after registration: %s\n",
                 std::strerror(errno));
    std::abort();  // the owners' way in would no longer exclude GC
  }
#endif
}

// The per-CPU magazine exchanges, out of line but short of the slow paths:
// XNU's alloc/free magazine swap, and a trade with this CPU's depot under its
// depot lock (uncontended but for GC), never the zone lock. A CPU keeps the
// empty magazines it trades for full ones: it only ever adds a magazine of
// its own when its depot has no empty one (make_room), so its empties never
// outnumber the depot's cap plus one.

namespace {

/// Runs f under the depot lock, as the slot's owner, when someone has claimed
/// it: out of line, so that the callers below reach it by a tail call and
/// their common path needs no stack frame.
template <class F>
[[gnu::noinline]] std::uint32_t under_claimed_depot_lock(DepotLock& lock, F f) noexcept {
  OwnerGuard guard(lock);
  return f();
}

template <class F>
std::uint32_t under_depot_lock(DepotLock& lock, F f) noexcept {
  if (lock.try_enter_as_owner()) [[likely]] {
    const std::uint32_t r = f();
    lock.leave_as_owner();
    return r;
  }
  return under_claimed_depot_lock(lock, f);
}

}  // namespace

std::uint32_t ZonesBackend::reload(ZoneCache& zc) noexcept {
  if (zc.owner->flush_requested.load(std::memory_order_relaxed)) {
    return 0;  // the slow path flushes first
  }
  if (const std::uint32_t f = zc.free_cur.load(std::memory_order_relaxed); f != 0) {
    std::swap(zc.alloc_mag, zc.free_mag);  // XNU's first refill
    zc.alloc_cur.store(f, std::memory_order_relaxed);
    zc.free_cur.store(0, std::memory_order_relaxed);
    return f;
  }
  if (zc.depot_count.load(std::memory_order_relaxed) == 0) {
    return 0;  // also every zone that does not cache: no lock taken
  }
  return under_depot_lock(zc.depot_lock, [&zc]() noexcept -> std::uint32_t {
    const std::uint32_t n = zc.depot_count.load(std::memory_order_relaxed);
    if (n == 0) {
      return 0;  // GC took the depot meanwhile
    }
    Magazine* full = zc.depot[n - 1];
    zc.depot[n - 1] = zc.alloc_mag;
    zc.depot_count.store(n - 1, std::memory_order_relaxed);
    zc.depot_hits.store(zc.depot_hits.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
    zc.alloc_mag = full;
    zc.alloc_cur.store(zc.free_limit, std::memory_order_relaxed);
    return zc.free_limit;
  });
}

std::uint32_t ZonesBackend::unload(ZoneCache& zc) noexcept {
  const std::uint32_t cur = zc.free_cur.load(std::memory_order_relaxed);
  if (zc.free_limit == 0 || zc.owner->flush_requested.load(std::memory_order_relaxed)) {
    return cur;  // not caching, or the slow path must flush first
  }
  if (zc.alloc_cur.load(std::memory_order_relaxed) == 0) {
    std::swap(zc.alloc_mag, zc.free_mag);
    zc.alloc_cur.store(cur, std::memory_order_relaxed);
    zc.free_cur.store(0, std::memory_order_relaxed);
    return 0;
  }
  if (zc.depot_count.load(std::memory_order_relaxed) >= zc.depot_max) {
    return cur;  // make_room spills the depot
  }
  return under_depot_lock(zc.depot_lock, [&zc, cur]() noexcept -> std::uint32_t {
    const std::uint32_t n = zc.depot_count.load(std::memory_order_relaxed);
    if (n == zc.depot_held) {
      return cur;  // no empty magazine: make_room finds one elsewhere
    }
    Magazine* empty = zc.depot[n];
    zc.depot[n] = zc.free_mag;
    zc.depot_count.store(n + 1, std::memory_order_relaxed);
    zc.free_mag = empty;
    zc.free_cur.store(0, std::memory_order_relaxed);
    return 0;
  });
}

void* ZonesBackend::allocate_slow(std::size_t size, std::size_t align, TagId tag,
                                  NodeId node) noexcept {
  State& s = *state_;
  ZonesInternals in{*this, s};
  if (node >= static_cast<NodeId>(node_count_) || (align & (align - 1)) != 0) {
    return nullptr;
  }
  if (size > kMaxSmall || align > kQuantum) {
    return in.large_alloc(size, align, tag, node);
  }
  PerCpu& pc = in.percpu();
  if (pc.flush_requested.load(std::memory_order_relaxed)) {
    in.flush_loaded(pc);
  }
  const unsigned n = node < 0 ? pc.node : static_cast<unsigned>(node);
  const unsigned number = classes_.number_of(size);
  Zone& z = in.zone(n, number);
  ZoneCache& zc = pc.cache(n << kClassShift | number);
  void* p = nullptr;
  if (z.caching.load(std::memory_order_relaxed)) {
    in.arm(zc, z);
    if (zc.alloc_cur.load(std::memory_order_relaxed) == 0 && !in.refill(zc, z)) {
      s.failed_allocs.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    const std::uint32_t cur = zc.alloc_cur.load(std::memory_order_relaxed) - 1;
    zc.alloc_cur.store(cur, std::memory_order_relaxed);
    p = zc.alloc_mag->elems()[cur];
  } else {
    in.lock_zone(z);
    p = in.take(z);
    z.mu.unlock();
    if (p == nullptr) {
      s.failed_allocs.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
  }
  static_cast<std::uint64_t*>(p)[1] = 0;
  return p;
}

void ZonesBackend::free_slow(void* p, std::size_t size) noexcept {
  State& s = *state_;
  ZonesInternals in{*this, s};
  const PageEntry& e = page_entry(p);
  if (e.number == kLargeClass) {
    in.large_free(p, size);
    return;
  }
  if (e.number == kNoClass) {
    panic("kfree of %p (size %zu): the pointer belongs to no zone", p, size);
  }
  Zone& z = in.zone(e.node, e.number);
  if (size > kMaxSmall || classes_.number_of(size) != e.number) {
    panic("kfree of %p with size %zu (zone %s.%zu) but the element is in zone %s", p, size,
          std::string(classes_.heap).c_str(),
          size > kMaxSmall ? size : std::size_t{classes_.sizes[classes_.class_of(size)]},
          z.name.c_str());
  }
  auto* words = static_cast<std::uint64_t*>(p);
  if (words[1] == cookie(p)) {
    panic("double free of %p (size %zu) in zone %s", p, size, z.name.c_str());
  }
  PerCpu& pc = in.percpu();
  if (pc.flush_requested.load(std::memory_order_relaxed)) {
    in.flush_loaded(pc);
  }
  words[1] = cookie(p);
  if (z.caching.load(std::memory_order_relaxed)) {
    ZoneCache& zc = pc.cache(unsigned{e.node} << kClassShift | e.number);
    in.arm(zc, z);
    if (zc.free_cur.load(std::memory_order_relaxed) >= zc.free_limit) {
      in.make_room(zc, z);
    }
    const std::uint32_t cur = zc.free_cur.load(std::memory_order_relaxed);
    zc.free_mag->elems()[cur] = p;
    zc.free_cur.store(cur + 1, std::memory_order_relaxed);
    return;
  }
  in.lock_zone(z);
  in.put(z, p);
  z.mu.unlock();
}

}  // namespace kmbench
