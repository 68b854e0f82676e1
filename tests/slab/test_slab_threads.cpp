// Threads: cross-thread frees with reclaim running meanwhile, and magazine
// growth under depot contention. Run under ThreadSanitizer (label concurrency).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/slab/slab_test_util.h"

namespace kmbench {
namespace {

using testing::make_slab;
using testing::metric;

TEST(SlabThreads, CrossThreadFreesWhileAnotherThreadReclaims) {
  for (const char* params : {"", "debug=on"}) {
    auto b = make_slab(params, 2);
    constexpr int kThreads = 3;
    constexpr int kBlocks = 6000;
    struct Slot {
      std::atomic<unsigned char*> p{nullptr};
      std::size_t size = 0;
    };
    std::vector<Slot> ring(kThreads * kBlocks);
    std::atomic<bool> done{false};
    std::thread reaper([&] {
      while (!done.load(std::memory_order_acquire)) {
        b->reclaim(ReclaimLevel::drain);
        b->reclaim(ReclaimLevel::trim);
        std::this_thread::yield();
      }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const int next = (t + 1) % kThreads;
        for (int i = 0; i < kBlocks; ++i) {
          Slot& mine = ring[t * kBlocks + i];
          const std::size_t sizes[] = {16, 64, 200, 1024, 4096, 9000, 70000, 200000};
          mine.size = sizes[(i + t) % 8];
          auto* p = static_cast<unsigned char*>(
              b->allocate(mine.size, i % 7 == 0 ? 256 : kMinAlign, kNoTag, i % 2));
          ASSERT_NE(p, nullptr);
          p[0] = static_cast<unsigned char>(t);
          p[mine.size - 1] = static_cast<unsigned char>(i);
          mine.p.store(p, std::memory_order_release);
          Slot& theirs = ring[next * kBlocks + i];
          unsigned char* q;
          while ((q = theirs.p.load(std::memory_order_acquire)) == nullptr) {
            std::this_thread::yield();
          }
          EXPECT_EQ(q[0], static_cast<unsigned char>(next));
          EXPECT_EQ(q[theirs.size - 1], static_cast<unsigned char>(i));
          b->free(q, theirs.size);
        }
      });
    }
    for (auto& th : threads) {
      th.join();
    }
    done.store(true, std::memory_order_release);
    reaper.join();
    // The workers have exited: their slots are idle, so a drain empties every cache.
    b->reclaim(ReclaimLevel::drain);
    EXPECT_EQ(metric(*b, "backend.slab.slabs"), 0) << params;
    EXPECT_EQ(metric(*b, "backend.slab.vmem.alloc_bytes"), 0) << params;
    EXPECT_EQ(metric(*b, "backend.slab.aligned.live"), 0) << params;
  }
}

TEST(SlabThreads, DepotContentionGrowsTheMagazineSize) {
  // Working-set update on every 64th depot visit, and any contended visit counts.
  auto b = make_slab("update_ms=0,depot_contention=0");
  slab::ObjectCache* cp = b->kmalloc_cache(0, 64);
  ASSERT_EQ(cp->magazine_size(), 15);
  std::atomic<bool> grown{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<void*> blocks(200);
      for (int round = 0; round < 20000 && !grown.load(std::memory_order_relaxed); ++round) {
        for (void*& p : blocks) {
          p = b->allocate(64, kMinAlign, kNoTag, kAnyNode);
        }
        for (void* p : blocks) {
          b->free(p, 64);
        }
        if (cp->magazine_size() > 15) {
          grown.store(true, std::memory_order_relaxed);
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_GT(cp->magazine_size(), 15);
  EXPECT_GT(cp->stats().depot_contention, 0u);
  EXPECT_GE(metric(*b, "backend.slab.magazine.resizes"), 1);
  b->reclaim(ReclaimLevel::drain);
  EXPECT_EQ(cp->stats().slabs, 0u);
}

}  // namespace
}  // namespace kmbench
