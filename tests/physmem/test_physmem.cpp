// The page layer: topology, PA <-> VA, buddy splitting and coalescing, pcp
// lists, contiguous runs with ceilings and alignment, running out of memory.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "allocators/physmem/physmem.h"
#include "base/errors.h"
#include "tests/support/temp_files.h"

namespace kmbench::physmem {
namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

TopologySpec synthetic(const std::string& text, std::uint64_t node_bytes) {
  TopologySpec spec;
  spec.kind = TopologySpec::Kind::synthetic;
  spec.text = text;
  spec.node_bytes = node_bytes;
  return spec;
}

TopologySpec real(std::uint64_t node_bytes) {
  TopologySpec spec;
  spec.node_bytes = node_bytes;
  return spec;
}

/// Free pages per order and zone: equal before and after a balanced workload
/// means every block coalesced back to where it started.
std::vector<std::uint64_t> free_shape(const Machine& m) {
  std::vector<std::uint64_t> shape;
  for (const NodeStats& n : m.stats().nodes) {
    shape.push_back(n.free_pages);
    shape.push_back(n.pcp_pages);
    for (const ZoneStats& z : n.zones) {
      shape.push_back(z.free_pages);
      shape.insert(shape.end(), z.free_blocks.begin(), z.free_blocks.end());
    }
  }
  return shape;
}

TEST(Topology, RealMachineReportsNodeZeroWithItsCpusAndMemory) {
  Machine m(real(64 * kMiB));
  EXPECT_FALSE(m.synthetic());
  ASSERT_GE(m.node_count(), 1u);
  const NodeInfo& n0 = m.node(0);
  EXPECT_EQ(n0.id, 0);
  EXPECT_FALSE(n0.cpus.empty());
  EXPECT_GT(n0.os_memory_bytes, 0u);
  EXPECT_EQ(n0.sim_bytes, 64 * kMiB);
  EXPECT_EQ(n0.phys_base, 0u);
  EXPECT_EQ(m.node_of_cpu(n0.cpus.front()), 0);
  EXPECT_EQ(m.topology_description().rfind("real: ", 0), 0u) << m.topology_description();
  if (m.node_count() == 1) {
    EXPECT_FALSE(n0.bound);
    EXPECT_NE(m.numa_note().find("1 NUMA node"), std::string::npos);
  }
}

TEST(Topology, SyntheticTwoAndFourNodes) {
  for (unsigned nodes : {2u, 4u}) {
    Machine m(synthetic("pack:" + std::to_string(nodes) + " [numa] core:2 pu:1", 32 * kMiB));
    EXPECT_TRUE(m.synthetic());
    ASSERT_EQ(m.node_count(), nodes);
    EXPECT_EQ(m.numa_note(), "synthetic topology: placement not measured");
    EXPECT_NE(m.topology_description().find("synthetic: pack:"), std::string::npos);
    for (NodeId k = 0; k < static_cast<NodeId>(nodes); ++k) {
      EXPECT_EQ(m.node(k).cpus.size(), 2u);
      EXPECT_EQ(m.node_of_cpu(m.node(k).cpus[1]), k);
      EXPECT_FALSE(m.node(k).bound);
    }
  }
}

TEST(Topology, XmlExportLoadsAsSyntheticTopology) {
  hwloc_topology_t t;
  ASSERT_EQ(hwloc_topology_init(&t), 0);
  ASSERT_EQ(hwloc_topology_set_synthetic(t, "pack:3 [numa] core:1 pu:2"), 0);
  ASSERT_EQ(hwloc_topology_load(t), 0);
  test_support::TempFiles files("physmem");
  const std::string path = files.path("topology.xml");
  ASSERT_EQ(hwloc_topology_export_xml(t, path.c_str(), 0), 0);
  hwloc_topology_destroy(t);

  TopologySpec spec{.kind = TopologySpec::Kind::xml, .text = path, .node_bytes = 16 * kMiB};
  Machine m(spec);
  EXPECT_TRUE(m.synthetic());
  EXPECT_EQ(m.node_count(), 3u);
  EXPECT_EQ(m.node(2).cpus.size(), 2u);
}

TEST(Topology, BadSpecsAreUsageErrors) {
  EXPECT_THROW(Machine(synthetic("pack:2 [numa] wombat:3", 16 * kMiB)), UsageError);
  EXPECT_THROW(Machine(synthetic("", 16 * kMiB)), UsageError);
  EXPECT_THROW(Machine(TopologySpec{.kind = TopologySpec::Kind::xml, .text = "/nonexistent.xml"}),
               UsageError);
  EXPECT_THROW(Machine(real(4 * kMiB)), UsageError);
  TopologySpec too_high = real(16 * kMiB);
  too_high.pcp_high_pages = 4096;
  EXPECT_THROW(Machine{too_high}, UsageError);
  try {
    Machine bad(TopologySpec{.kind = TopologySpec::Kind::xml, .text = "/nonexistent.xml"});
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent.xml"), std::string::npos);
  }
}

TEST(Topology, ParsedFromTheTextUsersWrite) {
  EXPECT_EQ(topology_from_string("real").kind, TopologySpec::Kind::real);
  const TopologySpec s = topology_from_string("synthetic:pack:2 [numa] core:1 pu:1", 64 * kMiB);
  EXPECT_EQ(s.kind, TopologySpec::Kind::synthetic);
  EXPECT_EQ(s.text, "pack:2 [numa] core:1 pu:1");
  EXPECT_EQ(s.node_bytes, 64 * kMiB);
  EXPECT_EQ(topology_from_string("xml:/tmp/t.xml").text, "/tmp/t.xml");
  EXPECT_THROW(topology_from_string("synthetic:"), UsageError);
  EXPECT_THROW(topology_from_string("numa"), UsageError);
  EXPECT_THROW(topology_from_string("real:2"), UsageError);
  // hwloc takes minutes over 100,000 objects: refused before it starts.
  EXPECT_EQ(topology_from_string("synthetic:pack:64 [numa] core:16 pu:4").kind, TopologySpec::Kind::synthetic);
  try {
    topology_from_string("synthetic:pack:100000 [numa] pu:1");
    FAIL() << "a synthetic machine of 100,000 PUs was taken";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "topology 'synthetic:pack:100000 [numa] pu:1': more than 4096 objects at its last level "
                           "(threads run on 256 CPU slots)");
  }
  EXPECT_THROW(topology_from_string("synthetic:pack:2 core:99999999999999999999999 pu:1"), UsageError);
}

