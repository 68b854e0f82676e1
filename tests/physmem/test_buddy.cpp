// The buddy backend: page rounding, alignment, contiguous runs, nodes, ceilings,
// reclaim and statistics, over small simulated machines.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "allocators/buddy/buddy.h"
#include "allocators/registry.h"
#include "base/errors.h"

namespace kmbench {
namespace {

using physmem::kPageSize;
constexpr std::uint64_t kMiB = 1ull << 20;

physmem::TopologySpec synthetic(const std::string& text, std::uint64_t node_bytes) {
  physmem::TopologySpec spec;
  spec.kind = physmem::TopologySpec::Kind::synthetic;
  spec.text = text;
  spec.node_bytes = node_bytes;
  return spec;
}

BackendConfig on(physmem::Machine& m) {
  BackendConfig config;
  config.machine = &m;
  return config;
}

double metric(const BackendStats& s, const std::string& name) {
  for (const Metric& m : s.metrics) {
    if (m.name == name) {
      return m.value;
    }
  }
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

/// Everything handed out came back: no pages held, every page free after a drain.
void expect_all_free(physmem::Machine& m, const BuddyBackend& b) {
  EXPECT_EQ(b.stats().mapped_bytes, 0u);
  m.drain_all_quiescent();
  for (const physmem::NodeStats& n : m.stats().nodes) {
    EXPECT_EQ(n.free_pages, n.total_pages) << "node " << n.node;
  }
}

static_assert(Backend<BuddyBackend>);

TEST(Buddy, SubPageRequestsAreRoundedToAPage) {
  physmem::Machine m(synthetic("pack:1 [numa] core:1 pu:1", 64 * kMiB));
  BuddyBackend b(on(m));
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{16}, std::size_t{4096}}) {
    void* p = b.allocate(size, 16, kNoTag, kAnyNode);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(b.usable_size(p, size), kPageSize);
    EXPECT_EQ(b.physical_address(p), m.phys_of(p));
    EXPECT_EQ(b.physical_address(p) % kPageSize, 0u);
    EXPECT_TRUE(m.owns(p));
    b.free(p, size);
  }
  expect_all_free(m, b);
}

TEST(Buddy, MultiPageRequestsRoundToPowersOfTwo) {
  physmem::Machine m(synthetic("pack:1 [numa] core:1 pu:1", 64 * kMiB));
  BuddyBackend b(on(m));
  const std::pair<std::size_t, std::size_t> cases[] = {
      {4097, 2 * kPageSize}, {5 * kPageSize, 8 * kPageSize}, {3 * kMiB, 4 * kMiB},
      {4 * kMiB, 4 * kMiB},  {4 * kMiB + 1, 4 * kMiB + kPageSize}, {9 * kMiB, 9 * kMiB}};
  std::vector<std::pair<void*, std::size_t>> live;
  for (auto [size, usable] : cases) {
    void* p = b.allocate(size, 16, kNoTag, kAnyNode);
    ASSERT_NE(p, nullptr) << size;
    EXPECT_EQ(b.usable_size(p, size), usable) << size;
    EXPECT_EQ(m.phys_of(p) % std::min<std::size_t>(usable & -usable, 4 * kMiB), 0u) << size;
    std::memset(p, 0x3c, size);
    live.emplace_back(p, size);
  }
  EXPECT_EQ(metric(b.stats(), "backend.buddy.contiguous_runs"), 2.0);
  for (auto [p, size] : live) {
    b.free(p, size);
  }
  expect_all_free(m, b);
}

TEST(Buddy, AlignmentAboveTheSizeIsRememberedForTheSizedFree) {
  physmem::Machine m(synthetic("pack:1 [numa] core:1 pu:1", 128 * kMiB));
  BuddyBackend b(on(m));
  const std::pair<std::size_t, std::size_t> cases[] = {
      {100, 64 * 1024}, {kPageSize, 2 * kMiB}, {3 * kPageSize, 4 * kMiB},
      {100, 16 * kMiB}, {5 * kMiB, 8 * kMiB},  {1, 32 * kMiB}};
  std::vector<std::pair<void*, std::size_t>> live;
  for (auto [size, align] : cases) {
    void* p = b.allocate(size, align, kNoTag, kAnyNode);
    ASSERT_NE(p, nullptr) << size << " align " << align;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u);
    EXPECT_EQ(m.phys_of(p) % align, 0u);
    EXPECT_GE(b.usable_size(p, size), size);
    live.emplace_back(p, size);
  }
  EXPECT_EQ(b.usable_size(live[0].first, 100), 64 * 1024u);  // raised to the alignment's order
  EXPECT_EQ(b.usable_size(live[3].first, 100), kPageSize);   // a one-page run
  for (auto [p, size] : live) {
    b.free(p, size);
  }
  expect_all_free(m, b);
}

