// The mimalloc backends: heaps per thread and node (mi_heap_check_owned,
// mi_heap_contains_block), per-node arenas (mi_arena_area) placed on their
// node (move_pages), statistics from heap visits and mi_process_info.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "allocators/mimalloc/mimalloc.h"
#include "allocators/registry.h"
#include "harness/env/environment.h"

namespace kmbench {
namespace {

double metric(const BackendStats& s, const std::string& name) {
  for (const Metric& m : s.metrics) {
    if (m.name == name) {
      return m.value;
    }
  }
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

bool in_arena(mi_arena_id_t arena, const void* p) {
  std::size_t size = 0;
  const auto* base = static_cast<const char*>(mi_arena_area(arena, &size));
  return base != nullptr && p >= base && p < base + size;
}

constexpr std::size_t kSizes[] = {1, 16, 100, 1000, 4096, 40000, 3u << 20};

TEST(Mimalloc, BlocksComeFromTheNodesHeapAndArenaOnThatNode) {
  MimallocBackend b{BackendConfig{}};
  for (NodeId n = 0; static_cast<unsigned>(n) < b.memory().node_count(); ++n) {
    mi_heap_t* heap = b.heap(n);
    ASSERT_NE(heap, nullptr);
    EXPECT_EQ(b.heap(n), heap) << "one heap per thread and node";
    std::size_t arena_size = 0;
    const void* area = mi_arena_area(b.arena(n), &arena_size);
    ASSERT_NE(area, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(area) % (32u << 20), 0u);
    for (std::size_t size : kSizes) {
      auto* p = static_cast<unsigned char*>(b.allocate(size, kMinAlign, kNoTag, n));
      ASSERT_NE(p, nullptr);
      std::memset(p, 0x33, size);
      EXPECT_TRUE(mi_heap_check_owned(heap, p)) << size;
      EXPECT_TRUE(mi_heap_contains_block(heap, p)) << size;
      EXPECT_TRUE(in_arena(b.arena(n), p)) << size;
      EXPECT_EQ(nodemem::resident_node(p), n) << size;
      EXPECT_EQ(nodemem::resident_node(p + size - 1), n) << size;
      EXPECT_GE(b.usable_size(p, size), size);
      b.free(p, size);
    }
  }
  EXPECT_EQ(b.allocate(8, kMinAlign, kNoTag, static_cast<NodeId>(b.memory().node_count())), nullptr);
}

TEST(Mimalloc, EachThreadHasItsOwnHeapsAndFreesCrossThreads) {
  MimallocBackend b{BackendConfig{}};
  mi_heap_t* main_heap = b.heap(0);
  std::vector<void*> from_thread;
  mi_heap_t* thread_heap = nullptr;
  std::thread t([&] {
    thread_heap = b.heap(0);
    for (int i = 0; i < 1000; ++i) {
      void* p = b.allocate(64 + i, kMinAlign, kNoTag, 0);
      if (!mi_heap_contains_block(thread_heap, p)) {
        ADD_FAILURE() << "block not in this thread's heap";
      }
      from_thread.push_back(p);
    }
    EXPECT_EQ(metric(b.stats(), "backend.mimalloc.heaps"), 2);
  });
  t.join();
  EXPECT_NE(thread_heap, main_heap);
  for (std::size_t i = 0; i < from_thread.size(); ++i) {
    EXPECT_TRUE(in_arena(b.arena(0), from_thread[i]));
    b.free(from_thread[i], 64 + i);
  }
  EXPECT_EQ(metric(b.stats(), "backend.mimalloc.heaps"), 1) << "the thread's heap went with it";
}

// The machine's RAM as another backend leaves it, written all over: mimalloc
// still gets arenas it can trust. (It once crashed here: mimalloc 2.0 takes
// parts of an arena as zero whatever it is told.)
TEST(Mimalloc, ArenasOverRamAnotherBackendWroteServeThreadsThatFreeEachOthersBlocks) {
  // A machine of its own (mimalloc makes a machine's arenas once), kept for the process as mimalloc keeps them.
  static physmem::Machine own([] {
    physmem::TopologySpec spec;
    spec.node_bytes = 512u << 20;
    return spec;
  }());
  physmem::Machine* machine = &own;
  std::vector<std::pair<void*, std::size_t>> dirty;
  for (std::size_t bytes = 256u << 20; bytes >= (1u << 20); bytes /= 2) {
    while (void* p = machine->alloc_contiguous(bytes, 4096, 0, ~std::uint64_t{0})) {
      std::memset(p, 0xb5, bytes);
      dirty.push_back({p, bytes});
    }
  }
  for (const auto& [p, bytes] : dirty) machine->free_contiguous(p, bytes);
  BackendConfig config;
  config.machine = machine;
  MimallocBackend b{config};
  constexpr int kThreads = 3, kBlocks = 20000;
  std::vector<std::atomic<void*>> ring(kThreads * kBlocks);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBlocks; ++i) {
        auto* p = static_cast<unsigned char*>(b.allocate(8 + (i * 37 + t) % 2048, kMinAlign, kNoTag, 0));
        ASSERT_NE(p, nullptr);
        p[0] = static_cast<unsigned char>(t);
        ring[t * kBlocks + i].store(p, std::memory_order_release);
        std::atomic<void*>& theirs = ring[(t + 1) % kThreads * kBlocks + i];
        void* q;
        while ((q = theirs.load(std::memory_order_acquire)) == nullptr) std::this_thread::yield();
        EXPECT_EQ(*static_cast<unsigned char*>(q), (t + 1) % kThreads);
        b.free(q, 8 + (i * 37 + (t + 1) % kThreads) % 2048);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(b.stats().live_blocks, 0);
}

TEST(Mimalloc, NonumaVariantTakesNodeZerosArenaWhateverTheNode) {
  MimallocBackend numa{BackendConfig{}};  // makes the arenas, if not made yet
  MimallocNonumaBackend b{BackendConfig{}};
  for (NodeId n : {kAnyNode, NodeId{0}}) {
    void* p = b.allocate(1000, kMinAlign, kNoTag, n);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(mi_heap_contains_block(b.heap(0), p));
    EXPECT_TRUE(in_arena(numa.arena(0), p));
    b.free(p, 1000);
  }
  EXPECT_EQ(metric(b.stats(), "backend.mimalloc.node_arenas"), 0);
  EXPECT_EQ(MimallocNonumaBackend::kFeatures & kFeatureNuma, 0u);
  EXPECT_NE(MimallocBackend::kFeatures & kFeatureNuma, 0u);
}

TEST(Mimalloc, AlignedAndZeroedBlocks) {
  MimallocBackend b{BackendConfig{}};
  for (std::size_t align = 32; align <= 64 * 1024; align *= 2) {
    void* p = b.allocate(align + 3, align, kNoTag, 0);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u);
    EXPECT_TRUE(mi_heap_contains_block(b.heap(0), p));
    b.free(p, align + 3);
  }
  for (std::size_t size : {std::size_t{24}, std::size_t{3000}, std::size_t{70000}}) {
    auto* dirty = static_cast<unsigned char*>(b.allocate(size, kMinAlign, kNoTag, 0));
    std::memset(dirty, 0xff, size);
    b.free(dirty, size);
    auto* p = static_cast<unsigned char*>(b.allocate_zeroed(size, 64, kNoTag, 0));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(std::all_of(p, p + size, [](unsigned char c) { return c == 0; }));
    b.free(p, size);
  }
}

TEST(Mimalloc, StatisticsFromHeapVisitsAndProcessInfo) {
  MimallocBackend b{BackendConfig{}};
  std::vector<void*> live;
  for (int i = 0; i < 1000; ++i) {
    live.push_back(b.allocate(1024, kMinAlign, kNoTag, 0));
  }
  const BackendStats s = b.stats();
  EXPECT_GE(metric(s, "backend.mimalloc.heap.used_bytes"), 1000.0 * 1024);
  EXPECT_GE(s.live_blocks, 1000);
  EXPECT_GE(s.live_bytes, 1000 * 1024);
  // What mimalloc holds: whole 32 MiB arena blocks, at least the one in use.
  EXPECT_GE(s.mapped_bytes, 32u << 20);
  EXPECT_EQ(s.mapped_bytes % (32u << 20), 0u);
  EXPECT_EQ(s.resident_bytes, s.mapped_bytes);
  EXPECT_EQ(b.footprint().mapped_bytes, s.mapped_bytes) << "the sampler's footprint agrees";
  EXPECT_EQ(b.footprint().resident_bytes, s.resident_bytes);
  EXPECT_EQ(metric(s, "backend.mimalloc.numa.bound_to_real_nodes"), 0) << "one real node";
  EXPECT_GE(metric(s, "backend.mimalloc.arena_bytes_per_node"), 64u << 20);
  for (void* p : live) {
    b.free(p, 1024);
  }
  EXPECT_LT(metric(b.stats(), "backend.mimalloc.heap.used_bytes"), 1000.0 * 1024);
  b.reclaim(ReclaimLevel::drain);
}

TEST(Mimalloc, ParametersAndRegistry) {
  BackendConfig bad;
  apply_params(bad, "arena_mib=12");
  EXPECT_THROW(MimallocBackend{bad}, UsageError);
  BackendConfig unknown;
  apply_params(unknown, "colour=blue");
  EXPECT_THROW(MimallocNonumaBackend{unknown}, UsageError);
  ASSERT_NE(find_backend("mimalloc-nonuma"), nullptr);
  EXPECT_TRUE(find_backend("mimalloc")->executable.empty()) << "served in this process";
  EXPECT_FALSE(find_backend("jemalloc")->executable.empty()) << "served by kmbench-jemalloc";
}

TEST(Mimalloc, RuntimeVersionIsReportedByTheWorkerEnvironment) {
  EXPECT_EQ(MimallocBackend::runtime_version(),
            std::to_string(mi_version() / 100) + "." + std::to_string(mi_version() % 100 / 10) +
                "." + std::to_string(mi_version() % 10));
  for (const VersionEntry& e : versions()) {
    if (e.component == "mimalloc") {
      EXPECT_EQ(e.version, MimallocBackend::runtime_version());
      EXPECT_EQ(e.note.rfind("runtime", 0), 0u);
    }
  }
}

}  // namespace
}  // namespace kmbench

