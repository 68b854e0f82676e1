// Replay throughput of every in-process backend on one trace, and the
// harness's own cost (the bump backend) beside them. bench_replay_<worker> is
// the same program in a worker's process, its allocator beside the others.
//
//   KMBENCH_BENCH_TRACE=/path/capture.txt build/harness/replay/bench_replay_mimalloc
//     --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Without KMBENCH_BENCH_TRACE the churn workload (seed 1) is replayed.
// Times are the replay's own duration (threads started, sampler running).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <iostream>
#include <memory>

#include "allocators/registry.h"
#include "harness/replay/replay.h"
#include "harness/trace/trace.h"
#include "workloads/workloads.h"

namespace {

using namespace kmbench;

const ops::Trace& bench_trace() {
  static const ops::Trace trace = [] {
    const char* path = std::getenv("KMBENCH_BENCH_TRACE");
    if (path != nullptr && *path != '\0') return trace::import_file(path);
    return workloads::generate("churn", {}, 1);
  }();
  return trace;
}

void replay_once(benchmark::State& state, const std::string& backend, unsigned threads, bool latency,
                 replay::Touch touch) {
  const replay::Program program = replay::build_program(bench_trace(), threads);
  replay::Options o;
  o.latency = latency;
  o.touch = touch;
  o.sample_ms = 50;
  double ops_per_sec = 0;
  for (auto _ : state) {
    const replay::Result r = replay::run(program, backend, o);
    state.SetIterationTime(static_cast<double>(r.duration_ns) * 1e-9);
    ops_per_sec = r.ops_per_sec;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * program.steps));
  state.counters["last_ops_per_sec"] = ops_per_sec;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const unsigned streams = static_cast<unsigned>(std::max<std::size_t>(1, bench_trace().streams.size()));
  std::cerr << "trace: " << bench_trace().header.source << ", " << bench_trace().op_count() << " operations, "
            << streams << " streams\n";
  // threads:1 keeps the scheduler out of the comparison; touch:none shows the
  // harness without the writes that make lazily committed memory pay.
  struct Variant {
    unsigned threads;
    bool latency;
    replay::Touch touch;
  };
  const Variant variants[] = {{1, false, replay::Touch::first}, {1, true, replay::Touch::first},
                              {1, false, replay::Touch::none}, {streams, true, replay::Touch::first}};
  for (const BackendInfo& b : all_backends()) {
    if (!b.executable.empty()) continue;
    for (const Variant& v : variants) {
      const std::string name = "replay/" + b.name + "/threads:" + std::to_string(v.threads) +
                               (v.latency ? "/latency" : "/no_latency") + "/touch:" +
                               std::string(replay::name_of(v.touch));
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        replay_once(s, b.name, v.threads, v.latency, v.touch);
      })->UseManualTime()->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