TEST(Machine, DefaultLayoutHasDmaDma32AndNormalZones) {
  Machine m;  // the real topology, default sizes: 8 GiB on one node
  const NodeStats n0 = m.stats().nodes.at(0);
  if (m.node_count() == 1) {
    ASSERT_EQ(n0.zones.size(), 3u);
    EXPECT_EQ(n0.zones[0].kind, ZoneKind::dma);
    EXPECT_EQ(n0.zones[0].phys_end, kDmaLimit);
    EXPECT_EQ(n0.zones[1].kind, ZoneKind::dma32);
    EXPECT_EQ(n0.zones[1].phys_end, kDma32Limit);
    EXPECT_EQ(n0.zones[2].kind, ZoneKind::normal);
  }
  EXPECT_EQ(n0.total_pages, (m.node(0).sim_bytes - kReservedLowBytes) / kPageSize);
  EXPECT_EQ(n0.free_pages, n0.total_pages);
}

TEST(Machine, PhysicalAndVirtualTranslateBothWays) {
  Machine m(synthetic("pack:2 [numa] core:1 pu:1", 64 * kMiB));
  for (NodeId k = 0; k < 2; ++k) {
    void* p = m.alloc_pages(2, k);
    ASSERT_NE(p, nullptr);
    const std::uint64_t pa = m.phys_of(p);
    EXPECT_EQ(m.virt_of(pa), p);
    EXPECT_EQ(m.virt_of(pa + 5000), static_cast<char*>(p) + 5000);
    EXPECT_EQ(m.node_of_phys(pa), k);
    EXPECT_EQ(m.node_of(p), k);
    EXPECT_TRUE(m.owns(p));
    EXPECT_GE(pa, m.node(k).phys_base);
    EXPECT_LT(pa, m.node(k).phys_base + m.node(k).sim_bytes);
    EXPECT_EQ(pa % (4 * kPageSize), 0u);
    std::memset(p, 0x5a, 4 * kPageSize);
    m.free_pages(p, 2);
  }
  int local = 0;
  EXPECT_FALSE(m.owns(&local));
  EXPECT_EQ(m.virt_of(m.node(1).phys_base + m.node(1).sim_bytes), nullptr);
  // Node 0's reserved low page translates, but the page layer never hands it out.
  ASSERT_NE(m.virt_of(0), nullptr);
  EXPECT_EQ(m.phys_of(m.virt_of(0)), 0u);
  std::vector<void*> all;
  for (void* q; (q = m.alloc_pages(0, 0)) != nullptr;) {
    EXPECT_GE(m.phys_of(q), kReservedLowBytes);
    all.push_back(q);
  }
  EXPECT_FALSE(all.empty());
  for (void* q : all) m.free_pages(q, 0);
}

