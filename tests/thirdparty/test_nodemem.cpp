// Node memory for jemalloc's hooks and mimalloc's arenas: runs of the
// simulated machine's RAM, on the node asked for, below a ceiling when asked.
#include <gtest/gtest.h>

#include <cstring>

#include "allocators/nodemem/nodemem.h"

namespace kmbench::nodemem {
namespace {

TEST(NodeMemory, EveryNodeGetsAlignedRunsOfItsOwnRam) {
  physmem::TopologySpec spec = physmem::topology_from_string("synthetic:pack:2 [numa] pu:1");
  spec.node_bytes = 256u << 20;
  physmem::Machine machine(spec);
  BackendConfig config;
  config.machine = &machine;
  NodeMemory mem{config};
  ASSERT_EQ(mem.node_count(), 2u);
  EXPECT_TRUE(mem.synthetic());
  EXPECT_NE(mem.description().find("simulated machine"), std::string::npos);
  for (NodeId n = 0; static_cast<unsigned>(n) < mem.node_count(); ++n) {
    constexpr std::size_t kBytes = 4u << 20;
    auto* p = static_cast<unsigned char*>(mem.map(kBytes, 2u << 20, n));
    ASSERT_NE(p, nullptr) << "node " << n;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % (2u << 20), 0u);
    EXPECT_EQ(machine.node_of(p), n);
    EXPECT_EQ(machine.node_of(p + kBytes - 1), n);
    std::memset(p, 1, kBytes);  // it is memory
    mem.unmap(p, kBytes);
  }
}

TEST(NodeMemory, RunsBelowACeilingComeFromLowMemory) {
  physmem::TopologySpec spec;
  spec.node_bytes = 512u << 20;
  spec.low_bytes = 128u << 20;  // node 0: 128 MiB below 4 GiB, 384 MiB above
  physmem::Machine machine(spec);
  BackendConfig config;
  config.machine = &machine;
  NodeMemory mem{config};
  void* high = mem.map(4u << 20, 4096, 0);
  void* low = mem.map(4u << 20, 4096, 0, kLowMemoryLimit - 1);
  ASSERT_NE(high, nullptr);
  ASSERT_NE(low, nullptr);
  EXPECT_GE(machine.phys_of(high), kLowMemoryLimit) << "ordinary requests take Normal memory first";
  EXPECT_LT(machine.phys_of(low) + (4u << 20), kLowMemoryLimit + 1);
  mem.unmap(high, 4u << 20);
  mem.unmap(low, 4u << 20);
}

TEST(NodeMemory, RejectsNodesOutsideTheTopology) {
  NodeMemory mem{BackendConfig{}};
  EXPECT_EQ(mem.map(1u << 20, 4096, static_cast<NodeId>(mem.node_count())), nullptr);
  EXPECT_EQ(mem.map(1u << 20, 4096, -1), nullptr);
  EXPECT_LT(static_cast<unsigned>(mem.local_node()), mem.node_count());
}

TEST(GranuleMap, RemembersOwnersPerTwoMiBGranule) {
  NodeMemory mem{BackendConfig{}};
  constexpr std::size_t kG = std::size_t{1} << GranuleMap::kShift;
  auto* p = static_cast<char*>(mem.map(4 * kG, kG, 0));
  ASSERT_NE(p, nullptr);
  GranuleMap& map = GranuleMap::instance();
  map.set(p, 2 * kG, 7);
  map.set(p + 2 * kG, 2 * kG, 9);
  EXPECT_EQ(map.get(p), 7);
  EXPECT_EQ(map.get(p + 2 * kG - 1), 7);
  EXPECT_EQ(map.get(p + 2 * kG), 9);
  EXPECT_EQ(map.get(p + 4 * kG - 16), 9);
  map.set(p, 4 * kG, 0);
  EXPECT_EQ(map.get(p + kG), 0);
  mem.unmap(p, 4 * kG);
}

}  // namespace
}  // namespace kmbench::nodemem
