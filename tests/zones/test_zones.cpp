// zones: size classes, chunk sizing, the free bitmap, emulated panics, zone GC,
// kalloc_large, NUMA placement and statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "allocators/physmem/physmem.h"
#include "allocators/zones/zones.h"
#include "base/errors.h"

namespace kmbench {
namespace {

using zones::chunk_pages_for;
using zones::kalloc_classes;
using zones::kalloc_type_classes;

BackendConfig config_with(std::initializer_list<std::pair<const std::string, std::string>> params) {
  BackendConfig c;
  c.params = params;
  return c;
}

TEST(ZonesClasses, KallocClassesAreXnuX86_64) {
  const zones::ClassTable& t = kalloc_classes();
  const std::vector<std::uint32_t> want = {16,   32,   48,   64,   96,   128,  192,
                                           256,  384,  512,  768,  1024, 1536, 2048,
                                           3072, 4096, 6144, 8192, 12288, 16384};
  ASSERT_EQ(t.count, want.size());
  for (unsigned c = 0; c < t.count; ++c) {
    EXPECT_EQ(t.sizes[c], want[c]);
  }
}

TEST(ZonesClasses, EverySizeMapsToTheSmallestClassThatHoldsIt) {
  for (const zones::ClassTable* t : {&kalloc_classes(), &kalloc_type_classes()}) {
    for (std::size_t size = 0; size <= zones::kMaxSmall; ++size) {
      const unsigned c = t->class_of(size);
      ASSERT_LT(c, t->count) << size;
      ASSERT_GE(t->sizes[c], size) << t->heap << " size " << size;
      if (c > 0) {
        ASSERT_LT(t->sizes[c - 1], std::max<std::size_t>(size, 1)) << t->heap << " size " << size;
      }
    }
  }
  EXPECT_EQ(kalloc_classes().sizes[kalloc_classes().class_of(0)], 16u);
  EXPECT_EQ(kalloc_classes().sizes[kalloc_classes().class_of(49)], 64u);
  EXPECT_EQ(kalloc_classes().sizes[kalloc_classes().class_of(65)], 96u);
  EXPECT_EQ(kalloc_classes().sizes[kalloc_classes().class_of(4097)], 6144u);
  EXPECT_EQ(kalloc_type_classes().sizes[kalloc_type_classes().class_of(65)], 80u);
  EXPECT_EQ(kalloc_type_classes().sizes[kalloc_type_classes().class_of(300)], 368u);
}

TEST(ZonesClasses, UsableSizeIsTheElementSize) {
  ZonesBackend b(config_with({{"classes", "kalloc_type"}}));
  void* p = b.allocate(81, 16, kNoTag, kAnyNode);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(b.usable_size(p, 81), 96u);
  b.free(p, 81);
}

TEST(ZonesChunks, ChunkSizeMinimisesWaste) {
  EXPECT_EQ(chunk_pages_for(16), 1u);
  EXPECT_EQ(chunk_pages_for(48), 3u);
  EXPECT_EQ(chunk_pages_for(80), 5u);
  EXPECT_EQ(chunk_pages_for(4096), 1u);
  EXPECT_EQ(chunk_pages_for(6144), 3u);
  EXPECT_EQ(chunk_pages_for(12288), 3u);
  EXPECT_EQ(chunk_pages_for(16384), 4u);
  for (const zones::ClassTable* t : {&kalloc_classes(), &kalloc_type_classes()}) {
    for (unsigned c = 0; c < t->count; ++c) {
      const std::uint32_t e = t->sizes[c];
      const unsigned best = chunk_pages_for(e);
      const double best_waste = double(best * 4096 % e) / (best * 4096);
      ASSERT_GE(best * 4096u, e);
      for (unsigned pages = 1; pages <= zones::kMaxChunkPages; ++pages) {
        if (pages * 4096u < e) {
          continue;
        }
        EXPECT_LE(best_waste, double(pages * 4096 % e) / (pages * 4096) + 1e-12)
            << "element " << e << ": " << pages << " pages waste less than " << best;
      }
    }
  }
}

TEST(ZonesChunks, OneChunkHoldsItsElementsAndTheBitmapGivesTheLowestFree) {
  ZonesBackend b(config_with({{"cache", "off"}}));
  const std::size_t size = 48;
  const unsigned per_chunk = 3 * 4096 / 48;
  std::vector<char*> blocks;
  for (unsigned i = 0; i < per_chunk; ++i) {
    blocks.push_back(static_cast<char*>(b.allocate(size, 16, kNoTag, kAnyNode)));
    ASSERT_NE(blocks.back(), nullptr);
  }
  std::sort(blocks.begin(), blocks.end());
  for (unsigned i = 1; i < per_chunk; ++i) {
    EXPECT_EQ(blocks[i] - blocks[i - 1], 48) << "elements of one chunk are contiguous";
  }
  EXPECT_EQ(b.metric("backend.zones.kalloc.48.chunks"), 1);
  EXPECT_EQ(b.metric("backend.zones.kalloc.48.pages"), 3);
  EXPECT_EQ(b.metric("backend.zones.kalloc.48.elements_in_use"), per_chunk);
  b.free(blocks[10], size);
  b.free(blocks[5], size);
  EXPECT_EQ(b.allocate(size, 16, kNoTag, kAnyNode), blocks[5]);
  EXPECT_EQ(b.allocate(size, 16, kNoTag, kAnyNode), blocks[10]);
  for (char* p : blocks) {
    b.free(p, size);
  }
  EXPECT_EQ(b.metric("backend.zones.kalloc.48.elements_in_use"), 0);
  EXPECT_EQ(b.metric("backend.zones.kalloc.48.elements_free"), per_chunk);
}

TEST(ZonesChunks, SmallerSizeOfTheSameClassIsAccepted) {
  ZonesBackend b(BackendConfig{});
  void* p = b.allocate(250, 16, kNoTag, kAnyNode);
  b.free(p, 200);  // 200 and 250 are both kalloc.256
  EXPECT_EQ(b.metric("backend.zones.kalloc.256.elements_in_use"), 0);
}

// kalloc's realloc: in place within a kalloc class, grown or shrunk; moved
// (copied, the old element freed) across classes and for kalloc_large blocks.
TEST(ZonesRealloc, StaysInItsKallocClassAndMovesAcrossClasses) {
  ZonesBackend b(BackendConfig{});
  auto* p = static_cast<unsigned char*>(b.allocate(200, 16, kNoTag, kAnyNode));
  for (int i = 0; i < 200; ++i) p[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(b.reallocate(p, 200, 256, 16, kNoTag, kAnyNode), p);  // kalloc.256 both
  EXPECT_EQ(b.reallocate(p, 256, 193, 16, kNoTag, kAnyNode), p);
  auto* q = static_cast<unsigned char*>(b.reallocate(p, 193, 300, 16, kNoTag, kAnyNode));  // kalloc.384
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, p);
  for (int i = 0; i < 193; ++i) ASSERT_EQ(q[i], static_cast<unsigned char>(i)) << i;
  EXPECT_EQ(b.metric("backend.zones.kalloc.256.elements_in_use"), 0);
  void* large = b.reallocate(q, 300, 20000, 16, kNoTag, kAnyNode);  // kalloc_large
  ASSERT_NE(large, nullptr);
  void* moved = b.reallocate(large, 20000, 20001, 16, kNoTag, kAnyNode);
  EXPECT_NE(moved, large);
  b.free(moved, 20001);
}

using ZonesDeathTest = ::testing::TestWithParam<std::string>;

TEST_P(ZonesDeathTest, DoubleFreePanics) {
  ZonesBackend b(config_with({{"cache", GetParam()}}));
  void* p = b.allocate(64, 16, kNoTag, kAnyNode);
  void* keep = b.allocate(64, 16, kNoTag, kAnyNode);
  b.free(p, 64);
  EXPECT_DEATH(b.free(p, 64), "panic: double free of 0x[0-9a-f]+ \\(size 64\\) in zone kalloc.64");
  b.free(keep, 64);
}

TEST_P(ZonesDeathTest, DoubleFreeHiddenFromTheCookieIsCaughtByTheBitmap) {
  ZonesBackend b(config_with({{"cache", GetParam()}}));
  void* p = b.allocate(256, 16, kNoTag, kAnyNode);
  void* keep = b.allocate(256, 16, kNoTag, kAnyNode);
  b.free(p, 256);
  static_cast<std::uint64_t*>(p)[1] = 0;  // a use after free scribbles over the cookie
  // Uncached, the zone's bitmap sees it at once; cached, when the magazine drains.
  EXPECT_DEATH(
      {
        b.free(p, 256);
        b.reclaim(ReclaimLevel::drain);
      },
      "panic: double free of 0x[0-9a-f]+ \\(size 256\\) in zone kalloc.256");
  b.free(keep, 256);
}

TEST_P(ZonesDeathTest, WrongSizeClassPanicsNamingBothZones) {
  ZonesBackend b(config_with({{"cache", GetParam()}}));
  void* p = b.allocate(64, 16, kNoTag, kAnyNode);
  EXPECT_DEATH(b.free(p, 200), "panic: kfree of 0x[0-9a-f]+ with size 200 \\(zone kalloc.256\\) "
                               "but the element is in zone kalloc.64");
  EXPECT_DEATH(b.free(p, 20000), "panic: kfree of 0x[0-9a-f]+ with size 20000");
  b.free(p, 64);
}

TEST_P(ZonesDeathTest, ForeignPointerPanics) {
  ZonesBackend b(config_with({{"cache", GetParam()}}));
  static std::uint64_t not_ours[4];
  EXPECT_DEATH(b.free(not_ours, 16), "panic: kfree of 0x[0-9a-f]+ \\(size 16\\): the pointer belongs to no zone");
}

// Without the CPU cache the free itself panics. With it the pointer goes into
// the CPU's magazine (the fast path checks the page and the double-free mark
// only), and the panic comes when the magazine goes back to the zone, at the
// latest on a drain.
TEST_P(ZonesDeathTest, PointerInsideAnElementPanics) {
  ZonesBackend b(config_with({{"cache", GetParam()}}));
  char* p = static_cast<char*>(b.allocate(96, 16, kNoTag, kAnyNode));
  EXPECT_DEATH(
      {
        b.free(p + 16, 96);
        b.reclaim(ReclaimLevel::drain);
      },
      "panic: free of 0x[0-9a-f]+ \\(zone kalloc.96.*not the start");
  b.free(p, 96);
}

TEST_P(ZonesDeathTest, LargeBlockWithTheWrongSizePanics) {
  ZonesBackend b(config_with({{"cache", GetParam()}}));
  void* p = b.allocate(40000, 16, kNoTag, kAnyNode);
  EXPECT_DEATH(b.free(p, 90000), "panic: kfree of 0x[0-9a-f]+ with size 90000, but the kalloc_large block holds 40960 bytes");
  b.free(p, 40000);
  EXPECT_DEATH(b.free(p, 40000), "panic: kfree of 0x[0-9a-f]+ \\(size 40000\\)");
}

INSTANTIATE_TEST_SUITE_P(CacheOnAndOff, ZonesDeathTest, ::testing::Values("off", "on"));

TEST(ZonesGc, TrimReturnsPagesBeyondTheWorkingSetAndDrainTheRest) {
  ZonesBackend b(config_with({{"cache", "off"}}));
  std::vector<void*> blocks;
  for (int i = 0; i < 4096; ++i) {
    blocks.push_back(b.allocate(1024, 16, kNoTag, kAnyNode));  // 4 per page: 1024 pages
  }
  for (void* p : blocks) {
    b.free(p, 1024);
  }
  const double pages = b.metric("backend.zones.kalloc.1024.pages");
  EXPECT_EQ(pages, 1024);
  const std::size_t trimmed = b.reclaim(ReclaimLevel::trim);
  EXPECT_GT(trimmed, 0u);
  const double after_trim = b.metric("backend.zones.kalloc.1024.pages");
  EXPECT_GT(after_trim, 0) << "trim keeps the working set";
  EXPECT_EQ(after_trim * 4096 + trimmed, pages * 4096);
  const std::size_t second = b.reclaim(ReclaimLevel::trim);  // an idle period: the EMA decays
  EXPECT_GT(second, 0u);
  const std::size_t drained = b.reclaim(ReclaimLevel::drain);
  EXPECT_EQ(trimmed + second + drained, pages * 4096);
  EXPECT_EQ(b.metric("backend.zones.kalloc.1024.pages"), 0);
  EXPECT_EQ(b.metric("backend.zones.gc.trims"), 2);
  EXPECT_EQ(b.metric("backend.zones.gc.drains"), 1);
  EXPECT_EQ(b.metric("backend.zones.gc.bytes_returned"), pages * 4096);
}

TEST(ZonesGc, DrainEmptiesThisCpusMagazinesAndTheDepots) {
  ZonesBackend b(config_with({{"cache", "on"}, {"magazine", "8"}}));
  std::vector<void*> blocks;
  for (int i = 0; i < 2000; ++i) {
    blocks.push_back(b.allocate(128, 16, kNoTag, kAnyNode));
  }
  for (void* p : blocks) {
    b.free(p, 128);
  }
  EXPECT_GT(b.metric("backend.zones.kalloc.128.elements_cached"), 0);
  EXPECT_EQ(b.metric("backend.zones.kalloc.128.elements_in_use"), 0);
  b.reclaim(ReclaimLevel::drain);
  EXPECT_EQ(b.metric("backend.zones.kalloc.128.elements_cached"), 0);
  EXPECT_EQ(b.metric("backend.zones.kalloc.128.pages"), 0);
  EXPECT_EQ(b.stats().mapped_bytes, 0u);
  // Still usable after a drain.
  void* p = b.allocate(128, 16, kNoTag, kAnyNode);
  ASSERT_NE(p, nullptr);
  b.free(p, 128);
}

TEST(ZonesCache, MagazinesCycleThroughTheDepots) {
  ZonesBackend b(config_with({{"cache", "on"}}));
  EXPECT_TRUE(b.caching_enabled(0, kalloc_classes().class_of(64)));
  std::vector<void*> blocks;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 500; ++i) {
      blocks.push_back(b.allocate(64, 16, kNoTag, kAnyNode));
    }
    for (void* p : blocks) {
      b.free(p, 64);
    }
    blocks.clear();
  }
  EXPECT_GT(b.metric("backend.zones.cache.depot_hits"), 0);
  EXPECT_GT(b.metric("backend.zones.cache.zone_fills"), 0);
  EXPECT_EQ(b.metric("backend.zones.kalloc.64.elements_in_use"), 0);
}

