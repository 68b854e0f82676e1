// In this process mimalloc owns malloc (it is linked first); the system
// backend must still hand out glibc's blocks.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <mimalloc.h>

#include <string>

#include "allocators/system/system.h"
#include "harness/env/environment.h"

namespace kmbench {
namespace {

std::string object_of(const void* fn) {
  Dl_info info{};
  if (dladdr(fn, &info) == 0 || info.dli_fname == nullptr) {
    return "?";
  }
  return info.dli_fname;
}

TEST(SystemBackend, IsGlibcEvenWhenMimallocOwnsMalloc) {
  ASSERT_NE(process_malloc_owner().find("mimalloc"), std::string::npos)
      << "this test expects mimalloc to own malloc; owner is " << process_malloc_owner();
  EXPECT_NE(object_of(reinterpret_cast<const void*>(glibc().malloc)).find("libc.so"),
            std::string::npos);
  EXPECT_NE(object_of(reinterpret_cast<const void*>(glibc().free)).find("libc.so"),
            std::string::npos);

  SystemBackend sys(BackendConfig{});
  void* p = sys.allocate(1000, 16, kNoTag, kAnyNode);
  void* q = sys.allocate(1000, 4096, kNoTag, kAnyNode);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(q, nullptr);
  EXPECT_FALSE(mi_is_in_heap_region(p)) << "system backend block came from mimalloc";
  EXPECT_FALSE(mi_is_in_heap_region(q));
  EXPECT_GE(sys.usable_size(p, 1000), 1000u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(q) % 4096, 0u);
  void* m = std::malloc(1000);  // the process's malloc: mimalloc's
  EXPECT_TRUE(mi_is_in_heap_region(m));
  std::free(m);
  sys.free(p, 1000);
  sys.free(q, 1000);
}

}  // namespace
}  // namespace kmbench
