// system: glibc malloc, the baseline everyone knows.
//
// glibc is reached through libc.so.6's own symbols (dlsym on its handle), so
// this backend is glibc even in a process whose malloc another allocator owns.
// Its memory is the process heap, not the simulated machine: the one backend
// whose first touches fault, and whose results say so.
// Sanitizer builds are the exception: there the sanitizer's malloc serves it.
#pragma once

#include <cstddef>

#include "allocators/backend.h"
#include "allocators/params.h"

namespace kmbench {

/// glibc's allocation entry points, resolved in libc.so.6 itself.
struct GlibcFunctions {
  void* (*malloc)(std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
  void* (*realloc)(void*, std::size_t) = nullptr;
  void* (*memalign)(std::size_t, std::size_t) = nullptr;
  std::size_t (*usable_size)(void*) = nullptr;
};

/// Resolved once; aborts with a message if libc.so.6 lacks them (never silently falls back).
const GlibcFunctions& glibc() noexcept;

/// Keeps glibc in a steady state: what its heaps took from the kernel stays
/// (M_TRIM_THRESHOLD -1) and no block is mapped alone (M_MMAP_MAX 0), so a
/// block freed and taken again costs no page faults. Process wide, once.
void keep_glibc_memory() noexcept;

class SystemBackend {
 public:
  static constexpr BackendVariant kVariants[] = {
      {"system", "glibc malloc/free/memalign, reached in libc.so.6 itself (the baseline)", ""},
  };
  static constexpr std::uint32_t kFeatures = kFeatureUsableSize | kFeatureRealloc;

  static constexpr std::span<const ParamSpec> kParams{};  // glibc's tunables are the environment's

  /// Throws UsageError on any parameter.
  explicit SystemBackend(const BackendConfig& config) : fn_(glibc()) {
    ParamReader("system", kParams, config);
    keep_glibc_memory();
  }

  void* allocate(std::size_t size, std::size_t align, TagId, NodeId) noexcept {
    // glibc's malloc aligns to 16 on x86_64; memalign only when more is asked.
    return align <= kMinAlign ? fn_.malloc(size) : fn_.memalign(align, size);
  }
  void free(void* p, std::size_t) noexcept { fn_.free(p); }
  /// glibc's realloc; it keeps malloc's 16-byte alignment only, so a block
  /// aligned beyond that moves by allocate, copy and free (glibc has no aligned realloc).
  void* reallocate(void* p, std::size_t old_size, std::size_t new_size, std::size_t align, TagId tag,
                   NodeId node) noexcept {
    if (align > kMinAlign) return copy_reallocate(*this, p, old_size, new_size, align, tag, node);
    return fn_.realloc(p, new_size == 0 ? 1 : new_size);  // realloc(p, 0) would free p
  }
  std::size_t usable_size(void* p, std::size_t) const noexcept { return fn_.usable_size(p); }
  BackendStats stats() const;

 private:
  const GlibcFunctions& fn_;
};

}  // namespace kmbench