TEST(ZonesCache, SteadyBatchesTradeMagazinesWithThisCpusDepotAlone) {
  // 1000 elements of 64 B are 125 magazines, within the per-CPU cap (128 KiB):
  // once the first batch has built them, a CPU trades its empty magazines for
  // its depot's full ones and back, and neither the zone nor recirculation
  // sees another request.
  ZonesBackend b(config_with({{"cache", "on"}}));
  std::vector<void*> blocks(1000);
  auto batch = [&] {
    for (auto& p : blocks) {
      p = b.allocate(64, 16, kNoTag, kAnyNode);
      ASSERT_NE(p, nullptr);
    }
    for (void* p : blocks) {
      b.free(p, 64);
    }
  };
  batch();
  batch();
  const double fills = b.metric("backend.zones.cache.zone_fills");
  const double magazines = b.metric("backend.zones.cache.magazines");
  const double depot_hits = b.metric("backend.zones.cache.depot_hits");
  for (int round = 0; round < 5; ++round) {
    batch();
  }
  EXPECT_EQ(b.metric("backend.zones.cache.zone_fills"), fills);
  EXPECT_EQ(b.metric("backend.zones.cache.recirc_hits"), 0);
  EXPECT_EQ(b.metric("backend.zones.cache.depot_spills"), 0);
  EXPECT_EQ(b.metric("backend.zones.cache.magazines"), magazines);
  // Each batch takes all but the loaded magazines' worth from the depot.
  EXPECT_GE(b.metric("backend.zones.cache.depot_hits") - depot_hits, 5 * 120);
  EXPECT_EQ(b.metric("backend.zones.kalloc.64.elements_in_use"), 0);
  EXPECT_EQ(b.metric("backend.zones.kalloc.64.elements_cached"), 1000);
}