TEST(Buddy, RequestedNodeAndPhysicalCeiling) {
  physmem::Machine m(synthetic("pack:4 [numa] core:1 pu:1", 2048 * kMiB));
  for (NodeId k = 0; k < 4; ++k) {
    BuddyBackend b(on(m));
    for (std::size_t size : {std::size_t{64}, std::size_t{32768}, std::size_t{6 * kMiB}}) {
      void* p = b.allocate(size, 16, kNoTag, k);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(m.node_of(p), k);
      b.free(p, size);
    }
  }
  BackendConfig low = on(m);
  low.params["max_phys"] = "0xffffffff";
  BuddyBackend dma32(low);
  for (std::size_t size : {std::size_t{64}, std::size_t{32768}, std::size_t{6 * kMiB}}) {
    void* p = dma32.allocate(size, 16, kNoTag, kAnyNode);
    ASSERT_NE(p, nullptr);
    EXPECT_LE(m.phys_of(p) + size - 1, 0xffffffffull);
    dma32.free(p, size);
  }
  EXPECT_EQ(dma32.allocate(64, 16, kNoTag, 3), nullptr);  // node 3 lies above 4 GiB
  BackendConfig bad = on(m);
  bad.params["max_phys"] = "lots";
  EXPECT_THROW(BuddyBackend{bad}, UsageError);
}

TEST(Buddy, OutOfMemoryReturnsNullAndRecovers) {
  physmem::Machine m(synthetic("pack:1 [numa] core:1 pu:1", 8 * kMiB));
  BuddyBackend b(on(m));
  std::vector<void*> blocks;
  while (void* p = b.allocate(2000, 16, kNoTag, 0)) {
    blocks.push_back(p);
  }
  // A blocking request leaves the zone's min pages free; a noblock one takes them down to 3/8 of min.
  const std::uint64_t min = m.stats().nodes[0].zones[0].wmark.min;
  ASSERT_GT(min, 0u);
  EXPECT_EQ(blocks.size(), (8 * kMiB - physmem::kReservedLowBytes) / kPageSize - min);
  EXPECT_EQ(b.allocate(10 * kMiB, 16, kNoTag, kAnyNode), nullptr);
  EXPECT_EQ(b.allocate(kPageSize, 16, kNoTag, kAnyNode), nullptr);
  while (void* p = b.allocate_nowait(2000, 16, kNoTag, 0)) {
    blocks.push_back(p);
  }
  const std::uint64_t reserve = min / 2 - (min / 2) / 4;
  EXPECT_EQ(blocks.size(), (8 * kMiB - physmem::kReservedLowBytes) / kPageSize - reserve);
  EXPECT_EQ(metric(b.stats(), "backend.buddy.failed_allocs"), 4.0);
  for (void* p : blocks) {
    b.free(p, 2000);
  }
  expect_all_free(m, b);
  void* big = b.allocate(4 * kMiB, 16, kNoTag, 0);
  ASSERT_NE(big, nullptr);
  b.free(big, 4 * kMiB);
}