TEST(Machine, RequestedNodeIsHonouredOnSyntheticTopologies) {
  for (unsigned nodes : {2u, 4u}) {
    Machine m(synthetic("pack:" + std::to_string(nodes) + " [numa] core:1 pu:1", 16 * kMiB));
    for (NodeId k = 0; k < static_cast<NodeId>(nodes); ++k) {
      std::vector<std::pair<void*, unsigned>> got;
      for (unsigned order = 0; order <= kMaxOrder; ++order) {
        void* p = m.alloc_pages(order, k);
        ASSERT_NE(p, nullptr) << "node " << k << " order " << order;
        EXPECT_EQ(m.node_of(p), k);
        got.emplace_back(p, order);
      }
      void* run = m.alloc_contiguous(3 * kPageSize, kPageSize, k);
      ASSERT_NE(run, nullptr);
      EXPECT_EQ(m.node_of(run), k);
      m.free_contiguous(run, 3 * kPageSize);
      for (auto [p, order] : got) {
        m.free_pages(p, order);
      }
    }
  }
}

TEST(Machine, AnyNodeFallsBackToOtherNodesWhenLocalIsFull) {
  Machine m(synthetic("pack:2 [numa] core:1 pu:1", 8 * kMiB));
  std::vector<void*> blocks;
  while (void* p = m.alloc_pages(kMaxOrder, kAnyNode)) {
    blocks.push_back(p);
  }
  // node 0: one 4 MiB block (its first block holds the reserved MiB); node 1: two.
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_NE(m.node_of(blocks.front()), m.node_of(blocks.back()));
  for (void* p : blocks) {
    m.free_pages(p, kMaxOrder);
  }
}

TEST(Machine, CoalescingReturnsEverythingToTheTopOrder) {
  Machine m(synthetic("pack:1 [numa] core:1 pu:1", 32 * kMiB));
  const auto before = free_shape(m);
  std::vector<std::pair<void*, unsigned>> got;
  for (int round = 0; round < 3; ++round) {
    for (unsigned order = 0; order <= kMaxOrder; ++order) {
      for (int i = 0; i < 3; ++i) {
        if (void* p = m.alloc_pages(order, 0)) {
          got.emplace_back(p, order);
        }
      }
    }
  }
  ASSERT_GT(got.size(), 20u);
  EXPECT_NE(free_shape(m), before);
  std::mt19937 rng(7);
  std::shuffle(got.begin(), got.end(), rng);
  for (auto [p, order] : got) {
    m.free_pages(p, order);
  }
  m.drain_all_quiescent();
  EXPECT_EQ(free_shape(m), before);
  const NodeStats n = m.stats().nodes[0];
  EXPECT_EQ(n.free_pages, n.total_pages);
  EXPECT_EQ(n.largest_free_bytes(), kPageSize << kMaxOrder);
  // 32 MiB: 7 top-order blocks plus the reserved block's 3 MiB (orders 8 and 9).
  EXPECT_EQ(n.free_blocks[kMaxOrder], 7u);
  EXPECT_EQ(n.free_blocks[9], 1u);
  EXPECT_EQ(n.free_blocks[8], 1u);
  for (unsigned o = 0; o < 8; ++o) {
    EXPECT_EQ(n.free_blocks[o], 0u) << "order " << o;
  }
}

