// The KPI when memory runs short: calls that may wait have the backend
// reclaim and try again; OSMalloc_noblock and _nowait never reclaim and
// return NULL at once (docs/pressure.md, "The KPI under pressure").
#include <gtest/gtest.h>

#include <IOKit/IOLib.h>
#include <libkern/OSMalloc.h>

#include <cstring>
#include <vector>

#include "allocators/physmem/physmem.h"
#include "kmbench/kpi.h"

namespace kmbench {
namespace {

/// A small machine of its own, outliving every backend the KPI opens on it.
physmem::Machine& small_machine() {
  static physmem::Machine machine([] {
    physmem::TopologySpec spec;
    spec.node_bytes = 64ull << 20;
    return spec;
  }());
  return machine;
}

class KpiPressure : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    BackendConfig config;
    config.machine = &small_machine();
    kpi::use_backend(GetParam(), config);
  }
  void TearDown() override { kpi::use_backend("system"); }
};

TEST_P(KpiPressure, OnlyCallsThatMayWaitReclaimWhenTheMachineIsShort) {
  physmem::Machine& m = small_machine();
  OSMallocTag tag = OSMalloc_Tagalloc("kmbench.test.pressure", OSMT_DEFAULT);
  // Memory the backend caches: 2 KiB blocks allocated, then all freed.
  std::vector<void*> blocks;
  for (int i = 0; i < 2000; ++i) blocks.push_back(IOMalloc(2048));
  for (void* p : blocks) IOFree(p, 2048);
  m.drain_all_quiescent();
  m.balloon_inflate(0, m.stats().nodes[0].total_pages);  // every free page
  ASSERT_EQ(m.alloc_pages(0, 0), nullptr) << "the machine has nothing free";

  const kpi::ReclaimStats before = kpi::reclaim_stats();
  // What the backend has free of its own for 96-byte blocks goes first, without reclaim.
  std::vector<void*> small;
  while (void* q = OSMalloc_noblock(96, tag)) {
    small.push_back(q);
    ASSERT_LT(small.size(), 1u << 20);
  }
  EXPECT_EQ(OSMalloc_nowait(96, tag), nullptr);
  EXPECT_EQ(kpi::reclaim_stats().reclaims, before.reclaims) << "noblock and nowait never reclaim";

  void* p = OSMalloc(96, tag);
  ASSERT_NE(p, nullptr) << "OSMalloc reclaims the cached 2 KiB blocks' memory and gets a page";
  const kpi::ReclaimStats after = kpi::reclaim_stats();
  EXPECT_GE(after.reclaims, before.reclaims + 1);
  EXPECT_LE(after.reclaims, before.reclaims + 2) << "at most a trim and a drain";
  EXPECT_EQ(after.rescued, before.rescued + 1);
  OSFree(p, 96, tag);
  for (void* q : small) OSFree(q, 96, tag);

  m.balloon_deflate(0, m.balloon_pages(0));
  OSMalloc_Tagfree(tag);
  EXPECT_EQ(kpi::live_blocks(), 0);
}

// Reclaim that gave nothing back is not run again on every failure: the
// thread's next failures skip it for a while (allocators/direct_reclaim.h),
// as the replay's blocking allocations do.
TEST_P(KpiPressure, FailuresAfterReclaimThatGaveNothingBackSkipIt) {
  physmem::Machine& m = small_machine();
  m.drain_all_quiescent();
  m.balloon_inflate(0, m.stats().nodes[0].total_pages);  // every free page
  const kpi::ReclaimStats before = kpi::reclaim_stats();
  std::vector<void*> got;
  for (int i = 0; i < 200; ++i) {  // a new page's worth each: nothing the backend holds serves them
    if (void* p = IOMalloc(64 * 1024)) got.push_back(p);
  }
  const kpi::ReclaimStats after = kpi::reclaim_stats();
  EXPECT_TRUE(got.empty());
  EXPECT_GE(after.reclaims, before.reclaims + 2) << "the first failure runs both passes";
  EXPECT_EQ(after.rescued, before.rescued);
  EXPECT_GT(after.skipped, before.skipped) << "later failures, close behind it, skip reclaim";
  EXPECT_EQ(after.reclaims - before.reclaims + 2 * (after.skipped - before.skipped), 2u * 200u)
      << "each failure ran both passes or skipped both";
  for (void* p : got) IOFree(p, 64 * 1024);
  m.balloon_deflate(0, m.balloon_pages(0));
}

INSTANTIATE_TEST_SUITE_P(ReclaimingBackends, KpiPressure, ::testing::Values("zones", "slab"));

// buddy keeps the zones' watermarks: a call that may wait is served down to
// min, while OSMalloc_noblock, as GFP_ATOMIC, may take the reserve below it.
TEST(KpiPressureBuddy, OSMallocNoblockTakesTheReserveCallsThatMayWaitAreKeptFrom) {
  BackendConfig config;
  config.machine = &small_machine();
  kpi::use_backend("buddy", config);
  OSMallocTag tag = OSMalloc_Tagalloc("kmbench.test.reserve", OSMT_DEFAULT);
  std::vector<void*> waited;
  while (void* p = OSMalloc(2048, tag)) {
    waited.push_back(p);
    ASSERT_LT(waited.size(), 1u << 20);
  }
  ASSERT_GT(waited.size(), 1000u);
  EXPECT_EQ(IOMalloc(2048), nullptr) << "a call that may wait stops at min";
  std::vector<void*> reserve;
  while (void* p = OSMalloc_noblock(2048, tag)) {
    std::memset(p, 0x5a, 2048);
    reserve.push_back(p);
    ASSERT_LT(reserve.size(), 1u << 20);
  }
  EXPECT_GT(reserve.size(), 0u) << "OSMalloc_noblock takes pages below min";
  EXPECT_LT(reserve.size(), waited.size()) << "the reserve is a part of memory, not more of it";
  for (void* p : reserve) OSFree(p, 2048, tag);
  for (void* p : waited) OSFree(p, 2048, tag);
  OSMalloc_Tagfree(tag);
  EXPECT_EQ(kpi::live_blocks(), 0);
  kpi::use_backend("system");
}

}  // namespace
}  // namespace kmbench
