// Sized alloc+free pairs through every in-process backend, raw and counted.
// bench_backends_<worker> is this program built like a worker executable: its
// allocator (jemalloc, mimalloc) beside the in-house backends, in one run.
//
//   build/allocators/bench/bench_backends --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true
//   allocators/bench/medians.py out1.json out2.json ...   (medians and ratios to system)
#include <benchmark/benchmark.h>

#include <vector>

#include "allocators/registry.h"

namespace {

using namespace kmbench;

constexpr std::size_t kSizes[] = {16, 64, 256, 1024, 4096};
constexpr std::size_t kBatch = 1000;

/// alloc then free the same size, LIFO: the fast path of every allocator.
template <class B>
void pair_lifo(benchmark::State& state, B& backend) {
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = backend.allocate(size, kMinAlign, kNoTag, kAnyNode);
    benchmark::DoNotOptimize(p);
    backend.free(p, size);
  }
  state.SetItemsProcessed(state.iterations());
}

/// 1000 allocations, then 1000 frees in allocation order: caches overflow and refill.
template <class B>
void batch_fifo(benchmark::State& state, B& backend) {
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  std::vector<void*> blocks(kBatch);
  for (auto _ : state) {
    for (auto& p : blocks) {
      p = backend.allocate(size, kMinAlign, kNoTag, kAnyNode);
    }
    benchmark::ClobberMemory();
    for (void* p : blocks) {
      backend.free(p, size);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

template <class B>
void register_backend() {
  for (const BackendVariant& v : B::kVariants) {
    const std::string name(v.name);
    BackendConfig config;
    apply_params(config, v.params);
    // Constructed once per process and kept: construction is not what is measured.
    auto* raw = new B(config);
    auto* counted = new Counting<B>(config);
    auto add = [](const std::string& label, auto fn) {
      auto* b = benchmark::RegisterBenchmark(label.c_str(), fn);
      for (std::size_t s : kSizes) {
        b->Arg(static_cast<std::int64_t>(s));
      }
    };
    add("pair_lifo/" + name, [raw](benchmark::State& s) { pair_lifo(s, *raw); });
    add("batch_fifo/" + name, [raw](benchmark::State& s) { batch_fifo(s, *raw); });
    add("pair_lifo_counted/" + name, [counted](benchmark::State& s) { pair_lifo(s, *counted); });
  }
}

template <class... Bs>
void register_all(BackendList<Bs...>) {
  (register_backend<Bs>(), ...);
}

}  // namespace

int main(int argc, char** argv) {
  register_all(InProcessBackends{});
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 2;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