TEST(ZonesCache, PerCpuDepotSpillsToRecirculationPastItsCap) {
  // 16 KiB elements: a magazine of 8 is the whole 128 KiB per-CPU cap, so the
  // per-CPU depot holds nothing and full magazines go to recirculation.
  ZonesBackend b(config_with({{"cache", "on"}}));
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) {
    blocks.push_back(b.allocate(16384, 16, kNoTag, kAnyNode));
  }
  for (void* p : blocks) {
    b.free(p, 16384);
  }
  EXPECT_GT(b.metric("backend.zones.cache.depot_spills"), 0);
  EXPECT_GT(b.metric("backend.zones.cache.recirc_magazines"), 0);
  for (auto& p : blocks) {
    p = b.allocate(16384, 16, kNoTag, kAnyNode);
  }
  EXPECT_GT(b.metric("backend.zones.cache.recirc_hits"), 0);
  for (void* p : blocks) {
    b.free(p, 16384);
  }
}

TEST(ZonesCache, DepotTradesAndSpillsLoseNoElementAndNoMagazine) {
  // 2048 B elements: a magazine is 16 KiB, so the per-CPU depot holds at most
  // 6 full magazines before it spills. Batches of uneven sizes leave it with
  // full and empty magazines in every mix; each batch must hand out distinct
  // elements, and the counts must add up before and after a drain.
  ZonesBackend b(config_with({{"cache", "on"}}));
  const unsigned cls = kalloc_classes().class_of(2048);
  ASSERT_EQ(kalloc_classes().sizes[cls], 2048u);
  std::vector<void*> blocks;
  for (const int n : {5, 37, 100, 13, 64, 1, 90, 8, 57}) {
    for (int i = 0; i < n; ++i) {
      void* p = b.allocate(2048, 16, kNoTag, kAnyNode);
      ASSERT_NE(p, nullptr);
      blocks.push_back(p);
    }
    std::vector<void*> sorted = blocks;
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end())
        << "an element handed out twice in a batch of " << n;
    EXPECT_EQ(b.metric("backend.zones.kalloc.2048.elements_in_use"), n);
    for (void* p : blocks) {
      b.free(p, 2048);
    }
    blocks.clear();
    EXPECT_EQ(b.metric("backend.zones.kalloc.2048.elements_in_use"), 0);
  }
  EXPECT_GT(b.metric("backend.zones.cache.depot_hits"), 0);
  EXPECT_GT(b.metric("backend.zones.cache.depot_spills"), 0);
  EXPECT_GT(b.metric("backend.zones.cache.recirc_hits"), 0);
  b.reclaim(ReclaimLevel::drain);
  EXPECT_EQ(b.metric("backend.zones.kalloc.2048.elements_cached"), 0);
  EXPECT_EQ(b.metric("backend.zones.kalloc.2048.pages"), 0);
  // The drain freed the depots' magazines; only this CPU's two loaded ones remain.
  EXPECT_EQ(b.metric("backend.zones.cache.magazines"), 2);
  for (int i = 0; i < 100; ++i) {
    blocks.push_back(b.allocate(2048, 16, kNoTag, kAnyNode));
  }
  for (void* p : blocks) {
    b.free(p, 2048);
  }
  EXPECT_EQ(b.metric("backend.zones.kalloc.2048.elements_in_use"), 0);
}

