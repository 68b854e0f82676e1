// The bufctl hash (illumos kmem_hash): finds the bufctl of an allocated buffer
// in caches whose slab headers live outside the slab (hashed caches). The
// cache's slab-layer lock covers it.
#include "allocators/slab/kmem_internal.h"

namespace kmbench::slab {

void ObjectCache::hash_insert(Bufctl* bcp) noexcept {
  if (sst_.buf_inuse_slab + 1 > 2 * hash_buckets_) {
    hash_rescale();
  }
  const std::size_t b = (reinterpret_cast<std::uintptr_t>(bcp->addr) >> 4) * 0x9E3779B97F4A7C15ull &
                        (hash_buckets_ - 1);
  bcp->next = hash_[b];
  hash_[b] = bcp;
}

ObjectCache::Bufctl* ObjectCache::hash_remove(const void* buf) noexcept {
  if (hash_ == nullptr) {
    return nullptr;
  }
  const std::size_t b =
      (reinterpret_cast<std::uintptr_t>(buf) >> 4) * 0x9E3779B97F4A7C15ull & (hash_buckets_ - 1);
  for (Bufctl** pp = &hash_[b]; *pp != nullptr; pp = &(*pp)->next) {
    if ((*pp)->addr == buf) {
      Bufctl* bcp = *pp;
      *pp = bcp->next;
      return bcp;
    }
  }
  return nullptr;
}

bool ObjectCache::hash_rescale() noexcept {
  const std::size_t buckets = hash_buckets_ == 0 ? kPage / sizeof(Bufctl*) : hash_buckets_ * 4;
  auto* table = static_cast<Bufctl**>(
      kmem_.pages().alloc(buckets * sizeof(Bufctl*), kPage, kmem_.node()));
  if (table == nullptr) {
    return hash_ != nullptr;  // a full table still works, with longer chains
  }
  for (std::size_t i = 0; i < buckets; ++i) {
    table[i] = nullptr;
  }
  for (std::size_t i = 0; i < hash_buckets_; ++i) {
    for (Bufctl* bcp = hash_[i]; bcp != nullptr;) {
      Bufctl* next = bcp->next;
      const std::size_t b =
          (reinterpret_cast<std::uintptr_t>(bcp->addr) >> 4) * 0x9E3779B97F4A7C15ull & (buckets - 1);
      bcp->next = table[b];
      table[b] = bcp;
      bcp = next;
    }
  }
  if (hash_ != nullptr) {
    kmem_.pages().free(hash_, hash_buckets_ * sizeof(Bufctl*));
  }
  hash_ = table;
  hash_buckets_ = buckets;
  return true;
}

std::uint64_t ObjectCache::hash_bytes() const {
  std::lock_guard g(lock_);
  return hash_buckets_ * sizeof(Bufctl*);
}

}  // namespace kmbench::slab
