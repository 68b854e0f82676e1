// The seed documents' fragments compile against kpi/include (this binary is
// built from them) and run as their text says, on every in-process backend.
#include "tests/kpi/kpi_test.h"
#include "tests/kpi/seed_fragments.h"

namespace kmbench::testing {
namespace {

class SeedFragments : public KpiTest {};

TEST_P(SeedFragments, Seed000NewThenInitWithoutParams) { EXPECT_TRUE(seed000_init_without_params()); }
TEST_P(SeedFragments, Seed000InitWithAnOSDictionary) { EXPECT_TRUE(seed000_init_with_dictionary()); }
TEST_P(SeedFragments, Seed000WithPhysicalAddress) { EXPECT_TRUE(seed000_with_physical_address()); }
TEST_P(SeedFragments, Seed002NamesTheDMAClasses) { EXPECT_TRUE(seed002_dma_types_named()); }

KMBENCH_KPI_ON_EVERY_BACKEND(SeedFragments);

}  // namespace
}  // namespace kmbench::testing
