// Multi-thread replay under ThreadSanitizer (label "concurrency"): cross-thread
// frees, reuse of object ids across threads, and the footprint sampler.
#include <gtest/gtest.h>

#include "harness/replay/replay.h"
#include "workloads/workloads.h"

namespace kmbench::replay {
namespace {

TEST(ReplayThreads, ProducerConsumerAcrossFourThreads) {
  const ops::Trace t = workloads::generate("xmalloc", {{"threads", "4"}, {"items", "20000"}}, 3);
  for (const char* backend : {"system", "bump"}) {
    Options o;
    o.sample_ms = 1;
    o.drain = true;
    const Result r = run(t, backend, o);
    EXPECT_EQ(r.threads, 4u);
    EXPECT_EQ(r.final_live_blocks, 0) << backend;
    EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;
    EXPECT_GT(r.dependency_checks, 0u);
  }
}

TEST(ReplayThreads, ObjectIdsReusedOnAlternatingThreads) {
  ops::Trace t;
  t.streams.resize(3);
  t.object_count = 64;
  for (std::uint64_t round = 0; round < 300; ++round) {
    for (std::uint32_t o = 0; o < 64; ++o) {
      ops::Op a;
      a.time_ns = round * 100;
      a.object = o;
      a.size = 24 + o;
      ops::Op f = a;
      f.kind = ops::OpKind::free;
      f.time_ns = round * 100 + 50;
      t.streams[(round + o) % 3].ops.push_back(a);
      t.streams[(round + o + 1) % 3].ops.push_back(f);
    }
  }
  Options o;
  o.sample_ms = 1;
  const Result r = run(t, "system", o);
  EXPECT_TRUE(r.dropped.empty());
  EXPECT_EQ(r.events, 2u * 64 * 300);
  EXPECT_EQ(r.final_live_blocks, 0);
}

TEST(ReplayThreads, LarsonHandOffsOnMoreThreadsThanCores) {
  const ops::Trace t = workloads::generate("larson", {{"threads", "6"}, {"rounds", "3000"}, {"slots", "200"}}, 9);
  Options o;
  o.sample_ms = 1;
  o.drain = true;
  const Result r = run(t, "bump", o);
  EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;
  EXPECT_EQ(r.final_live_blocks, 0);
}

}  // namespace
}  // namespace kmbench::replay
