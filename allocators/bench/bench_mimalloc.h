// mimalloc's own sized entry points shaped like a backend, for the kernels of
// bench_kernels.h. Only for programs that link mimalloc (bench_zones,
// bench_slab): it then owns the process's malloc.
#pragma once

#include <mimalloc.h>

#include <cstddef>

#include "allocators/backend.h"

namespace kmbench::bench {

/// mi_malloc / mi_free_size, as the mimalloc backend would call them.
struct Mimalloc {
  void* allocate(std::size_t size, std::size_t, TagId, NodeId) noexcept { return mi_malloc(size); }
  void free(void* p, std::size_t size) noexcept { mi_free_size(p, size); }
};

}  // namespace kmbench::bench