namespace kmbench {
namespace {

// Outlives the process's use of mimalloc: its arenas stay registered with mimalloc.
physmem::Machine& two_synthetic_nodes() {
  static physmem::Machine machine([] {
    physmem::TopologySpec spec;
    spec.kind = physmem::TopologySpec::Kind::synthetic;
    spec.text = "pack:2 [numa] core:1 pu:1";
    spec.node_bytes = 256ull << 20;
    return spec;
  }());
  return machine;
}

TEST(Mimalloc, SyntheticNodesArenasLieInTheirNodesSimulatedRange) {
  BackendConfig config;
  config.machine = &two_synthetic_nodes();
  MimallocBackend b{config};
  ASSERT_EQ(b.memory().node_count(), 2u);
  EXPECT_NE(b.arena(0), b.arena(1));
  for (NodeId n : {0, 1}) {
    std::size_t size = 0;
    void* area = mi_arena_area(b.arena(n), &size);
    EXPECT_EQ(config.machine->node_of(area), n);
    // Node 0 lies below 4 GiB: half of it; node 1 above: all of it but 32 MiB.
    EXPECT_EQ(size, n == 0 ? 128u << 20 : 224u << 20);
    for (std::size_t bytes : kSizes) {
      void* p = b.allocate_zeroed(bytes, kMinAlign, kNoTag, n);
      ASSERT_NE(p, nullptr) << bytes;
      EXPECT_EQ(config.machine->node_of(p), n) << bytes;
      EXPECT_TRUE(mi_heap_contains_block(b.heap(n), p));
      EXPECT_EQ(static_cast<unsigned char*>(p)[bytes - 1], 0);
      b.free(p, bytes);
    }
  }
  EXPECT_EQ(metric(b.stats(), "backend.mimalloc.numa.bound_to_real_nodes"), 0);
}

}  // namespace
}  // namespace kmbench
