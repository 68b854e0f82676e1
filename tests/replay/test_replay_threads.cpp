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

// A short pass (a few ms: the time interval alone gives a handful of samples)
// still has a timeline of at least 100 points, from the samples every
// steps/200 steps each thread takes; each holds its live bytes.
TEST(ReplayThreads, ShortPassesAreSampledByStepCount) {
  const ops::Trace t = workloads::generate("churn", {{"streams", "2"}, {"ops", "20000"}, {"live", "2000"}}, 4);
  for (const char* backend : {"slab", "zones", "buddy", "system", "bump"}) {
    for (unsigned threads : {1u, 2u}) {
      Options o;
      o.threads = threads;
      const Result r = run(t, backend, o);
      EXPECT_EQ(r.sample_every_ops, sampling_every_steps(r.events)) << backend;
      EXPECT_GE(r.timeline.size(), 100u) << backend << " t" << threads << ", " << r.duration_ns << " ns";
      EXPECT_EQ(r.footprint_below_live, 0u) << backend << " t" << threads;
      for (std::size_t i = 1; i < r.timeline.size(); ++i) {
        EXPECT_GE(r.timeline[i].t_ns, r.timeline[i - 1].t_ns) << backend;
      }
    }
  }
  EXPECT_EQ(sampling_every_steps(0), 1u);
  EXPECT_EQ(sampling_every_steps(150), 1u);  // kSamplesBySteps = 100
  EXPECT_EQ(sampling_every_steps(20000), 200u);
}

}  // namespace
}  // namespace kmbench::replay