TEST(ZonesLarge, LargeAndAlignedRequestsComeFromThePageLayer) {
  ZonesBackend b(BackendConfig{});
  void* big = b.allocate(20000, 16, 7, kAnyNode);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(b.usable_size(big, 20000), 20480u);
  void* aligned = b.allocate(100, 4096, kNoTag, kAnyNode);
  ASSERT_NE(aligned, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(aligned) % 4096, 0u);
  EXPECT_EQ(b.metric("backend.zones.kalloc_large.allocations_in_use"), 2);
  EXPECT_EQ(b.metric("backend.zones.vmtag.7.bytes"), 20480);
  EXPECT_EQ(b.metric("backend.zones.vmtag.13.bytes"), 4096);  // untagged: KALLOC
  b.free(big, 20000);
  b.free(aligned, 100);
  EXPECT_EQ(b.metric("backend.zones.kalloc_large.bytes_in_use"), 0);
}

TEST(ZonesParams, BadParametersAreUsageErrors) {
  EXPECT_THROW(ZonesBackend(config_with({{"tcache", "off"}})), UsageError);
  EXPECT_THROW(ZonesBackend(config_with({{"cache", "maybe"}})), UsageError);
  EXPECT_THROW(ZonesBackend(config_with({{"contention", "ten"}})), UsageError);
  EXPECT_THROW(ZonesBackend(config_with({{"magazine", "0"}})), UsageError);
  EXPECT_THROW(ZonesBackend(config_with({{"classes", "kmalloc"}})), UsageError);
}

