// What the KPI costs driver code: IOMalloc/IOFree and OSMalloc/OSFree pairs in
// strict and xnu mode, beside the same backend's own sized pairs (its class
// called directly, inlined, as allocators/bench measures it), in one run.
//
//   KMBENCH_BACKEND=slab build/kpi/bench_kpi --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true --benchmark_out=slab.json   (one command)
//   kpi/bench/kpi_table.py slab.json ...      (ns per pair per thread, ratios, the budgets)
//   tools/bench-kpi.sh                        (every backend, then the table)
//
// KMBENCH_BACKEND takes parameters as the KPI does (zones,cache=on). jemalloc
// and mimalloc: build/kpi/bench_kpi_jemalloc, bench_kpi_mimalloc.
//
// Each benchmark makes 1000 pairs an iteration, at 16, 64, 256 and 4096 bytes:
//   lifo  - allocate, free, 1000 times;
//   batch - allocate 1000, then free them in allocation order.
// With 2 threads each thread does the same on its own blocks. Both instances
// are drained before every run, so each case starts from the same caches.
//
// paired/<case>: the budget's comparison made side by side. Each iteration
// makes a round of 1000 pairs of the backend's own called pair (own.call) and
// a round of 1000 of the KPI case, in turn (which goes first alternates), each
// timed on its own; the counters own_ns and kpi_ns are the medians over the
// iterations of each round's nanoseconds per pair. The two rounds of an
// iteration lie microseconds apart, so a slow spell of a shared machine falls
// on both alike, where separate benchmarks (pair/*) see it on one and not the
// other. With 2 threads, the threads start every round together.
//
// pair/*.recording: the same KPI pairs while the KPI records every call
// (kpi::start_recording, as KMBENCH_RECORD does) to KMBENCH_BENCH_RECORD, by
// default /dev/null: the recorder's cost to the calling thread, its buffer
// writes included, without the page cache's copy of them. They run last:
// recording, once started, stays on until the program exits.
#include <IOKit/IOLib.h>
#include <benchmark/benchmark.h>
#include <libkern/OSMalloc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "allocators/registry.h"
#include "base/spin_lock.h"
#include "kmbench/kpi.h"

