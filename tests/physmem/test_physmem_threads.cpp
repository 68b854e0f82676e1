// The page layer under several threads: per-CPU lists, cross-thread frees and
// the zone locks. Run under ThreadSanitizer by tools/test.sh.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "allocators/physmem/physmem.h"

namespace kmbench::physmem {
namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

TEST(MachineThreads, CrossThreadFreesOfMixedOrdersKeepEveryPage) {
  TopologySpec spec{.kind = TopologySpec::Kind::synthetic,
                    .text = "pack:2 [numa] core:2 pu:1",
                    .node_bytes = 64 * kMiB,
                    .pcp_high_pages = 64,
                    .pcp_batch_pages = 16};
  Machine m(spec);
  constexpr int kThreads = 4;
  constexpr int kBlocks = 3000;
  struct Slot {
    std::atomic<void*> p{nullptr};
    unsigned order = 0;
  };
  std::vector<Slot> ring(kThreads * kBlocks);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 1);
      const int next = (t + 1) % kThreads;
      for (int i = 0; i < kBlocks; ++i) {
        Slot& mine = ring[t * kBlocks + i];
        mine.order = rng() % 8 == 0 ? 4 + rng() % 3 : rng() % 4;
        const NodeId node = static_cast<NodeId>(rng() % 3) - 1;
        auto* p = static_cast<unsigned char*>(m.alloc_pages(mine.order, node));
        if (p == nullptr) {
          failures.fetch_add(1);
          p = static_cast<unsigned char*>(m.alloc_pages(0, kAnyNode));
          mine.order = 0;
        }
        p[0] = static_cast<unsigned char>(t);
        p[(kPageSize << mine.order) - 1] = static_cast<unsigned char>(t);
        mine.p.store(p, std::memory_order_release);
        Slot& theirs = ring[next * kBlocks + i];
        void* q;
        while ((q = theirs.p.load(std::memory_order_acquire)) == nullptr) {
          std::this_thread::yield();
        }
        auto* bytes = static_cast<unsigned char*>(q);
        EXPECT_EQ(bytes[0], static_cast<unsigned char>(next));
        EXPECT_EQ(bytes[(kPageSize << theirs.order) - 1], static_cast<unsigned char>(next));
        m.free_pages(q, theirs.order);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
  m.drain_all_quiescent();
  const PageStats s = m.stats();
  for (const NodeStats& n : s.nodes) {
    EXPECT_EQ(n.free_pages, n.total_pages) << "node " << n.node;
    EXPECT_EQ(n.pcp_pages, 0u);
  }
  EXPECT_GT(s.pcp_hits, 0u);
}

TEST(MachineThreads, ContiguousRunsAndPagesFromTwoThreads) {
  Machine m(TopologySpec{.kind = TopologySpec::Kind::synthetic,
                         .text = "pack:1 [numa] core:2 pu:1",
                         .node_bytes = 128 * kMiB});
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 11);
      for (int i = 0; i < 400; ++i) {
        const std::size_t bytes = 1 + rng() % (6 * kMiB);
        void* run = m.alloc_contiguous(bytes, kPageSize << (rng() % 4), 0,
                                       rng() % 2 ? ~0ull : 96 * kMiB - 1);
        const unsigned order = rng() % 4;
        void* page = m.alloc_pages(order, 0);
        ASSERT_NE(run, nullptr);
        ASSERT_NE(page, nullptr);
        std::memset(run, t, bytes);
        m.free_contiguous(run, bytes);
        m.free_pages(page, order);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  m.drain_all_quiescent();
  const NodeStats n = m.stats().nodes[0];
  EXPECT_EQ(n.free_pages, n.total_pages);
}

}  // namespace
}  // namespace kmbench::physmem