TEST(Buddy, ReclaimDrainsThisCpusPageLists) {
  physmem::Machine m(synthetic("pack:1 [numa] core:1 pu:1", 64 * kMiB));
  BuddyBackend b(on(m));
  std::vector<void*> pages;
  for (int i = 0; i < 200; ++i) {
    pages.push_back(b.allocate(512, 16, kNoTag, kAnyNode));
  }
  for (void* p : pages) {
    b.free(p, 512);
  }
  const double cached = metric(b.stats(), "physmem.node0.pcp_pages");
  ASSERT_GT(cached, 64.0);
  EXPECT_EQ(b.reclaim(ReclaimLevel::trim), (cached - 64) * kPageSize);
  EXPECT_EQ(b.reclaim(ReclaimLevel::drain), 64 * kPageSize);
  EXPECT_EQ(b.reclaim(ReclaimLevel::drain), 0u);
  const BackendStats s = b.stats();
  EXPECT_EQ(metric(s, "physmem.node0.pcp_pages"), 0.0);
  EXPECT_GT(metric(s, "physmem.pcp.hits"), 100.0);
  EXPECT_EQ(metric(s, "backend.buddy.pages_held"), 0.0);
}

// pcp_high and pcp_batch set the machine's per-CPU list marks while the
// backend lives: 200 freed pages stay at most pcp_high on the list, spilling
// in batches; the machine's own marks come back when the backend goes.
TEST(Buddy, PcpMarksAreTheBackendsWhileItLives) {
  physmem::Machine m(synthetic("pack:1 [numa] core:1 pu:1", 64 * kMiB));
  ASSERT_EQ(m.pcp_high_pages(), physmem::kPcpDefaultHighPages);
  {
    BackendConfig config = on(m);
    config.params = {{"pcp_high", "32"}, {"pcp_batch", "8"}};
    BuddyBackend b(config);
    EXPECT_EQ(m.pcp_high_pages(), 32u);
    EXPECT_EQ(m.pcp_batch_pages(), 8u);
    std::vector<void*> pages;
    for (int i = 0; i < 200; ++i) pages.push_back(b.allocate(512, 16, kNoTag, kAnyNode));
    for (void* p : pages) b.free(p, 512);
    const BackendStats s = b.stats();
    EXPECT_LE(metric(s, "physmem.node0.pcp_pages"), 32.0);
    EXPECT_GE(metric(s, "physmem.pcp.spills"), (200.0 - 32) / 8);
    EXPECT_EQ(metric(s, "physmem.pcp.high_pages"), 32.0);
    EXPECT_EQ(metric(s, "physmem.pcp.batch_pages"), 8.0);
  }
  EXPECT_EQ(m.pcp_high_pages(), physmem::kPcpDefaultHighPages);
  EXPECT_EQ(m.pcp_batch_pages(), physmem::kPcpDefaultBatchPages);
  {
    BackendConfig config = on(m);
    config.params = {{"pcp_high", "16"}};  // the batch follows a high mark below it
    BuddyBackend b(config);
    EXPECT_EQ(m.pcp_batch_pages(), 16u);
  }
  BackendConfig bad = on(m);
  bad.params = {{"pcp_high", "16"}, {"pcp_batch", "32"}};
  try {
    BuddyBackend b(bad);
    ADD_FAILURE() << "pcp_batch above pcp_high was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("pcp_batch=32 is above pcp_high=16"), std::string::npos) << e.what();
  }
  bad.params = {{"pcp_high", "4096"}};
  EXPECT_THROW(BuddyBackend{bad}, UsageError);
  EXPECT_EQ(m.pcp_high_pages(), physmem::kPcpDefaultHighPages) << "a refused backend leaves the marks";
}

