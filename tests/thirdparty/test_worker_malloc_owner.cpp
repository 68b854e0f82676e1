// In a worker, the allocator it is built for owns the process's malloc and
// the environment of every result says so. Not under sanitizers: they own malloc.
#include <gtest/gtest.h>

#include <cstdlib>

#include "allocators/registry.h"
#include "harness/env/environment.h"

namespace kmbench {
namespace {

TEST(WorkerProcess, AllocatorOwnsMallocAndTheEnvironmentSaysSo) {
#if defined(KMBENCH_WORKER_JEMALLOC)
  const std::string expected = "libjemalloc";
  JemallocBackend b{BackendConfig{}};
  void* mine = b.allocate(100, kMinAlign, kNoTag, 0);
  void* theirs = std::malloc(100);
  EXPECT_NE(JemallocBackend::lookup_arena(theirs), JemallocBackend::lookup_arena(mine))
      << "the process's malloc must not take the backend's arena";
  std::free(theirs);
  b.free(mine, 100);
#else
  const std::string expected = "libmimalloc";
  void* theirs = std::malloc(100);
  EXPECT_TRUE(mi_is_in_heap_region(theirs));
  std::free(theirs);
#endif
  EXPECT_NE(process_malloc_owner().find(expected), std::string::npos) << process_malloc_owner();
  EXPECT_NE(environment_json()["process_malloc"].get<std::string>().find(expected),
            std::string::npos);
}

}  // namespace
}  // namespace kmbench
