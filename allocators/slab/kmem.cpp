// Object caches: creation and teardown, the constructor and destructor calls,
// statistics, and Kmem (one node's arena, metadata caches and cache list).
// The layers have files of their own: kmem_cpu.cpp, kmem_depot.cpp,
// kmem_slab.cpp, with kmem_hash.cpp and kmem_debug.cpp beside the slab layer.
#include "allocators/slab/kmem.h"

#include <bit>

#include "allocators/slab/kmem_internal.h"

namespace kmbench::slab {

// --- construction ----------------------------------------------------------------

ObjectCache::ObjectCache(Kmem& kmem, std::string name, std::size_t size, std::size_t align,
                         Constructor ctor, Destructor dtor, void* priv, Vmem& arena,
                         unsigned flags)
    : kmem_(kmem),
      name_(std::move(name)),
      bufsize_(size),
      align_(align < kMinAlign ? kMinAlign : align),
      ctor_(ctor),
      dtor_(dtor),
      priv_(priv),
      arena_(arena),
      flags_(flags) {
  if ((flags_ & kCacheNoTouch) != 0) {
    flags_ &= ~kCacheDebug;
  }
  const bool debug = (flags_ & kCacheDebug) != 0;
  chunksize_ = round_up(bufsize_, align_);
  if (debug) {
    chunksize_ = round_up(round_up(bufsize_, 8) + sizeof(Buftag), align_);
  }
  const std::size_t quantum = arena_.quantum();
  hashed_ = (flags_ & kCacheNoTouch) != 0 ||
            ((flags_ & kCacheNoHash) == 0 && bufsize_ >= quantum / 8) ||
            chunksize_ + sizeof(Slab) > quantum;
  if (!hashed_) {
    slabsize_ = quantum;
    chunks_ = (slabsize_ - sizeof(Slab)) / chunksize_;
    maxcolor_ = (slabsize_ - sizeof(Slab)) % chunksize_;
  } else if ((flags_ & kCacheQuantum) != 0) {
    // illumos VMEM_QCACHE_SLABSIZE: 1 << highbit(3 * qcache_max).
    slabsize_ = std::size_t{1} << std::bit_width(3 * kmem_.tunables().qcache_max);
    chunks_ = slabsize_ / chunksize_;
    maxcolor_ = slabsize_ % chunksize_;
  } else {
    // The slab size that wastes least, looking at 1..8 buffers per slab.
    std::size_t best = 0, min_waste = ~std::size_t{0};
    for (std::size_t n = 1; n <= 8; ++n) {
      const std::size_t slab = round_up(chunksize_ * n, quantum);
      const std::size_t fit = slab / chunksize_;
      const std::size_t waste = (slab % chunksize_) / fit;
      if (waste < min_waste) {
        min_waste = waste;
        best = slab;
      }
    }
    slabsize_ = best;
    chunks_ = slabsize_ / chunksize_;
    maxcolor_ = slabsize_ % chunksize_;
  }
  maxcolor_ &= ~(align_ - 1);
  unsigned mt = 0;
  if (const int start = kmem_.tunables().magazine_rounds; start > 0) {
    while (mt + 1 < kMagTypeCount && kMagTypes[mt].size < start) {
      ++mt;
    }
  } else {
    while (mt + 1 < kMagTypeCount && chunksize_ <= kMagTypes[mt].minbuf) {
      ++mt;
    }
  }
  magtype_.store(mt, std::memory_order_relaxed);
  const bool magazines = (flags_ & kCacheNoMagazine) == 0 && kmem_.tunables().magazines;
  for (CpuCache& cc : cpu_) {
    cc.debug = debug;
    cc.magsize = magazines ? kMagTypes[mt].size : 0;
  }
  last_update_ns_ = now_ns();
  rate_mark_ns_ = last_update_ns_;
}

ObjectCache::~ObjectCache() {
  if (abandon_) {
    if (hash_ != nullptr) {
      kmem_.pages().free(hash_, hash_buckets_ * sizeof(Bufctl*));
    }
    return;
  }
  // Nobody uses the cache any more: every slot's magazines can be flushed here.
  for (CpuCache& cc : cpu_) {
    cpu_flush(cc);
  }
  std::lock_guard g(depot_lock_);
  for (MagList* ml : {&full_, &empty_}) {
    while (Magazine* mp = ml->list) {
      ml->list = mp->next;
      magazine_destroy(mp, ml == &full_ ? static_cast<int>(mp->size) : 0);
    }
  }
  if (hash_ != nullptr) {
    kmem_.pages().free(hash_, hash_buckets_ * sizeof(Bufctl*));
  }
  // Slabs still holding objects go back with the arena's spans.
}

// --- constructors and destructors ---------------------------------------------------

bool ObjectCache::construct(void* buf) noexcept {
  if (ctor_ == nullptr) {
    return true;
  }
  constructs_.fetch_add(1, std::memory_order_relaxed);
  return ctor_(buf, priv_) == 0;
}

void ObjectCache::destruct(void* buf) noexcept {
  if (dtor_ != nullptr) {
    destructs_.fetch_add(1, std::memory_order_relaxed);
    dtor_(buf, priv_);
  }
}

// --- statistics ------------------------------------------------------------------

CacheStats ObjectCache::stats() const {
  CacheStats s;
  {
    std::lock_guard g(lock_);
    s = sst_;
  }
  for (const CpuCache& cc : cpu_) {
    s.cpu_alloc_misses += cc.alloc_misses.load(std::memory_order_relaxed);
    s.cpu_free_misses += cc.free_misses.load(std::memory_order_relaxed);
  }
  {
    std::lock_guard g(depot_lock_);
    s.depot_full = full_.total;
    s.depot_empty = empty_.total;
    for (const Magazine* mp = full_.list; mp != nullptr; mp = mp->next) {
      s.buf_depot += mp->size;
    }
    s.depot_hits = depot_hits_;
    s.depot_misses = depot_misses_;
    s.depot_contention = depot_contention_;
  }
  s.magazine_resizes = resizes_.load(std::memory_order_relaxed);
  s.reaped_magazines = reaped_.load(std::memory_order_relaxed);
  s.alloc_fails = alloc_fails_.load(std::memory_order_relaxed);
  s.constructs = constructs_.load(std::memory_order_relaxed);
  s.destructs = destructs_.load(std::memory_order_relaxed);
  s.magsize = (flags_ & kCacheNoMagazine) != 0 || !kmem_.tunables().magazines ? 0 : magazine_size();
  s.bufsize = bufsize_;
  s.chunksize = chunksize_;
  s.slabsize = slabsize_;
  s.align = align_;
  s.maxcolor = maxcolor_;
  std::lock_guard g(lock_);
  s.color = colour_;
  return s;
}

// --- Kmem -----------------------------------------------------------------------

Kmem::Kmem(PageSource& pages, NodeId node, const KmemTunables& tunables, std::string arena_name)
    : pages_(pages), node_(node), tunables_(tunables) {
  if (arena_name.empty()) {
    arena_name = "kmem_va" + (node > 0 ? "-n" + std::to_string(node) : std::string());
  }
  arena_ = std::make_unique<Vmem>(std::move(arena_name), kPage, nullptr, pages_, node,
                                  tunables_.import_min);
  auto meta = [&](std::string name, std::size_t size, unsigned flags) {
    auto* cp = new ObjectCache(*this, std::move(name), size, 0, nullptr, nullptr, nullptr, *arena_,
                               flags | kCacheNoHash | kCacheMetadata);
    meta_caches_.push_back(cp);
    return cp;
  };
  for (unsigned i = 0; i < kMagTypeCount; ++i) {
    mag_caches_[i] = meta("kmem_magazine_" + std::to_string(kMagTypes[i].size),
                          offsetof(Magazine, rounds) + sizeof(void*) * kMagTypes[i].size,
                          kCacheNoMagazine);
  }
  slab_cache_ = meta("kmem_slab_cache", sizeof(ObjectCache::Slab), 0);
  bufctl_cache_ = meta("kmem_bufctl_cache", sizeof(ObjectCache::Bufctl), 0);
  std::vector<ObjectCache*> qcaches;
  for (std::size_t size = kPage; size <= tunables_.qcache_max; size += kPage) {
    auto* cp = new ObjectCache(*this, arena_->name() + "_" + std::to_string(size), size, kPage,
                               nullptr, nullptr, nullptr, *arena_,
                               kCacheQuantum | kCacheNoTouch);
    qcaches.push_back(cp);
  }
  arena_->set_quantum_caches(qcaches);
}

Kmem::~Kmem() {
  for (auto it = user_caches_.rbegin(); it != user_caches_.rend(); ++it) {
    delete *it;
  }
  // The internal caches feed each other (quantum-cache slabs need bufctls whose
  // slabs come from quantum caches): drop them whole, then every span at once.
  std::vector<ObjectCache*> internal = meta_caches_;
  internal.insert(internal.end(), arena_->quantum_caches().begin(), arena_->quantum_caches().end());
  for (ObjectCache* cp : internal) {
    cp->abandon_ = true;
    delete cp;
  }
  arena_->release_all();
}

ObjectCache* Kmem::create_cache(std::string name, std::size_t size, std::size_t align,
                                Constructor ctor, Destructor dtor, void* priv, unsigned flags) {
  if (tunables_.debug) {
    flags |= kCacheDebug;
  }
  auto* cp = new ObjectCache(*this, std::move(name), size == 0 ? 1 : size, align, ctor, dtor, priv,
                             *arena_, flags);
  std::lock_guard g(list_lock_);
  user_caches_.push_back(cp);
  return cp;
}

void Kmem::destroy_cache(ObjectCache* cp) {
  {
    std::lock_guard g(list_lock_);
    std::erase(user_caches_, cp);
  }
  delete cp;
}

std::vector<ObjectCache*> Kmem::caches() const {
  std::vector<ObjectCache*> out;
  {
    std::lock_guard g(list_lock_);
    out = user_caches_;
  }
  out.push_back(slab_cache_);
  out.push_back(bufctl_cache_);
  for (ObjectCache* cp : mag_caches_) {
    out.push_back(cp);
  }
  for (ObjectCache* cp : arena_->quantum_caches()) {
    out.push_back(cp);
  }
  return out;
}

std::size_t Kmem::reclaim(ReclaimLevel level) {
  const std::uint64_t before = pages_.held_bytes();
  std::vector<ObjectCache*> users;
  {
    std::lock_guard g(list_lock_);
    users = user_caches_;
  }
  // Layer order: object caches free slabs into the metadata and quantum
  // caches, which free into the arena, which releases whole spans.
  for (ObjectCache* cp : users) {
    cp->reap(level);
  }
  // Quantum-cache slabs hold bufctls and slab headers whose own slabs sit in
  // the arena: a few passes until nothing more comes back.
  for (int pass = 0; pass < 4; ++pass) {
    const std::uint64_t held = pages_.held_bytes();
    std::size_t magazines = slab_cache_->reap(level) + bufctl_cache_->reap(level);
    for (ObjectCache* cp : arena_->quantum_caches()) {
      magazines += cp->reap(level);
    }
    if (magazines == 0 && pages_.held_bytes() == held) {
      break;
    }
  }
  const std::uint64_t after = pages_.held_bytes();
  return before > after ? static_cast<std::size_t>(before - after) : 0;
}

std::uint64_t Kmem::metadata_bytes() const {
  std::uint64_t bytes = arena_->stats().seg_metadata_bytes;
  bytes += slab_cache_->slab_bytes() + bufctl_cache_->slab_bytes();
  for (ObjectCache* cp : mag_caches_) {
    bytes += cp->slab_bytes();
  }
  for (ObjectCache* cp : caches()) {
    bytes += cp->hash_bytes();
  }
  return bytes;
}

}  // namespace kmbench::slab
