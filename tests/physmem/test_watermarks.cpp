// Zone watermarks and reclaim: the marks as Linux computes them, requests that
// keep them (a blocking one stops at min, an atomic one dips into the reserve),
// kswapd woken below low and running the shrinkers until the zone is above
// high or a pass frees nothing, and direct reclaim by a request that may wait.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "allocators/buddy/buddy.h"
#include "allocators/physmem/physmem.h"
#include "base/errors.h"

namespace kmbench::physmem {
namespace {

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr unsigned kBlockOrder = kPcpOrders;  // blocks of 16 pages: past the per-CPU lists, straight to the buddy
constexpr std::uint64_t kBlockPages = 1u << kBlockOrder;

TopologySpec one_node(std::uint64_t node_bytes) {
  TopologySpec spec;
  spec.kind = TopologySpec::Kind::synthetic;
  spec.text = "pack:1 [numa] core:1 pu:1";
  spec.node_bytes = node_bytes;
  return spec;
}

const ZoneStats& zone(const PageStats& s, ZoneKind kind) {
  for (const ZoneStats& z : s.nodes[0].zones) {
    if (z.kind == kind) return z;
  }
  ADD_FAILURE() << "no zone " << zone_name(kind);
  return s.nodes[0].zones.front();
}

/// Waits (polling, for a generous time) until pred() holds; false if it never did.
bool eventually(const std::function<bool()>& pred) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// A 16 MiB node: one DMA zone of 3840 pages, with the marks the test sets.
struct SmallMachine {
  Machine m{one_node(16 * kMiB)};
  std::vector<void*> held;  // blocks of kBlockPages taken to bring the zone down