/// A synthetic machine of two NUMA nodes with 64 MiB each.
physmem::TopologySpec two_nodes() {
  physmem::TopologySpec spec;
  spec.kind = physmem::TopologySpec::Kind::synthetic;
  spec.text = "pack:2 [numa] core:1 pu:1";
  spec.node_bytes = 64u << 20;
  return spec;
}

TEST(ZonesNuma, AllocationsLandOnTheNodeAsked) {
  physmem::Machine machine(two_nodes());
  ASSERT_EQ(machine.node_count(), 2u);
  BackendConfig config;
  config.machine = &machine;
  ZonesBackend b(config);
  ASSERT_EQ(b.node_count(), 2u);
  for (NodeId node : {0, 1}) {
    for (std::size_t size : {std::size_t{16}, std::size_t{1000}, std::size_t{16384},
                             std::size_t{100000}}) {
      void* p = b.allocate(size, 16, kNoTag, node);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(machine.node_of_phys(b.physical_address(p)), node) << "size " << size;
      b.free(p, size);  // freed from a CPU of any node: back to its own zone
    }
  }
  EXPECT_EQ(b.allocate(16, 16, kNoTag, 2), nullptr) << "no node 2";
  EXPECT_GT(b.metric("backend.zones.node.1.zone_pages"), 0);
  EXPECT_GT(b.metric("backend.zones.node.0.zone_pages"), 0);
}

