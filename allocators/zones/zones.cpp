// zones: the backend's slow paths, construction and statistics; the types
// and helpers they share are in zones_internal.h.
#include "allocators/zones/zones.h"

#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <random>
#include <unordered_map>

#include "allocators/errors.h"
#include "allocators/zones/zones_internal.h"

namespace kmbench {
namespace zones {

// ---- size classes ----------------------------------------------------------

namespace {

template <std::size_t N>
ClassTable make_table(std::string_view heap, const std::uint32_t (&sizes)[N]) {
  static_assert(N < kMaxClasses);
  ClassTable t;
  t.heap = heap;
  t.count = N;
  unsigned cls = 0;
  for (std::size_t q = 0; q < t.number_by_quantum.size(); ++q) {
    while (q * kQuantum > sizes[cls]) {
      ++cls;
    }
    t.number_by_quantum[q] = static_cast<std::uint8_t>(cls + 1);
  }
  for (std::size_t i = 0; i < N; ++i) {
    t.sizes[i] = sizes[i];
  }
  return t;
}

constexpr std::uint32_t kKallocSizes[] = {16,   32,   48,   64,   96,   128,  192,
                                          256,  384,  512,  768,  1024, 1536, 2048,
                                          3072, 4096, 6144, 8192, 12288, 16384};
constexpr std::uint32_t kKallocTypeSizes[] = {
    16,  32,  48,  64,   80,   96,   128,  160,  192,  224,  256,   288,   368,  400,
    512, 576, 768, 1024, 1152, 1280, 1664, 2048, 4096, 6144, 8192, 12288, 16384};

}  // namespace

const ClassTable& kalloc_classes() {
  static const ClassTable t = make_table("kalloc", kKallocSizes);
  return t;
}

const ClassTable& kalloc_type_classes() {
  static const ClassTable t = make_table("kalloc_type", kKallocTypeSizes);
  return t;
}

}  // namespace zones

// ---- per-CPU caching -------------------------------------------------------

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

// ---- kalloc_large ----------------------------------------------------------

void* ZonesInternals::large_alloc(std::size_t size, std::size_t align, TagId tag, NodeId node,
                                  std::uint64_t max_phys) {
  const std::size_t bytes =
      (std::max<std::size_t>(size, 1) + kPageBytes - 1) / kPageBytes * kPageBytes;
  if (bytes < size) {
    return nullptr;
  }
  const unsigned n = node < 0 ? percpu().node : static_cast<unsigned>(node);
  void* p = s.machine->alloc_contiguous(bytes, std::max(align, kPageBytes),
                                        static_cast<NodeId>(n), max_phys);
  if (p == nullptr) {
    s.failed_allocs.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  PageEntry e;
  e.large_bytes = bytes;
  e.number = kLargeClass;
  e.node = static_cast<std::uint8_t>(n);
  set_pages(p, 1, e);
  std::lock_guard lock(s.large_mu);
  s.large.emplace(p, ZonesBackend::State::Large{bytes, tag, n});
  s.large_bytes += bytes;
  ++s.large_allocs;
  s.large_bytes_by_tag[tag == kNoTag ? kVmTagKalloc : tag] += bytes;
  return p;
}

void ZonesInternals::large_free(void* p, std::size_t size) {
  const PageEntry& e = b.page_entry(p);
  const std::size_t want =
      (std::max<std::size_t>(size, 1) + kPageBytes - 1) / kPageBytes * kPageBytes;
  if (want != e.large_bytes) {
    panic("kfree of %p with size %zu, but the kalloc_large block holds %" PRIu64 " bytes", p,
          size, e.large_bytes);
  }
  ZonesBackend::State::Large rec{};
  {
    std::lock_guard lock(s.large_mu);
    auto it = s.large.find(p);
    if (it == s.large.end()) {
      panic("kfree of %p (size %zu): not a kalloc_large block", p, size);
    }
    rec = it->second;
    s.large.erase(it);
    s.large_bytes -= rec.bytes;
    s.large_bytes_by_tag[rec.tag == kNoTag ? kVmTagKalloc : rec.tag] -= rec.bytes;
    set_pages(p, 1, kNoPage);
  }
  s.machine->free_contiguous(p, rec.bytes);
}

// ---- zone GC ---------------------------------------------------------------

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

// ---- the backend -----------------------------------------------------------

namespace {

std::uint64_t parse_count(const BackendConfig& config, const char* key, std::uint64_t fallback,
                          std::uint64_t lo, std::uint64_t hi) {
  const std::string text = config.param(key);
  if (text.empty()) {
    return fallback;
  }
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0' || v < lo || v > hi) {
    throw UsageError("zones: parameter " + std::string(key) + "=" + text +
                     " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return v;
}

}  // namespace

ZonesBackend::ZonesBackend(const BackendConfig& config) : state_(std::make_unique<State>()) {
  static constexpr std::string_view kKnown[] = {"classes", "cache", "contention", "magazine"};
  for (const auto& [key, value] : config.params) {
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      throw UsageError("zones: unknown parameter '" + key +
                       "' (known: classes, cache, contention, magazine)");
    }
  }
  const std::string heap = config.param("classes", "kalloc");
  if (heap == "kalloc") {
    classes_ = kalloc_classes();
  } else if (heap == "kalloc_type") {
    classes_ = kalloc_type_classes();
  } else {
    throw UsageError("zones: classes=" + heap + " must be kalloc or kalloc_type");
  }
  State& s = *state_;
  const std::string cache = config.param("cache", "auto");
  if (cache == "auto") {
    s.policy = CachePolicy::automatic;
  } else if (cache == "on") {
    s.policy = CachePolicy::on;
  } else if (cache == "off") {
    s.policy = CachePolicy::off;
  } else {
    throw UsageError("zones: cache=" + cache + " must be auto, on or off");
  }
  s.contention_threshold = parse_count(config, "contention", 10, 1, 1'000'000'000);
  s.magazine_size = static_cast<std::uint32_t>(parse_count(config, "magazine", 8, 1, 1024));

  s.machine = config.machine != nullptr ? config.machine : &physmem::current_machine();
  node_count_ = std::min(s.machine->node_count(), 255u);
  map_base_ = s.machine->memory_base();
  map_pages_ = s.machine->memory_span() / kPageBytes;
  const std::size_t map_bytes = map_pages_ * sizeof(PageEntry);
  void* map = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) {
    throw RunError("zones: cannot reserve " + std::to_string(map_bytes >> 20) +
                   " MiB of address space for the page map: " + std::strerror(errno));
  }
  map_ = static_cast<PageEntry*>(map);  // zero-filled: no zone owns any page yet
  s.machine->populate_page_table(map_, sizeof(PageEntry));
  std::random_device rd;
  secret_ = (std::uint64_t{rd()} << 32 | rd()) | 1;

  for (unsigned n = 0; n < node_count_; ++n) {
    for (unsigned c = 0; c < classes_.count; ++c) {
      auto z = std::make_unique<Zone>();
      z->cls = c;
      z->node = n;
      z->element_size = classes_.sizes[c];
      z->name = std::string(classes_.heap) + "." + std::to_string(z->element_size);
      z->chunk_pages = chunk_pages_for(z->element_size);
      z->elems_per_chunk =
          static_cast<std::uint32_t>(z->chunk_pages * kPageBytes / z->element_size);
      z->bitmap_words = (z->elems_per_chunk + 63) / 64;
      z->reciprocal = ((std::uint64_t{1} << 32) + z->element_size - 1) / z->element_size;
      z->caching.store(s.policy == CachePolicy::on, std::memory_order_relaxed);
      s.zones.push_back(std::move(z));
    }
  }
  unclaimed_ = ZonesInternals::new_percpu(node_count_, 0);
  for (unsigned slot = 0; slot < percpu_.size(); ++slot) {
    percpu_[slot].store(unclaimed_, std::memory_order_relaxed);
    home_caches_[slot].store(unclaimed_->home(), std::memory_order_relaxed);
  }
}

ZonesBackend::~ZonesBackend() {
  State& s = *state_;
  ZonesInternals in{*this, s};
  for (unsigned slot = 0; slot < percpu_.size(); ++slot) {
    PerCpu* pc = percpu_[slot].load(std::memory_order_acquire);
    if (pc == unclaimed_) {
      continue;
    }
    for (std::size_t i = 0; i < s.zones.size(); ++i) {
      ZoneCache& zc = pc->cache(ZonesInternals::cache_index(*s.zones[i]));
      for (Magazine* m : {zc.alloc_mag, zc.free_mag}) {
        if (m != nullptr) {
          in.delete_magazine(m);
        }
      }
      for (std::uint32_t j = 0; j < zc.depot_held; ++j) {
        in.delete_magazine(zc.depot[j]);
      }
      delete[] zc.depot;
    }
    ZonesInternals::delete_percpu(pc, node_count_);
    percpu_[slot].store(unclaimed_, std::memory_order_relaxed);
    home_caches_[slot].store(unclaimed_->home(), std::memory_order_relaxed);
  }
  ZonesInternals::delete_percpu(unclaimed_, node_count_);
  for (auto& zp : s.zones) {
    Zone& z = *zp;
    for (Magazine* list : {z.recirc, z.spare_mags}) {
      while (Magazine* m = list) {
        list = m->next;
        in.delete_magazine(m);
      }
    }
    // Chunks go back whole, whatever is still allocated in them.
    for (ChunkQueue* q : {&z.empty, &z.partial, &z.full}) {
      while (ChunkMeta* c = q->head) {
        c->nfree = z.elems_per_chunk;  // release() keeps the counters consistent
        in.release(z, c);
      }
    }
  }
  for (const auto& [p, rec] : s.large) {
    s.machine->free_contiguous(p, rec.bytes);
  }
  munmap(map_, map_pages_ * sizeof(PageEntry));
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

void* ZonesBackend::allocate_low(std::size_t size, std::size_t align, TagId tag,
                                 NodeId) noexcept {
  if ((align & (align - 1)) != 0) {
    return nullptr;
  }
  ZonesInternals in{*this, *state_};
  return in.large_alloc(size, align, tag, 0, kLowMemoryLimit - 1);
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

std::uint64_t ZonesBackend::physical_address(const void* p) const noexcept {
  return state_->machine->phys_of(p);
}

bool ZonesBackend::caching_enabled(unsigned node, unsigned cls) const noexcept {
  return state_->zones[node * classes_.count + cls]->caching.load(std::memory_order_relaxed);
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

// ---- statistics ------------------------------------------------------------

BackendStats ZonesBackend::stats() const {
  const State& s = *state_;
  BackendStats out;
  const std::string prefix = "backend.zones.";
  auto add = [&](const std::string& name, double v) { out.metrics.push_back({prefix + name, v}); };

  struct ClassTotals {
    double in_use = 0, free = 0, cached = 0, chunks = 0, pages = 0, allocs = 0, frees = 0,
           contentions = 0, caching = 0;
  };
  std::vector<ClassTotals> per_class(classes_.count);
  std::vector<double> node_pages(node_count_, 0);
  double zone_pages = 0, depot_hits = 0, recirc_hits = 0, zone_fills = 0, depot_spills = 0,
         caching_zones = 0, recirc_mags = 0;
  for (std::size_t i = 0; i < s.zones.size(); ++i) {
    Zone& z = *s.zones[i];
    double cached = 0;
    for (const auto& slot : percpu_) {
      PerCpu* pc = slot.load(std::memory_order_acquire);
      if (pc == unclaimed_) {
        continue;
      }
      const ZoneCache& zc = pc->cache(ZonesInternals::cache_index(z));
      cached += zc.alloc_cur.load(std::memory_order_relaxed) +
                zc.free_cur.load(std::memory_order_relaxed) +
                double(zc.depot_count.load(std::memory_order_relaxed)) * s.magazine_size;
      depot_hits += zc.depot_hits.load(std::memory_order_relaxed);
      recirc_hits += zc.recirc_hits.load(std::memory_order_relaxed);
      zone_fills += zc.zone_fills.load(std::memory_order_relaxed);
      depot_spills += zc.depot_spills.load(std::memory_order_relaxed);
    }
    std::lock_guard lock(z.mu);
    for (Magazine* m = z.recirc; m != nullptr; m = m->next) {
      cached += m->count;
    }
    recirc_mags += z.recirc_count;
    const double chunks = double(z.empty.count + z.partial.count + z.full.count);
    ClassTotals& t = per_class[z.cls];
    t.in_use += double(z.elems_total - z.elems_free) - cached;
    t.free += z.elems_free;
    t.cached += cached;
    t.chunks += chunks;
    t.pages += chunks * z.chunk_pages;
    t.allocs += z.zone_allocs;
    t.frees += z.zone_frees;
    t.contentions += z.contentions;
    t.caching += z.caching.load(std::memory_order_relaxed) ? 1 : 0;
    caching_zones += z.caching.load(std::memory_order_relaxed) ? 1 : 0;
    node_pages[z.node] += chunks * z.chunk_pages;
    zone_pages += chunks * z.chunk_pages;
  }
  for (unsigned c = 0; c < classes_.count; ++c) {
    const ClassTotals& t = per_class[c];
    const std::string z = std::string(classes_.heap) + "." + std::to_string(classes_.sizes[c]) + ".";
    add(z + "element_size", classes_.sizes[c]);
    add(z + "chunk_pages", chunk_pages_for(classes_.sizes[c]));
    add(z + "elements_in_use", t.in_use);
    add(z + "elements_free", t.free);
    add(z + "elements_cached", t.cached);
    add(z + "chunks", t.chunks);
    add(z + "pages", t.pages);
    add(z + "zone_allocs", t.allocs);
    add(z + "zone_frees", t.frees);
    add(z + "lock_contentions", t.contentions);
    add(z + "caching_nodes", t.caching);
  }
  add("cache.depot_hits", depot_hits);
  add("cache.recirc_hits", recirc_hits);
  add("cache.zone_fills", zone_fills);
  add("cache.depot_spills", depot_spills);
  add("cache.recirc_magazines", recirc_mags);
  add("cache.zones_caching", caching_zones);
  add("cache.magazine_size", s.magazine_size);
  add("cache.magazines", double(s.magazines.load(std::memory_order_relaxed)));
  add("gc.trims", double(s.gc_trims.load(std::memory_order_relaxed)));
  add("gc.drains", double(s.gc_drains.load(std::memory_order_relaxed)));
  add("gc.bytes_returned", double(s.gc_bytes_returned.load(std::memory_order_relaxed)));
  add("failed_allocs", double(s.failed_allocs.load(std::memory_order_relaxed)));
  for (unsigned n = 0; n < node_count_; ++n) {
    add("node." + std::to_string(n) + ".zone_pages", node_pages[n]);
  }
  std::uint64_t large_bytes = 0, large_blocks = 0;
  {
    std::lock_guard lock(s.large_mu);
    large_bytes = s.large_bytes;
    large_blocks = s.large.size();
    add("kalloc_large.allocations_in_use", double(s.large.size()));
    add("kalloc_large.allocs", double(s.large_allocs));
    add("kalloc_large.bytes_in_use", double(s.large_bytes));
    // VM tag accounting: zone pages count under KALLOC, large blocks under their caller's tag.
    std::map<TagId, std::uint64_t> tags = s.large_bytes_by_tag;
    tags[ZonesInternals::kVmTagKalloc] += static_cast<std::uint64_t>(zone_pages) * kPageBytes;
    for (const auto& [tag, bytes] : tags) {
      add("vmtag." + std::to_string(tag) + ".bytes", double(bytes));
    }
  }
  out.mapped_bytes = static_cast<std::uint64_t>(zone_pages) * kPageBytes + large_bytes;
  out.resident_bytes = out.mapped_bytes;
  out.live_blocks = static_cast<std::int64_t>(large_blocks);
  out.live_bytes = static_cast<std::int64_t>(large_bytes);
  for (unsigned c = 0; c < classes_.count; ++c) {
    out.live_blocks += static_cast<std::int64_t>(per_class[c].in_use);
    out.live_bytes += static_cast<std::int64_t>(per_class[c].in_use) * classes_.sizes[c];
  }
  out.metadata_bytes =
      s.chunk_meta_bytes.load(std::memory_order_relaxed) +
      s.magazines.load(std::memory_order_relaxed) *
          (sizeof(Magazine) + s.magazine_size * sizeof(void*)) +
      s.zones.size() * sizeof(Zone);
  const std::size_t percpu_bytes =
      sizeof(PerCpu) + (std::size_t{node_count_} << kClassShift) * sizeof(ZoneCache);
  out.metadata_bytes += percpu_bytes;  // unclaimed_
  for (const auto& slot : percpu_) {
    if (slot.load(std::memory_order_acquire) != unclaimed_) {
      out.metadata_bytes += percpu_bytes;
    }
  }
  return out;
}

double ZonesBackend::metric(std::string_view name) const {
  for (const Metric& m : stats().metrics) {
    if (m.name == name) {
      return m.value;
    }
  }
  return 0;
}

}  // namespace kmbench
