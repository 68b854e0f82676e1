// zones against mimalloc (mi_malloc / mi_free_size) and glibc on the sized
// patterns a driver's IOMalloc/IOFree makes: alloc+free pairs, batches of 1000
// then free, and a producer/consumer pair of threads.
//
// mimalloc is linked into this executable only (it owns the process's malloc
// here); glibc is reached through the system backend, which calls libc.so.6's
// own symbols. Run, e.g.:
//   build/allocators/bench/bench_zones --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true
#include <memory>

#include "allocators/bench/bench_kernels.h"
#include "allocators/bench/bench_mimalloc.h"
#include "allocators/system/system.h"
#include "allocators/zones/zones.h"

namespace {

using namespace kmbench;
using namespace kmbench::bench;

template <class B>
void register_contender(const std::string& name, B* b) {
  size_args(benchmark::RegisterBenchmark(("pair_lifo/" + name).c_str(),
                                         [b](benchmark::State& s) { pair_lifo(s, *b); }));
  size_args(benchmark::RegisterBenchmark(("batch_1000/" + name).c_str(),
                                         [b](benchmark::State& s) { batch_fifo(s, *b); }));
  auto* ring = new BatchRing;
  benchmark::RegisterBenchmark(("producer_consumer/" + name).c_str(),
                               [b, ring](benchmark::State& s) { producer_consumer_batch(s, *b, *ring); })
      ->Arg(256)
      ->Threads(2)
      ->UseRealTime();
}

BackendConfig zones_config(std::initializer_list<std::pair<const std::string, std::string>> p) {
  BackendConfig c;
  c.params = p;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  // Kept for the whole run: construction is not what is measured.
  register_contender("zones", new ZonesBackend(zones_config({})));
  register_contender("zones_cache_on", new ZonesBackend(zones_config({{"cache", "on"}})));
  register_contender("mimalloc", new Mimalloc);
  register_contender("glibc", new SystemBackend(BackendConfig{}));
  return run_benchmarks(argc, argv);
}
