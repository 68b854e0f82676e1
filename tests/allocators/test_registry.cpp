#include <gtest/gtest.h>

#include "allocators/registry.h"

namespace kmbench {
namespace {

TEST(Registry, ListsSystemServedInProcess) {
  const BackendInfo* system = find_backend("system");
  ASSERT_NE(system, nullptr);
  EXPECT_TRUE(system->executable.empty());
  EXPECT_FALSE(system->summary.empty());
}

TEST(Registry, NamesAreUnique) {
  const auto& all = all_backends();
  for (std::size_t i = 0; i < all.size(); ++i) {
    for (std::size_t j = i + 1; j < all.size(); ++j) {
      EXPECT_NE(all[i].name, all[j].name);
    }
  }
}

TEST(Registry, UnknownBackendIsAUsageErrorListingTheKnownOnes) {
  EXPECT_EQ(find_backend("no-such"), nullptr);
  try {
    open_backend("no-such");
    FAIL() << "open_backend accepted an unknown name";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("no-such"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("system"), std::string::npos);
  }
}

TEST(Registry, WithBackendCallsTheConcreteType) {
  bool called = false;
  const bool found = with_backend("system", {}, [&](auto& backend) {
    using B = std::remove_cvref_t<decltype(backend)>;
    called = std::is_same_v<B, Counting<SystemBackend>>;
    void* p = backend.allocate(100, 64, kNoTag, kAnyNode);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u);
    backend.free(p, 100);
    EXPECT_EQ(backend.stats().allocs, 1u);
  });
  EXPECT_TRUE(found);
  EXPECT_TRUE(called);
  EXPECT_FALSE(with_backend("no-such", {}, [](auto&) { FAIL(); }));
}

TEST(Registry, ParamsParseAndLaterKeysWin) {
  BackendConfig config;
  apply_params(config, "a=1,b=two,,a=3");
  EXPECT_EQ(config.param("a"), "3");
  EXPECT_EQ(config.param("b"), "two");
  EXPECT_EQ(config.param("c", "fallback"), "fallback");
  EXPECT_THROW(apply_params(config, "novalue"), UsageError);
  EXPECT_THROW(apply_params(config, "=x"), UsageError);
}

TEST(Registry, FeatureNames) {
  EXPECT_EQ(feature_names(0), "");
  EXPECT_EQ(feature_names(kFeatureSizedFree | kFeatureNuma), "sized-free,numa");
}

}  // namespace
}  // namespace kmbench
