// The Google Benchmark kernels the backend programs share (bench_backends,
// bench_zones, bench_slab). Each is a template over the backend type, so the
// backend's inline allocate and free are compiled into the timed loop. A
// program registers a kernel under its own name: the names are what results
// are compared by across commits.
#pragma once

#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "allocators/backend.h"

namespace kmbench::bench {

inline constexpr std::size_t kSizes[] = {16, 64, 256, 1024, 4096};
inline constexpr std::size_t kBatch = 1000;

/// One benchmark argument per size of kSizes.
inline void size_args(benchmark::internal::Benchmark* b) {
  for (std::size_t s : kSizes) {
    b->Arg(static_cast<std::int64_t>(s));
  }
}

/// alloc then free the same size, LIFO: the fast path of every allocator.
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
void batch_fifo(benchmark::State& state, B& b) {
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

/// A single-producer single-consumer ring of kSize blocks, one index per side.
struct BatchRing {
  static constexpr std::size_t kSize = 4096;
  alignas(64) std::atomic<std::size_t> head{0};
  alignas(64) std::atomic<std::size_t> tail{0};
  alignas(64) void* slots[kSize];
};

/// 2 threads: thread 0 allocates 1000 blocks per iteration and hands them
/// over the ring; thread 1 frees them. Items: blocks handed over.
template <class B>
void producer_consumer_batch(benchmark::State& state, B& b, BatchRing& ring) {
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  if (state.thread_index() == 0) {
    for (auto _ : state) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        void* p = b.allocate(size, kMinAlign, kNoTag, kAnyNode);
        const std::size_t h = ring.head.load(std::memory_order_relaxed);
        while (h - ring.tail.load(std::memory_order_acquire) == BatchRing::kSize) {
          std::this_thread::yield();
        }
        ring.slots[h % BatchRing::kSize] = p;
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
        b.free(ring.slots[t % BatchRing::kSize], size);
        ring.tail.store(t + 1, std::memory_order_release);
      }
    }
  }
  if (state.thread_index() == 0) {  // counters add up over threads
    state.SetItemsProcessed(state.iterations() * kBatch);
  }
}

/// Spins briefly, then gives the CPU away (the other side may not be running).
inline void backoff(unsigned& spins) {
  if (++spins < 256) {
    __builtin_ia32_pause();
  } else {
    std::this_thread::yield();
  }
}

/// A ring of slots, each full (a block) or empty (nullptr), one per handed block.
struct SlotRing {
  static constexpr std::size_t kSlots = 1024;
  std::array<std::atomic<void*>, kSlots> slot{};
  alignas(64) std::size_t head = 0;  // producer's
  alignas(64) std::size_t tail = 0;  // consumer's
};

/// 2 threads: thread 0 allocates one block per iteration and hands it over a
/// slot of the ring (one ring per backend type); thread 1 frees it.
template <class B>
void producer_consumer_each(benchmark::State& state, B& b) {
  static SlotRing ring;
  const auto size = static_cast<std::size_t>(state.range(0));
  if (state.thread_index() == 0) {
    for (auto _ : state) {
      void* p = b.allocate(size, kMinAlign, kNoTag, kAnyNode);
      std::atomic<void*>& s = ring.slot[ring.head++ % SlotRing::kSlots];
      for (unsigned spins = 0; s.load(std::memory_order_acquire) != nullptr;) {
        backoff(spins);
      }
      s.store(p, std::memory_order_release);
    }
  } else {
    for (auto _ : state) {
      std::atomic<void*>& s = ring.slot[ring.tail++ % SlotRing::kSlots];
      void* p;
      for (unsigned spins = 0; (p = s.load(std::memory_order_acquire)) == nullptr;) {
        backoff(spins);
      }
      s.store(nullptr, std::memory_order_relaxed);
      b.free(p, size);
    }
  }
  state.SetItemsProcessed(state.iterations());
}

/// main() of a benchmark program whose benchmarks are registered.
inline int run_benchmarks(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 2;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace kmbench::bench
