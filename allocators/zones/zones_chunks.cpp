// zones: chunk sizing, and a zone's chunks (zone lock held): growing the zone
// by a chunk, giving an empty one back, taking an element. Returning an
// element (`put`, the free bitmap's double-free check) is in zones_internal.h.
#include <algorithm>
#include <new>

#include "allocators/zones/zones_internal.h"

namespace kmbench {
namespace zones {

unsigned chunk_pages_for(std::uint32_t element_size) noexcept {
  unsigned best = 1;
  std::uint64_t best_waste = kPageBytes % element_size;
  for (unsigned pages = 2; pages <= kMaxChunkPages; ++pages) {
    const std::uint64_t bytes = pages * kPageBytes;
    if (bytes < element_size) {
      continue;
    }
    const std::uint64_t waste = bytes % element_size;
    // waste / bytes < best_waste / best_bytes, without division; a chunk too
    // small for one element always loses.
    const bool best_fits = best * kPageBytes >= element_size;
    if (!best_fits || waste * (best * kPageBytes) < best_waste * bytes) {
      best = pages;
      best_waste = waste;
    }
  }
  return best;
}

}  // namespace zones

inline bool ZonesInternals::grow(Zone& z) {
  const std::size_t bytes = std::size_t{z.chunk_pages} * kPageBytes;
  void* mem;
  if ((z.chunk_pages & (z.chunk_pages - 1)) == 0) {
    mem = s.machine->alloc_pages(static_cast<unsigned>(__builtin_ctz(z.chunk_pages)),
                                 static_cast<NodeId>(z.node));
  } else {
    mem = s.machine->alloc_contiguous(bytes, kPageBytes, static_cast<NodeId>(z.node));
  }
  if (mem == nullptr) {
    return false;
  }
  const std::size_t meta_bytes = sizeof(ChunkMeta) + z.bitmap_words * sizeof(std::uint64_t);
  auto* c = new (::operator new(meta_bytes)) ChunkMeta;
  s.chunk_meta_bytes.fetch_add(meta_bytes, std::memory_order_relaxed);
  c->zone = &z;
  c->base = static_cast<char*>(mem);
  c->nfree = z.elems_per_chunk;
  std::uint64_t* bits = c->bitmap();
  for (std::uint32_t w = 0; w < z.bitmap_words; ++w) {
    const std::uint32_t first = w * 64;
    const std::uint32_t n = std::min<std::uint32_t>(64, z.elems_per_chunk - first);
    bits[w] = n == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
  }
  c->list = ChunkList::empty;
  z.empty.push(c);
  PageEntry e;
  e.chunk = c;
  e.number = static_cast<std::uint8_t>(z.cls + 1);
  e.node = static_cast<std::uint8_t>(z.node);
  set_pages(mem, z.chunk_pages, e);
  z.elems_total += z.elems_per_chunk;
  z.elems_free += z.elems_per_chunk;
  return true;
}

std::size_t ZonesInternals::release(Zone& z, ChunkMeta* c) {
  queue(z, c->list).remove(c);
  const std::size_t bytes = std::size_t{z.chunk_pages} * kPageBytes;
  set_pages(c->base, z.chunk_pages, kNoPage);
  if ((z.chunk_pages & (z.chunk_pages - 1)) == 0) {
    s.machine->free_pages(c->base, static_cast<unsigned>(__builtin_ctz(z.chunk_pages)));
  } else {
    s.machine->free_contiguous(c->base, bytes);
  }
  z.elems_total -= z.elems_per_chunk;
  z.elems_free -= z.elems_per_chunk;
  z.free_min = std::min(z.free_min, z.elems_free);
  ++z.chunks_freed;
  const std::size_t meta_bytes = sizeof(ChunkMeta) + z.bitmap_words * sizeof(std::uint64_t);
  s.chunk_meta_bytes.fetch_sub(meta_bytes, std::memory_order_relaxed);
  c->~ChunkMeta();
  ::operator delete(c);
  return bytes;
}

void* ZonesInternals::take(Zone& z) {
  ChunkMeta* c = z.partial.head ? z.partial.head : z.empty.head;
  if (c == nullptr) {
    if (!grow(z)) {
      return nullptr;
    }
    c = z.empty.head;
  }
  std::uint64_t* bits = c->bitmap();
  std::uint32_t w = c->hint;
  while (bits[w] == 0) {
    ++w;
  }
  const unsigned bit = static_cast<unsigned>(__builtin_ctzll(bits[w]));
  bits[w] &= bits[w] - 1;
  c->hint = w;
  --c->nfree;
  relist(z, c);
  --z.elems_free;
  z.free_min = std::min(z.free_min, z.elems_free);
  ++z.zone_allocs;
  return c->base + static_cast<std::size_t>(w * 64 + bit) * z.element_size;
}

}  // namespace kmbench
