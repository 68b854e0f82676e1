// zones: zone GC (`reclaim`): trim what lies beyond each zone's working set,
// or drain everything cached.
#include <vector>

#include "allocators/zones/zones_internal.h"

namespace kmbench {

/// Moves every magazine of every per-CPU depot into its zone's list, by
/// zone index. The depot locks are claimed all at once, so that one process
/// barrier serves them all (see DepotLock).
std::vector<Magazine*> ZonesInternals::collect_depots() {
  std::vector<Magazine*> out(s.zones.size(), nullptr);
  std::vector<ZoneCache*> caches;
  for (const auto& slot : b.percpu_) {
    PerCpu* pc = slot.load(std::memory_order_acquire);
    if (pc == b.unclaimed_) {
      continue;
    }
    for (std::size_t i = 0; i < s.zones.size(); ++i) {
      caches.push_back(&pc->cache(cache_index(*s.zones[i])));
    }
  }
  for (ZoneCache* zc : caches) {
    zc->depot_lock.claim();
  }
  DepotLock::publish_claims();
  for (std::size_t k = 0; k < caches.size(); ++k) {
    ZoneCache& zc = *caches[k];
    Magazine*& list = out[k % s.zones.size()];  // caches run slot by slot, zone by zone
    zc.depot_lock.await_owner();
    const std::uint32_t full = zc.depot_count.load(std::memory_order_relaxed);
    for (std::uint32_t j = 0; j < zc.depot_held; ++j) {
      Magazine* m = zc.depot[j];
      m->count = j < full ? s.magazine_size : 0;
      m->next = list;
      list = m;
    }
    zc.depot_count.store(0, std::memory_order_relaxed);
    zc.depot_held = 0;
    zc.depot_lock.release();
  }
  return out;
}

inline std::uint64_t ZonesInternals::ema(std::uint64_t old, std::uint64_t sample) {
  return (3 * old + sample + 3) / 4;
}

/// Trims or drains zone i; `depots` are magazines taken from per-CPU depots.
inline std::size_t ZonesInternals::gc_zone(std::size_t i, ReclaimLevel level, Magazine* depots) {
  Zone& z = *s.zones[i];
  std::size_t returned = 0;
  Magazine* dead = nullptr;
  lock_zone(z);
  while (Magazine* m = depots) {
    depots = m->next;
    empty_into_zone(z, m, m->count);
    m->next = dead;
    dead = m;
  }
  std::uint64_t keep_mags = 0;
  std::uint64_t keep_free = 0;
  if (level == ReclaimLevel::trim) {
    z.ws_recirc_ema = ema(z.ws_recirc_ema, z.recirc_count - z.recirc_min);
    z.ws_free_ema = ema(z.ws_free_ema, z.elems_free - z.free_min);
    keep_mags = z.ws_recirc_ema;
    keep_free = z.ws_free_ema;
  } else {
    z.ws_recirc_ema = 0;
    z.ws_free_ema = 0;
  }
  while (z.recirc_count > keep_mags) {
    Magazine* m = z.recirc;
    z.recirc = m->next;
    --z.recirc_count;
    empty_into_zone(z, m, m->count);
    m->next = dead;
    dead = m;
  }
  while (z.empty.head != nullptr && z.elems_free >= keep_free + z.elems_per_chunk) {
    returned += release(z, z.empty.head);
  }
  if (level == ReclaimLevel::drain || z.recirc_count <= keep_mags) {
    while (Magazine* m = z.spare_mags) {
      z.spare_mags = m->next;
      m->next = dead;
      dead = m;
    }
  }
  z.recirc_min = z.recirc_count;
  z.free_min = z.elems_free;
  z.mu.unlock();
  while (Magazine* m = dead) {
    dead = m->next;
    delete_magazine(m);
  }
  return returned;
}

std::size_t ZonesBackend::reclaim(ReclaimLevel level) {
  State& s = *state_;
  ZonesInternals in{*this, s};
  if (level == ReclaimLevel::drain) {
    const unsigned mine = this_cpu_slot();
    for (unsigned slot = 0; slot < kMaxCpuSlots; ++slot) {
      PerCpu* pc = percpu_[slot].load(std::memory_order_acquire);
      if (pc == unclaimed_) {
        continue;
      }
      if (slot == mine) {
        in.flush_loaded(*pc);
      } else {
        pc->flush_requested.store(true, std::memory_order_relaxed);
      }
    }
  }
  std::vector<Magazine*> depots =
      level == ReclaimLevel::drain ? in.collect_depots() : std::vector<Magazine*>(s.zones.size());
  std::size_t returned = 0;
  for (std::size_t i = 0; i < s.zones.size(); ++i) {
    returned += in.gc_zone(i, level, depots[i]);
  }
  (level == ReclaimLevel::trim ? s.gc_trims : s.gc_drains).fetch_add(1, std::memory_order_relaxed);
  s.gc_bytes_returned.fetch_add(returned, std::memory_order_relaxed);
  return returned;
}

}  // namespace kmbench
