// Importing ftrace text, measured beside what `wc -l` does on the same bytes.
//   bench_trace_import [--benchmark_repetitions=5]      (KMBENCH_TRACE_TEXT=FILE: a large capture)
// Reported as MB/s of text; the ratio import / line count is the figure the
// goal names (<= 2x with the default threads on two cores).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "harness/trace/trace.h"

namespace {

const kmbench::trace::Input& text() {
  static const auto input = [] {
    const char* path = std::getenv("KMBENCH_TRACE_TEXT");
    return std::make_unique<kmbench::trace::Input>(path && *path ? path : KMBENCH_TRACE_SAMPLE);
  }();
  return *input;
}

void BM_LineCount(benchmark::State& state) {  // what wc -l does: memchr for '\n'
  const std::string_view t = text().bytes();
  for (auto _ : state) {
    std::size_t lines = 0;
    const char* p = t.data();
    const char* end = p + t.size();
    while ((p = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p))))) {
      ++lines;
      ++p;
    }
    benchmark::DoNotOptimize(lines);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * t.size()));
}
BENCHMARK(BM_LineCount)->Unit(benchmark::kMillisecond)->UseRealTime();

// Read, parse, match, build and encode; the argument is ImportOptions::threads
// (0: the default, 1: one thread reads, parses and merges in turn).
void BM_ImportFtrace(benchmark::State& state) {
  kmbench::trace::ImportOptions o;
  o.threads = static_cast<unsigned>(state.range(0));
  for (auto _ : state) {
    const kmbench::ops::Trace trace = kmbench::trace::import_ftrace(text(), o);
    const std::string kmt = kmbench::trace::encode(trace);
    benchmark::DoNotOptimize(kmt.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text().size()));
}
BENCHMARK(BM_ImportFtrace)->ArgName("threads")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
