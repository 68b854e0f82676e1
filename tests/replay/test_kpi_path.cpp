// A KPI recording replayed through the KPI (kpi_path.h): each allocation and
// free runs the KPI call that made it, on the replayed backend lent to the
// KPI, across threads, and the KPI has its own backend back afterwards.
#include <gtest/gtest.h>

#include <IOKit/IOLib.h>
#include <kmbench/kpi.h>

#include <map>

#include "allocators/registry.h"
#include "base/errors.h"
#include "harness/replay/replay.h"
#include "tests/support/make_op.h"

namespace kmbench::replay {
namespace {

using ops::Call;
using ops::OpKind;

/// Two streams of a driver's KPI calls, each block freed by the other stream
/// (as a completion frees on the work loop): every heap and page family,
/// one pageable tag and one wired tag.
ops::Trace driver_calls() {
  ops::Trace t;
  t.streams.resize(2);
  t.streams[1].cpu = 1;
  t.strings = {"", "wired-tag", "pageable-tag", "KmThing"};
  struct Kind {
    Call call;
    std::uint64_t size;
    std::uint8_t flags;
    std::uint32_t tag;
    std::uint8_t align_log2;
  };
  const Kind kinds[] = {
      {Call::io_malloc, 200, 0, 0, 0},
      {Call::io_malloc_zero, 64, ops::kOpZero, 0, 0},
      {Call::io_malloc_aligned, 3000, 0, 0, 8},
      {Call::io_malloc_pageable, 8192, ops::kOpPageable, 0, 12},
      {Call::io_malloc_contiguous, 4096, ops::kOpContiguous | ops::kOpDma32, 0, 12},
      {Call::os_malloc, 100, 0, 1, 0},
      {Call::os_malloc_noblock, 40, ops::kOpNoblock, 1, 0},
      {Call::os_malloc, 16384, ops::kOpPageable, 2, 0},
      {Call::os_object_new, 96, 0, 3, 0},
  };
  constexpr std::uint32_t kRounds = 60;
  std::uint32_t object = 0;
  for (std::uint32_t i = 0; i < kRounds; ++i) {
    for (const Kind& k : kinds) {
      const std::uint32_t s = object % 2;
      ops::Op a = test_support::make_op(10 * object, OpKind::alloc, object, k.size, {0, k.tag, k.flags});
      a.align_log2 = k.align_log2;
      t.streams[s].ops.push_back(a);
      t.streams[s].calls.push_back(k.call);
      t.streams[1 - s].ops.push_back(test_support::make_op(10 * object + 5, OpKind::free, object, k.size, {0, k.tag}));
      t.streams[1 - s].calls.push_back(Call::none);  // the free's own call does not matter: the allocation's family frees
      ++object;
    }
  }
  t.object_count = object;  // each stream's ops were added in time order
  return t;
}

std::map<std::string, KpiFamilyCount> by_family(const Result& r) {
  std::map<std::string, KpiFamilyCount> m;
  for (const KpiFamilyCount& f : r.kpi_families) m[f.family] = f;
  return m;
}

TEST(KpiPath, EachCallRunsThroughItsFamilyOnEveryBackendAcrossThreads) {
  const Program p = build_program(driver_calls(), 2);
  ASSERT_EQ(p.kpi_steps, 2u * 9 * 60);
  for (const BackendInfo& b : all_backends()) {
    if (!b.executable.empty()) continue;
    Options o;
    o.sample_ms = 1;
    o.drain = true;
    const Result r = run(p, b.name, o);
    ASSERT_TRUE(r.via_kpi) << b.name;
    EXPECT_TRUE(r.accounting_ok) << b.name << ": " << r.accounting_detail;
    EXPECT_EQ(r.failed_allocs + r.noblock_failures, 0u) << b.name;
    const auto f = by_family(r);
    const std::pair<const char*, std::uint64_t> expected[] = {
        {"IOMalloc", 120}, {"IOMallocAligned", 60}, {"IOMallocPageable", 60}, {"IOMallocContiguous", 60},
        {"OSMalloc", 120}, {"OSMalloc(pageable)", 60}, {"OSObject", 60}};
    for (const auto& [family, n] : expected) {
      ASSERT_TRUE(f.count(family)) << b.name << " " << family;
      EXPECT_EQ(f.at(family).allocs, n) << b.name << " " << family;
      EXPECT_EQ(f.at(family).frees, n) << b.name << " " << family;
    }
    EXPECT_EQ(kpi::live_blocks(), 0) << b.name;
  }
  // The loan is over: the KPI serves its own backend again.
  void* p0 = IOMalloc(32);
  ASSERT_NE(p0, nullptr);
  IOFree(p0, 32);
}

TEST(KpiPath, BackendCallsWhenAskedAndKpiRefusedForAStreamWithoutKpiCalls) {
  const Program p = build_program(driver_calls(), 2);
  Options o;
  o.sample_ms = 1;
  o.drain = true;
  o.via = Via::backend;
  const Result r = run(p, "slab", o);
  EXPECT_FALSE(r.via_kpi);
  EXPECT_TRUE(r.kpi_families.empty());
  EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;

  ops::Trace plain;
  plain.streams.resize(1);
  plain.object_count = 1;
  plain.streams[0].ops = {test_support::make_op(0, OpKind::alloc, 0, 64), test_support::make_op(1, OpKind::free, 0, 64)};
  o.via = Via::kpi;
  EXPECT_THROW(run(build_program(plain, 1), "slab", o), UsageError);
  o.via = Via::automatic;
  EXPECT_FALSE(run(build_program(plain, 1), "slab", o).via_kpi);
}

}  // namespace
}  // namespace kmbench::replay
