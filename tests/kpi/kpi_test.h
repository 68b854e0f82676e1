// Shared by the KPI tests: the in-process backends to run on, and a fixture
// that makes one of them serve the KPI and checks every test frees what it took.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "allocators/registry.h"
#include "kmbench/kpi.h"
#include "tests/allocators/conformance_config.h"

namespace kmbench::testing {

inline std::vector<std::string> kpi_backends() {
  std::vector<std::string> names;
  for (const BackendInfo& b : all_backends()) {
    if (b.executable.empty()) {
      names.push_back(b.name);
    }
  }
  return names;
}

inline std::string backend_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

/// The KPI served by GetParam(), in strict mode; every test must leave no block live.
class KpiTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    kpi::set_mode(kpi::Mode::strict);
    kpi::use_backend(GetParam(), conformance_config());
  }
  void TearDown() override {
    const std::int64_t live = kpi::live_blocks();
    EXPECT_EQ(live, 0) << "the test left KPI blocks live";
    if (live == 0) kpi::set_mode(kpi::Mode::strict);
  }
  /// The blocks the backend itself says are handed out, or -1 when it cannot tell (system, bump).
  static std::int64_t backend_live_blocks() { return kpi::backend().stats().backend.live_blocks; }
  static kpi::FamilyUsage family(const std::string& name) {
    for (const kpi::FamilyUsage& f : kpi::family_usage()) {
      if (f.family == name) {
        return f;
      }
    }
    ADD_FAILURE() << "no KPI family " << name;
    return {};
  }
  static kpi::TagUsage tag(const std::string& name) {
    kpi::TagUsage found;
    for (const kpi::TagUsage& t : kpi::tag_usage()) {
      if (t.name == name) {
        found = t;  // the latest tag of that name
      }
    }
    return found;
  }
};

#define KMBENCH_KPI_ON_EVERY_BACKEND(Suite) \
  INSTANTIATE_TEST_SUITE_P(AllBackends, Suite, \
                           ::testing::ValuesIn(::kmbench::testing::kpi_backends()), \
                           ::kmbench::testing::backend_test_name)

}  // namespace kmbench::testing
