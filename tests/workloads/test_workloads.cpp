// Workloads: determinism, parameters, self-consistent streams, and a brief
// run of every workload on every backend compiled into this process.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "allocators/registry.h"
#include "base/errors.h"
#include "harness/replay/replay.h"
#include "harness/trace/trace.h"
#include "tests/support/temp_files.h"
#include "workloads/workloads.h"

namespace kmbench::workloads {
namespace {

/// Small settings so each workload runs in a blink.
std::map<std::string, std::string> brief(std::string_view name) {
  static const std::map<std::string, std::map<std::string, std::string>> kBrief = {
      {"nic", {{"packets", "1500"}, {"ring", "32"}}},
      {"nvme", {{"ios", "300"}, {"max_io", "256k"}}},
      {"usb32", {{"transfers", "400"}}},
      {"gpu", {{"buffers", "6"}, {"max", "16m"}, {"budget", "32m"}}},
      {"larson", {{"rounds", "2000"}, {"slots", "100"}}},
      {"xmalloc", {{"items", "3000"}}},
      {"churn", {{"ops", "4000"}, {"live", "400"}}},
      {"osmalloc", {{"ops", "4000"}, {"live", "300"}, {"unload_every", "1000"}}},
  };
  return kBrief.at(std::string(name));
}

std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const WorkloadInfo& w : all_workloads()) out.emplace_back(w.name);
  return out;
}

bool same_ops(const ops::Trace& a, const ops::Trace& b) {
  if (a.streams.size() != b.streams.size() || a.object_count != b.object_count || a.strings != b.strings) {
    return false;
  }
  for (std::size_t s = 0; s < a.streams.size(); ++s) {
    const auto& x = a.streams[s].ops;
    const auto& y = b.streams[s].ops;
    if (x.size() != y.size() || (!x.empty() && std::memcmp(x.data(), y.data(), x.size() * sizeof(ops::Op)) != 0)) {
      return false;
    }
  }
  return true;
}

class EachWorkload : public ::testing::TestWithParam<std::string> {};

TEST_P(EachWorkload, SameSeedSameStreamOtherSeedOtherStream) {
  const ops::Trace a = generate(GetParam(), brief(GetParam()), 42);
  const ops::Trace b = generate(GetParam(), brief(GetParam()), 42);
  const ops::Trace c = generate(GetParam(), brief(GetParam()), 43);
  EXPECT_GT(a.op_count(), 0u);
  EXPECT_TRUE(same_ops(a, b));
  EXPECT_FALSE(same_ops(a, c));
}

TEST_P(EachWorkload, StreamsAreTimeOrderedAndParametersRecorded) {
  const ops::Trace t = generate(GetParam(), brief(GetParam()), 1);
  for (const ops::Stream& s : t.streams) {
    for (std::size_t i = 1; i < s.ops.size(); ++i) ASSERT_LE(s.ops[i - 1].time_ns, s.ops[i].time_ns);
  }
  EXPECT_EQ(t.header.source, "workload:" + GetParam());
  EXPECT_EQ(t.header.metadata.at("seed"), "1");
  for (const ParamSpec& p : find_workload(GetParam())->params) {
    EXPECT_TRUE(t.header.metadata.count("param." + std::string(p.key))) << p.key;
  }
}

TEST_P(EachWorkload, EveryOperationCanBeOrderedAndEverythingIsFreed) {
  const ops::Trace t = generate(GetParam(), brief(GetParam()), 7);
  const replay::Program p = replay::build_program(t, static_cast<unsigned>(t.streams.size()));
  EXPECT_TRUE(p.dropped.empty()) << p.dropped.begin()->first;
  EXPECT_EQ(p.steps, t.op_count());
}

// resolve_params reads every value through the generator, which stops once it has read them.
TEST_P(EachWorkload, CheckingItsParametersGeneratesNothing) {
  const WorkloadInfo* w = find_workload(GetParam());
  ASSERT_NE(w, nullptr);
  const Params checking(GetParam(), resolve_params(GetParam(), {}).values(), /*check_only=*/true);
  const ops::Trace t = w->generate(checking, 1);
  EXPECT_EQ(t.op_count(), 0u);
  EXPECT_TRUE(t.streams.empty());
}

TEST_P(EachWorkload, SavesAndLoadsAsKmt) {
  const ops::Trace t = generate(GetParam(), brief(GetParam()), 11);
  test_support::TempFiles files("workloads");
  const std::string path = files.path(GetParam() + ".kmt");
  trace::save(t, path);
  const ops::Trace back = trace::load(path);
  EXPECT_TRUE(same_ops(t, back));
  EXPECT_EQ(back.header.metadata.at("workload"), GetParam());
}

/// The backends this test program replays through: every one in the process,
/// or in a worker's build (test_workloads_jemalloc, _mimalloc) only its own.
std::vector<BackendInfo> backends_here() {
  std::vector<BackendInfo> out;
  for (const BackendInfo& b : all_backends()) {
    if (!b.executable.empty()) continue;
#if defined(KMBENCH_WORKER_JEMALLOC) || defined(KMBENCH_WORKER_MIMALLOC)
    if (b.name.rfind("jemalloc", 0) != 0 && b.name.rfind("mimalloc", 0) != 0) continue;
#endif
    out.push_back(b);
  }
  return out;
}