TEST(Machine, PcpListsServeRepeatedSmallOrdersAndDrain) {
  Machine m(synthetic("pack:1 [numa] core:1 pu:1", 32 * kMiB));
  void* a = m.alloc_pages(0, 0);
  m.free_pages(a, 0);
  void* b = m.alloc_pages(0, 0);
  EXPECT_EQ(a, b);  // LIFO: the page just freed comes back warm
  m.free_pages(b, 0);
  PageStats s = m.stats();
  EXPECT_EQ(s.pcp_misses, 1u);
  EXPECT_EQ(s.pcp_hits, 1u);
  EXPECT_EQ(s.pcp_refills, 1u);
  EXPECT_EQ(s.nodes[0].pcp_pages, 64u);  // one batch of the default 64 pages
  EXPECT_EQ(m.drain_local(), 64 * kPageSize);
  s = m.stats();
  EXPECT_EQ(s.nodes[0].pcp_pages, 0u);
  EXPECT_EQ(s.nodes[0].free_pages, s.nodes[0].total_pages);
}

TEST(Machine, PcpMarksCanBeSetWhenQuietAndAreChecked) {
  Machine m(synthetic("pack:1 [numa] core:1 pu:1", 32 * kMiB));
  std::vector<void*> pages;
  for (int i = 0; i < 100; ++i) pages.push_back(m.alloc_pages(0, 0));
  for (void* p : pages) m.free_pages(p, 0);
  ASSERT_GT(m.stats().nodes[0].pcp_pages, 8u);
  m.set_pcp_marks(8, 2);  // drains first: no list may hold more than its new high mark
  EXPECT_EQ(m.stats().nodes[0].pcp_pages, 0u);
  pages.clear();
  for (int i = 0; i < 20; ++i) pages.push_back(m.alloc_pages(0, 0));
  for (void* p : pages) m.free_pages(p, 0);
  EXPECT_LE(m.stats().nodes[0].pcp_pages, 8u);
  EXPECT_EQ(m.stats().pcp_high_pages, 8u);
  EXPECT_THROW(m.set_pcp_marks(8, 9), UsageError);
  EXPECT_THROW(m.set_pcp_marks(kPcpCapPages + 1, 1), UsageError);
  EXPECT_THROW(m.set_pcp_marks(8, 0), UsageError);
}

TEST(Machine, PcpSpillsABatchAtTheHighMark) {
  TopologySpec spec = synthetic("pack:1 [numa] core:1 pu:1", 32 * kMiB);
  spec.pcp_high_pages = 16;
  spec.pcp_batch_pages = 4;
  Machine m(spec);
  std::vector<void*> pages;
  for (int i = 0; i < 40; ++i) {
    pages.push_back(m.alloc_pages(0, 0));
  }
  for (void* p : pages) {
    m.free_pages(p, 0);
  }
  const PageStats s = m.stats();
  EXPECT_GT(s.pcp_spills, 0u);
  EXPECT_LE(s.nodes[0].pcp_pages, 16u);
  EXPECT_EQ(s.nodes[0].free_pages + s.nodes[0].pcp_pages, s.nodes[0].total_pages);
}