namespace {

using namespace kmbench;

constexpr int kPairs = 1000;

using Blocks = std::array<void*, kPairs>;

/// One round of kPairs pairs: allocate and free, kPairs times.
template <class Api>
[[gnu::always_inline]] inline void lifo_round(Api& api, std::size_t size) {
  for (int i = 0; i < kPairs; ++i) {
    void* p = api.alloc(size);
    benchmark::DoNotOptimize(p);
    api.free(p, size);
  }
}

/// One round of kPairs pairs: allocate kPairs, then free them in allocation order.
template <class Api>
[[gnu::always_inline]] inline void batch_round(Api& api, std::size_t size, Blocks& blocks) {
  for (void*& p : blocks) {
    p = api.alloc(size);
  }
  benchmark::DoNotOptimize(blocks.data());
  for (void* p : blocks) {
    api.free(p, size);
  }
}

template <class Api>
void lifo(benchmark::State& state, Api api) {
  const auto size = static_cast<std::size_t>(state.range(0));
  api.begin(state);
  for (auto _ : state) lifo_round(api, size);
  state.SetItemsProcessed(state.iterations() * kPairs);
}

template <class Api>
void batch(benchmark::State& state, Api api) {
  const auto size = static_cast<std::size_t>(state.range(0));
  Blocks blocks;
  api.begin(state);
  for (auto _ : state) batch_round(api, size, blocks);
  state.SetItemsProcessed(state.iterations() * kPairs);
}

/// The backend's own sized pair: its class, inlined, past every wrapper.
template <class B>
struct Own {
  B* b;
  void begin(benchmark::State&) {}
  void* alloc(std::size_t size) { return b->allocate(size, kMinAlign, kNoTag, kAnyNode); }
  void free(void* p, std::size_t size) { b->free(p, size); }
};

/// The backend's own sized pair as a function call, the way a kext calls
/// kalloc: the class's code out of line (noipa: neither inlined nor cloned
/// for a known size), so the size class is found on every call as it is
/// through the KPI. This is the pair the KPI's budget is measured against; the
/// inlined `own` shows what the backend costs once a loop hoists that work.
template <class B>
[[gnu::noipa]] void* own_call_alloc(B* b, std::size_t size) noexcept {
  return b->allocate(size, kMinAlign, kNoTag, kAnyNode);
}
template <class B>
[[gnu::noipa]] void own_call_free(B* b, void* p, std::size_t size) noexcept {
  b->free(p, size);
}
template <class B>
struct OwnCall {
  B* b;
  void begin(benchmark::State&) {}
  void* alloc(std::size_t size) { return own_call_alloc(b, size); }
  void free(void* p, std::size_t size) { own_call_free(b, p, size); }
};

/// The KPI in a mode, set by the first thread before any thread starts timing.
struct KpiMode {
  kpi::Mode mode;
  void begin(benchmark::State& state) {
    if (state.thread_index() == 0) kpi::set_mode(mode);
  }
};

struct IOMallocPair : KpiMode {
  void* alloc(std::size_t size) { return IOMalloc(size); }
  void free(void* p, std::size_t size) { IOFree(p, size); }
};

struct OSMallocPair : KpiMode {
  OSMallocTag tag;
  void* alloc(std::size_t size) { return OSMalloc(static_cast<uint32_t>(size), tag); }
  void free(void* p, std::size_t size) { OSFree(p, static_cast<uint32_t>(size), tag); }
};

/// A KPI pair that starts the recording before its first timed pair.
template <class Pair>
struct Recorded : Pair {
  void begin(benchmark::State& state) {
    Pair::begin(state);
    if (state.thread_index() == 0 && !kpi::recording()) {
      const char* path = std::getenv("KMBENCH_BENCH_RECORD");
      kpi::start_recording(path != nullptr && *path != '\0' ? path : "/dev/null");
    }
  }
};

/// Drains both instances, the KPI's and the one called directly: every CPU
/// slot's caches and the depots go back to the backend's lower layers.
std::function<void()> g_drain;
/// Before every run (Setup): a case starts from the state every case starts
/// from, not from what the cases before it left in its instance's caches
/// (with two threads, a batch of the same pairs cost 2.5x more on one instance
/// than on the other, by what ran before it on each).
void drain_before_run(const benchmark::State&) { g_drain(); }

/// The threads of a paired benchmark meet here before each round, so that
/// with 2 threads both run the same kind of round at once. A spin: a round
/// lasts microseconds, and a sleeping thread woken for each would measure
/// the scheduler's wake-up. Reused by every paired benchmark in turn (they
/// never run at once); sized before each run (before_paired_run).
class RoundStart {
 public:
  void reset(int threads) {
    threads_ = threads;
    arrived_.store(0, std::memory_order_relaxed);
    generation_.store(0, std::memory_order_relaxed);
  }
  void wait() {
    if (threads_ <= 1) return;
    const unsigned g = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == threads_) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(g + 1, std::memory_order_release);
      return;
    }
    // Spins, then yields: with fewer cores than threads the one awaited may be off its core.
    for (unsigned spins = 0; generation_.load(std::memory_order_acquire) == g; ++spins) {
      if (spins < 4096) {
        kmbench::base::cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  int threads_ = 1;
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> generation_{0};
};
RoundStart g_round_start;

/// The middle value of v (reordered); 0 when empty.
double median_of(std::vector<double>& v) {
  if (v.empty()) return 0;
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

/// own.call and a KPI case round by round (see the top of the file).
template <class Kpi, class B, bool kBatch>
void paired(benchmark::State& state, Kpi kpi, OwnCall<B> own) {
  const auto size = static_cast<std::size_t>(state.range(0));
  Blocks blocks;
  kpi.begin(state);
  std::vector<double> own_ns, kpi_ns;
  own_ns.reserve(1 << 16);
  kpi_ns.reserve(1 << 16);
  const auto timed_round = [&](auto& api) {
    g_round_start.wait();
    const auto t0 = std::chrono::steady_clock::now();
    if constexpr (kBatch) {
      batch_round(api, size, blocks);
    } else {
      lifo_round(api, size);
    }
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kPairs;
  };
  bool own_first = true;
  for (auto _ : state) {
    double o, k;
    if (own_first) {
      o = timed_round(own);
      k = timed_round(kpi);
    } else {
      k = timed_round(kpi);
      o = timed_round(own);
    }
    own_first = !own_first;
    own_ns.push_back(o);
    kpi_ns.push_back(k);
  }
  state.SetItemsProcessed(state.iterations() * kPairs * 2);
  state.counters["own_ns"] = benchmark::Counter(median_of(own_ns), benchmark::Counter::kAvgThreads);
  state.counters["kpi_ns"] = benchmark::Counter(median_of(kpi_ns), benchmark::Counter::kAvgThreads);
}

/// Before every paired run: as drain_before_run, and the round start sized for its threads.
void before_paired_run(const benchmark::State& state) {
  g_drain();
  g_round_start.reset(state.threads());
}

template <class Kpi, class B>
void add_paired(const std::string& name, Kpi kpi, OwnCall<B> own) {
  for (auto [pattern, fn] : {std::pair{"lifo", &paired<Kpi, B, false>}, std::pair{"batch", &paired<Kpi, B, true>}}) {
    benchmark::RegisterBenchmark((name + "/" + pattern).c_str(), fn, kpi, own)
        ->Arg(16)
        ->Arg(64)
        ->Arg(256)
        ->Arg(4096)
        ->Threads(1)
        ->Threads(2)
        ->UseRealTime()
        ->Setup(&before_paired_run);
  }
}

template <class Api>
void add(const std::string& name, Api api) {
  for (auto [pattern, fn] : {std::pair{"lifo", &lifo<Api>}, std::pair{"batch", &batch<Api>}}) {
    benchmark::RegisterBenchmark((name + "/" + pattern).c_str(), fn, api)
        ->Arg(16)->Arg(64)->Arg(256)->Arg(4096)
        ->Threads(1)->Threads(2)->UseRealTime()->Setup(&drain_before_run);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // The same backend and parameters as the KPI's: one instance for the KPI, one called directly.
  const char* env = std::getenv("KMBENCH_BACKEND");
  const std::string spec = env != nullptr && *env != '\0' ? env : "system";
  const std::size_t comma = spec.find(',');
  BackendConfig config;
  if (comma != std::string::npos) apply_params(config, std::string_view(spec).substr(comma + 1));
  const std::string name = spec.substr(0, comma);
  benchmark::AddCustomContext("kmbench_backend", spec);
  kpi::backend();  // opened now, from the same variable
  OSMallocTag tag = OSMalloc_Tagalloc("com.kmbench.bench", OSMT_DEFAULT);
  const bool found = with_backend(name, config, [&](auto& counted) {
    using B = std::remove_reference_t<decltype(counted.inner())>;
    g_drain = [&counted] {
      if constexpr ((B::kFeatures & kFeatureReclaim) != 0) counted.reclaim(ReclaimLevel::drain);
      kpi::backend().reclaim(ReclaimLevel::drain);
    };
    add("pair/own", Own<B>{&counted.inner()});
    add("pair/own.call", OwnCall<B>{&counted.inner()});
    for (kpi::Mode mode : {kpi::Mode::strict, kpi::Mode::xnu}) {
      const std::string m = mode == kpi::Mode::strict ? "strict" : "xnu";
      add("pair/IOMalloc." + m, IOMallocPair{{mode}});
      add("pair/OSMalloc." + m, OSMallocPair{{mode}, tag});
      add_paired("paired/IOMalloc." + m, IOMallocPair{{mode}}, OwnCall<B>{&counted.inner()});
      add_paired("paired/OSMalloc." + m, OSMallocPair{{mode}, tag}, OwnCall<B>{&counted.inner()});
    }
    add("pair/IOMalloc.strict.recording", Recorded<IOMallocPair>{{{kpi::Mode::strict}}});
    add("pair/IOMalloc.xnu.recording", Recorded<IOMallocPair>{{{kpi::Mode::xnu}}});
    add("pair/OSMalloc.strict.recording", Recorded<OSMallocPair>{{{kpi::Mode::strict}, tag}});
    benchmark::RunSpecifiedBenchmarks();
  });
  if (!found) {
    std::fprintf(stderr, "bench_kpi: backend '%s' is not in this executable\n", name.c_str());
    return 2;
  }
  benchmark::Shutdown();
  return 0;
}
