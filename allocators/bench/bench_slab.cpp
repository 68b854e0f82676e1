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
#include <benchmark/benchmark.h>
#include <mimalloc.h>

#include <array>
#include <atomic>
#include <thread>
#include <vector>

#include "allocators/slab/slab.h"
#include "allocators/system/system.h"

namespace {

using namespace kmbench;

constexpr std::int64_t kSizes[] = {16, 64, 256, 1024, 4096};
constexpr std::size_t kBatch = 1000;

/// mimalloc's own sized entry points, as the mimalloc backend would call them.
struct Mimalloc {
  void* allocate(std::size_t size) noexcept { return mi_malloc(size); }
  void free(void* p, std::size_t size) noexcept { mi_free_size(p, size); }
};

struct Slab {
  SlabBackend& b;
  void* allocate(std::size_t size) noexcept { return b.allocate(size, kMinAlign, kNoTag, kAnyNode); }
  void free(void* p, std::size_t size) noexcept { b.free(p, size); }
};

struct Glibc {
  SystemBackend& b;
  void* allocate(std::size_t size) noexcept { return b.allocate(size, kMinAlign, kNoTag, kAnyNode); }
  void free(void* p, std::size_t size) noexcept { b.free(p, size); }
};

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

template <class A>
void pair_lifo(benchmark::State& state, A a) {
  const auto size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = a.allocate(size);
    benchmark::DoNotOptimize(p);
    a.free(p, size);
  }
  state.SetItemsProcessed(state.iterations());
}

template <class A>
void batch_1000(benchmark::State& state, A a) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<void*> blocks(kBatch);
  for (auto _ : state) {
    for (void*& p : blocks) {
      p = a.allocate(size);
    }
    benchmark::ClobberMemory();
    for (void* p : blocks) {
      a.free(p, size);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kBatch));
}

/// Spins briefly, then gives the CPU away (the other side may not be running).
void backoff(unsigned& spins) {
  if (++spins < 256) {
    __builtin_ia32_pause();
  } else {
    std::this_thread::yield();
  }
}

/// Thread 0 allocates and hands blocks over a ring, thread 1 frees them.
struct Ring {
  static constexpr std::size_t kSlots = 1024;
  std::array<std::atomic<void*>, kSlots> slot{};
  alignas(64) std::size_t head = 0;  // producer's
  alignas(64) std::size_t tail = 0;  // consumer's
};

template <class A>
void producer_consumer(benchmark::State& state, A a) {
  static Ring ring;
  const auto size = static_cast<std::size_t>(state.range(0));
  if (state.thread_index() == 0) {
    for (auto _ : state) {
      void* p = a.allocate(size);
      std::atomic<void*>& s = ring.slot[ring.head++ % Ring::kSlots];
      for (unsigned spins = 0; s.load(std::memory_order_acquire) != nullptr;) {
        backoff(spins);
      }
      s.store(p, std::memory_order_release);
    }
  } else {
    for (auto _ : state) {
      std::atomic<void*>& s = ring.slot[ring.tail++ % Ring::kSlots];
      void* p;
      for (unsigned spins = 0; (p = s.load(std::memory_order_acquire)) == nullptr;) {
        backoff(spins);
      }
      s.store(nullptr, std::memory_order_relaxed);
      a.free(p, size);
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t s : kSizes) {
    b->Arg(s);
  }
}

template <class A>
void register_batch_1000(const char* name, A a) {
  sizes(benchmark::RegisterBenchmark((std::string("batch_1000/") + name).c_str(),
                                     [a](benchmark::State& s) { batch_1000(s, a); }));
}

template <class A>
void register_all(const char* name, A a) {
  sizes(benchmark::RegisterBenchmark((std::string("pair_lifo/") + name).c_str(),
                                     [a](benchmark::State& s) { pair_lifo(s, a); }));
  register_batch_1000(name, a);
  sizes(benchmark::RegisterBenchmark((std::string("producer_consumer/") + name).c_str(),
                                     [a](benchmark::State& s) { producer_consumer(s, a); })
            ->Threads(2)
            ->UseRealTime());
}

}  // namespace

int main(int argc, char** argv) {
  register_all("slab", Slab{slab_backend()});
  register_all("slab-mag143", Slab{slab_backend_mag143()});
  register_batch_1000("slab-depot_rate0", Slab{slab_backend_depot_rate0()});
  register_all("mimalloc", Mimalloc{});
  register_all("glibc", Glibc{system_backend()});
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 2;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