TEST(ZonesNuma, CachedFreesOfAnotherNodesElementsGoBackToThatNode) {
  physmem::Machine machine(two_nodes());
  BackendConfig config;
  config.machine = &machine;
  config.params = {{"cache", "on"}};
  ZonesBackend b(config);
  // This thread's home node takes kAnyNode requests; the other node's
  // elements are freed from here too, many magazines' worth.
  const void* probe = b.allocate(256, 16, kNoTag, kAnyNode);
  const NodeId home = machine.node_of_phys(b.physical_address(probe));
  b.free(const_cast<void*>(probe), 256);
  const NodeId other = 1 - home;
  for (int round = 0; round < 3; ++round) {
    std::vector<void*> local, remote;
    for (int i = 0; i < 100; ++i) {
      local.push_back(b.allocate(256, 16, kNoTag, kAnyNode));
      remote.push_back(b.allocate(256, 16, kNoTag, other));
    }
    for (std::size_t i = 0; i < local.size(); ++i) {
      EXPECT_EQ(machine.node_of_phys(b.physical_address(local[i])), home);
      EXPECT_EQ(machine.node_of_phys(b.physical_address(remote[i])), other);
      b.free(remote[i], 256);
      b.free(local[i], 256);
    }
  }
  EXPECT_EQ(b.metric("backend.zones.kalloc.256.elements_in_use"), 0);
}

// try_allocate and try_free (the KPI's hot calls use them inline) take and give
// only this CPU's magazines: nullptr or false when the alloc magazine is spent
// or the free magazine full, when caching is off, and for an element already
// freed (the full free is the one that panics).
TEST(ZonesCache, TriesTakeAndGiveOnlyThisCpusMagazines) {
  ZonesBackend b(config_with({{"cache", "on"}}));
  void* p = b.allocate(64, kMinAlign, kNoTag, kAnyNode);  // the slow path loads the magazines
  ASSERT_NE(p, nullptr);
  b.free(p, 64);
  EXPECT_FALSE(b.try_free(p, 64));  // freed already: its cookie is set
  std::vector<void*> taken;
  while (void* q = b.try_allocate(64)) {
    taken.push_back(q);
    ASSERT_LE(taken.size(), 4096u);
  }
  EXPECT_FALSE(taken.empty());
  EXPECT_EQ(std::set<void*>(taken.begin(), taken.end()).size(), taken.size());
  for (int i = 0; i < 300; ++i) {  // past what the magazines hold
    void* q = b.allocate(64, kMinAlign, kNoTag, kAnyNode);
    ASSERT_NE(q, nullptr);
    taken.push_back(q);
  }
  std::size_t given = 0;
  while (given < taken.size() && b.try_free(taken[given], 64)) ++given;
  EXPECT_LT(given, taken.size()) << "a free magazine took every element";
  for (std::size_t i = given; i < taken.size(); ++i) b.free(taken[i], 64);
  EXPECT_EQ(b.metric("backend.zones.kalloc.64.elements_in_use"), 0);

  ZonesBackend uncached(config_with({{"cache", "off"}}));
  void* u = uncached.allocate(64, kMinAlign, kNoTag, kAnyNode);
  ASSERT_NE(u, nullptr);
  EXPECT_FALSE(uncached.try_free(u, 64));
  uncached.free(u, 64);
  EXPECT_EQ(uncached.try_allocate(64), nullptr);
}

}  // namespace
}  // namespace kmbench