TEST(Machine, CeilingsPickLowZones) {
  Machine m;  // default: one 8 GiB node on this machine
  if (m.node_count() != 1) {
    GTEST_SKIP() << "layout checked on one-node machines";
  }
  void* normal = m.alloc_pages(0, 0);
  ASSERT_NE(normal, nullptr);
  EXPECT_GE(m.phys_of(normal), kDma32Limit);  // Normal first, low memory kept for DMA
  void* dma32 = m.alloc_pages(0, 0, 0xFFFF'FFFFull);
  ASSERT_NE(dma32, nullptr);
  EXPECT_LT(m.phys_of(dma32), kDma32Limit);
  EXPECT_GE(m.phys_of(dma32), kDmaLimit);
  void* isa = m.alloc_pages(3, 0, kDmaLimit - 1);
  ASSERT_NE(isa, nullptr);
  EXPECT_LT(m.phys_of(isa) + 8 * kPageSize - 1, kDmaLimit);
  EXPECT_GE(m.phys_of(isa), kReservedLowBytes);
  void* odd = m.alloc_pages(1, 0, 5 * kMiB - 1);  // a ceiling inside a zone
  ASSERT_NE(odd, nullptr);
  EXPECT_LE(m.phys_of(odd) + 2 * kPageSize - 1, 5 * kMiB - 1);
  EXPECT_EQ(m.alloc_pages(0, 0, kReservedLowBytes - 1), nullptr);  // only firmware memory there
  m.free_pages(normal, 0);
  m.free_pages(dma32, 0);
  m.free_pages(isa, 3);
  m.free_pages(odd, 1);
}

TEST(Machine, ContiguousRunsHonourCeilingAndAlignment) {
  Machine m(synthetic("pack:1 [numa] core:1 pu:1", 256 * kMiB));
  const auto before = free_shape(m);
  struct Case {
    std::size_t bytes, align;
    std::uint64_t max_phys;
  };
  const Case cases[] = {
      {1, 1, ~0ull},
      {3 * kPageSize, kPageSize, ~0ull},
      {5 * kPageSize + 1, 64 * 1024, ~0ull},
      {kPageSize, 2 * kMiB, ~0ull},
      {4 * kMiB, 4 * kMiB, ~0ull},
      {6 * kMiB + 12345, kPageSize, ~0ull},
      {20 * kMiB, 16 * kMiB, ~0ull},
      {kPageSize, 32 * kMiB, ~0ull},
      {9 * kPageSize, kPageSize, kDmaLimit - 1},
      {12 * kMiB, kPageSize, 64 * kMiB - 1},
      {3 * kMiB, kPageSize, 40 * kMiB - 1},
  };
  std::vector<std::pair<void*, std::size_t>> runs;
  for (const Case& c : cases) {
    void* p = m.alloc_contiguous(c.bytes, c.align, 0, c.max_phys);
    ASSERT_NE(p, nullptr) << c.bytes << " align " << c.align;
    const std::uint64_t pa = m.phys_of(p);
    EXPECT_EQ(pa % std::max(c.align, kPageSize), 0u) << c.bytes;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % std::max(c.align, kPageSize), 0u);
    EXPECT_LE(pa + c.bytes - 1, c.max_phys) << c.bytes;
    std::memset(p, 0x77, c.bytes);
    runs.emplace_back(p, c.bytes);
  }
  EXPECT_EQ(m.alloc_contiguous(0, kPageSize, 0), nullptr);
  EXPECT_EQ(m.alloc_contiguous(kPageSize, 3 * kPageSize, 0), nullptr);    // not a power of two
  EXPECT_EQ(m.alloc_contiguous(512 * kMiB, kPageSize, 0), nullptr);      // larger than the node
  EXPECT_EQ(m.alloc_contiguous(kPageSize, kPageSize, 0, 4095), nullptr);  // below any RAM
  for (auto [p, bytes] : runs) {
    m.free_contiguous(p, bytes);
  }
  m.drain_all_quiescent();
  EXPECT_EQ(free_shape(m), before);
}

TEST(Machine, RunningOutOfMemoryReturnsNullAndKeepsStateConsistent) {
  Machine m(synthetic("pack:1 [numa] core:1 pu:1", 16 * kMiB));
  const NodeStats fresh = m.stats().nodes[0];
  std::vector<void*> pages;
  while (void* p = m.alloc_pages(0, 0)) {
    pages.push_back(p);
    ASSERT_LE(pages.size(), fresh.total_pages);
  }
  EXPECT_EQ(pages.size(), fresh.total_pages);
  EXPECT_EQ(m.alloc_pages(0, 0), nullptr);
  EXPECT_EQ(m.alloc_pages(kMaxOrder, 0), nullptr);
  EXPECT_EQ(m.alloc_contiguous(kPageSize, kPageSize, 0), nullptr);
  EXPECT_EQ(m.alloc_pages(0, kAnyNode), nullptr);
  EXPECT_EQ(m.alloc_pages(0, 5), nullptr);  // no such node
  EXPECT_EQ(m.alloc_pages(kMaxOrder + 1, 0), nullptr);
  EXPECT_EQ(m.stats().nodes[0].free_pages, 0u);
  for (std::size_t i = 0; i < pages.size(); i += 2) {
    m.free_pages(pages[i], 0);
  }
  for (std::size_t i = 1; i < pages.size(); i += 2) {
    m.free_pages(pages[i], 0);
  }
  m.drain_all_quiescent();
  const NodeStats after = m.stats().nodes[0];
  EXPECT_EQ(after.free_pages, fresh.total_pages);
  EXPECT_EQ(after.free_blocks, fresh.free_blocks);
  void* big = m.alloc_contiguous(12 * kMiB, kPageSize << kMaxOrder, 0);
  ASSERT_NE(big, nullptr);
  m.free_contiguous(big, 12 * kMiB);
}

