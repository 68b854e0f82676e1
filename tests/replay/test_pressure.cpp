// Memory pressure: the schedule's grammar and what it leaves available, and
// replays under it on every backend: they complete, count their failures by
// kind, skip the frees of blocks they never got, and read zero after --drain.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "allocators/physmem/physmem.h"
#include "allocators/any_backend.h"
#include "base/errors.h"
#include "harness/replay/pressure.h"
#include "harness/replay/replay.h"
#include "tests/support/make_op.h"

namespace kmbench::replay {
namespace {

using ops::OpKind;
using test_support::make_op;

constexpr std::uint64_t kMiB = 1ull << 20;

std::string refusal(const std::string& spec) {
  try {
    parse_pressure(spec);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(PressureSpec, ReadsEveryClauseAndSetting) {
  const PressureSpec s = parse_pressure("cap=50%; take=30%,at=2s,for=500ops,node=1 ;balloon=64m,period=10ms");
  ASSERT_EQ(s.clauses.size(), 3u);
  EXPECT_EQ(s.clauses[0].kind, PressureClause::Kind::cap);
  EXPECT_TRUE(s.clauses[0].percent);
  EXPECT_EQ(s.clauses[0].amount, 50);
  EXPECT_EQ(s.clauses[0].node, kAnyNode);
  const PressureClause& take = s.clauses[1];
  EXPECT_EQ(take.kind, PressureClause::Kind::take);
  EXPECT_EQ(take.at.unit, PassTime::Unit::ns);
  EXPECT_EQ(take.at.value, 2'000'000'000u);
  EXPECT_EQ(take.lasts.unit, PassTime::Unit::ops);
  EXPECT_EQ(take.lasts.value, 500u);
  EXPECT_EQ(take.node, 1);
  const PressureClause& balloon = s.clauses[2];
  EXPECT_FALSE(balloon.percent);
  EXPECT_EQ(balloon.amount, 64.0 * kMiB);
  EXPECT_EQ(balloon.period.value, 10'000'000u);
  EXPECT_TRUE(parse_pressure("none").empty());
  EXPECT_TRUE(parse_pressure("").empty());
}

// A node's counters become the record's (pages as bytes), and the record's
// sum and difference go member by member: what the timed pass reports is the
// machine's counters at its end less those at its start.
TEST(KswapdRecord, CountersAddAndSubtractMemberByMember) {
  physmem::NodeStats n;
  n.kswapd_wakeups = 1;
  n.kswapd_passes = 2;
  n.kswapd_reclaimed_pages = 3;
  n.kswapd_failed_runs = 4;
  n.below_low_allocs = 5;
  n.reserve_allocs = 6;
  n.min_failures = 7;
  n.direct_reclaims = 8;
  n.direct_reclaimed_pages = 9;
  const KswapdRecord one = KswapdRecord::of(n);
  EXPECT_EQ(one.reclaimed_bytes, 3u * 4096);
  EXPECT_EQ(one.direct_reclaimed_bytes, 9u * 4096);
  KswapdRecord two = one;
  two += one;
  const KswapdRecord d = two - one;
  EXPECT_EQ(two.wakeups, 2u);
  EXPECT_EQ(two.min_failures, 14u);
  for (auto [got, want] : {std::pair{d.wakeups, one.wakeups}, {d.passes, one.passes},
                           {d.reclaimed_bytes, one.reclaimed_bytes}, {d.failed_runs, one.failed_runs},
                           {d.below_low_allocs, one.below_low_allocs}, {d.reserve_allocs, one.reserve_allocs},
                           {d.min_failures, one.min_failures}, {d.direct_reclaims, one.direct_reclaims},
                           {d.direct_reclaimed_bytes, one.direct_reclaimed_bytes}}) {
    EXPECT_EQ(got, want);
  }
}

TEST(PressureSpec, RefusesWhatItCannotReadNamingTheClause) {
  EXPECT_NE(refusal("squeeze=5%").find("clause 'squeeze=5%': 'squeeze' is not cap, take or balloon"),
            std::string::npos);
  EXPECT_NE(refusal("take=150%").find("from 0 to 100"), std::string::npos);
  EXPECT_NE(refusal("cap=lots").find("neither a size"), std::string::npos);
  EXPECT_NE(refusal("take=10%,at=soon").find("at='soon' is not a time"), std::string::npos);
  EXPECT_NE(refusal("take=10%,at=1.5ops").find("is not a time"), std::string::npos);
  EXPECT_NE(refusal("balloon=10%").find("a balloon needs period="), std::string::npos);
  EXPECT_NE(refusal("cap=10%,period=1s").find("'period' is not a setting of cap"), std::string::npos);
  EXPECT_NE(refusal("cap=10%,node=-1").find("is not a node number"), std::string::npos);
  EXPECT_NE(refusal("cap=10%;;take=1%").find("an empty clause"), std::string::npos);
  EXPECT_NE(refusal("cap").find("is not KEY=VALUE"), std::string::npos);
}

TEST(PressureSpec, TheTightestClauseInForceSetsWhatIsLeft) {
  const std::uint64_t ram = 1000 * kMiB, live = 200 * kMiB;
  const PressureSpec cap = parse_pressure("cap=50%");
  EXPECT_EQ(available_bytes(cap, 0, ram, live, {}), 100 * kMiB) << "half the peak live bytes";
  const PressureSpec take = parse_pressure("take=30%,at=1ms,for=2ms;cap=900m");
  EXPECT_EQ(available_bytes(take, 0, ram, live, {0, 0}), 900 * kMiB);
  EXPECT_EQ(available_bytes(take, 0, ram, live, {1'000'000, 0}), 700 * kMiB);
  EXPECT_EQ(available_bytes(take, 0, ram, live, {2'999'999, 0}), 700 * kMiB);
  EXPECT_EQ(available_bytes(take, 0, ram, live, {3'000'000, 0}), 900 * kMiB) << "lifted after 2 ms";
  const PressureSpec by_ops = parse_pressure("take=100%,at=10ops");
  EXPECT_EQ(available_bytes(by_ops, 0, ram, live, {999'999'999, 9}), ram);
  EXPECT_EQ(available_bytes(by_ops, 0, ram, live, {0, 10}), 0u);
  const PressureSpec balloon = parse_pressure("balloon=10%,period=100ops,node=1");
  EXPECT_EQ(available_bytes(balloon, 1, ram, live, {0, 49}), 900 * kMiB) << "the first half of a period";
  EXPECT_EQ(available_bytes(balloon, 1, ram, live, {0, 50}), ram) << "the second";
  EXPECT_EQ(available_bytes(balloon, 0, ram, live, {0, 49}), ram) << "another node";
  // A cap far above the node leaves it all, however far: 1e99% of the peak is no integer.
  EXPECT_EQ(available_bytes(parse_pressure("cap=1e99%"), 0, ram, live, {}), ram);
  EXPECT_EQ(available_bytes(parse_pressure("cap=1000000%"), 0, ram, live, {}), ram);
}

TEST(PressureController, RefusesAClauseForANodeTheMachineLacks) {
  physmem::TopologySpec spec;
  spec.node_bytes = 64 * kMiB;
  physmem::Machine m(spec);
  std::atomic<std::uint64_t> steps{0};
  try {
    PressureController c(parse_pressure("cap=50%,node=9"), m, 0, steps, {});
    FAIL() << "a cap on node 9 of a one-node machine was taken (and would have squeezed nothing)";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "--pressure: clause 'cap=50%,node=9' names node 9, but the machine has 1 node (0) "
                           "(docs/pressure.md)");
  }
}

TEST(PressureController, HoldsTheBalloonAtTheScheduleAndLetsItGo) {
  physmem::TopologySpec spec;
  spec.node_bytes = 64 * kMiB;
  physmem::Machine m(spec);
  std::atomic<std::uint64_t> steps{0};
  {
    PressureController c(parse_pressure("cap=16m;take=100%,at=100ops"), m, 0, steps, {});
    c.hold_caps();
    const std::uint64_t ram = c.record().nodes[0].ram_bytes;
    EXPECT_EQ(m.balloon_pages(0) << physmem::kPageShift, ram - 16 * kMiB) << "caps hold before the timed pass";
    c.start();
    steps = 100;
    for (int i = 0; i < 2000 && m.balloon_pages(0) << physmem::kPageShift != ram; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_EQ(m.balloon_pages(0) << physmem::kPageShift, ram) << "everything taken after 100 operations";
    c.stop();
    EXPECT_EQ(m.balloon_pages(0), 0u) << "stop() lets the balloon go";
    EXPECT_EQ(c.record().squeezes_ns.size(), 2u);
    EXPECT_EQ(c.record().nodes[0].min_available_bytes, 0u);
    EXPECT_EQ(c.record().nodes[0].unusable_index.size(), physmem::kMaxOrder + 1);
  }
}

/// 4000 blocks allocated, then all freed: 3500 of 2 KiB and 500 pages, 8.8 MiB live at the peak.
ops::Trace filling_trace() {
  ops::Trace t;
  t.streams.resize(1);
  constexpr std::uint32_t kBlocks = 4000;
  std::uint64_t time = 0;
  for (std::uint32_t i = 0; i < kBlocks; ++i) {
    const bool page = i % 8 == 0;
    const std::uint8_t noblock = i % 5 == 0 ? ops::kOpNoblock : 0;
    t.streams[0].ops.push_back(
        make_op(time++, page ? OpKind::page_alloc : OpKind::alloc, i, page ? 4096 : 2048, {0, 0, noblock}));
  }
  for (std::uint32_t i = 0; i < kBlocks; ++i) {
    const bool page = i % 8 == 0;
    t.streams[0].ops.push_back(make_op(time++, page ? OpKind::page_free : OpKind::free, i, page ? 4096 : 2048));
  }
  t.object_count = kBlocks;
  return t;
}

class UnderPressure : public ::testing::TestWithParam<std::string> {};

TEST_P(UnderPressure, ACapBelowThePeakLiveBytesFailsSomeAllocationsAndLeavesNothingBehind) {
  Options o;
  o.sample_ms = 1;
  o.drain = true;
  o.pressure = parse_pressure("cap=50%");
  const Result r = run(filling_trace(), GetParam(), o);
  const PressureResult& p = r.pressure;
  ASSERT_TRUE(p.active);
  EXPECT_EQ(p.allocations, 4000u);
  std::uint64_t failed = 0;
  for (const auto& kind : p.failures) failed += kind[0] + kind[1];
  EXPECT_EQ(failed, r.failed_allocs + r.noblock_failures);
  EXPECT_EQ(p.skipped_frees, failed) << "each block never had is never freed";
  EXPECT_DOUBLE_EQ(p.failures_per_1000, 1000.0 * static_cast<double>(failed) / 4000.0);
  const bool machine_backed = (find_backend(GetParam())->features & kFeaturePhysical) != 0;
  if (machine_backed && GetParam() != "mimalloc" && GetParam() != "mimalloc-nonuma") {
    // Half the live bytes cannot hold them: a backend drawing from the machine fails some.
    EXPECT_GT(failed, 0u) << GetParam();
    EXPECT_GT(p.failures[0][1] + p.failures[1][1], 0u) << "noblock allocations fail without reclaim";
  }
  EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;
  EXPECT_EQ(r.final_live_blocks, 0);
  ASSERT_EQ(p.record.nodes.size(), 1u);
  EXPECT_EQ(p.record.nodes[0].min_available_bytes, p.peak_live_bytes / 2);
}

std::vector<std::string> in_process_backends() {
  std::vector<std::string> names;
  for (const BackendInfo& b : all_backends()) {
    if (b.executable.empty()) names.push_back(b.name);
  }
  return names;
}

INSTANTIATE_TEST_SUITE_P(AllBackends, UnderPressure, ::testing::ValuesIn(in_process_backends()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& ch : n) ch = ch == '-' ? '_' : ch;
                           return n;
                         });

}  // namespace
}  // namespace kmbench::replay
