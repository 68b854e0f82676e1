// Emulated panics: what the debug buftags and vmem's segment hash catch, as
// one line on stderr (what, address, size, cache) and abort().
#include <gtest/gtest.h>

#include <cstring>

#include "tests/slab/slab_test_util.h"

namespace kmbench {
namespace {

using testing::make_slab;

class SlabDeath : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(SlabDeath, DoubleFreeIsCaughtByTheBuftag) {
  auto b = make_slab("debug=on");
  void* p = b->allocate(64, kMinAlign, kNoTag, kAnyNode);
  b->free(p, 64);
  EXPECT_DEATH(b->free(p, 64),
               "kmbench: slab panic: double free: address 0x[0-9a-f]+, size 64, cache kmalloc-64");
}

TEST_F(SlabDeath, WrongSizeWithinTheSameCacheNamesTheAllocatedSize) {
  auto b = make_slab("debug=on");
  void* p = b->allocate(20, kMinAlign, kNoTag, kAnyNode);
  EXPECT_DEATH(b->free(p, 30),
               "slab panic: wrong-size free \\(allocated 20\\): address 0x[0-9a-f]+, size 30, "
               "cache kmalloc-32");
}

TEST_F(SlabDeath, WrongSizeNamingAnotherCacheIsCaught) {
  auto b = make_slab("debug=on");
  void* p = b->allocate(20, kMinAlign, kNoTag, kAnyNode);
  EXPECT_DEATH(b->free(p, 100), "slab panic: free of a block this cache did not allocate.*"
                                "size 100, cache kmalloc-112");
}

TEST_F(SlabDeath, WriteAfterFreeIsCaughtAtTheNextAllocation) {
  auto b = make_slab("debug=on");
  auto* p = static_cast<char*>(b->allocate(128, kMinAlign, kNoTag, kAnyNode));
  b->free(p, 128);
  p[40] = 1;
  EXPECT_DEATH(b->allocate(128, kMinAlign, kNoTag, kAnyNode),
               "slab panic: modified after free: .*cache kmalloc-128");
}

TEST_F(SlabDeath, OverrunPastTheRequestedSizeHitsTheRedzone) {
  auto b = make_slab("debug=on");
  auto* p = static_cast<char*>(b->allocate(100, kMinAlign, kNoTag, kAnyNode));
  std::memset(p, 0, 101);
  EXPECT_DEATH(b->free(p, 100), "slab panic: redzone overwritten .*size 100, cache kmalloc-112");
}

TEST_F(SlabDeath, LargeDoubleAndWrongSizeFreesAreCaughtWithoutDebug) {
  auto b = make_slab();
  void* p = b->allocate(1 << 20, kMinAlign, kNoTag, kAnyNode);
  EXPECT_DEATH(b->free(p, 300000),
               "slab panic: wrong-size free: address 0x[0-9a-f]+, size 303104 \\(allocated "
               "1048576\\), arena kmem_va");
  b->free(p, 1 << 20);
  EXPECT_DEATH(b->free(p, 1 << 20), "slab panic: bad free \\(not allocated: double free.*arena");
}

TEST_F(SlabDeath, ObjectCacheDoubleFreeInDebugMode) {
  auto b = make_slab("debug=on");
  slab::ObjectCache* cp = b->create_cache("widget", 72);
  void* o = cp->alloc();
  cp->free(o);
  EXPECT_DEATH(cp->free(o), "slab panic: double free: .*size 72, cache widget");
}

}  // namespace
}  // namespace kmbench
