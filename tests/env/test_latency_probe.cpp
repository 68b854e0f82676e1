// The latency probe: its buffers fit the levels they measure, and its figures
// come out in the order of the hierarchy, within sensible bounds.
#include <gtest/gtest.h>

#include "harness/env/latency_probe.h"

namespace kmbench {
namespace {

TEST(LatencyProbe, BuffersFitTheirLevelAndGrowDownTheHierarchy) {
  CacheSizes c;
  c.l1d = 48 << 10;
  c.l2 = 1 << 20;
  c.llc = 508u << 20;  // a VM reporting the whole package's L3
  LatencyReference r;
  size_buffers(c, {}, r);
  EXPECT_EQ(r.l1.buffer_bytes, 24u << 10);
  EXPECT_EQ(r.l2.buffer_bytes, 512u << 10);
  EXPECT_EQ(r.llc.buffer_bytes, 16u << 20);   // at most 16 MiB
  EXPECT_EQ(r.dram.buffer_bytes, 256u << 20);
  LatencyProbeSettings big;
  big.dram_bytes = 1u << 30;
  size_buffers(CacheSizes{}, big, r);  // nothing reported: defaults
  EXPECT_EQ(r.l1.buffer_bytes, 16u << 10);
  EXPECT_EQ(r.l2.buffer_bytes, 256u << 10);
  EXPECT_EQ(r.llc.buffer_bytes, 4u << 20);
  EXPECT_EQ(r.dram.buffer_bytes, 1u << 30);
}

TEST(LatencyProbe, CacheSizesAreReadFromTheSystem) {
  const CacheSizes c = read_cache_sizes();
  EXPECT_FALSE(c.source.empty());
  if (c.source != "none") {
    EXPECT_GT(c.l1d + c.l2 + c.llc, 0u);
  }
}

TEST(LatencyProbe, FiguresAreOrderedL1BelowL2BelowLlcBelowDram) {
  LatencyProbeSettings s;
  s.passes = 9;
  s.loads_per_pass = 1u << 13;
  s.dram_loads_per_pass = 1u << 11;
  const LatencyReference r = probe_latency(s);
  std::printf("L1 %.2f ns, L2 %.2f ns, LLC %.2f ns, DRAM %.2f ns (%.2f s)\n", r.l1.ns, r.l2.ns, r.llc.ns,
              r.dram.ns, r.probe_s);
  EXPECT_GE(r.l1.ns, 0.3);
  EXPECT_LE(r.l1.ns, 10.0);
  EXPECT_LT(r.l1.ns, r.l2.ns);
  EXPECT_LE(r.l2.ns, r.llc.ns);
  EXPECT_LT(r.llc.ns, r.dram.ns);
  EXPECT_LE(r.dram.ns, 10'000.0);
  for (const LevelLatency* l : {&r.l1, &r.l2, &r.llc, &r.dram}) {
    EXPECT_LE(l->min_ns, l->ns);
    EXPECT_LE(l->ns, l->max_ns);
    EXPECT_GE(l->passes_run, s.passes);
  }
  const nlohmann::json j = latency_reference_json(r);
  for (const char* key : {"l1_ns", "l2_ns", "llc_ns", "dram_ns", "buffer_bytes", "cache_bytes", "method"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["buffer_bytes"]["dram"], r.dram.buffer_bytes);
}

}  // namespace
}  // namespace kmbench
