// Private to the kmem sources (kmem*.cpp): the layouts behind ObjectCache's
// nested types and the helpers more than one of its layers uses. The public
// header is kmem.h; nothing outside allocators/slab/kmem*.cpp includes this.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "allocators/slab/kmem.h"

namespace kmbench::slab {

/// A slab (illumos kmem_slab_t): at the end of its page for small buffers,
/// from the slab-header cache for hashed ones.
struct ObjectCache::Slab {
  ObjectCache* cache;
  char* base;    // the slab's memory
  char* first;   // base + colour: the first buffer
  void* head;    // free buffers (in-page) or free bufctls (hashed)
  std::uint32_t refcnt;
  std::uint32_t chunks;
  Slab* next;
  Slab* prev;
  std::size_t colour;
};

/// An external buffer control (illumos kmem_bufctl_t).
struct ObjectCache::Bufctl {
  Bufctl* next;
  char* addr;
  Slab* slab;
};

/// Debug tag at the end of each chunk (illumos kmem_buftag_t, with the size).
struct ObjectCache::Buftag {
  std::uint64_t redzone;
  std::uint32_t size;      // requested size, encoded
  std::uint32_t pad;
  void* link;              // free-list link of in-page slabs in debug caches
  std::uintptr_t bxstat;   // buffer address ^ kBufAlloc / kBufFree
};
static_assert(offsetof(Magazine, rounds) == 16);

// Buftag states and fill patterns: the slab layer lays them down when it
// creates a debug slab, the debug checks read them back.
inline constexpr std::uint64_t kBufAlloc = 0xa110c8edull;  // illumos KMEM_BUFTAG_ALLOC
inline constexpr std::uint64_t kBufFree = 0xf4eef4eeull;   // illumos KMEM_BUFTAG_FREE
inline constexpr std::uint64_t kRedzonePattern = 0xfeedfacefeedfaceull;
inline constexpr std::uint8_t kRedzoneByte = 0xbb;
inline constexpr std::uint64_t kFreePattern = 0xdeadbeefdeadbeefull;

inline std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

inline std::size_t round_up(std::size_t x, std::size_t a) { return (x + a - 1) & ~(a - 1); }

}  // namespace kmbench::slab
