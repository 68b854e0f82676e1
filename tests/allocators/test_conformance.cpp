// The conformance suite: one set of contract tests, run for every backend
// compiled into this process (a backend added later joins automatically).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "allocators/registry.h"
#include "tests/allocators/conformance_config.h"

namespace kmbench {
namespace {

std::vector<std::string> in_process_backends() {
  std::vector<std::string> names;
  for (const BackendInfo& b : all_backends()) {
    if (b.executable.empty()) {
      names.push_back(b.name);
    }
  }
  return names;
}

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { backend_ = open_backend(GetParam(), testing::conformance_config()); }
  std::unique_ptr<AnyBackend> backend_;
};

bool aligned(const void* p, std::size_t align) {
  return reinterpret_cast<std::uintptr_t>(p) % align == 0;
}

TEST_P(Conformance, AlignmentHonouredForEveryPowerOfTwoUpTo64KiB) {
  for (std::size_t align = 1; align <= 64 * 1024; align *= 2) {
    for (std::size_t size : {std::size_t{1}, align / 2 + 1, align, 3 * align + 5}) {
      void* p = backend_->allocate(size, align, kNoTag, kAnyNode);
      ASSERT_NE(p, nullptr) << "size " << size << " align " << align;
      EXPECT_TRUE(aligned(p, std::max(align, kMinAlign))) << "size " << size << " align " << align;
      std::memset(p, 0xa5, size);
      backend_->free(p, size);
    }
  }
}

TEST_P(Conformance, SizesFromZeroTo16MiBAreUsableAndDisjoint) {
  std::vector<std::size_t> sizes = {0, 1, 2, 15, 16, 17, 100, 4095, 4096, 4097};
  for (std::size_t s = 32; s <= 16u << 20; s *= 2) {
    sizes.push_back(s);
    sizes.push_back(s - 1);
    sizes.push_back(s + s / 2);
  }
  sizes.push_back(16u << 20);
  struct Block {
    std::uintptr_t begin, end;
    std::size_t size;
    void* p;
  };
  std::vector<Block> blocks;
  for (std::size_t size : sizes) {
    void* p = backend_->allocate(size, kMinAlign, kNoTag, kAnyNode);
    ASSERT_NE(p, nullptr) << "size " << size;
    EXPECT_TRUE(aligned(p, kMinAlign));
    EXPECT_GE(backend_->usable_size(p, size), size);
    if (size > 0) {
      auto* bytes = static_cast<unsigned char*>(p);
      bytes[size - 1] = 0x22;
      bytes[0] = 0x11;  // after: a 1-byte block holds 0x11
    }
    const auto begin = reinterpret_cast<std::uintptr_t>(p);
    blocks.push_back({begin, begin + std::max<std::size_t>(size, 1), size, p});
  }
  std::vector<Block> sorted = blocks;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < sorted.size(); ++i) {
    EXPECT_LE(sorted[i - 1].end, sorted[i].begin) << "blocks of " << sorted[i - 1].size
                                                  << " and " << sorted[i].size << " overlap";
  }
  for (const Block& b : blocks) {
    if (b.size > 0) {
      EXPECT_EQ(static_cast<unsigned char*>(b.p)[0], 0x11);
    }
    if (b.size > 1) {
      EXPECT_EQ(static_cast<unsigned char*>(b.p)[b.size - 1], 0x22);
    }
    backend_->free(b.p, b.size);
  }
  const CountingStats s = backend_->stats();
  EXPECT_EQ(s.live_blocks, 0);
  EXPECT_EQ(s.live_bytes, 0);
}

TEST_P(Conformance, FreeOfNullIsANoOp) {
  backend_->free(nullptr, 0);
  backend_->free(nullptr, 4096);
  EXPECT_EQ(backend_->stats().frees, 0u);
}

TEST_P(Conformance, ZeroSizeBlocksAreDistinct) {
  void* a = backend_->allocate(0, kMinAlign, kNoTag, kAnyNode);
  void* b = backend_->allocate(0, kMinAlign, kNoTag, kAnyNode);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  backend_->free(a, 0);
  backend_->free(b, 0);
}

// DMA32 memory: every block of a backend that claims low memory lies below
// 4 GiB, whatever its size and alignment, and goes back with free_low.
TEST_P(Conformance, LowMemoryBlocksLieBelow4GiB) {
  if (!backend_->has(kFeatureLowMemory)) {
    GTEST_SKIP() << GetParam() << " has no memory below 4 GiB";
  }
  ASSERT_TRUE(backend_->has(kFeaturePhysical));
  struct Block {
    void* p;
    std::size_t size;
  };
  std::vector<Block> blocks;
  for (std::size_t size : {std::size_t{16}, std::size_t{200}, std::size_t{4096}, std::size_t{65536},
                           std::size_t{300000}, std::size_t{2} << 20}) {
    for (std::size_t align : {kMinAlign, std::size_t{4096}, std::size_t{65536}}) {
      void* p = backend_->allocate_low(size, align, kNoTag, kAnyNode);
      ASSERT_NE(p, nullptr) << size << " / " << align;
      EXPECT_TRUE(aligned(p, align)) << size << " / " << align;
      EXPECT_LE(backend_->physical_address(p) + size, kLowMemoryLimit) << size << " / " << align;
      std::memset(p, 0x5a, size);
      blocks.push_back({p, size});
    }
  }
  for (const Block& b : blocks) {
    backend_->free_low(b.p, b.size);
  }
  EXPECT_EQ(backend_->stats().live_blocks, 0);
}