// Random orders and runs, many seeds: live blocks never overlap physically,
// every block is aligned and on its node, and all memory comes back.
TEST(Machine, PropertyNoPhysicalOverlapUnderRandomAllocAndFree) {
  TopologySpec spec = synthetic("pack:2 [numa] core:1 pu:1", 32 * kMiB);
  spec.pcp_high_pages = 32;
  spec.pcp_batch_pages = 8;
  Machine m(spec);
  const auto before = free_shape(m);
  std::uint64_t placed = 0, beyond_max_order = 0, ceilinged = 0;
  for (unsigned seed = 1; seed <= 60; ++seed) {
    std::mt19937_64 rng(seed);
    struct Live {
      void* p;
      std::uint64_t bytes;
      int order;  // -1: a contiguous run
    };
    std::map<std::uint64_t, Live> live;  // by physical address
    std::vector<std::uint64_t> keys;
    auto check_and_insert = [&](void* p, std::uint64_t bytes, int order, NodeId node,
                                std::uint64_t align, std::uint64_t max_phys) {
      const std::uint64_t pa = m.phys_of(p);
      ASSERT_EQ(pa % align, 0u);
      ASSERT_LE(pa + bytes - 1, max_phys);
      if (node != kAnyNode) {
        ASSERT_EQ(m.node_of(p), node);
      }
      auto next = live.lower_bound(pa);
      if (next != live.end()) {
        ASSERT_LE(pa + bytes, next->first) << "seed " << seed;
      }
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + prev->second.bytes, pa) << "seed " << seed;
      }
      live.emplace(pa, Live{p, bytes, order});
      keys.push_back(pa);
      ++placed;
      beyond_max_order += bytes > (kPageSize << kMaxOrder) ? 1 : 0;
      ceilinged += max_phys != ~0ull ? 1 : 0;
    };
    for (int step = 0; step < 1500; ++step) {
      if (keys.empty() || rng() % 100 < 55) {
        const NodeId node = static_cast<NodeId>(rng() % 3) - 1;
        const std::uint64_t max_phys = rng() % 4 == 0 ? 40 * kMiB + (rng() % 8) * kMiB : ~0ull;
        if (rng() % 4 == 0) {
          const std::uint64_t bytes = 1 + rng() % (rng() % 8 == 0 ? 9 * kMiB : 64 * 1024);
          const std::uint64_t align = kPageSize << (rng() % 12);
          void* p = m.alloc_contiguous(bytes, align, node, max_phys);
          if (p != nullptr) {
            check_and_insert(p, (bytes + kPageSize - 1) & ~(kPageSize - 1), -1, node, align,
                             max_phys);
          }
        } else {
          const unsigned order = rng() % 3 == 0 ? rng() % (kMaxOrder + 1) : rng() % 4;
          void* p = m.alloc_pages(order, node, max_phys);
          if (p != nullptr) {
            check_and_insert(p, kPageSize << order, static_cast<int>(order), node,
                             kPageSize << order, max_phys);
          }
        }
        if (HasFatalFailure()) {
          return;
        }
      } else {
        const std::size_t k = rng() % keys.size();
        auto it = live.find(keys[k]);
        if (it->second.order < 0) {
          m.free_contiguous(it->second.p, it->second.bytes);
        } else {
          m.free_pages(it->second.p, static_cast<unsigned>(it->second.order));
        }
        live.erase(it);
        keys[k] = keys.back();
        keys.pop_back();
      }
    }
    for (auto& [pa, l] : live) {
      if (l.order < 0) {
        m.free_contiguous(l.p, l.bytes);
      } else {
        m.free_pages(l.p, static_cast<unsigned>(l.order));
      }
    }
    m.drain_all_quiescent();
    ASSERT_EQ(free_shape(m), before) << "seed " << seed;
  }
  EXPECT_GT(placed, 60u * 500);
  EXPECT_GT(beyond_max_order, 100u);
  EXPECT_GT(ceilinged, 60u * 100);
}

