// Shared by the DMA tests: a machine with RAM above 4 GiB, and a fixture that
// makes a backend serve the KPI on it.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "allocators/physmem/physmem.h"
#include "allocators/registry.h"
#include "kmbench/dma.h"
#include "kmbench/kpi.h"

namespace kmbench::testing {

/// Two synthetic nodes of 4 GiB: node 0 lies below 4 GiB, node 1 above.
inline physmem::Machine& dma_machine() {
  static physmem::Machine machine([] {
    physmem::TopologySpec spec;
    spec.kind = physmem::TopologySpec::Kind::synthetic;
    spec.text = "pack:2 [numa] core:1 pu:1";
    spec.node_bytes = 4ull << 30;
    return spec;
  }());
  return machine;
}

inline std::vector<std::string> dma_backends() {
  std::vector<std::string> names;
  for (const BackendInfo& b : all_backends()) {
    if (b.executable.empty()) {
      names.push_back(b.name);
    }
  }
  return names;
}

class DmaTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    BackendConfig config;
    config.machine = &dma_machine();
    kpi::use_backend(GetParam(), config);
    kpi::set_dma_node(0);
    kpi::reset_dma_stats();
  }
  void TearDown() override {
    kpi::set_dma_node(kAnyNode);
    EXPECT_EQ(kpi::live_blocks(), 0) << "the test left KPI blocks live";
    EXPECT_EQ(kpi::dma_stats().lent_pages, 0u) << "lent frames not returned";
  }
};

inline std::string dma_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

}  // namespace kmbench::testing