  explicit SmallMachine(ZoneWatermarks marks) { m.set_zone_watermarks(0, ZoneKind::dma, marks); }
  ~SmallMachine() {
    for (void* p : held) m.free_pages(p, kBlockOrder);
  }
  std::uint64_t free_pages() const { return zone(m.stats(), ZoneKind::dma).free_pages; }
  /// Takes blocks, watermarks aside, until the zone has `free` pages left. pre: free is a multiple of kBlockPages.
  void bring_down_to(std::uint64_t free) {
    while (free_pages() > free) {
      void* p = m.alloc_pages(kBlockOrder, 0, ~0ull, kGfpNoWatermarks);
      ASSERT_NE(p, nullptr);
      held.push_back(p);
    }
    ASSERT_EQ(free_pages(), free);
  }
};

TEST(Watermarks, MinFreeKbytesIsLinuxsSquareRootClamped) {
  EXPECT_EQ(default_min_free_kbytes((4ull << 30) / kPageSize), 8192u) << "4 GiB: sqrt(16 x 4194304 KiB)";
  EXPECT_EQ(default_min_free_kbytes((1ull << 30) / kPageSize), 4096u);
  EXPECT_EQ(default_min_free_kbytes(16), 128u) << "the floor";
  EXPECT_EQ(default_min_free_kbytes((16ull << 40) / kPageSize), 262144u) << "the ceiling";
  EXPECT_EQ(default_min_free_kbytes(16128), 1015u) << "floor of sqrt(1032192) = 1015.97";
}

TEST(Watermarks, ZoneMarksAreItsShareOfMinAndTheScaledGap) {
  // 1 GiB of 4 GiB, min_free_kbytes 8192: min 2048 pages / 4 = 512; the gap
  // is max(512 / 4, 262144 x 10 / 10000) = 262.
  EXPECT_EQ(zone_watermarks(262144, 1048576, 8192, 10), (ZoneWatermarks{512, 774, 1036}));
  // A larger scale factor widens the gap: 262144 x 100 / 10000 = 2621.
  EXPECT_EQ(zone_watermarks(262144, 1048576, 8192, 100), (ZoneWatermarks{512, 3133, 5754}));
  // A small zone: min / 4 is the gap.
  EXPECT_EQ(zone_watermarks(3840, 16128, 1015, 10), (ZoneWatermarks{60, 75, 90}));
  EXPECT_EQ(zone_watermarks(0, 0, 1015, 10), (ZoneWatermarks{}));
}

TEST(Watermarks, MachineSetsEveryZonesMarksFromItsSizes) {
  Machine m(one_node(64 * kMiB));  // DMA [1 MiB, 16 MiB): 3840 pages, DMA32 [16 MiB, 64 MiB): 12288
  const PageStats s = m.stats();
  EXPECT_EQ(s.min_free_kbytes, 1015u);
  EXPECT_EQ(s.watermark_scale_factor, kDefaultWatermarkScaleFactor);
  const ZoneStats& dma = zone(s, ZoneKind::dma);
  const ZoneStats& dma32 = zone(s, ZoneKind::dma32);
  EXPECT_EQ(dma.managed_pages, 3840u);
  EXPECT_EQ(dma32.managed_pages, 12288u);
  EXPECT_EQ(dma.wmark, (ZoneWatermarks{60, 75, 90}));
  EXPECT_EQ(dma32.wmark, zone_watermarks(12288, 16128, 1015, 10));
  EXPECT_EQ(dma32.wmark, (ZoneWatermarks{192, 240, 288}));

  m.set_watermark_params(4096, 200);
  const ZoneStats after = zone(m.stats(), ZoneKind::dma32);
  EXPECT_EQ(after.wmark, zone_watermarks(12288, 16128, 4096, 200));
  EXPECT_EQ(m.stats().min_free_kbytes, 4096u);

  TopologySpec spec = one_node(64 * kMiB);
  spec.min_free_kbytes = 2048;
  spec.watermark_scale_factor = 50;
  Machine tuned(spec);
  EXPECT_EQ(zone(tuned.stats(), ZoneKind::dma32).wmark, zone_watermarks(12288, 16128, 2048, 50));
}

TEST(Watermarks, BadParametersAreRefusedClearly) {
  Machine m(one_node(64 * kMiB));
  const ZoneWatermarks before = zone(m.stats(), ZoneKind::dma32).wmark;
  EXPECT_THROW(m.set_watermark_params(0, kMaxWatermarkScaleFactor + 1), UsageError);
  EXPECT_THROW(m.set_watermark_params(64 * 1024, 10), UsageError) << "all of the node's memory held back";
  EXPECT_THROW(m.set_watermark_params(1ull << 40, 10), UsageError) << "more than the machine has";
  EXPECT_EQ(zone(m.stats(), ZoneKind::dma32).wmark, before) << "a refused setting changes nothing";
  try {
    m.set_watermark_params(0, 5000);
    ADD_FAILURE() << "accepted a scale factor of 5000";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("watermark_scale_factor 5000"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m.set_zone_watermarks(0, ZoneKind::dma32, {300, 200, 400}), UsageError) << "min above low";
  EXPECT_THROW(m.set_zone_watermarks(0, ZoneKind::dma32, {1, 2, 20000}), UsageError) << "high above the zone";
  EXPECT_THROW(m.set_zone_watermarks(0, ZoneKind::normal, {1, 2, 3}), UsageError) << "no Normal zone";
  EXPECT_THROW(m.set_zone_watermarks(3, ZoneKind::dma, {1, 2, 3}), UsageError) << "no node 3";
  TopologySpec spec = one_node(64 * kMiB);
  spec.watermark_scale_factor = 3001;
  EXPECT_THROW(Machine{spec}, UsageError);
}

TEST(Watermarks, BlockingRequestsStopAtMinAtomicOnesDipIntoTheReserve) {
  SmallMachine s({400, 800, 1200});
  const std::uint64_t all = s.free_pages();
  std::vector<void*> pages;
  while (void* p = s.m.alloc_pages(0, 0, ~0ull, kGfpKernel)) pages.push_back(p);
  EXPECT_EQ(pages.size(), all - 400);
  EXPECT_EQ(s.free_pages(), 400u) << "the last min pages stay free";
  EXPECT_EQ(s.m.alloc_contiguous(kPageSize, kPageSize, 0, ~0ull, kGfpKernel), nullptr);

  // ALLOC_HIGH and ALLOC_HARDER: min 400 - 200 = 200, less a quarter = 150.
  std::vector<void*> atomic;
  while (void* p = s.m.alloc_pages(0, 0, ~0ull, kGfpAtomic)) atomic.push_back(p);
  EXPECT_EQ(atomic.size(), 400u - 150u);
  EXPECT_EQ(s.free_pages(), 150u);
  EXPECT_EQ(s.m.alloc_pages(0, 0, ~0ull, kGfpAtomic), nullptr) << "the reserve is empty";
  EXPECT_EQ(s.m.alloc_pages(0, 0, ~0ull, kGfpKernel), nullptr);

  const NodeStats n = s.m.stats().nodes[0];
  EXPECT_GT(n.below_low_allocs, 0u);
  EXPECT_GT(n.reserve_allocs, 0u);
  EXPECT_GE(n.min_failures, 4u);
  EXPECT_EQ(n.kswapd_wakeups, 0u) << "no shrinker, no reclaimer";

  // Without watermarks (what the rest of the tree asks) the last pages go too.
  EXPECT_NE(s.m.alloc_pages(0, 0), nullptr);
  for (void* p : pages) s.m.free_pages(p, 0);
  for (void* p : atomic) s.m.free_pages(p, 0);
  s.m.drain_all_quiescent();
}

TEST(Watermarks, BuddyBackendsNoblockCallsGetTheReserve) {
  Machine m(one_node(16 * kMiB));
  m.set_zone_watermarks(0, ZoneKind::dma, {400, 800, 1200});
  BackendConfig config;
  config.machine = &m;
  std::vector<void*> blocks;
  {
    BuddyBackend b(config);
    while (void* p = b.allocate(100, 16, kNoTag, 0)) blocks.push_back(p);
    EXPECT_EQ(zone(m.stats(), ZoneKind::dma).free_pages, 400u);
    void* reserve = b.allocate_nowait(100, 16, kNoTag, 0);
    ASSERT_NE(reserve, nullptr);
    void* low = b.allocate_low_nowait(2 * kPageSize, 16, kNoTag, 0);
    ASSERT_NE(low, nullptr);
    EXPECT_LT(zone(m.stats(), ZoneKind::dma).free_pages, 400u);
    b.free(reserve, 100);
    b.free_low(low, 2 * kPageSize);
    for (void* p : blocks) b.free(p, 100);
    b.reclaim(ReclaimLevel::drain);
  }
  EXPECT_GT(m.stats().nodes[0].reserve_allocs, 0u);
}

TEST(Kswapd, WokenBelowLowReclaimsUntilTheZoneIsAboveHigh) {
  SmallMachine s({400, 800, 1200});
  s.bring_down_to(496);  // below low, above min
  std::mutex lock;
  std::vector<void*> cache(s.held.end() - 60, s.held.end());  // the "cache" the shrinker gives back
  s.held.resize(s.held.size() - 60);
  std::atomic<unsigned> calls{0};
  const std::uint64_t id = s.m.register_shrinker([&](ReclaimLevel) -> std::size_t {
    std::lock_guard<std::mutex> hold(lock);
    calls.fetch_add(1);
    std::size_t bytes = 0;
    for (int i = 0; i < 8 && !cache.empty(); ++i) {
      s.m.free_pages(cache.back(), kBlockOrder);
      cache.pop_back();
      bytes += kBlockPages * kPageSize;
    }
    return bytes;
  });
  void* p = s.m.alloc_pages(kBlockOrder, 0, ~0ull, kGfpKernel);  // fails at low: wakes kswapd, served at min
  ASSERT_NE(p, nullptr);
  s.held.push_back(p);
  EXPECT_TRUE(eventually([&] { return s.free_pages() >= 1200; })) << s.free_pages() << " pages free";
  s.m.unregister_shrinker(id);  // waits for kswapd's pass, if one still runs
  const NodeStats n = s.m.stats().nodes[0];
  EXPECT_GE(s.free_pages(), 1200u);
  EXPECT_EQ(n.kswapd_wakeups, 1u);
  EXPECT_GE(n.kswapd_passes, (1200u - 480u) / (8 * kBlockPages));
  EXPECT_EQ(n.kswapd_reclaimed_pages, std::uint64_t{calls.load()} * 8 * kBlockPages);
  EXPECT_EQ(n.kswapd_failed_runs, 0u);
  EXPECT_FALSE(cache.empty()) << "it stopped at high, not when the cache ran dry";
  for (void* q : cache) s.m.free_pages(q, kBlockOrder);
}

TEST(Kswapd, StopsWhenAPassFreesNothingAndLeavesAHopelessNode) {
  SmallMachine s({100, 800, 1200});
  s.bring_down_to(496);
  std::atomic<unsigned> calls{0};
  const std::uint64_t id = s.m.register_shrinker([&](ReclaimLevel) -> std::size_t {
    calls.fetch_add(1);
    return 0;
  });
  const auto failed_runs = [&] { return s.m.stats().nodes[0].kswapd_failed_runs; };
  for (unsigned run = 1; run <= 16; ++run) {
    void* p = s.m.alloc_pages(kBlockOrder, 0, ~0ull, kGfpKernel);
    ASSERT_NE(p, nullptr);
    s.held.push_back(p);
    ASSERT_TRUE(eventually([&] { return failed_runs() == run; })) << "run " << run;
    EXPECT_EQ(s.m.stats().nodes[0].kswapd_passes, run) << "one pass a run: it freed nothing";
    EXPECT_EQ(calls.load(), 2 * run) << "trim, then drain";
  }
  // Sixteen fruitless runs: kswapd leaves the node until it has memory above low again.
  void* p = s.m.alloc_pages(kBlockOrder, 0, ~0ull, kGfpKernel);
  ASSERT_NE(p, nullptr);
  s.held.push_back(p);
  EXPECT_EQ(s.m.stats().nodes[0].kswapd_wakeups, 16u);
  s.m.unregister_shrinker(id);
  EXPECT_EQ(calls.load(), 32u);
}

TEST(Kswapd, ABalloonLeavingAZoneBelowLowWakesIt) {
  SmallMachine s({400, 800, 1200});
  std::atomic<unsigned> calls{0};
  const std::uint64_t id = s.m.register_shrinker([&](ReclaimLevel) -> std::size_t {
    calls.fetch_add(1);
    return 0;
  });
  EXPECT_EQ(s.m.balloon_inflate(0, 1000), 1000u);
  EXPECT_EQ(s.m.stats().nodes[0].kswapd_wakeups, 0u) << "still above low";
  EXPECT_EQ(s.m.balloon_inflate(0, 2500), 2500u);
  EXPECT_EQ(s.m.stats().nodes[0].kswapd_wakeups, 1u);
  EXPECT_TRUE(eventually([&] { return s.m.stats().nodes[0].kswapd_failed_runs == 1; }));
  s.m.unregister_shrinker(id);
  EXPECT_EQ(s.m.balloon_deflate(0, 3500), 3500u);
}

TEST(Kswapd, DirectReclaimRunsTheShrinkersForABlockingRequestOnly) {
  SmallMachine s({400, 800, 1200});
  s.bring_down_to(400);  // at min: a blocking request finds nothing it may take
  std::mutex lock;
  std::vector<void*> cache(s.held.end() - 4, s.held.end());
  s.held.resize(s.held.size() - 4);
  std::atomic<unsigned> direct{0};
  const std::uint64_t id = s.m.register_shrinker([&](ReclaimLevel) -> std::size_t {
    if (current_is_kswapd()) return 0;  // only the allocating thread's reclaim gives memory back here
    direct.fetch_add(1);
    std::lock_guard<std::mutex> hold(lock);
    if (cache.empty()) return 0;
    s.m.free_pages(cache.back(), kBlockOrder);
    cache.pop_back();
    return kBlockPages * kPageSize;
  });
  ASSERT_EQ(s.free_pages(), 400u);
  // An atomic request takes the reserve and never reclaims.
  void* atomic = s.m.alloc_pages(kBlockOrder, 0, ~0ull, kGfpAtomic);
  ASSERT_NE(atomic, nullptr);
  EXPECT_EQ(direct.load(), 0u);
  s.m.free_pages(atomic, kBlockOrder);
  // A blocking one below min reclaims itself, then takes what came back.
  void* p = s.m.alloc_pages(kBlockOrder, 0, ~0ull, kGfpKernel);
  ASSERT_NE(p, nullptr);
  s.held.push_back(p);
  EXPECT_EQ(direct.load(), 1u);
  const NodeStats n = s.m.stats().nodes[0];
  EXPECT_EQ(n.direct_reclaims, 1u);
  EXPECT_EQ(n.direct_reclaimed_pages, kBlockPages);
  s.m.unregister_shrinker(id);
  for (void* q : cache) s.m.free_pages(q, kBlockOrder);
}

TEST(Kswapd, ThreadsAllocatingWhileItReclaimsKeepTheBooksStraight) {
  Machine m(one_node(16 * kMiB));
  m.set_zone_watermarks(0, ZoneKind::dma, {256, 1024, 1536});
  std::mutex lock;
  std::vector<void*> cache;  // blocks the threads park, the shrinker frees
  const std::uint64_t id = m.register_shrinker([&](ReclaimLevel level) -> std::size_t {
    std::lock_guard<std::mutex> hold(lock);
    std::size_t bytes = 0;
    const std::size_t keep = level == ReclaimLevel::trim ? cache.size() / 2 : 0;
    while (cache.size() > keep) {
      m.free_pages(cache.back(), 1);
      cache.pop_back();
      bytes += 2 * kPageSize;
    }
    return bytes;
  });
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<void*> mine;
      const std::uint32_t gfp = t % 2 == 0 ? kGfpKernel : kGfpAtomic;
      for (int i = 0; i < 4000; ++i) {
        if (void* p = m.alloc_pages(1, 0, ~0ull, gfp)) mine.push_back(p);
        if (mine.size() > 200) {
          std::lock_guard<std::mutex> hold(lock);
          cache.insert(cache.end(), mine.begin(), mine.begin() + 100);
          mine.erase(mine.begin(), mine.begin() + 100);
        }
      }
      for (void* p : mine) m.free_pages(p, 1);
      m.drain_local();
    });
  }
  for (auto& th : threads) th.join();
  m.unregister_shrinker(id);
  for (void* p : cache) m.free_pages(p, 1);
  m.drain_all_quiescent();
  const NodeStats n = m.stats().nodes[0];
  EXPECT_EQ(n.free_pages, n.total_pages);
  EXPECT_GT(n.kswapd_wakeups, 0u);
}

}  // namespace
}  // namespace kmbench::physmem
