// Debug caches (illumos KMF_BUFTAG | KMF_DEADBEEF | KMF_REDZONE): the buftag
// at the end of each chunk, its checks on every allocation and free, and the
// panic report. Catching a bad free at the call that made it is worth a
// lookup and a pattern fill per operation in these caches only.
#include <cstdio>
#include <cstdlib>

#include "allocators/slab/kmem_internal.h"

namespace kmbench::slab {
namespace {

// The requested size as the buftag keeps it: a value that is not 1 mod 251
// was overwritten, not a different size.
constexpr std::uint32_t size_encode(std::size_t x) { return static_cast<std::uint32_t>(251 * x + 1); }
constexpr bool size_valid(std::uint32_t x) { return x % 251 == 1; }
constexpr std::size_t size_decode(std::uint32_t x) { return (x - 1) / 251; }

}  // namespace

ObjectCache::Buftag* ObjectCache::buftag(const void* buf) const noexcept {
  return reinterpret_cast<Buftag*>(const_cast<char*>(static_cast<const char*>(buf)) + chunksize_ -
                                   sizeof(Buftag));
}

bool ObjectCache::owns(const void* buf) const noexcept {
  const auto* p = static_cast<const char*>(buf);
  if (hashed_) {
    std::lock_guard g(lock_);
    if (hash_ == nullptr) {
      return false;
    }
    const std::size_t b = (reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull &
                          (hash_buckets_ - 1);
    for (Bufctl* bcp = hash_[b]; bcp != nullptr; bcp = bcp->next) {
      if (bcp->addr == p) {
        return true;
      }
    }
    return false;
  }
  const Slab* sp = slab_of_small(buf);
  return sp->cache == this && p >= sp->first &&
         p < sp->first + chunks_ * chunksize_ &&
         static_cast<std::size_t>(p - sp->first) % chunksize_ == 0;
}

void* ObjectCache::alloc_debug(void* buf, std::size_t size) noexcept {
  Buftag* bt = buftag(buf);
  const auto addr = reinterpret_cast<std::uintptr_t>(buf);
  if (bt->bxstat != (addr ^ kBufFree)) {
    panic("buffer state corrupted while free", buf, size);
  }
  const std::size_t words = round_up(bufsize_, 8) / 8;
  auto* w = static_cast<std::uint64_t*>(buf);
  for (std::size_t i = 0; i < words; ++i) {
    if (w[i] != kFreePattern) {
      panic("modified after free", w + i, size);
    }
  }
  if (bt->redzone != kRedzonePattern) {
    panic("redzone overwritten while free", buf, size);
  }
  bt->bxstat = addr ^ kBufAlloc;
  bt->size = size_encode(size);
  if (size < round_up(bufsize_, 8)) {
    static_cast<std::uint8_t*>(buf)[size] = kRedzoneByte;
  }
  // A debug cache constructs on every allocation (illumos KMF_DEADBEEF).
  if (!construct(buf)) {
    for (std::size_t i = 0; i < words; ++i) {
      w[i] = kFreePattern;
    }
    bt->bxstat = addr ^ kBufFree;
    slab_free(buf);
    alloc_fails_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  return buf;
}

void ObjectCache::free_debug(void* buf, std::size_t size) noexcept {
  if (!owns(buf)) {
    panic("free of a block this cache did not allocate (wrong size or bad address)", buf, size);
  }
  Buftag* bt = buftag(buf);
  const auto addr = reinterpret_cast<std::uintptr_t>(buf);
  if (bt->bxstat == (addr ^ kBufFree)) {
    panic("double free", buf, size);
  }
  if (bt->bxstat != (addr ^ kBufAlloc)) {
    panic("buffer state corrupted (bad free)", buf, size);
  }
  if (bt->size != size_encode(size)) {
    if (size_valid(bt->size)) {
      char what[96];
      std::snprintf(what, sizeof what, "wrong-size free (allocated %zu)", size_decode(bt->size));
      panic(what, buf, size);
    }
    panic("redzone overwritten (buftag size)", buf, size);
  }
  if (bt->redzone != kRedzonePattern ||
      (size < round_up(bufsize_, 8) && static_cast<std::uint8_t*>(buf)[size] != kRedzoneByte)) {
    panic("redzone overwritten (write past the end)", buf, size);
  }
  destruct(buf);
  auto* w = static_cast<std::uint64_t*>(buf);
  for (std::size_t i = 0, n = round_up(bufsize_, 8) / 8; i < n; ++i) {
    w[i] = kFreePattern;
  }
  bt->bxstat = addr ^ kBufFree;
}

void ObjectCache::panic(const char* what, const void* buf, std::size_t size) const noexcept {
  std::fprintf(stderr, "kmbench: slab panic: %s: address %p, size %zu, cache %s\n", what, buf,
               size, name_.c_str());
  std::abort();
}

}  // namespace kmbench::slab