TEST_P(Conformance, RandomChurnKeepsContents) {
  std::mt19937_64 rng(42);
  struct Live {
    unsigned char* p;
    std::size_t size;
    unsigned char fill;
  };
  std::vector<Live> live;
  for (int i = 0; i < 20000; ++i) {
    if (live.empty() || rng() % 3 != 0) {
      const std::size_t size = 1 + rng() % (rng() % 16 == 0 ? 65536 : 512);
      auto* p = static_cast<unsigned char*>(backend_->allocate(size, kMinAlign, kNoTag, kAnyNode));
      ASSERT_NE(p, nullptr);
      const auto fill = static_cast<unsigned char>(rng());
      std::memset(p, fill, size);
      live.push_back({p, size, fill});
    } else {
      const std::size_t k = rng() % live.size();
      const Live& l = live[k];
      ASSERT_EQ(l.p[0], l.fill);
      ASSERT_EQ(l.p[l.size - 1], l.fill);
      ASSERT_EQ(l.p[l.size / 2], l.fill);
      backend_->free(l.p, l.size);
      live[k] = live.back();
      live.pop_back();
    }
  }
  for (const Live& l : live) {
    backend_->free(l.p, l.size);
  }
  EXPECT_EQ(backend_->stats().live_bytes, 0);
}

// realloc (the backend's own, or allocate, copy and free): a block grown,
// shrunk and moved between size classes keeps what both sizes hold, the old
// block goes back, and the counts follow the new size.
TEST_P(Conformance, ReallocKeepsContentsAcrossSizeClasses) {
  const std::size_t sizes[] = {1, 16, 24, 100, 512, 513, 4096, 5000, 70000, 300000, 2u << 20, 64, 8, 0, 33};
  for (std::size_t align : {kMinAlign, std::size_t{64}}) {
    std::size_t size = 40;
    auto* p = static_cast<unsigned char*>(backend_->allocate(size, align, kNoTag, kAnyNode));
    ASSERT_NE(p, nullptr);
    for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<unsigned char>(i * 7 + 1);
    for (std::size_t next : sizes) {
      auto* q = static_cast<unsigned char*>(backend_->reallocate(p, size, next, align, kNoTag, kAnyNode));
      ASSERT_NE(q, nullptr) << size << " -> " << next;
      EXPECT_TRUE(aligned(q, align)) << size << " -> " << next << " align " << align;
      for (std::size_t i = 0; i < std::min(size, next); ++i) {
        ASSERT_EQ(q[i], static_cast<unsigned char>(i * 7 + 1)) << size << " -> " << next << " byte " << i;
      }
      for (std::size_t i = size; i < next; ++i) q[i] = static_cast<unsigned char>(i * 7 + 1);
      EXPECT_EQ(backend_->stats().live_blocks, 1) << size << " -> " << next;
      EXPECT_EQ(backend_->stats().live_bytes, static_cast<std::int64_t>(next)) << size << " -> " << next;
      p = q;
      size = next;
    }
    backend_->free(p, size);
  }
  EXPECT_EQ(backend_->stats().live_blocks, 0);
  void* fresh = backend_->reallocate(nullptr, 0, 48, kMinAlign, kNoTag, kAnyNode);  // realloc(NULL, n) allocates
  ASSERT_NE(fresh, nullptr);
  backend_->free(fresh, 48);
  EXPECT_EQ(backend_->stats().live_bytes, 0);
}