// try_allocate and try_free (the KPI's hot calls use them inline) take and give
// only this CPU's page list: LIFO with allocate and free, nullptr once the list
// is empty, false once it holds pcp_high pages, and nothing for blocks above a
// page or a machine of two nodes. The counts are exact through them.
TEST(Buddy, TriesTakeAndGiveOnlyThisCpusPageList) {
  physmem::Machine m(synthetic("pack:1 [numa] core:1 pu:1", 64 * kMiB));
  {
    BackendConfig config = on(m);
    config.params = {{"pcp_high", "32"}, {"pcp_batch", "8"}};
    BuddyBackend b(config);
    void* p = b.allocate(64, 16, kNoTag, kAnyNode);
    ASSERT_NE(p, nullptr);
    b.free(p, 64);
    EXPECT_EQ(b.try_allocate(64), p);
    std::vector<void*> pages{p};
    while (void* q = b.try_allocate(64)) {
      pages.push_back(q);
      ASSERT_LE(pages.size(), 32u);
    }
    EXPECT_EQ(b.try_allocate(2 * kPageSize), nullptr);
    while (pages.size() < 40) pages.push_back(b.allocate(64, 16, kNoTag, kAnyNode));
    EXPECT_EQ(b.stats().live_blocks, 40);
    std::size_t given = 0;
    while (given < pages.size() && b.try_free(pages[given], 64)) ++given;
    EXPECT_EQ(given, 32u) << "the list takes pcp_high pages, then the full free spills";
    for (std::size_t i = given; i < pages.size(); ++i) b.free(pages[i], 64);
    void* big = b.allocate(2 * kPageSize, 16, kNoTag, kAnyNode);
    ASSERT_NE(big, nullptr);
    EXPECT_FALSE(b.try_free(big, 2 * kPageSize));
    b.free(big, 2 * kPageSize);
    expect_all_free(m, b);
  }
  physmem::Machine two(synthetic("pack:2 [numa] core:1 pu:1", 64 * kMiB));
  BuddyBackend b(on(two));
  void* p = b.allocate(64, 16, kNoTag, kAnyNode);
  b.free(p, 64);
  EXPECT_EQ(b.try_allocate(64), nullptr);  // the full path finds the local node
}

TEST(Buddy, RegistryOpensItOnTheGivenMachine) {
  physmem::Machine m(synthetic("pack:2 [numa] core:1 pu:1", 32 * kMiB));
  const BackendInfo* info = find_backend("buddy");
  ASSERT_NE(info, nullptr);
  EXPECT_TRUE(info->features & kFeaturePhysical);
  auto any = open_backend("buddy", on(m));
  void* p = any->allocate(24, 16, 7, 1);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(m.node_of(p), 1);
  EXPECT_EQ(any->physical_address(p), m.phys_of(p));
  EXPECT_EQ(any->stats().live_handed_out_bytes, static_cast<std::int64_t>(kPageSize));
  any->free(p, 24, 7);
  bool ran = with_backend("buddy", on(m), [&](auto& counted) {
    void* q = counted.allocate(5000, 16, kNoTag, 0);
    EXPECT_EQ(m.node_of(q), 0);
    counted.free(q, 5000);
  });
  EXPECT_TRUE(ran);
}

// Mixed sizes from three threads, each freeing what its neighbour allocated.
// Run under ThreadSanitizer by tools/test.sh.
TEST(BuddyThreads, MixedSizesCrossThreadFrees) {
  physmem::Machine m(synthetic("pack:2 [numa] core:1 pu:1", 256 * kMiB));
  Counting<BuddyBackend> b(on(m));
  constexpr int kThreads = 3;
  constexpr int kBlocks = 4000;
  struct Slot {
    std::atomic<void*> p{nullptr};
    std::size_t size = 0;
  };
  std::vector<Slot> ring(kThreads * kBlocks);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 5);
      const int next = (t + 1) % kThreads;
      for (int i = 0; i < kBlocks; ++i) {
        Slot& mine = ring[t * kBlocks + i];
        mine.size = rng() % 10 == 0 ? 1 + rng() % (64 * 1024) : 1 + rng() % 4096;
        auto* p = static_cast<unsigned char*>(
            b.allocate(mine.size, rng() % 16 == 0 ? 8192 : 16, kNoTag, kAnyNode));
        ASSERT_NE(p, nullptr);
        p[0] = static_cast<unsigned char>(t);
        p[mine.size - 1] = static_cast<unsigned char>(t);
        mine.p.store(p, std::memory_order_release);
        Slot& theirs = ring[next * kBlocks + i];
        void* q;
        while ((q = theirs.p.load(std::memory_order_acquire)) == nullptr) {
          std::this_thread::yield();
        }
        EXPECT_EQ(static_cast<unsigned char*>(q)[theirs.size - 1],
                  static_cast<unsigned char>(next));
        b.free(q, theirs.size);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(b.stats().live_bytes, 0);
  expect_all_free(m, b.inner());
}

}  // namespace
}  // namespace kmbench