TEST(Machine, StatsMetricsUseDottedNames) {
  Machine m(synthetic("pack:2 [numa] core:1 pu:1", 16 * kMiB));
  void* p = m.alloc_pages(3, 1);
  const std::vector<Metric> metrics = m.stats().metrics();
  auto value = [&](const std::string& name) {
    for (const Metric& x : metrics) {
      if (x.name == name) {
        return x.value;
      }
    }
    ADD_FAILURE() << "no metric " << name;
    return -1.0;
  };
  EXPECT_EQ(value("physmem.pcp.misses"), 1.0);
  EXPECT_EQ(value("physmem.node1.pcp_pages"), 64.0 - 8.0);
  EXPECT_EQ(value("physmem.node1.free_pages.order10"), 3.0 * 1024);
  EXPECT_EQ(value("physmem.node0.largest_free_bytes"), 4.0 * kMiB);
  EXPECT_EQ(value("physmem.node1.fragmentation_index.order10"), -1.0);
  EXPECT_GE(value("physmem.node0.dma.free_pages"), 0.0);
  m.free_pages(p, 3);
}

TEST(Machine, FragmentationIndexRisesWhenOnlySmallBlocksAreLeft) {
  Machine m(synthetic("pack:1 [numa] core:1 pu:1", 8 * kMiB));
  std::vector<void*> pages;
  while (void* p = m.alloc_pages(0, 0)) {
    pages.push_back(p);
  }
  for (std::size_t i = 0; i < pages.size(); i += 2) {
    m.free_pages(pages[i], 0);  // every other page: no two free pages are buddies
  }
  m.drain_all_quiescent();
  const NodeStats n = m.stats().nodes[0];
  EXPECT_EQ(n.free_blocks[0], n.free_pages);
  EXPECT_EQ(n.largest_free_bytes(), kPageSize);
  EXPECT_EQ(n.fragmentation_index(0), -1.0);
  EXPECT_GT(n.fragmentation_index(3), 0.8);
  EXPECT_DOUBLE_EQ(n.unusable_index(1), 1.0);
  for (std::size_t i = 1; i < pages.size(); i += 2) {
    m.free_pages(pages[i], 0);
  }
}

TEST(Machine, CurrentMachineCanBeReplaced) {
  Machine mine(synthetic("pack:2 [numa] core:1 pu:1", 16 * kMiB));
  set_current_machine(&mine);
  EXPECT_EQ(&current_machine(), &mine);
  set_current_machine(nullptr);
  EXPECT_NE(&current_machine(), &mine);
  if (std::getenv("KMBENCH_TOPOLOGY") == nullptr) {
    EXPECT_FALSE(current_machine().synthetic());  // the real topology by default
  }
}

TEST(Machine, PlacementOnTheRealMachine) {
  Machine m(real(16 * kMiB));
  void* p = m.alloc_pages(0, 0);
  std::memset(p, 1, kPageSize);
  const Placement where = m.placement(p, kPageSize);
  if (m.node_count() == 1) {
    EXPECT_TRUE(where.measured) << where.note;
    EXPECT_EQ(where.node, 0);
  }
  m.free_pages(p, 0);
  Machine syn(synthetic("pack:2 [numa] core:1 pu:1", 16 * kMiB));
  void* q = syn.alloc_pages(0, 1);
  std::memset(q, 1, kPageSize);
  EXPECT_FALSE(syn.placement(q, kPageSize).measured);
  EXPECT_EQ(syn.placement(q, kPageSize).note, "synthetic topology: placement not measured");
  syn.free_pages(q, 0);
}

}  // namespace
}  // namespace kmbench::physmem
