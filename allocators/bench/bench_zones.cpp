// zones against mimalloc (mi_malloc / mi_free_size) and glibc on the sized
// patterns a driver's IOMalloc/IOFree makes: alloc+free pairs, batches of 1000
// then free, and a producer/consumer pair of threads.
//
// mimalloc is linked into this executable only (it owns the process's malloc
// here); glibc is reached through the system backend, which calls libc.so.6's
// own symbols. Run, e.g.:
//   build/allocators/bench/bench_zones --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <mimalloc.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "allocators/system/system.h"
#include "allocators/zones/zones.h"

namespace {

using namespace kmbench;

constexpr std::size_t kSizes[] = {16, 64, 256, 1024, 4096};
constexpr std::size_t kBatch = 1000;

/// mimalloc with sized frees, shaped like a backend for the templates below.
struct Mimalloc {
  void* allocate(std::size_t size, std::size_t, TagId, NodeId) noexcept { return mi_malloc(size); }
  void free(void* p, std::size_t size) noexcept { mi_free_size(p, size); }
};

template <class B>
void pair_lifo(benchmark::State& state, B& b) {
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = b.allocate(size, kMinAlign, kNoTag, kAnyNode);
    benchmark::DoNotOptimize(p);
    b.free(p, size);
  }
  state.SetItemsProcessed(state.iterations());
}

/// 1000 allocations, then 1000 frees in allocation order: caches overflow and refill.
template <class B>
void batch_1000(benchmark::State& state, B& b) {
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  std::vector<void*> blocks(kBatch);
  for (auto _ : state) {
    for (auto& p : blocks) {
      p = b.allocate(size, kMinAlign, kNoTag, kAnyNode);
    }
    benchmark::ClobberMemory();
    for (void* p : blocks) {
      b.free(p, size);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

/// A single-producer single-consumer ring handing blocks between the two threads.
struct Ring {
  static constexpr std::size_t kSize = 4096;
  alignas(64) std::atomic<std::size_t> head{0};
  alignas(64) std::atomic<std::size_t> tail{0};
  alignas(64) void* slots[kSize];
};

/// Thread 0 allocates 1000 blocks per iteration and hands them over; thread 1 frees them.
template <class B>
void producer_consumer(benchmark::State& state, B& b, Ring& ring) {
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  if (state.thread_index() == 0) {
    for (auto _ : state) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        void* p = b.allocate(size, kMinAlign, kNoTag, kAnyNode);
        const std::size_t h = ring.head.load(std::memory_order_relaxed);
        while (h - ring.tail.load(std::memory_order_acquire) == Ring::kSize) {
          std::this_thread::yield();
        }
        ring.slots[h % Ring::kSize] = p;
        ring.head.store(h + 1, std::memory_order_release);
      }
    }
  } else {
    for (auto _ : state) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        const std::size_t t = ring.tail.load(std::memory_order_relaxed);
        while (t == ring.head.load(std::memory_order_acquire)) {
          std::this_thread::yield();
        }
        b.free(ring.slots[t % Ring::kSize], size);
        ring.tail.store(t + 1, std::memory_order_release);
      }
    }
  }
  if (state.thread_index() == 0) {  // items: blocks handed over (counters add up over threads)
    state.SetItemsProcessed(state.iterations() * kBatch);
  }
}

template <class B>
void register_contender(const std::string& name, B* b) {
  auto sizes = [](benchmark::internal::Benchmark* bm) {
    for (std::size_t s : kSizes) {
      bm->Arg(static_cast<std::int64_t>(s));
    }
  };
  sizes(benchmark::RegisterBenchmark(("pair_lifo/" + name).c_str(),
                                     [b](benchmark::State& s) { pair_lifo(s, *b); }));
  sizes(benchmark::RegisterBenchmark(("batch_1000/" + name).c_str(),
                                     [b](benchmark::State& s) { batch_1000(s, *b); }));
  auto* ring = new Ring;
  benchmark::RegisterBenchmark(("producer_consumer/" + name).c_str(),
                               [b, ring](benchmark::State& s) { producer_consumer(s, *b, *ring); })
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
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 2;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
