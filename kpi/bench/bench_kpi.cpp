// The cost of the KPI's checking: IOMalloc/IOFree and OSMalloc/OSFree against
// the same backend called directly (AnyBackend, the KPI's own path to it).
// Run: build/kpi/bench_kpi --benchmark_repetitions=9 --benchmark_report_aggregates_only=true
// (KMBENCH_BACKEND picks the backend; default system).
#include <benchmark/benchmark.h>

#include <IOKit/IOLib.h>
#include <libkern/OSMalloc.h>

#include <vector>

#include "kmbench/kpi.h"

namespace {

constexpr int kBatch = 256;

void BM_backend_direct(benchmark::State& state) {
  kmbench::AnyBackend& b = kmbench::kpi::backend();
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<void*> blocks(kBatch);
  for (auto _ : state) {
    for (void*& p : blocks) {
      p = b.allocate(size, kmbench::kMinAlign, kmbench::kNoTag, kmbench::kAnyNode);
    }
    benchmark::DoNotOptimize(blocks.data());
    for (void* p : blocks) {
      b.free(p, size);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_IOMalloc_IOFree(benchmark::State& state) {
  const auto size = static_cast<vm_size_t>(state.range(0));
  std::vector<void*> blocks(kBatch);
  for (auto _ : state) {
    for (void*& p : blocks) {
      p = IOMalloc(size);
    }
    benchmark::DoNotOptimize(blocks.data());
    for (void* p : blocks) {
      IOFree(p, size);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_OSMalloc_OSFree(benchmark::State& state) {
  static OSMallocTag tag = OSMalloc_Tagalloc("com.kmbench.bench", OSMT_DEFAULT);
  const auto size = static_cast<uint32_t>(state.range(0));
  std::vector<void*> blocks(kBatch);
  for (auto _ : state) {
    for (void*& p : blocks) {
      p = OSMalloc(size, tag);
    }
    benchmark::DoNotOptimize(blocks.data());
    for (void* p : blocks) {
      OSFree(p, size, tag);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

BENCHMARK(BM_backend_direct)->Arg(64)->Arg(1024)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_IOMalloc_IOFree)->Arg(64)->Arg(1024)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_OSMalloc_OSFree)->Arg(64)->Arg(1024)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