// Producer/consumer across threads: every block is freed by a thread that did
// not allocate it. Run under ThreadSanitizer by tools/test.sh.
TEST_P(Conformance, CrossThreadFreesFromTwoPlusThreads) {
  constexpr int kThreads = 3;
  constexpr int kBlocks = 20000;
  struct Slot {
    std::atomic<void*> p{nullptr};
    std::size_t size = 0;
  };
  std::vector<Slot> ring(kThreads * kBlocks);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int next = (t + 1) % kThreads;
      for (int i = 0; i < kBlocks; ++i) {
        Slot& mine = ring[t * kBlocks + i];
        mine.size = 8 + (i * 37 + t) % 2048;
        auto* p = static_cast<unsigned char*>(backend_->allocate(mine.size, kMinAlign, kNoTag,
                                                                 kAnyNode));
        ASSERT_NE(p, nullptr);
        p[0] = static_cast<unsigned char>(t);
        mine.p.store(p, std::memory_order_release);
        // Free what the neighbour thread allocated, once it is there.
        Slot& theirs = ring[next * kBlocks + i];
        void* q;
        while ((q = theirs.p.load(std::memory_order_acquire)) == nullptr) {
          std::this_thread::yield();
        }
        EXPECT_EQ(static_cast<unsigned char*>(q)[0], static_cast<unsigned char>(next));
        backend_->free(q, theirs.size);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const CountingStats s = backend_->stats();
  EXPECT_EQ(s.allocs, static_cast<std::uint64_t>(kThreads * kBlocks));
  EXPECT_EQ(s.frees, static_cast<std::uint64_t>(kThreads * kBlocks));
  EXPECT_EQ(s.live_bytes, 0);
}

// The sampler's footprint() reads what stats() reports, empty, holding blocks
// of many sizes, and after they are freed.
TEST_P(Conformance, FootprintAgreesWithStats) {
  auto agree = [&](const char* when) {
    const CountingFootprint f = backend_->footprint();
    const CountingStats s = backend_->stats();
    EXPECT_EQ(f.backend.mapped_bytes, s.backend.mapped_bytes) << when;
    EXPECT_EQ(f.backend.resident_bytes, s.backend.resident_bytes) << when;
    EXPECT_EQ(f.live_bytes, s.live_bytes) << when;
  };
  agree("empty");
  std::vector<std::pair<void*, std::size_t>> held;
  for (std::size_t size = 8; size <= 512 * 1024; size = size * 3 / 2 + 8) {
    held.emplace_back(backend_->allocate(size, kMinAlign, kNoTag, kAnyNode), size);
    ASSERT_NE(held.back().first, nullptr) << size;
  }
  agree("holding blocks");
  if (GetParam() != "system") {  // glibc's mallinfo2 reads zero under a sanitizer's malloc
    EXPECT_GT(backend_->footprint().backend.mapped_bytes, 0u);
  }
  for (auto [p, size] : held) backend_->free(p, size);
  agree("after the frees");
}

// Under memory pressure (docs/pressure.md) reclaim gives memory back to the
// machine: zones' GC and slab's reap free emptied chunks and slabs; buddy
// gives back the pages its CPU lists cache; jemalloc's purge gives the pages
// of its emptied extents back through its dalloc hook. mimalloc keeps its
// memory, as documented.
TEST_P(Conformance, ReclaimGivesCachedMemoryBackToTheMachine) {
  if ((backend_->features() & kFeatureReclaim) == 0 || (backend_->features() & kFeaturePhysical) == 0) {
    GTEST_SKIP() << GetParam() << " has no reclaim, or its memory is not the machine's";
  }
  physmem::Machine& m = testing::conformance_machine();
  std::vector<void*> held;
  for (int i = 0; i < 20000; ++i) {
    held.push_back(backend_->allocate(256, kMinAlign, kNoTag, 0));
    ASSERT_NE(held.back(), nullptr);
  }
  for (void* p : held) backend_->free(p, 256);
  // Pages in the buddy lists, and in them or the CPU lists, over every node.
  const auto pages = [&m] {
    std::pair<std::uint64_t, std::uint64_t> buddy_and_all{0, 0};
    for (const physmem::NodeStats& n : m.stats().nodes) {
      buddy_and_all.first += n.free_pages;
      buddy_and_all.second += n.free_pages + n.pcp_pages;
    }
    return buddy_and_all;
  };
  const auto before = pages();
  const std::uint64_t mapped = backend_->footprint().backend.mapped_bytes;
  const std::size_t given = backend_->reclaim(ReclaimLevel::drain);
  const auto after = pages();
  const std::string name = GetParam();
  if (name.starts_with("mimalloc")) {
    // Its memory stays its own (docs/pressure.md): mimalloc's collect returns
    // segments to its arenas, which stay pinned.
    EXPECT_EQ(after.second, before.second) << "the machine gets nothing back";
    return;
  }
  EXPECT_GT(given, 0u) << "bytes reclaim says it gave back";
  if (name.starts_with("jemalloc")) {
    EXPECT_GE(given, std::size_t{20000} * 256 * 3 / 4) << "most of what was freed";
  }
  if (GetParam() == "buddy") {
    // buddy hands pages straight out: what it caches is its CPU lists, which go back to the buddy lists.
    EXPECT_EQ(after.first - before.first, given / physmem::kPageSize);
  } else {
    EXPECT_GE(after.second - before.second, given / physmem::kPageSize) << "the machine has the pages back";
    EXPECT_EQ(mapped - backend_->footprint().backend.mapped_bytes, given) << "the footprint fell as much";
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, Conformance, ::testing::ValuesIn(in_process_backends()),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace kmbench
