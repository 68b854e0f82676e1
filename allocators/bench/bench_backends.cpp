// Sized alloc+free pairs through every in-process backend, raw and counted.
// bench_backends_<worker> is this program built like a worker executable: its
// allocator (jemalloc, mimalloc) beside the in-house backends, in one run.
//
//   build/allocators/bench/bench_backends --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true
//   allocators/bench/medians.py out1.json out2.json ...   (medians and ratios to system)
#include "allocators/bench/bench_kernels.h"
#include "allocators/registry.h"

namespace {

using namespace kmbench;
using namespace kmbench::bench;

template <class B>
void register_backend() {
  for (const BackendVariant& v : B::kVariants) {
    const std::string name(v.name);
    BackendConfig config;
    apply_params(config, v.params);
    // Constructed once per process and kept: construction is not what is measured.
    auto* raw = new B(config);
    auto* counted = new Counting<B>(config);
    auto add = [](const std::string& label, auto fn) { size_args(benchmark::RegisterBenchmark(label.c_str(), fn)); };
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
  return run_benchmarks(argc, argv);
}
