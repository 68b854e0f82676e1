// The replay engine: ordering across threads, dropping what cannot be
// ordered, drain and accounting, the latency recorder and the DMA path.
#include <gtest/gtest.h>

#include <kmbench/dma.h>

#include <set>

#include "allocators/zones/zones.h"
#include "base/errors.h"
#include "harness/replay/cell_json.h"
#include "harness/replay/replay.h"
#include "harness/replay/replay_loop.h"
#include "harness/trace/trace.h"
#include "tests/support/forwarding_zones.h"
#include "tests/support/make_op.h"

namespace kmbench::replay {
namespace {

using ops::OpKind;

ops::Op make(std::uint64_t t, OpKind kind, std::uint32_t object, std::uint64_t size, std::uint32_t tag = 0,
             std::uint8_t flags = 0) {
  return test_support::make_op(t, kind, object, size, {0, tag, flags});
}

ops::Trace two_streams(std::uint32_t objects) {
  ops::Trace t;
  t.streams.resize(2);
  t.streams[1].cpu = 1;
  t.object_count = objects;
  return t;
}

Options quiet() {
  Options o;
  o.sample_ms = 1;
  return o;
}

// Stream 1 frees every block before (in trace time) stream 0 allocates it: the
// replay must still free each block after its allocation. A free that ran
// first would see no block, and the backend would count it live at the end.
TEST(Replay, CrossThreadFreeRunsAfterItsAllocationWhateverTheTimestamps) {
  constexpr std::uint32_t kObjects = 5000;
  ops::Trace t = two_streams(kObjects);
  for (std::uint32_t i = 0; i < kObjects; ++i) {
    t.streams[0].ops.push_back(make(1'000'000 + i, OpKind::alloc, i, 16 + i % 200));
    t.streams[1].ops.push_back(make(i, OpKind::free, i, 16 + i % 200));
  }
  const Program p = build_program(t, 2);
  EXPECT_TRUE(p.dropped.empty());
  EXPECT_EQ(p.cross_thread_waits, kObjects);
  for (const Step& s : p.threads[0]) EXPECT_EQ(s.ctl, kStepPublish);
  for (const Step& s : p.threads[1]) EXPECT_EQ(s.ctl, kStepWait);
  for (const char* backend : {"system", "bump"}) {
    const Result r = run(p, backend, quiet());
    EXPECT_EQ(r.events, 2u * kObjects) << backend;
    EXPECT_EQ(r.final_live_blocks, 0) << backend;
    EXPECT_EQ(r.final_live_bytes, 0) << backend;
    EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;
    EXPECT_EQ(r.dependency_checks, kObjects);
    EXPECT_EQ(r.latency[static_cast<int>(OpKind::free)].count, kObjects);
    // The replay's own memory: at least its 24-byte steps and, for each
    // handoff, its number on both threads; by object its block, and a flag a handoff.
    EXPECT_GE(r.program_bytes, 2u * kObjects * (sizeof(Step) + sizeof(std::uint32_t)));
    EXPECT_LT(r.program_bytes, 2u * kObjects * (sizeof(Step) + 8) + 4096);
    EXPECT_EQ(r.object_table_bytes, (kObjects + 1) * sizeof(HeldBlock) + kObjects * sizeof(std::uint32_t));
  }
}

TEST(Replay, SameThreadStepsPayNoSynchronisation) {
  ops::Trace t = two_streams(4);
  t.streams[0].ops = {make(0, OpKind::alloc, 0, 64), make(1, OpKind::free, 0, 64)};
  t.streams[1].ops = {make(0, OpKind::alloc, 1, 64), make(1, OpKind::free, 1, 64)};
  const Program p = build_program(t, 2);
  EXPECT_EQ(p.cross_thread_waits, 0u);
  for (const auto& steps : p.threads) {
    for (const Step& s : steps) EXPECT_EQ(s.ctl, 0);
  }
}

TEST(Replay, OperationsNoOrderCanMakeValidAreDroppedAndCounted) {
  ops::Trace t = two_streams(6);
  t.streams[0].ops = {
      make(0, OpKind::free, 0, 8),                                    // never allocated
      make(1, OpKind::alloc, 1, 8), make(2, OpKind::alloc, 1, 8),     // second alloc of a live object
      make(3, OpKind::dma_unmap, 1, 8),                               // no map
      make(4, OpKind::free, 2, 8), make(5, OpKind::alloc, 3, 8),      // cycle with stream 1 ...
  };
  t.streams[1].ops = {make(4, OpKind::free, 3, 8), make(5, OpKind::alloc, 2, 8)};  // ... frees 3 first
  const Program p = build_program(t, 2);
  EXPECT_EQ(p.dropped.at("free_without_alloc"), 1u);
  EXPECT_EQ(p.dropped.at("alloc_of_live_object"), 1u);
  EXPECT_EQ(p.dropped.at("unmap_without_map"), 1u);
  EXPECT_GE(p.dropped.at("unorderable"), 1u);
  Options o = quiet();
  o.drain = true;
  const Result r = run(p, "system", o);  // must not hang
  EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;
}

TEST(Replay, StreamsFoldOntoFewerThreadsAndObjectsMayBeReused) {
  ops::Trace t;
  t.streams.resize(4);
  t.object_count = 1;
  // One object id allocated and freed four times, each lifetime on the next stream.
  for (std::uint32_t s = 0; s < 4; ++s) {
    t.streams[s].ops = {make(10 * s, OpKind::alloc, 0, 100 + s), make(10 * s + 5, OpKind::free, 0, 100 + s)};
  }
  for (unsigned threads : {1u, 2u, 4u}) {
    const Program p = build_program(t, threads);
    EXPECT_TRUE(p.dropped.empty());
    EXPECT_EQ(p.steps, 8u);
    const Result r = run(p, "bump", quiet());
    EXPECT_EQ(r.final_live_blocks, 0);
    EXPECT_EQ(r.threads, threads);
  }
}

// bump makes resident what the replay will ask for, so it never times first-touch faults.
TEST(Replay, BumpPrefaultsTheTracesDemand) {
  const auto prefaulted = [](const Result& r) {
    for (const Metric& m : r.metrics) {
      if (m.name == "backend.bump.prefaulted_bytes") return m.value;
    }
    return -1.0;
  };
  ops::Trace t = two_streams(48);
  for (std::uint32_t i = 0; i < 48; ++i) {
    t.streams[i % 2].ops.push_back(make(i, OpKind::page_alloc, i, std::uint64_t{1} << 20));
  }
  const double demand = 48.0 * (1 << 20);
  const Result r = run(t, "bump", quiet());
  EXPECT_GE(prefaulted(r), demand);
  EXPECT_LT(prefaulted(r), 2 * demand);
  Options o = quiet();
  o.backend_params["prefault"] = "4m";  // the user's word wins
  EXPECT_EQ(prefaulted(run(t, "bump", o)), 4.0 * (1 << 20));
}

TEST(Replay, DrainFreesLiveBlocksAndTagAccountingReadsZero) {
  ops::Trace t = two_streams(100);
  t.strings = {"", "tag.a", "tag.b"};
  for (std::uint32_t i = 0; i < 100; ++i) {
    t.streams[i % 2].ops.push_back(make(i, i % 3 == 0 ? OpKind::page_alloc : OpKind::alloc, i, 10 + i, 1 + i % 2));
  }
  for (const char* backend : {"system", "bump"}) {
    Options o = quiet();
    o.drain = true;
    const Result r = run(t, backend, o);
    EXPECT_EQ(r.final_live_blocks, 100);
    EXPECT_TRUE(r.drained);
    EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;
    ASSERT_EQ(r.tags.size(), 2u);
    for (const TagResult& tag : r.tags) {
      EXPECT_EQ(tag.live_bytes, 0) << tag.name;
      EXPECT_GT(tag.peak_live_bytes, 0) << tag.name;
    }
    o.drain = false;
    const Result kept = run(t, backend, o);
    EXPECT_FALSE(kept.drained);
    EXPECT_TRUE(kept.accounting_ok) << kept.accounting_detail;  // replay and backend agree on what is live
  }
}

TEST(Replay, PacedModeRunsEveryStep) {
  ops::Trace t = two_streams(200);
  for (std::uint32_t i = 0; i < 200; ++i) {
    t.streams[0].ops.push_back(make(i * 1000, OpKind::alloc, i, 32));
    t.streams[1].ops.push_back(make(i * 1000 + 500, OpKind::free, i, 32));
  }
  Options o = quiet();
  o.mode = Mode::paced;
  o.speed = 4;
  const Result r = run(t, "system", o);
  EXPECT_EQ(r.events, 400u);
  EXPECT_EQ(r.final_live_blocks, 0);
}

TEST(Replay, BadOptionsAndUnknownBackendsAreUsageErrors) {
  ops::Trace t = two_streams(1);
  EXPECT_THROW(run(t, "no-such-backend", quiet()), UsageError);
  Options o = quiet();
  o.speed = 0;
  EXPECT_THROW(run(t, "system", o), UsageError);
  o = quiet();
  o.node = 4096;
  EXPECT_THROW(run(t, "system", o), UsageError);
  t.streams[0].ops.push_back(make(0, OpKind::alloc, 7, 8));  // object beyond object_count
  EXPECT_THROW(build_program(t, 1), InputError);
}

TEST(LatencyHistogram, BucketsCoverTheirValuesAndQuantilesAreUpperBounds) {
  for (std::uint64_t v : {0ull, 1ull, 7ull, 8ull, 9ull, 15ull, 16ull, 1000ull, 123456789ull, 1ull << 40}) {
    const int b = LatencyHistogram::bucket_of(v);
    EXPECT_LT(v, LatencyHistogram::upper_bound(b)) << v;
    if (b > 0) {
      EXPECT_GE(v, LatencyHistogram::upper_bound(b - 1)) << v;
    }
  }
  LatencyHistogram h;
  for (std::uint64_t i = 1; i <= 1000; ++i) h.record(i);
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_EQ(h.max(), 1000u);
  EXPECT_GE(h.quantile(0.5), 500u);
  EXPECT_LE(h.quantile(0.5), 500u * 9 / 8 + 1);
  EXPECT_EQ(h.quantile(1.0), 1000u);
}

// A counter that reads in steps of 26 ticks: an empty interval 49.4 ticks
// long reads 26 or 52 (and now and then 78) in the proportions that average
// to 49.4. The mean over the uninterrupted readings is that length; the
// median (52) is not, and sums of intervals take the mean off.
TEST(TimerFloor, TheMeanOfSteppedReadingsIsTheIntervalAndInterruptionsAreLeftOut) {
  std::vector<std::uint64_t> ticks;
  ticks.insert(ticks.end(), 1220, 26);
  ticks.insert(ticks.end(), 8730, 52);
  ticks.insert(ticks.end(), 50, 78);
  ticks.insert(ticks.end(), 3, 250'000);  // interrupted
  const TimerFloor f = timer_floor_of(ticks);
  EXPECT_EQ(f.median, 52u);
  EXPECT_EQ(f.step, 26u);
  EXPECT_NEAR(f.mean, (1220 * 26 + 8730 * 52 + 50 * 78) / 10000.0, 1e-9);
  EXPECT_DOUBLE_EQ(sub_floor(1000, 10, f.mean), 1000 - 10 * f.mean);
  EXPECT_DOUBLE_EQ(sub_floor(100, 10, f.mean), 0.0);  // never below 0

  std::vector<std::uint64_t> one(5, 30);  // a counter finer than the interval: no step seen
  EXPECT_EQ(timer_floor_of(one).step, 0u);
  EXPECT_DOUBLE_EQ(timer_floor_of(one).mean, 30.0);
}

// dma_map/dma_unmap go through the KPI's IODMACommand: its segments, bounce
// buffers and IOMMU mappings are what the result reports.
TEST(DmaPath, TransfersGoThroughTheKpisDmaCommand) {
  ops::Trace t = two_streams(20);
  for (std::uint32_t i = 0; i < 10; ++i) {  // two-page buffers: 32-bit reads, 64-bit writes
    const std::uint8_t flags = i % 2 ? ops::kOpDirOut : (ops::kOpDirIn | ops::kOpDma32);
    t.streams[0].ops.push_back(make(10 * i, OpKind::dma_alloc, i, 2 * kPageBytes));
    t.streams[0].ops.push_back(make(10 * i + 1, OpKind::dma_map, i, 2 * kPageBytes, 0, flags));
    t.streams[0].ops.push_back(make(10 * i + 2, OpKind::dma_unmap, i, 2 * kPageBytes, 0, flags));
    t.streams[0].ops.push_back(make(10 * i + 3, OpKind::dma_free, i, 2 * kPageBytes));
  }
  t.streams[1].ops.push_back(make(200, OpKind::dma_alloc, 10, kPageBytes));  // mapped, then freed unmapped
  t.streams[1].ops.push_back(make(201, OpKind::dma_map, 10, kPageBytes, 0, ops::kOpDirOut));
  t.streams[1].ops.push_back(make(202, OpKind::dma_free, 10, kPageBytes));

  // Heap memory: lent frames above 1 TiB, never adjacent, so a 64-bit transfer
  // is one segment per page; a 32-bit one bounces every page into one low,
  // contiguous bounce buffer (one segment) and copies each page back at complete.
  const Result heap = run(t, "system", quiet());
  EXPECT_EQ(heap.dma.transfers, 11u);
  EXPECT_EQ(heap.dma.transfer_bytes, 21 * kPageBytes);
  EXPECT_EQ(heap.dma.segments, 5 * 1 + 5 * 2 + 1u);
  EXPECT_EQ(heap.dma.bounce_bytes, 5 * 2 * kPageBytes);
  EXPECT_EQ(heap.dma.bounce_copies, 5 * 2u);
  EXPECT_EQ(heap.dma.iommu_mappings, 0u);
  EXPECT_NE(heap.dma_note.find("IODMACommand"), std::string::npos) << heap.dma_note;

  // Through an IOMMU every transfer is one window, nothing bounces.
  Options o = quiet();
  o.iommu = true;
  const Result mapped = run(t, "system", o);
  EXPECT_EQ(mapped.dma.iommu_mappings, 11u);
  EXPECT_EQ(mapped.dma.segments, 11u);
  EXPECT_EQ(mapped.dma.bounce_bytes, 0u);
  EXPECT_NE(mapped.dma_note.find("IOMapper"), std::string::npos) << mapped.dma_note;

  // Page-backed memory: the buddy's two pages are physically adjacent, one segment.
  const Result buddy = run(t, "buddy", quiet());
  EXPECT_EQ(buddy.dma.transfers, 11u);
  EXPECT_EQ(buddy.dma.segments, 11u);
  EXPECT_EQ(kpi::dma_stats().lent_pages, 0u);  // every lent frame was given back
}

TEST(CellJson, HasEveryKeyOfItsSchema) {
  ops::Trace t = two_streams(10);
  for (std::uint32_t i = 0; i < 10; ++i) {
    t.streams[0].ops.push_back(make(i, OpKind::dma_alloc, i, 8192));
    t.streams[0].ops.push_back(make(i, OpKind::dma_map, i, 8192, 0, ops::kOpDirOut));
    t.streams[1].ops.push_back(make(i + 100, OpKind::dma_unmap, i, 8192));
    t.streams[1].ops.push_back(make(i + 101, OpKind::dma_free, i, 8192));
  }
  Options o = quiet();
  o.drain = true;
  const Result r = run(t, "system", o);
  const nlohmann::json j = cell_json(r, {"workload", "test", {{"k", "v"}}, 7, {}});
  for (const char* key : {"schema", "backend", "source", "mode", "threads", "node", "placement", "topology",
                          "events", "duration_ns", "ops_per_sec", "latency", "footprint", "final_live_blocks",
                          "noblock_failures", "dependency_wait_ns", "dma", "numa", "tags", "accounting_check",
                          "metrics", "environment", "warmup", "figure", "allocator_ns_per_op", "time",
                          "faults", "machine", "flags", "reallocs"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["schema"], "kmbench.cell/2");
  for (const char* k : {"allocator_ns", "touch_ns", "dma_ns", "wait_ns", "sampling_ns", "idle_ns",
                        "harness_ns", "thread_ns", "allocator_ops"}) {
    EXPECT_TRUE(j["time"].contains(k)) << k;
  }
  for (const char* k : {"minor", "major", "minor_per_op"}) EXPECT_TRUE(j["faults"].contains(k)) << k;
  for (const char* k : {"node_bytes", "ram_bytes", "sizing", "populated", "memory_source"}) {
    EXPECT_TRUE(j["machine"].contains(k)) << k;
  }
  EXPECT_EQ(j["source"]["seed"], 7);
  EXPECT_EQ(j["source"]["params"]["k"], "v");
  for (const char* kind : {"alloc", "free", "page_alloc", "page_free", "dma_prepare"}) {
    for (const char* q : {"count", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns", "histogram"}) {
      EXPECT_TRUE(j["latency"][kind].contains(q)) << kind << "." << q;
    }
  }
  EXPECT_EQ(j["latency"]["dma_prepare"]["count"], 10);
  for (const char* k : {"peak_footprint_bytes", "peak_live_bytes", "peak_sampled_live_bytes", "fragmentation",
                        "below_live_samples", "sample_interval_us", "sample_every_ops", "peak_samples", "timeline"}) {
    EXPECT_TRUE(j["footprint"].contains(k)) << k;
  }
  EXPECT_GE(j["footprint"]["timeline"].size(), 2u);
  for (const char* k : {"t_ns", "mapped_bytes", "resident_bytes", "live_bytes", "rss_bytes"}) {
    EXPECT_TRUE(j["footprint"]["timeline"][0].contains(k)) << k;
  }
  for (const char* k : {"transfers", "segments", "segments_per_transfer", "bounce_bytes", "bounce_copies",
                        "iommu_mappings"}) {
    EXPECT_TRUE(j["dma"].contains(k)) << k;
  }
  EXPECT_EQ(j["dma"]["transfers"], 10);
  EXPECT_TRUE(j["accounting_check"]["ok"]);
  EXPECT_TRUE(j["metrics"].contains("replay.latency.alloc.p99_ns") ||
              j["metrics"].contains("replay.latency.dma_alloc.p99_ns"));
}


// ---- the replay measures the allocator -------------------------------------------

/// zones that loses one free in 97: the block stays allocated in zones while
/// the replay and the counting wrapper think it gone.
class LeakyZones : public test_support::ForwardingZones {
 public:
  static constexpr BackendVariant kVariants[] = {{"leaky-zones", "zones losing frees", ""}};
  static constexpr std::uint32_t kFeatures = kForwardedFeatures;
  using ForwardingZones::ForwardingZones;
  void free(void* p, std::size_t size) noexcept {
    if (frees_.fetch_add(1, std::memory_order_relaxed) % 97 != 96) zones_.free(p, size);
  }

 private:
  std::atomic<std::uint64_t> frees_{0};
};
static_assert(Backend<LeakyZones>);

TEST(Accounting, ABlockLeakedInsideTheBackendFailsTheCheck) {
  ops::Trace t = two_streams(2000);
  for (std::uint32_t i = 0; i < 2000; ++i) {
    t.streams[i % 2].ops.push_back(make(2 * i, OpKind::alloc, i, 32 + i % 500));
    t.streams[i % 2].ops.push_back(make(2 * i + 1, OpKind::free, i, 32 + i % 500));
  }
  Options o = quiet();
  o.drain = true;
  const Result leaky = run_as<LeakyZones>(build_program(t, 2), "leaky-zones", o);
  EXPECT_FALSE(leaky.accounting_ok);
  EXPECT_NE(leaky.accounting_detail.find("the backend's own structures hold"), std::string::npos)
      << leaky.accounting_detail;
  EXPECT_GT(leaky.backend_live_blocks, 0);
  const Result sound = run_as<ZonesBackend>(build_program(t, 2), "zones", o);
  EXPECT_TRUE(sound.accounting_ok) << sound.accounting_detail;
  EXPECT_EQ(sound.backend_live_blocks, 0);
}

// The timed pass's thread time, split: the parts add up to threads x duration.
TEST(TimeSplit, PartsAddUpToThreadTime) {
  const ops::Trace t = trace::import_file(std::string(KMBENCH_TEST_DATA) + "/ftrace-sample.txt.xz");
  for (const char* backend : {"zones", "slab", "buddy", "system", "bump"}) {
    const Result r = run(t, backend, quiet());
    const TimeSplit& s = r.time;
    ASSERT_TRUE(s.measured);
    const double parts = s.allocator_ns + s.touch_ns + s.dma_ns + s.wait_ns + s.sampling_ns +
                         s.pacing_ns + s.idle_ns + s.harness_ns;
    EXPECT_NEAR(parts / s.thread_ns, 1.0, 0.02) << backend;
    EXPECT_GT(s.allocator_ns, 0) << backend;
    EXPECT_EQ(s.allocator_ops, r.latency[0].count + r.latency[1].count + r.latency[2].count +
                                   r.latency[3].count + r.latency[4].count + r.latency[5].count)
        << backend;
    EXPECT_NEAR(s.allocator_ns_per_op, s.allocator_ns / static_cast<double>(s.allocator_ops), 1e-9);
  }
}

TEST(Warmup, ThePassesRunOnTheStateTheLastOneLeftAndResultsSayWhichFigure) {
  const ops::Trace t = trace::import_file(std::string(KMBENCH_TEST_DATA) + "/ftrace-sample.txt.xz");
  Options o = quiet();
  o.warmup = 0;
  const Result cold = run(t, "zones", o);
  EXPECT_NE(cold.figure.find("cold"), std::string::npos) << cold.figure;
  o.warmup = 2;
  o.settle = 0;  // zones with cache=auto may turn caching on in a pass, which would ask for another
  const Result warm = run(t, "zones", o);
  EXPECT_NE(warm.figure.find("2 untimed warm-up passes first"), std::string::npos) << warm.figure;
  EXPECT_EQ(warm.events, cold.events);
  EXPECT_TRUE(warm.accounting_ok) << warm.accounting_detail;
  // What the warm-up left stays: the timed pass finds chunks and magazines
  // ready, so the zones take fewer chunks from the page layer than cold.
  auto metric = [](const Result& r, const std::string& name) {
    for (const Metric& m : r.metrics) {
      if (m.name == name) return m.value;
    }
    return -1.0;
  };
  EXPECT_EQ(metric(cold, "replay.warmup_passes"), 0);
  EXPECT_EQ(metric(warm, "replay.warmup_passes"), 2);
  o.warmup = 101;
  EXPECT_THROW(run(t, "zones", o), UsageError);
}

/// zones that counts an adaptation each time it has allocated `per_pass` more
/// blocks, `passes` times: a backend still tuning itself over its first
/// passes (AdaptingBackend).
class TuningZones : public test_support::ForwardingZones {
 public:
  static constexpr BackendVariant kVariants[] = {{"tuning-zones", "zones that adapts over its first passes", ""}};
  static constexpr std::uint32_t kFeatures = kForwardedFeatures;
  using ForwardingZones::ForwardingZones;
  static inline std::uint64_t per_pass = 0, passes = 0;
  void* allocate(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
    allocs_.fetch_add(1, std::memory_order_relaxed);
    return zones_.allocate(size, align, tag, node);
  }
  std::uint64_t adaptations() const { return std::min(allocs_.load() / per_pass, passes); }

 private:
  std::atomic<std::uint64_t> allocs_{0};
};
static_assert(Backend<TuningZones> && AdaptingBackend<TuningZones>);

TEST(Warmup, PassesGoOnWhileTheBackendAdaptsUpToTheSettleLimit) {
  ops::Trace t = two_streams(2000);
  for (std::uint32_t i = 0; i < 2000; ++i) {
    t.streams[i % 2].ops.push_back(make(2 * i, OpKind::alloc, i, 32 + i % 500));
    t.streams[i % 2].ops.push_back(make(2 * i + 1, OpKind::free, i, 32 + i % 500));
  }
  TuningZones::per_pass = 2000;
  struct Case {
    std::uint64_t adapting_passes;
    unsigned warmup, settle, want_passes;
    bool settled;
  };
  // Adapting over its first 3 passes, it is found settled by the 4th.
  for (const Case c : {Case{3, 1, 8, 4, true}, Case{3, 1, 2, 2, false}, Case{3, 5, 8, 5, true}, Case{20, 1, 8, 8, false},
                       Case{0, 1, 8, 1, true}, Case{3, 0, 8, 0, true}}) {
    TuningZones::passes = c.adapting_passes;
    Options o = quiet();
    o.warmup = c.warmup;
    o.settle = c.settle;
    const Result r = run_as<TuningZones>(build_program(t, 2), "tuning-zones", o);
    EXPECT_EQ(r.warmup_passes, c.want_passes) << c.adapting_passes << " adapting passes, warmup " << c.warmup
                                              << ", settle " << c.settle;
    EXPECT_EQ(r.settled, c.settled) << r.figure;
    EXPECT_EQ(r.figure.find("until the backend stopped adapting") != std::string::npos, c.want_passes > c.warmup)
        << r.figure;
    EXPECT_EQ(r.figure.find("still adapted") != std::string::npos, !c.settled) << r.figure;
    EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;
  }
}

// The default sampling interval follows the warm-up pass, so a short pass
// still gets a timeline and a long one is not sampled needlessly often.
TEST(Sampling, DefaultIntervalGivesAboutAHundredSamplesPerPass) {
  using std::chrono::microseconds;
  EXPECT_EQ(sampling_interval(5, 1'000'000'000), microseconds(5000));  // set: kept
  EXPECT_EQ(sampling_interval(0, 0), microseconds(10'000));            // no warm-up pass
  EXPECT_EQ(sampling_interval(0, 500'000'000), microseconds(5000));    // 0.5 s pass
  EXPECT_EQ(sampling_interval(0, 20'000'000), microseconds(1000));     // floor
  EXPECT_EQ(sampling_interval(0, 60'000'000'000), microseconds(10'000));  // ceiling

  const ops::Trace t = trace::import_file(std::string(KMBENCH_TEST_DATA) + "/ftrace-sample.txt.xz");
  const Result r = run(t, "slab", Options{});
  EXPECT_GE(r.sample_interval_us, 1000u);
  EXPECT_LE(r.sample_interval_us, 10'000u);
  // A pass of a few intervals has samples between its first and its last.
  if (r.duration_ns > 4 * 1000 * r.sample_interval_us) {
    EXPECT_GE(r.timeline.size(), 3u) << r.duration_ns;
  }
}

// A stream whose live bytes peak for one step, between two samples by step
// count, with a block that takes its own memory from the machine and gives it
// back when freed (zones' kalloc_large, slab's and buddy's pages): samples at
// fixed points alone miss the peak, and the peak footprint would read below
// the peak live bytes. The replay also samples where the live bytes peak.
TEST(Sampling, APeakOfLiveBytesBetweenSamplesIsSampledSoTheFootprintHoldsIt) {
  constexpr std::uint32_t kSmall = 10'000;
  constexpr std::uint64_t kSpike = std::uint64_t{8} << 20;
  ops::Trace t;
  t.streams.resize(1);
  t.object_count = kSmall + 1;
  std::uint64_t time = 0;
  auto& ops = t.streams[0].ops;
  for (std::uint32_t i = 0; i < kSmall; ++i) {
    ops.push_back(make(time++, OpKind::alloc, i, 64));
    if (i == kSmall / 2 + 17) {  // between two samples by step count (every 1% of the steps)
      ops.push_back(make(time++, OpKind::alloc, kSmall, kSpike));
      ops.push_back(make(time++, OpKind::free, kSmall, kSpike));
    }
    ops.push_back(make(time++, OpKind::free, i, 64));
  }
  Options o = quiet();
  o.sample_ms = 60'000;  // no sample by time within the pass
  for (const char* backend : {"zones", "slab", "buddy", "system"}) {
    const Result r = run(t, backend, o);
    EXPECT_TRUE(r.accounting_ok) << backend << ": " << r.accounting_detail;
    EXPECT_GE(r.peak_live_bytes, static_cast<std::int64_t>(kSpike)) << backend;
    EXPECT_EQ(r.peak_sampled_live_bytes, r.peak_live_bytes) << backend;
    EXPECT_GE(static_cast<std::int64_t>(r.peak_footprint_bytes), r.peak_live_bytes) << backend;
    EXPECT_EQ(r.footprint_below_live, 0u) << backend;
    EXPECT_GE(r.fragmentation, 1.0) << backend;
    EXPECT_EQ(r.peak_samples, 1u) << backend;  // one thread: one sample, at the peak
  }
}

// With several replay threads the sample at the live peak can come a step
// after it, a free already made: the peak footprint is then the peak live
// bytes, which the backend held at that instant, and says so; never for the
// process RSS, nor for a run whose samples show a backend below its live bytes.
TEST(Sampling, APeakFootprintNoSampleCaughtIsBoundedByThePeakLiveBytes) {
  const auto sample = [](std::uint64_t mapped, std::int64_t live) {
    FootprintSample f;
    f.mapped_bytes = f.resident_bytes = mapped;
    f.rss_bytes = mapped / 2;
    f.live_bytes = live;
    return f;
  };
  CountingStats stats;
  stats.peak_live_bytes = 12'000'000;
  const auto recorded = [&](bool use_rss, std::uint64_t below_live) {
    Result r;
    r.timeline = {sample(4'000'000, 3'000'000), sample(11'000'000, 10'500'000), sample(9'000'000, 8'000'000)};
    r.footprint_below_live = below_live;
    record_footprint(r, stats, use_rss);
    return r;
  };

  const Result missed = recorded(false, 0);
  EXPECT_EQ(missed.peak_sampled_footprint_bytes, 11'000'000u);
  EXPECT_EQ(missed.peak_footprint_bytes, 12'000'000u);
  EXPECT_TRUE(missed.peak_footprint_from_live());
  EXPECT_EQ(missed.peak_live_bytes, 12'000'000);
  EXPECT_EQ(missed.peak_sampled_live_bytes, 10'500'000);
  EXPECT_DOUBLE_EQ(missed.fragmentation, 11'000'000.0 / 10'500'000.0);  // over the samples alone
  const nlohmann::json j = cell_json(missed, Source{"trace", "peak.kmt", {}, std::nullopt, {}})["footprint"];
  EXPECT_EQ(j["peak_footprint_bytes"], 12'000'000u);
  EXPECT_EQ(j["peak_sampled_footprint_bytes"], 11'000'000u);
  EXPECT_EQ(j["peak_footprint_from_live"], true);

  const Result rss = recorded(true, 0);
  EXPECT_EQ(rss.peak_footprint_bytes, 5'500'000u);
  EXPECT_FALSE(rss.peak_footprint_from_live());

  const Result unsound = recorded(false, 1);
  EXPECT_EQ(unsound.peak_footprint_bytes, 11'000'000u);
  EXPECT_FALSE(unsound.peak_footprint_from_live());

  stats.peak_live_bytes = 10'500'000;  // a sample above the live peak: the samples' peak stands
  const Result caught = recorded(false, 0);
  EXPECT_EQ(caught.peak_footprint_bytes, 11'000'000u);
  EXPECT_FALSE(caught.peak_footprint_from_live());
}

// Paced replay keeps the capture's pace: on a light capture the timed pass
// lasts the capture's span / speed, and how late steps started is reported.
TEST(Paced, DurationIsTheCapturesSpanOverTheSpeed) {
  const ops::Trace t = trace::import_file(std::string(KMBENCH_TEST_DATA) + "/ftrace-sample.txt.xz");
  const Program p = build_program(t, 2);
  Options o = quiet();
  o.mode = Mode::paced;
  o.speed = 4;
  o.sample_ms = 10;
  const Result r = run(p, "zones", o);
  const double expected = static_cast<double>(p.duration_ns) / o.speed;
  // The schedule is never run ahead of; behind it, the pass ends at most as
  // late as the latest step started, plus the last step's own work. Bounding
  // by the measured lag keeps the test exact on a loaded or sanitised build.
  EXPECT_GE(static_cast<double>(r.duration_ns), 0.99 * expected) << r.duration_ns << " ns against " << expected;
  EXPECT_LE(static_cast<double>(r.duration_ns), 1.05 * expected + static_cast<double>(r.paced_max_lag_ns))
      << r.duration_ns << " ns against " << expected << ", latest step " << r.paced_max_lag_ns << " ns late";
  EXPECT_EQ(r.paced_lag.count, r.events);
  EXPECT_GT(r.paced_lag.p99_ns, 0);
  EXPECT_LE(r.paced_lag.p50_ns, r.paced_lag.p99_ns);
  EXPECT_GT(r.time.pacing_ns, 0);
  // A run that keeps up with the schedule (steps late by under 1% of the pass
  // on average) spends most of its thread time waiting for it; one that a
  // loaded or sanitised build slows down waits less, and its lag says so.
  if (r.paced_mean_lag_ns < 0.01 * expected) {
    EXPECT_GT(r.time.pacing_ns, 0.5 * r.time.thread_ns) << "mean lag " << r.paced_mean_lag_ns << " ns";
  }
}

// NUMA placement measured from each block's simulated physical address.
TEST(Numa, PlacementIsMeasuredOnSyntheticTwoAndFourNodeMachines) {
  ops::Trace t = two_streams(4000);
  for (std::uint32_t i = 0; i < 4000; ++i) {
    t.streams[i % 2].ops.push_back(make(2 * i, OpKind::alloc, i, 256));
  }
  for (const char* topology : {"synthetic:pack:2 [numa] pu:1", "synthetic:pack:4 [numa] pu:1"}) {
    const unsigned nodes = std::string(topology).find("pack:4") != std::string::npos ? 4 : 2;
    for (const char* backend : {"zones", "slab", "buddy"}) {
      Options o = quiet();
      o.topology = topology;
      o.node = 0;
      for (Placement placement : {Placement::local, Placement::remote, Placement::interleaved}) {
        o.placement = placement;
        const Result r = run(t, backend, o);
        SCOPED_TRACE(std::string(backend) + " " + topology + " " + std::string(name_of(placement)));
        ASSERT_TRUE(r.numa_measured) << r.numa_note;
        ASSERT_EQ(r.numa.bytes.size(), nodes);
        std::vector<std::uint64_t> on(nodes, 0);
        for (const auto& row : r.numa.bytes) {
          for (unsigned m = 0; m < nodes; ++m) on[m] += row[m];
        }
        const std::uint64_t all = 4000u * 256u;
        EXPECT_EQ(r.numa.local_bytes + r.numa.remote_bytes, all);
        if (placement == Placement::local) {
          EXPECT_EQ(on[0], all);
        } else if (placement == Placement::remote) {
          EXPECT_EQ(on[1], all);
        } else {
          for (unsigned m = 0; m < nodes; ++m) EXPECT_EQ(on[m], all / nodes) << "node " << m;
        }
        // Local bytes are those on the allocating thread's node.
        std::uint64_t local = 0;
        for (unsigned n = 0; n < nodes; ++n) local += r.numa.bytes[n][n];
        EXPECT_EQ(r.numa.local_bytes, local);
      }
    }
  }
  const Result one = run(t, "zones", quiet());
  EXPECT_FALSE(one.numa_measured);
}

TEST(Machine, SizedFromTheStreamAndTooLargeADemandIsAUsageErrorSayingHowMuch) {
  ops::Trace t = two_streams(64);
  for (std::uint32_t i = 0; i < 64; ++i) {
    t.streams[i % 2].ops.push_back(make(i, OpKind::page_alloc, i, 4u << 20));  // 256 MiB live at once
  }
  const Result r = run(t, "buddy", quiet());
  EXPECT_GE(r.machine.node_bytes, 256u << 20);
  EXPECT_TRUE(r.machine.populated);
  EXPECT_NE(r.machine.sizing.find("peak live 256 MiB"), std::string::npos) << r.machine.sizing;
  EXPECT_EQ(r.failed_allocs, 0u);
  Options o = quiet();
  o.node_bytes = 1ull << 39;  // 512 GiB per node
  try {
    run(t, "buddy", o);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("needs 524288 MiB"), std::string::npos) << what;
    EXPECT_NE(what.find("available"), std::string::npos) << what;
  }
  o.node_bytes = 64u << 20;  // less than the stream needs below 4 GiB and above
  EXPECT_THROW(run(t, "buddy", o), UsageError);
}

}  // namespace
}  // namespace kmbench::replay
