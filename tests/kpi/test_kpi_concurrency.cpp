// The KPI from several threads at once, on every in-process backend: blocks
// freed by another thread than the one that allocated them, a shared tag,
// and an object retained and released from everywhere. Run under TSan.
#include <IOKit/IOLib.h>
#include <libkern/OSMalloc.h>
#include <libkern/c++/OSObject.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "tests/kpi/kpi_test.h"

class KmSharedCounter : public OSObject {
  OSDeclareDefaultStructors(KmSharedCounter);
};
OSDefineMetaClassAndStructors(KmSharedCounter, OSObject);

namespace kmbench::testing {
namespace {

using KpiConcurrency = KpiTest;
constexpr int kThreads = 3;

TEST_P(KpiConcurrency, CrossThreadIOFreeAndOSFree) {
  constexpr int kBlocks = 4000;
  OSMallocTag mt = OSMalloc_Tagalloc("com.kmbench.mt", OSMT_DEFAULT);
  struct Slot {
    std::atomic<void*> p{nullptr};
    std::uint32_t size = 0;
  };
  std::vector<Slot> ring(kThreads * kBlocks);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int next = (t + 1) % kThreads;
      for (int i = 0; i < kBlocks; ++i) {
        Slot& mine = ring[t * kBlocks + i];
        mine.size = 1 + (i * 53 + t) % 3000;
        void* p = (i % 2 == 0) ? IOMalloc(mine.size) : OSMalloc(mine.size, mt);
        ASSERT_NE(p, nullptr);
        std::memset(p, t, mine.size);
        mine.p.store(p, std::memory_order_release);
        Slot& theirs = ring[next * kBlocks + i];
        void* q;
        while ((q = theirs.p.load(std::memory_order_acquire)) == nullptr) {
          std::this_thread::yield();
        }
        EXPECT_EQ(static_cast<unsigned char*>(q)[theirs.size - 1], next);
        if (i % 2 == 0) {
          IOFree(q, theirs.size);
        } else {
          OSFree(q, theirs.size, mt);
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const kpi::TagUsage u = tag("com.kmbench.mt");
  EXPECT_EQ(u.allocs, static_cast<std::uint64_t>(kThreads * kBlocks / 2));
  EXPECT_EQ(u.frees, u.allocs);
  EXPECT_EQ(u.live_bytes, 0);
  EXPECT_GT(u.peak_live_bytes, 0);
  OSMalloc_Tagfree(mt);
}

TEST_P(KpiConcurrency, CrossThreadFreesInXnuMode) {
  kpi::set_mode(kpi::Mode::xnu);
  constexpr int kBlocks = 3000;
  std::vector<std::atomic<void*>> handed(kBlocks);
  std::thread producer([&] {
    for (int i = 0; i < kBlocks; ++i) handed[i].store(IOMalloc(1 + i % 700), std::memory_order_release);
  });
  for (int i = 0; i < kBlocks; ++i) {
    void* p;
    while ((p = handed[i].load(std::memory_order_acquire)) == nullptr) std::this_thread::yield();
    IOFree(p, 1 + i % 700);
  }
  producer.join();
  EXPECT_EQ(kpi::live_blocks(), 0);
  EXPECT_EQ(family("IOMalloc").live_bytes, 0);  // kalloc-class bytes in, the same out
}

// A tag's peak with several threads is a lower bound within (threads - 1) x
// the share's fold size (1 MiB, src/core.h), never above the true peak and
// never below what is live. Each thread holds 4 MiB: its share folds.
TEST_P(KpiConcurrency, ATagsPeakWithSeveralThreadsIsABoundedLowerBound) {
  OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.peak", OSMT_DEFAULT);
  constexpr int kBlocks = 512;
  constexpr std::uint32_t kSize = 8192;
  std::atomic<int> holding{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&] {
      std::vector<void*> mine;
      for (int i = 0; i < kBlocks; ++i) mine.push_back(OSMalloc(kSize, t));
      holding.fetch_add(1);
      while (holding.load() < kThreads) std::this_thread::yield();  // every block of every thread is live now
      for (void* p : mine) OSFree(p, kSize, t);
    });
  }
  for (auto& th : threads) th.join();
  const std::int64_t true_peak = std::int64_t{kThreads} * kBlocks * kSize;
  const kpi::TagUsage u = tag("com.kmbench.peak");
  EXPECT_LE(u.peak_live_bytes, true_peak);
  EXPECT_GE(u.peak_live_bytes, true_peak - (kThreads - 1) * (std::int64_t{1} << 20));
  EXPECT_EQ(u.live_bytes, 0);
  OSMalloc_Tagfree(t);
}

TEST_P(KpiConcurrency, RetainAndReleaseFromManyThreads) {
  KmSharedCounter* obj = OSTypeAlloc(KmSharedCounter);
  ASSERT_NE(obj, nullptr);
  ASSERT_TRUE(obj->init());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    obj->retain();  // each thread owns one reference
    threads.emplace_back([obj] {
      for (int i = 0; i < 10000; ++i) {
        obj->retain();
        obj->release();
      }
      obj->release();
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(obj->getRetainCount(), 1);
  EXPECT_EQ(kpi::class_usage("KmSharedCounter").live_instances, 1);
  obj->release();
  EXPECT_EQ(kpi::class_usage("KmSharedCounter").live_instances, 0);
}

TEST_P(KpiConcurrency, ObjectsMadeAndFreedOnEveryThread) {
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([] {
      std::vector<KmSharedCounter*> mine;
      for (int i = 0; i < 2000; ++i) {
        mine.push_back(OSTypeAlloc(KmSharedCounter));
      }
      for (KmSharedCounter* o : mine) {
        o->release();
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(kpi::class_usage("KmSharedCounter").live_instances, 0);
  EXPECT_EQ(KmSharedCounter::metaClass->getInstanceCount(), 0u);
}

KMBENCH_KPI_ON_EVERY_BACKEND(KpiConcurrency);

}  // namespace
}  // namespace kmbench::testing
