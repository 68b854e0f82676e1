// The balloon: pages taken out of a node's use come from its free memory only,
// leave the node's allocations short by exactly that much, and come back
// whole, coalesced as before.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "allocators/physmem/physmem.h"

namespace kmbench::physmem {
namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

Machine two_nodes(std::uint64_t node_bytes) {
  TopologySpec spec;
  spec.kind = TopologySpec::Kind::synthetic;
  spec.text = "pack:2 [numa] core:1 pu:1";
  spec.node_bytes = node_bytes;
  return Machine(spec);
}

/// Order-0 pages the node still hands out, all of them taken and given back.
std::uint64_t pages_allocatable(Machine& m, NodeId node) {
  std::vector<void*> held;
  while (void* p = m.alloc_pages(0, node)) {
    held.push_back(p);
  }
  for (void* p : held) {
    m.free_pages(p, 0);
  }
  m.drain_all_quiescent();
  return held.size();
}

std::vector<std::uint64_t> free_blocks(const Machine& m) {
  std::vector<std::uint64_t> shape;
  for (const NodeStats& n : m.stats().nodes) {
    shape.insert(shape.end(), n.free_blocks.begin(), n.free_blocks.end());
  }
  return shape;
}

TEST(Balloon, TakesFreePagesOfOneNodeAndGivesThemBackWhole) {
  Machine m = two_nodes(64 * kMiB);
  const std::uint64_t all = pages_allocatable(m, 0);
  const std::uint64_t all1 = pages_allocatable(m, 1);
  const std::vector<std::uint64_t> before = free_blocks(m);

  EXPECT_EQ(m.balloon_inflate(0, 5000), 5000u);
  EXPECT_EQ(m.balloon_pages(0), 5000u);
  EXPECT_EQ(m.balloon_pages(1), 0u);
  EXPECT_EQ(m.stats().nodes[0].balloon_pages, 5000u);
  EXPECT_EQ(pages_allocatable(m, 0), all - 5000) << "the node hands out exactly what the balloon left";
  EXPECT_EQ(pages_allocatable(m, 1), all1) << "the other node is untouched";

  EXPECT_EQ(m.balloon_deflate(0, 1234), 1234u) << "a part of a run comes back";
  EXPECT_EQ(m.balloon_pages(0), 5000u - 1234u);
  EXPECT_EQ(pages_allocatable(m, 0), all - 5000 + 1234);
  EXPECT_EQ(m.balloon_deflate(0, 1u << 30), 5000u - 1234u) << "no more than it holds";
  EXPECT_EQ(m.balloon_pages(0), 0u);
  EXPECT_EQ(free_blocks(m), before) << "every page coalesced back where it was";
}

TEST(Balloon, TakesOnlyWhatIsFree) {
  Machine m = two_nodes(64 * kMiB);
  const std::uint64_t all = pages_allocatable(m, 1);
  std::vector<void*> held;
  for (std::uint64_t i = 0; i < all - 100; ++i) {
    held.push_back(m.alloc_pages(0, 1));
  }
  m.drain_all_quiescent();
  EXPECT_EQ(m.balloon_inflate(1, 1000), 100u) << "allocated memory stays with its owner";
  EXPECT_EQ(m.alloc_pages(0, 1), nullptr) << "nothing free is left";
  for (void* p : held) {
    m.free_pages(p, 0);
  }
  m.drain_all_quiescent();
  EXPECT_EQ(m.balloon_inflate(1, 1000), 1000u) << "what owners give back the balloon can take";
  EXPECT_EQ(m.balloon_deflate(1, 1100), 1100u);
}

TEST(Balloon, InflatesWhileThreadsAllocate) {
  Machine m = two_nodes(64 * kMiB);
  const std::uint64_t all = pages_allocatable(m, 0);
  std::thread churn([&] {
    std::vector<void*> held;
    for (int round = 0; round < 200; ++round) {
      for (int i = 0; i < 64; ++i) {
        if (void* p = m.alloc_pages(static_cast<unsigned>(i % 3), 0)) held.push_back(p);
      }
      for (std::size_t i = 0; i < held.size(); ++i) {
        m.free_pages(held[i], static_cast<unsigned>(i % 3));
      }
      held.clear();
    }
    m.drain_local();
  });
  std::uint64_t in = 0;
  for (int i = 0; i < 200; ++i) {
    in += m.balloon_inflate(0, 37);
    if (i % 3 == 0) in -= m.balloon_deflate(0, 50);
  }
  churn.join();
  m.drain_all_quiescent();
  EXPECT_EQ(m.balloon_pages(0), in);
  EXPECT_EQ(pages_allocatable(m, 0), all - in);
  m.balloon_deflate(0, in);
  EXPECT_EQ(pages_allocatable(m, 0), all);
}

}  // namespace
}  // namespace kmbench::physmem
