// The jemalloc backend: arenas per node and tag (proven with arenas.lookup),
// node placement (move_pages), tcache variants, sized frees, statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "allocators/jemalloc/jemalloc.h"
#include "allocators/registry.h"
#include "harness/env/environment.h"

namespace kmbench {
namespace {

BackendConfig with(std::string_view params) {
  BackendConfig config;
  apply_params(config, params);
  return config;
}

double metric(const BackendStats& s, const std::string& name) {
  for (const Metric& m : s.metrics) {
    if (m.name == name) {
      return m.value;
    }
  }
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

constexpr std::size_t kSizes[] = {1, 16, 100, 1000, 4096, 40000, 3u << 20};

TEST(Jemalloc, EachNodeHasItsOwnArenaAndMemoryPlacedOnIt) {
  JemallocBackend b{BackendConfig{}};
  const unsigned nodes = b.memory().node_count();
  std::vector<unsigned> seen;
  for (NodeId n = 0; static_cast<unsigned>(n) < nodes; ++n) {
    const unsigned arena = b.arena_index(kNoTag, n);
    EXPECT_NE(arena, 0u) << "arena 0 serves the process's own malloc";
    EXPECT_EQ(std::count(seen.begin(), seen.end(), arena), 0);
    seen.push_back(arena);
    for (std::size_t size : kSizes) {
      auto* p = static_cast<unsigned char*>(b.allocate(size, kMinAlign, kNoTag, n));
      ASSERT_NE(p, nullptr) << "size " << size;
      std::memset(p, 0x5a, size);
      EXPECT_EQ(JemallocBackend::lookup_arena(p), arena) << "size " << size << " node " << n;
      EXPECT_EQ(nodemem::resident_node(p), n) << "size " << size;
      EXPECT_EQ(nodemem::resident_node(p + size - 1), n) << "size " << size;
      EXPECT_GE(b.usable_size(p, size), size);
      b.free(p, size);
    }
  }
  // kAnyNode: the node of the calling thread's CPU.
  void* p = b.allocate(64, kMinAlign, kNoTag, kAnyNode);
  EXPECT_EQ(JemallocBackend::lookup_arena(p), b.arena_index(kNoTag, b.memory().local_node()));
  b.free(p, 64);
  EXPECT_EQ(b.allocate(64, kMinAlign, kNoTag, static_cast<NodeId>(nodes)), nullptr);
}

TEST(Jemalloc, ArenaPerTagSeparatesTags) {
  JemallocBackend b{with("arena_per_tag=on")};
  const unsigned untagged = b.arena_index(kNoTag, 0);
  const unsigned t1 = b.arena_index(1, 0);
  const unsigned t2 = b.arena_index(2, 0);
  EXPECT_NE(t1, untagged);
  EXPECT_NE(t2, untagged);
  EXPECT_NE(t1, t2);
  EXPECT_EQ(b.arena_index(1, 0), t1) << "a tag keeps its arena";
  EXPECT_EQ(b.arena_index(1000, 0), b.arena_index(2000, 0)) << "large tag ids share the last";
  for (TagId tag : {TagId{1}, TagId{2}, kNoTag}) {
    void* p = b.allocate(200, kMinAlign, tag, 0);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(JemallocBackend::lookup_arena(p), b.arena_index(tag, 0)) << "tag " << tag;
    b.free(p, 200);
  }
  EXPECT_EQ(metric(b.stats(), "backend.jemalloc.arena_per_tag"), 1);
  EXPECT_GE(metric(b.stats(), "backend.jemalloc.arenas"), 1 + b.memory().node_count());
}

// arenas_per_node=2: two threads on different CPU slots allocate from two
// arenas of the same node, and each block goes back to its own.
TEST(Jemalloc, ArenasPerNodeSpreadCpuSlotsOverArenas) {
  JemallocBackend b{with("arenas_per_node=2")};
  EXPECT_EQ(metric(b.stats(), "backend.jemalloc.arenas_per_node"), 2);
  EXPECT_GE(metric(b.stats(), "backend.jemalloc.arenas"), 2.0 * b.memory().node_count());
  unsigned arena[2] = {0, 0};
  void* block[2] = {nullptr, nullptr};
  std::thread([&] { block[0] = b.allocate(96, kMinAlign, kNoTag, 0); arena[0] = b.arena_index(kNoTag, 0); }).join();
  // The first thread's slot is free again: hold it, so that the next thread takes another.
  std::atomic<bool> hold{true}, claimed{false};
  std::thread keep_first_slot_taken([&] {
    (void)this_cpu_slot();
    claimed = true;
    while (hold.load()) std::this_thread::yield();
  });
  while (!claimed.load()) std::this_thread::yield();
  std::thread([&] { block[1] = b.allocate(96, kMinAlign, kNoTag, 0); arena[1] = b.arena_index(kNoTag, 0); }).join();
  hold = false;
  keep_first_slot_taken.join();
  ASSERT_NE(block[0], nullptr);
  ASSERT_NE(block[1], nullptr);
  EXPECT_NE(arena[0], arena[1]) << "two CPU slots, two arenas";
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(JemallocBackend::lookup_arena(block[i]), arena[i]);
    b.free(block[i], 96);
  }
  EXPECT_THROW(JemallocBackend{with("arenas_per_node=17")}, UsageError);
}

TEST(Jemalloc, AlignedBlocksOfEveryClassAreFreedCorrectly) {
  for (const char* params : {"", "tcache=off"}) {
    JemallocBackend b{with(params)};
    std::vector<std::pair<void*, std::size_t>> live;
    for (std::size_t align = 32; align <= 64 * 1024; align *= 2) {
      for (std::size_t size : {std::size_t{1}, std::size_t{48}, std::size_t{100}, align + 8,
                               std::size_t{20000}}) {
        void* p = b.allocate(size, align, kNoTag, 0);
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << size << "/" << align;
        EXPECT_EQ(JemallocBackend::lookup_arena(p), b.arena_index(kNoTag, 0));
        std::memset(p, 1, size);
        live.emplace_back(p, size);
      }
    }
    // Freed in reverse, then the same classes again: a block freed under a wrong
    // size class would come back twice or overlap.
    for (auto it = live.rbegin(); it != live.rend(); ++it) {
      b.free(it->first, it->second);
    }
    std::vector<void*> again;
    for (int i = 0; i < 200; ++i) {
      void* p = b.allocate(48, 64, kNoTag, 0);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(std::count(again.begin(), again.end(), p), 0);
      again.push_back(p);
    }
    for (void* p : again) {
      b.free(p, 48);
    }
  }
}

TEST(Jemalloc, ZeroedAllocationsAreZero) {
  JemallocBackend b{BackendConfig{}};
  for (std::size_t size : {std::size_t{24}, std::size_t{3000}, std::size_t{70000}}) {
    for (int round = 0; round < 3; ++round) {
      auto* dirty = static_cast<unsigned char*>(b.allocate(size, kMinAlign, kNoTag, 0));
      std::memset(dirty, 0xff, size);
      b.free(dirty, size);
      auto* p = static_cast<unsigned char*>(b.allocate_zeroed(size, kMinAlign, kNoTag, 0));
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(std::all_of(p, p + size, [](unsigned char c) { return c == 0; })) << size;
      b.free(p, size);
    }
  }
}

TEST(Jemalloc, NoTcacheVariantAndParameters) {
  JemallocBackend b{with("tcache=off")};
  EXPECT_EQ(metric(b.stats(), "backend.jemalloc.tcache"), 0);
  void* p = b.allocate(100, kMinAlign, kNoTag, 0);
  EXPECT_EQ(JemallocBackend::lookup_arena(p), b.arena_index(kNoTag, 0));
  b.free(p, 100);
  EXPECT_THROW(JemallocBackend{with("tcache=maybe")}, UsageError);
  EXPECT_THROW(JemallocBackend{with("colour=blue")}, UsageError);
  EXPECT_NE(find_backend("jemalloc-notcache"), nullptr);
  EXPECT_TRUE(find_backend("jemalloc")->executable.empty()) << "served in this process";
}

TEST(Jemalloc, StatisticsComeFromMallctl) {
  JemallocBackend b{BackendConfig{}};
  const BackendStats before = b.stats();
  const double pactive_before = metric(before, "backend.jemalloc.arena.0.pactive");
  void* big = b.allocate(8u << 20, kMinAlign, kNoTag, 0);
  std::memset(big, 1, 8u << 20);
  const BackendStats during = b.stats();
  EXPECT_GE(metric(during, "backend.jemalloc.arena.0.pactive") - pactive_before, (8u << 20) / 4096);
  EXPECT_GE(during.mapped_bytes, 8u << 20);
  EXPECT_GE(during.resident_bytes, 8u << 20);
  EXPECT_GT(during.metadata_bytes, 0u);
  EXPECT_GE(metric(during, "backend.jemalloc.hook_mapped_bytes"), 8u << 20);
  EXPECT_EQ(b.footprint().mapped_bytes, during.mapped_bytes) << "the sampler's footprint agrees";
  EXPECT_EQ(b.footprint().resident_bytes, during.resident_bytes);
  EXPECT_GE(metric(during, "backend.jemalloc.stats.allocated"), 8u << 20);
  // One real node here: nothing to bind to another node.
  EXPECT_EQ(metric(during, "backend.jemalloc.numa.bound_to_real_nodes"),
            b.memory().node_count() > 1 && !b.memory().synthetic() ? 1 : 0);
  EXPECT_GE(during.live_blocks, 1);
  EXPECT_GE(during.live_bytes, 8 << 20);
  for (const char* m : {"stats.active", "stats.resident", "stats.mapped", "stats.metadata"}) {
    EXPECT_GT(metric(during, std::string("backend.jemalloc.") + m), 0) << m;
  }
  b.free(big, 8u << 20);
  b.reclaim(ReclaimLevel::drain);
  EXPECT_LT(metric(b.stats(), "backend.jemalloc.arena.0.pactive"),
            metric(during, "backend.jemalloc.arena.0.pactive"));
}

// Blocks cross threads (and so tcaches) but always return to their own arena.
TEST(Jemalloc, CrossThreadFreesKeepArenas) {
  JemallocBackend b{with("arena_per_tag=on")};
  constexpr int kBlocks = 5000;
  std::vector<void*> blocks(2 * kBlocks);
  auto alloc = [&](int t) {
    for (int i = 0; i < kBlocks; ++i) {
      blocks[t * kBlocks + i] = b.allocate(32 + i % 500, kMinAlign, static_cast<TagId>(1 + i % 3), 0);
    }
  };
  auto release = [&](int t) {
    for (int i = 0; i < kBlocks; ++i) {
      void* p = blocks[(1 - t) * kBlocks + i];
      if (JemallocBackend::lookup_arena(p) != b.arena_index(static_cast<TagId>(1 + i % 3), 0)) {
        ADD_FAILURE() << "block in the wrong arena";
      }
      b.free(p, 32 + i % 500);
    }
  };
  for (int round = 0; round < 3; ++round) {
    std::thread a(alloc, 0), c(alloc, 1);
    a.join();
    c.join();
    std::thread d(release, 0), e(release, 1);
    d.join();
    e.join();
  }
}

TEST(Jemalloc, RuntimeVersionIsReportedByTheWorkerEnvironment) {
  EXPECT_EQ(JemallocBackend::runtime_version().rfind("5.", 0), 0u);
  bool found = false;
  for (const VersionEntry& e : versions()) {
    if (e.component == "jemalloc") {
      found = true;
      EXPECT_EQ(e.version, JemallocBackend::runtime_version());
      EXPECT_EQ(e.note.rfind("runtime", 0), 0u);
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace kmbench

namespace kmbench {
namespace {

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

TEST(Jemalloc, SyntheticNodesTakeTheirNodesSimulatedRange) {
  BackendConfig config;
  config.machine = &two_synthetic_nodes();
  JemallocBackend b{config};
  ASSERT_EQ(b.memory().node_count(), 2u);
  EXPECT_TRUE(b.memory().synthetic());
  EXPECT_NE(b.arena_index(kNoTag, 0), b.arena_index(kNoTag, 1));
  for (NodeId n : {0, 1}) {
    for (std::size_t size : kSizes) {
      void* p = b.allocate_zeroed(size, kMinAlign, kNoTag, n);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(config.machine->node_of(p), n) << size;
      EXPECT_EQ(JemallocBackend::lookup_arena(p), b.arena_index(kNoTag, n));
      EXPECT_EQ(static_cast<unsigned char*>(p)[size - 1], 0);
      b.free(p, size);
    }
  }
  EXPECT_EQ(metric(b.stats(), "backend.jemalloc.numa.bound_to_real_nodes"), 0);
}

}  // namespace
}  // namespace kmbench
