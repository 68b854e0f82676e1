// The slab backend against mimalloc (mi_malloc / mi_free_size) and glibc
// (the system backend), side by side in one process: sized alloc+free pairs
// (LIFO), batches of 1000 then free, and a 2-thread producer/consumer.
// slab-mag143 starts every cache at the largest magazine; slab-depot_rate0
// (batches only) grows magazines on depot contention alone, as illumos does:
// the slab README's depot-traffic figure compares it with slab.
//
//   build/allocators/bench/bench_slab --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true
//
// mimalloc is linked into this executable only; it then owns the process's
// malloc, which glibc's `system` backend does not use (it calls libc.so.6 itself).
#include "allocators/bench/bench_kernels.h"
#include "allocators/bench/bench_mimalloc.h"
#include "allocators/slab/slab.h"
#include "allocators/system/system.h"

namespace {

using namespace kmbench;
using namespace kmbench::bench;

SlabBackend& slab_backend() {
  static SlabBackend backend{BackendConfig{}};
  return backend;
}
BackendConfig slab_config(const char* key, const char* value) {
  BackendConfig config;
  config.params[key] = value;
  return config;
}
/// The same design with every cache starting at illumos's largest magazine (143 rounds).
SlabBackend& slab_backend_mag143() {
  static SlabBackend backend{slab_config("magazine_rounds", "143")};
  return backend;
}
/// The same design with magazines grown by depot contention only (illumos's rule).
SlabBackend& slab_backend_depot_rate0() {
  static SlabBackend backend{slab_config("depot_rate", "0")};
  return backend;
}
SystemBackend& system_backend() {
  static SystemBackend backend{BackendConfig{}};
  return backend;
}
Mimalloc& mimalloc() {
  static Mimalloc m;
  return m;
}

template <class B>
void register_batch_1000(const char* name, B& b) {
  size_args(benchmark::RegisterBenchmark((std::string("batch_1000/") + name).c_str(),
                                         [&b](benchmark::State& s) { batch_fifo(s, b); }));
}

template <class B>
void register_all(const char* name, B& b) {
  size_args(benchmark::RegisterBenchmark((std::string("pair_lifo/") + name).c_str(),
                                         [&b](benchmark::State& s) { pair_lifo(s, b); }));
  register_batch_1000(name, b);
  size_args(benchmark::RegisterBenchmark((std::string("producer_consumer/") + name).c_str(),
                                         [&b](benchmark::State& s) { producer_consumer_each(s, b); })
                ->Threads(2)
                ->UseRealTime());
}

}  // namespace

int main(int argc, char** argv) {
  register_all("slab", slab_backend());
  register_all("slab-mag143", slab_backend_mag143());
  register_batch_1000("slab-depot_rate0", slab_backend_depot_rate0());
  register_all("mimalloc", mimalloc());
  register_all("glibc", system_backend());
  return run_benchmarks(argc, argv);
}
