// The page layer against glibc and mimalloc, same patterns side by side:
//   pair/<who>/order:N     alloc then free 2^N pages (4 KiB << N), one thread, LIFO
//   mixed/<who>            2 threads, each keeps 32 blocks of mixed orders live and
//                          replaces the oldest each iteration (one alloc + one free)
// <who>: page (Machine::alloc_pages, the real topology), buddy (the buddy backend),
// glibc (the system backend: memalign), mimalloc (mi_malloc_aligned / mi_free).
// glibc and mimalloc get page alignment, as pages from a page allocator have.
//
//   build/allocators/bench/bench_physmem --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <mimalloc.h>

#include <array>
#include <random>

#include "allocators/buddy/buddy.h"
#include "allocators/physmem/physmem.h"
#include "allocators/system/system.h"

namespace {

using namespace kmbench;
using physmem::kPageSize;

/// Page-granular allocation through each allocator compared.
struct PageLayer {
  physmem::Machine& m = physmem::current_machine();
  void* alloc(unsigned order) noexcept { return m.alloc_pages(order, kAnyNode); }
  void free(void* p, unsigned order) noexcept { m.free_pages(p, order); }
};
struct Buddy {
  BuddyBackend b{BackendConfig{}};
  void* alloc(unsigned order) noexcept { return b.allocate(kPageSize << order, 16, kNoTag, kAnyNode); }
  void free(void* p, unsigned order) noexcept { b.free(p, kPageSize << order); }
};
struct Glibc {
  SystemBackend b{BackendConfig{}};
  void* alloc(unsigned order) noexcept {
    return b.allocate(kPageSize << order, kPageSize, kNoTag, kAnyNode);
  }
  void free(void* p, unsigned order) noexcept { b.free(p, kPageSize << order); }
};
struct Mimalloc {
  void* alloc(unsigned order) noexcept { return mi_malloc_aligned(kPageSize << order, kPageSize); }
  void free(void* p, unsigned) noexcept { mi_free(p); }
};

template <class A>
A& instance() {
  static A* a = new A();  // built once, outside any timed region
  return *a;
}

template <class A>
void pair(benchmark::State& state) {
  A& a = instance<A>();
  const auto order = static_cast<unsigned>(state.range(0));
  for (auto _ : state) {
    void* p = a.alloc(order);
    benchmark::DoNotOptimize(p);
    a.free(p, order);
  }
  state.SetItemsProcessed(state.iterations());
}

/// Orders 0..5: half order 0, the rest mostly the per-CPU list orders.
std::array<std::uint8_t, 1024> mixed_orders() {
  std::array<std::uint8_t, 1024> orders{};
  std::mt19937 rng(2024);
  for (auto& o : orders) {
    const unsigned r = rng() % 100;
    o = r < 50 ? 0 : r < 70 ? 1 : r < 85 ? 2 : r < 95 ? 3 : 4 + rng() % 2;
  }
  return orders;
}

template <class A>
void mixed(benchmark::State& state) {
  static const std::array<std::uint8_t, 1024> orders = mixed_orders();
  A& a = instance<A>();
  constexpr unsigned kLive = 32;
  std::array<void*, kLive> live{};
  std::array<unsigned, kLive> live_order{};
  unsigned next = static_cast<unsigned>(state.thread_index()) * 97;
  for (unsigned i = 0; i < kLive; ++i) {
    live_order[i] = orders[next++ % orders.size()];
    live[i] = a.alloc(live_order[i]);
  }
  unsigned slot = 0;
  for (auto _ : state) {
    a.free(live[slot], live_order[slot]);
    const unsigned order = orders[next++ & (orders.size() - 1)];
    live[slot] = a.alloc(order);
    live_order[slot] = order;
    benchmark::DoNotOptimize(live[slot]);
    slot = (slot + 1) & (kLive - 1);
  }
  for (unsigned i = 0; i < kLive; ++i) {
    a.free(live[i], live_order[i]);
  }
  state.SetItemsProcessed(state.iterations());
}

#define KMBENCH_PAIR(A, name)                                                  \
  BENCHMARK(pair<A>)->Name("pair/" name "/order")->Arg(0)->Arg(3);             \
  BENCHMARK(mixed<A>)->Name("mixed/" name)->Threads(2)->UseRealTime()

KMBENCH_PAIR(PageLayer, "page");
KMBENCH_PAIR(Buddy, "buddy");
KMBENCH_PAIR(Glibc, "glibc");
KMBENCH_PAIR(Mimalloc, "mimalloc");

}  // namespace

BENCHMARK_MAIN();
