// Node-bound memory on the real topology: placement proven by move_pages.
#include <gtest/gtest.h>

#include <cstring>

#include "allocators/nodemem/nodemem.h"

namespace kmbench::nodemem {
namespace {

TEST(NodeMemory, EveryNodeGetsAlignedZeroedMemoryPlacedOnIt) {
  NodeMemory mem{BackendConfig{}};
  ASSERT_GE(mem.node_count(), 1u);
  EXPECT_FALSE(mem.synthetic());
  EXPECT_NE(mem.description().find("real"), std::string::npos);
  for (NodeId n = 0; static_cast<unsigned>(n) < mem.node_count(); ++n) {
    constexpr std::size_t kBytes = 4u << 20;
    auto* p = static_cast<unsigned char*>(mem.map(kBytes, 2u << 20, n));
    ASSERT_NE(p, nullptr) << "node " << n;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % (2u << 20), 0u);
    EXPECT_EQ(resident_node(p), -ENOENT) << "untouched page reported resident";
    EXPECT_EQ(p[0], 0);
    EXPECT_EQ(p[kBytes - 1], 0);
    std::memset(p, 1, kBytes);
    EXPECT_EQ(resident_node(p), n);
    EXPECT_EQ(resident_node(p + kBytes - 1), n);
    mem.discard(p, kBytes);
    EXPECT_EQ(p[4096], 0) << "discarded memory must read as zero";
    mem.unmap(p, kBytes);
  }
}

TEST(NodeMemory, RejectsNodesOutsideTheTopology) {
  NodeMemory mem{BackendConfig{}};
  EXPECT_EQ(mem.map(1u << 20, 4096, static_cast<NodeId>(mem.node_count())), nullptr);
  EXPECT_EQ(mem.map(1u << 20, 4096, -1), nullptr);
  EXPECT_EQ(mem.local_node(), mem.local_node());
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
