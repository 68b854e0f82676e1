// zones: the size classes, and the backend's construction and destruction.
// README.md names the file of each other part.
#include "allocators/zones/zones.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "allocators/zones/zones_internal.h"
#include "base/errors.h"

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

// ---- the backend -----------------------------------------------------------

ZonesBackend::ZonesBackend(const BackendConfig& config) : state_(std::make_unique<State>()) {
  const ParamReader params("zones", kParams, config);
  classes_ = params.choice("classes") == "kalloc" ? kalloc_classes() : kalloc_type_classes();
  State& s = *state_;
  const std::string cache = params.choice("cache");
  s.policy = cache == "auto" ? CachePolicy::automatic : cache == "on" ? CachePolicy::on : CachePolicy::off;
  s.contention_threshold = static_cast<std::uint64_t>(params.integer("contention"));
  s.magazine_size = static_cast<std::uint32_t>(params.integer("magazine"));

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

std::uint64_t ZonesBackend::physical_address(const void* p) const noexcept {
  return state_->machine->phys_of(p);
}

std::uint64_t ZonesBackend::adaptations() const {
  std::uint64_t n = 0;
  for (const auto& z : state_->zones) n += z->caching.load(std::memory_order_relaxed) ? 1 : 0;
  return n;
}

bool ZonesBackend::caching_enabled(unsigned node, unsigned cls) const noexcept {
  return state_->zones[node * classes_.count + cls]->caching.load(std::memory_order_relaxed);
}

}  // namespace kmbench
