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
  static constexpr std::uint32_t kFeatures = kFeatureUsableSize;

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
  std::size_t usable_size(void* p, std::size_t) const noexcept { return fn_.usable_size(p); }
  BackendStats stats() const;

 private:
  const GlibcFunctions& fn_;
};

}  // namespace kmbench