// On every backend: clean accounting, checked against the backend's own
// structures where it keeps them; a footprint that holds the live bytes at
// every sample; the dma32 and contiguous flags honoured, or counted when not.
TEST_P(EachWorkload, RunsOnEveryBackendWithFootprintAboveLiveAndFlagsAccountedFor) {
  const ops::Trace t = generate(GetParam(), brief(GetParam()), 5);
  for (const BackendInfo& b : backends_here()) {
    replay::Options o;
    o.drain = true;
    o.sample_ms = 1;
    const replay::Result r = replay::run(t, b.name, o);
    EXPECT_EQ(r.events, t.op_count()) << b.name;
    EXPECT_EQ(r.failed_allocs, 0u) << b.name;
    EXPECT_TRUE(r.accounting_ok) << b.name << ": " << r.accounting_detail;
    EXPECT_EQ(r.final_live_blocks, 0) << b.name;  // every workload frees what it allocates
    const bool own_counts = b.name != "system" && b.name != "bump";
    if (own_counts) {
      EXPECT_EQ(r.backend_live_blocks, 0) << b.name;
      EXPECT_EQ(r.backend_live_bytes, 0) << b.name;
    }
    EXPECT_EQ(r.footprint_below_live, 0u) << b.name;
    ASSERT_GE(r.timeline.size(), 2u) << b.name;
    for (const replay::FootprintSample& f : r.timeline) {
      const std::uint64_t footprint = r.footprint_source == "process RSS" ? f.rss_bytes : f.mapped_bytes;
      EXPECT_GE(static_cast<std::int64_t>(footprint), f.live_bytes) << b.name << " at " << f.t_ns << " ns";
    }
    if (r.peak_sampled_live_bytes > 0) {
      EXPECT_GE(r.fragmentation, 1.0) << b.name;
    }
    const bool low = (b.features & kFeatureLowMemory) != 0;
    const bool physical = (b.features & kFeaturePhysical) != 0;
    EXPECT_EQ(r.flags.low_unhonoured, low ? 0u : r.flags.low_requested) << b.name;
    EXPECT_EQ(r.flags.contiguous_unhonoured, physical ? 0u : r.flags.contiguous_requested) << b.name;
    if (low) {
      EXPECT_EQ(r.flags.unhonoured_bounces, 0u) << b.name << ": a dma32 block above 4 GiB";
    } else if (r.options.iommu == false && physical == false) {
      EXPECT_EQ(r.flags.unhonoured_bounces, r.flags.low_transfers) << b.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, EachWorkload, ::testing::ValuesIn(names()),
                         [](const auto& info) { return info.param; });

TEST(WorkloadParams, UnknownWorkloadOrKeyAndBadValuesAreUsageErrors) {
  EXPECT_THROW(generate("nosuch", {}, 1), UsageError);
  EXPECT_THROW(generate("churn", {{"bogus", "1"}}, 1), UsageError);
  EXPECT_THROW(generate("churn", {{"ops", "many"}}, 1), UsageError);
  EXPECT_THROW(generate("churn", {{"ops", "-5"}}, 1), UsageError);
  EXPECT_THROW(generate("churn", {{"ops", "1.5"}}, 1), UsageError);
  EXPECT_THROW(generate("gpu", {{"max", "12x"}}, 1), UsageError);
  const Params p = resolve_params("gpu", {{"max", "64m"}});
  EXPECT_EQ(p.bytes("max"), 64u << 20);
  EXPECT_EQ(p.bytes("min"), 2u << 20);
}

/// The message generate() refuses `params` of `workload` with, or "generated".
/// resolve_params, what a matrix checks its entries with at load, refuses them
/// with the same message, or takes them as generate() does.
std::string refusal(const std::string& workload, const std::map<std::string, std::string>& params) {
  std::string resolved = "generated";
  try {
    resolve_params(workload, params);
  } catch (const UsageError& e) {
    resolved = e.what();
  }
  std::string generated = "generated";
  try {
    generate(workload, params, 1);
  } catch (const UsageError& e) {
    generated = e.what();
  }
  EXPECT_EQ(resolved, generated) << workload;
  return generated;
}

// A value a generator cannot use is refused naming it, not quietly raised to
// one it can (a queue depth of 0 ran as 1; a budget below the largest buffer
// ran as that buffer), and no number is converted beyond its type.
TEST(WorkloadParams, ValuesAGeneratorCannotUseAreRefusedNotRaised) {
  EXPECT_EQ(refusal("nvme", {{"depth", "0"}}), "workload nvme: parameter depth='0' is below 1");
  EXPECT_EQ(refusal("larson", {{"threads", "0"}}), "workload larson: parameter threads='0' is below 1");
  EXPECT_EQ(refusal("nic", {{"queues", "5000"}}), "workload nic: parameter queues='5000' is above 4096 streams");
  EXPECT_EQ(refusal("nic", {{"pps", "0.5"}}), "workload nic: parameter pps='0.5' is below 1");
  EXPECT_EQ(refusal("churn", {{"live", "7"}}), "workload churn: parameter live='7' is below 8");
  // 2^32 + 1 tags were one tag (the count cut to 32 bits); a hundred million ran out of memory.
  EXPECT_EQ(refusal("osmalloc", {{"tags", "4294967297"}}),
            "workload osmalloc: parameter tags='4294967297' is above 65536 tags");
  EXPECT_EQ(refusal("gpu", {{"budget", "0"}}), "workload gpu: parameter budget='0' is below 268435456 bytes");
  EXPECT_EQ(refusal("xmalloc", {{"min", "4k"}, {"max", "1k"}}),
            "workload xmalloc: parameter max='1k' is below min (4096 bytes)");
  EXPECT_EQ(refusal("nvme", {{"min_io", "1k"}}), "workload nvme: parameter min_io='1k' is below 4096 bytes");
  EXPECT_EQ(refusal("churn", {{"ops", "1e30"}}), "workload churn: parameter ops='1e30' is not a whole number");
  EXPECT_EQ(refusal("nic", {{"tx_ratio", "nan"}}),
            "workload nic: parameter tx_ratio='nan' is not a non-negative number");
  EXPECT_EQ(refusal("nic", {{"pps", "inf"}}), "workload nic: parameter pps='inf' is not a non-negative number");
  EXPECT_EQ(refusal("nvme", {{"depth", "1"}, {"ios", "50"}}), "generated");
}

TEST(WorkloadShapes, DmaWorkloadsMapWhatTheyAllocateAndUsb32AsksFor32Bits) {
  const ops::Trace usb = generate("usb32", brief("usb32"), 2);
  std::uint64_t maps = 0, dma32 = 0;
  for (const ops::Stream& s : usb.streams) {
    for (const ops::Op& op : s.ops) {
      if (op.kind == ops::OpKind::dma_map) {
        ++maps;
        dma32 += (op.flags & ops::kOpDma32) != 0;
      }
    }
  }
  EXPECT_EQ(maps, 400u);
  EXPECT_EQ(dma32, maps);
  const ops::Trace nvme = generate("nvme", {{"ios", "200"}, {"min_io", "64k"}, {"max_io", "64k"}}, 2);
  std::uint64_t prp = 0;
  for (const ops::Stream& s : nvme.streams) {
    for (const ops::Op& op : s.ops) prp += op.kind == ops::OpKind::page_alloc;
  }
  EXPECT_EQ(prp, 200u);  // 16 pages: one PRP list page per I/O
}

// completion=workloop: the driver's completions (unmaps, the frees of sent
// buffers, the refills) all run on one extra stream, the work loop's; the
// queues keep the sends; the packets' consumers stay where they were.
TEST(WorkloadShapes, NicCompletionsThroughAWorkLoopRunOnItsOwnStream) {
  const std::map<std::string, std::string> base = {{"packets", "2000"}, {"ring", "32"}, {"queues", "3"}};
  auto with = [&](const char* mode) {
    auto p = base;
    p["completion"] = mode;
    return generate("nic", p, 9);
  };
  const ops::Trace irq = with("irq");
  const ops::Trace loop = with("workloop");
  EXPECT_TRUE(same_ops(irq, generate("nic", base, 9))) << "irq is the default";
  ASSERT_EQ(irq.streams.size(), 3u);
  ASSERT_EQ(loop.streams.size(), 4u);
  EXPECT_EQ(loop.op_count(), irq.op_count()) << "the same work, delivered elsewhere";
  std::uint64_t unmaps = 0, loop_unmaps = 0, queue_maps = 0, loop_maps = 0;
  for (std::size_t s = 0; s < loop.streams.size(); ++s) {
    const bool on_loop = s == 3;
    for (const ops::Op& op : loop.streams[s].ops) {
      unmaps += op.kind == ops::OpKind::dma_unmap;
      loop_unmaps += on_loop && op.kind == ops::OpKind::dma_unmap;
      queue_maps += !on_loop && op.kind == ops::OpKind::dma_map;
      loop_maps += on_loop && op.kind == ops::OpKind::dma_map;
    }
  }
  EXPECT_GT(unmaps, 0u);
  EXPECT_EQ(loop_unmaps, unmaps) << "every completion is delivered on the work loop";
  EXPECT_GT(loop_maps, 0u) << "RX refills are mapped in the completion";
  EXPECT_GT(queue_maps, 0u) << "sends and the first ring fill stay on the queues";
  replay::Options o;
  o.drain = true;
  const replay::Result r = replay::run(loop, "slab", o);
  EXPECT_EQ(r.events, loop.op_count());
  EXPECT_EQ(r.final_live_blocks, 0);
  EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;
  EXPECT_THROW(generate("nic", {{"completion", "softirq"}}, 1), UsageError);
}

}  // namespace
}  // namespace kmbench::workloads
