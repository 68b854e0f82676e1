// The slab backend's own behaviour: colouring, constructors, reaping, vmem,
// size classes, parameters and node placement.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "base/errors.h"
#include "tests/slab/slab_test_util.h"

namespace kmbench {
namespace {

using testing::make_slab;
using testing::metric;
using testing::slab_machine;

TEST(SlabClasses, SizedLookupNamesTheSmallestClassThatFits) {
  for (std::size_t size = 0; size <= slab::kBigMax; ++size) {
    const unsigned c = slab::class_of(size);
    ASSERT_LT(c, slab::kClassCount);
    ASSERT_GE(slab::kClassSizes[c], std::max<std::size_t>(size, 1)) << size;
    if (c > 0) {
      // The class below would not fit, except where the 4 KiB-step big table
      // skips classes (none: big classes are 4 KiB multiples).
      ASSERT_LT(slab::kClassSizes[c - 1], std::max<std::size_t>(size, 1)) << size;
    }
  }
}

TEST(SlabCache, ColourAdvancesByAlignmentPerSlabAndWraps) {
  auto b = make_slab();
  // 200-byte objects, 64-aligned: 256-byte chunks, 15 per page, maxcolor 4096-header-15*256.
  slab::ObjectCache* cp = b->create_cache("colour-test", 200, 64);
  const slab::CacheStats st = cp->stats();
  ASSERT_EQ(st.chunksize, 256u);
  ASSERT_EQ(st.slabsize, 4096u);
  ASSERT_GT(st.maxcolor, 64u);
  const std::size_t per_slab = (4096 - 64) / 256;
  std::vector<void*> objs;
  std::vector<std::size_t> colours;
  for (int slabs = 0; slabs < 8; ++slabs) {
    for (std::size_t i = 0; i < per_slab; ++i) {
      void* p = cp->alloc();
      ASSERT_NE(p, nullptr);
      const std::size_t colour = cp->colour_of(p);
      // Every buffer lies at colour + k * chunk from its page.
      EXPECT_EQ((reinterpret_cast<std::uintptr_t>(p) % 4096 - colour) % 256, 0u);
      if (i == 0) {
        colours.push_back(colour);
      }
      objs.push_back(p);
    }
  }
  std::size_t expect = 0;
  for (std::size_t c : colours) {
    expect += 64;
    if (expect > st.maxcolor) {
      expect = 0;
    }
    EXPECT_EQ(c, expect);
  }
  EXPECT_EQ(cp->stats().slabs, 8u);
  for (void* p : objs) {
    cp->free(p);
  }
  b->destroy_cache(cp);
}

struct Counted {
  static inline int constructed = 0;
  static inline int destroyed = 0;
  int magic;
  int uses = 0;
  Counted() : magic(0x5eed) { ++constructed; }
  ~Counted() { ++destroyed; }
};

TEST(SlabCache, ObjectsLeaveTheMagazineLayerConstructedAndAreDestroyedOnReap) {
  Counted::constructed = Counted::destroyed = 0;
  auto b = make_slab();
  {
    TypedCache<Counted> cache(*b, "counted");
    std::vector<Counted*> objs;
    for (int i = 0; i < 100; ++i) {
      Counted* c = cache.alloc();
      ASSERT_NE(c, nullptr);
      EXPECT_EQ(c->magic, 0x5eed);
      c->uses++;
      objs.push_back(c);
    }
    EXPECT_EQ(Counted::constructed, 100);
    for (Counted* c : objs) {
      cache.free(c);
    }
    EXPECT_EQ(Counted::destroyed, 0) << "frees into magazines keep objects constructed";
    // Again: the same objects come back from the magazines, state kept, no constructor.
    objs.clear();
    int reused = 0;
    for (int i = 0; i < 100; ++i) {
      Counted* c = cache.alloc();
      reused += c->uses;
      objs.push_back(c);
    }
    EXPECT_EQ(Counted::constructed, 100);
    EXPECT_EQ(reused, 100);
    for (Counted* c : objs) {
      cache.free(c);
    }
    EXPECT_GT(b->reclaim(ReclaimLevel::drain), 0u);
    EXPECT_EQ(Counted::destroyed, 100) << "drain destroys every cached object";
    EXPECT_EQ(cache.cache().stats().slabs, 0u);
  }
  EXPECT_EQ(Counted::destroyed, Counted::constructed);
}

TEST(SlabCache, FailingConstructorFailsTheAllocation) {
  auto b = make_slab();
  slab::ObjectCache* cp = b->create_cache("no-ctor", 64, 0, [](void*, void*) { return 1; });
  EXPECT_EQ(cp->alloc(), nullptr);
  EXPECT_EQ(cp->stats().alloc_fails, 1u);
  EXPECT_EQ(cp->stats().slabs, 0u);
  b->destroy_cache(cp);
}

TEST(SlabReap, DrainReturnsEverySlabAndTheSpansToThePageLayer) {
  auto b = make_slab();
  const std::uint64_t mapped0 = b->stats().mapped_bytes;
  std::vector<void*> blocks;
  for (int i = 0; i < 20000; ++i) {
    blocks.push_back(b->allocate(256, kMinAlign, kNoTag, kAnyNode));
  }
  const std::uint64_t mapped1 = b->stats().mapped_bytes;
  EXPECT_GT(mapped1, mapped0 + 20000 * 256 / 2);
  for (void* p : blocks) {
    b->free(p, 256);
  }
  slab::ObjectCache* cp = b->kmalloc_cache(0, 256);
  EXPECT_GT(cp->stats().slabs, 0u) << "freed objects wait in magazines";
  EXPECT_GT(cp->stats().depot_full, 0u);
  const std::size_t trimmed = b->reclaim(ReclaimLevel::trim);
  const std::size_t drained = b->reclaim(ReclaimLevel::drain);
  EXPECT_GT(trimmed + drained, 20000u * 256 / 2);
  EXPECT_EQ(cp->stats().slabs, 0u);
  EXPECT_EQ(cp->stats().depot_full, 0u);
  EXPECT_EQ(metric(*b, "backend.slab.vmem.alloc_bytes"), 0);
  EXPECT_EQ(b->stats().mapped_bytes, b->stats().metadata_bytes)
      << "all that is left is bookkeeping: boundary tags and hash tables";
  EXPECT_EQ(metric(*b, "backend.slab.reclaim.drains"), 1);
}

TEST(SlabReap, TrimKeepsTheWorkingSetOfTheLastInterval) {
  auto b = make_slab();
  slab::ObjectCache* cp = b->kmalloc_cache(0, 64);
  std::vector<void*> blocks;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 3000; ++i) {
      blocks.push_back(b->allocate(64, kMinAlign, kNoTag, kAnyNode));
    }
    for (void* p : blocks) {
      b->free(p, 64);
    }
    blocks.clear();
  }
  const std::uint64_t full = cp->stats().depot_full;
  ASSERT_GT(full, 0u);
  // The first trim starts the interval: magazines all in use at some point in the
  // last one (the depot's minimum was 0 during the allocations) stay.
  b->reclaim(ReclaimLevel::trim);
  EXPECT_EQ(cp->stats().depot_full, full);
  // Nothing was needed since: the next trim returns them.
  b->reclaim(ReclaimLevel::trim);
  EXPECT_EQ(cp->stats().depot_full, 0u);
}

TEST(SlabVmem, FreedNeighboursCoalesceIntoOneSegment) {
  slab::PageSource pages(slab_machine());
  slab::Vmem arena("test", 4096, nullptr, pages, 0, 0);
  void* base = pages.alloc(1 << 20, 4096, 0);
  ASSERT_NE(base, nullptr);
  arena.add(base, 1 << 20);
  void* a = arena.xalloc(64 << 10, 4096);
  void* b = arena.xalloc(64 << 10, 4096);
  void* c = arena.xalloc(64 << 10, 4096);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(arena.stats().alloc_segs, 3u);
  EXPECT_EQ(arena.stats().free_segs, 1u);
  arena.xfree(b, 64 << 10);
  EXPECT_EQ(arena.stats().free_segs, 2u);
  arena.xfree(a, 64 << 10);
  EXPECT_EQ(arena.stats().free_segs, 2u) << "a merged with b's hole";
  arena.xfree(c, 64 << 10);
  EXPECT_EQ(arena.stats().free_segs, 1u) << "all three merged with the rest of the span";
  EXPECT_EQ(arena.stats().alloc_segs, 0u);
  void* whole = arena.xalloc(1 << 20, 4096);
  EXPECT_EQ(whole, base);
  arena.xfree(whole, 1 << 20);
  EXPECT_EQ(arena.stats().spans, 1u) << "an added span is never released";
  pages.free(base, 1 << 20);
}

TEST(SlabVmem, AlignedSegmentsAndImportedSpansReleasedWhenWhollyFree) {
  slab::PageSource pages(slab_machine());
  slab::Vmem arena("import", 4096, nullptr, pages, 0, 1 << 20);
  void* p = arena.xalloc(12288, 256 << 10);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % (256 << 10), 0u);
  void* q = arena.alloc(100000);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(arena.stats().imports, 1u) << "both fit in one imported span of import_min";
  EXPECT_EQ(arena.stats().spans, 1u);
  arena.free(q, 100000);
  EXPECT_EQ(arena.stats().spans, 1u);
  arena.xfree(p, 12288);
  EXPECT_EQ(arena.stats().spans, 0u);
  EXPECT_EQ(arena.stats().releases, 1u);
  EXPECT_EQ(pages.held_bytes(), arena.stats().seg_metadata_bytes)
      << "only the boundary-tag pages and the hash table remain";
}

TEST(SlabVmem, QuantumCachesServeSmallMultiplesFromLargeSlabs) {
  auto b = make_slab();
  slab::Vmem& arena = b->kmem(0).arena();
  ASSERT_EQ(arena.qcache_max(), 8 * 4096u);
  std::vector<void*> pages;
  for (int i = 0; i < 16; ++i) {
    pages.push_back(arena.alloc(8192));
  }
  std::set<std::uintptr_t> distinct;
  for (void* p : pages) {
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 4096, 0u);
    distinct.insert(reinterpret_cast<std::uintptr_t>(p));
  }
  EXPECT_EQ(distinct.size(), 16u);
  const slab::ObjectCache* q = arena.quantum_caches()[1];
  EXPECT_EQ(q->size(), 8192u);
  EXPECT_EQ(q->stats().slabsize, 128u << 10);
  // Sixteen 2-page segments came from one 128 KiB quantum-cache slab.
  EXPECT_EQ(q->stats().slab_creates, 1u);
  EXPECT_EQ(q->stats().slabs, 1u);
  for (void* p : pages) {
    arena.free(p, 8192);
  }
}

TEST(SlabBackend, LargeAndOverAlignedBlocksComeFromTheArena) {
  auto b = make_slab();
  void* big = b->allocate(1 << 20, kMinAlign, kNoTag, kAnyNode);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(b->usable_size(big, 1 << 20), 1u << 20);
  EXPECT_EQ(metric(*b, "backend.slab.large.allocs"), 1);
  void* aligned = b->allocate(100, 8192, kNoTag, kAnyNode);
  ASSERT_NE(aligned, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(aligned) % 8192, 0u);
  EXPECT_EQ(b->usable_size(aligned, 100), 4096u);
  void* small = b->allocate(100, 32, kNoTag, kAnyNode);  // kmalloc-112 is 16-aligned only
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(small) % 32, 0u);
  void* cached = b->allocate(128, 64, kNoTag, kAnyNode);  // kmalloc-128 is 64-aligned
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(cached) % 64, 0u);
  EXPECT_EQ(b->usable_size(cached, 128), 128u);
  EXPECT_EQ(metric(*b, "backend.slab.aligned.live"), 2);
  b->free(cached, 128);
  b->free(small, 100);
  b->free(aligned, 100);
  b->free(big, 1 << 20);
  EXPECT_EQ(metric(*b, "backend.slab.aligned.live"), 0);
  EXPECT_EQ(metric(*b, "backend.slab.large.frees"), 1);
}

TEST(SlabBackend, StatisticsUseDottedNames) {
  auto b = make_slab();
  void* p = b->allocate(256, kMinAlign, kNoTag, kAnyNode);
  b->free(p, 256);
  EXPECT_EQ(metric(*b, "backend.slab.cache.kmalloc-256.slabs"), 1);
  EXPECT_EQ(metric(*b, "backend.slab.cache.kmalloc-256.magazine_size"), 7);
  EXPECT_EQ(metric(*b, "backend.slab.cache.kmalloc-16.slabs"), -1) << "unused caches are left out";
  EXPECT_GE(metric(*b, "backend.slab.vmem.spans"), 1);
  EXPECT_GE(metric(*b, "backend.slab.magazine.depot_hits"), 0);
  EXPECT_GT(b->stats().metadata_bytes, 0u);
  EXPECT_GT(b->stats().mapped_bytes, 0u);
}

TEST(SlabBackend, IllumosMagazineSizesByChunkAndTheStartParameter) {
  auto b = make_slab();
  EXPECT_EQ(b->kmalloc_cache(0, 16)->magazine_size(), 15);
  EXPECT_EQ(b->kmalloc_cache(0, 64)->magazine_size(), 15);
  EXPECT_EQ(b->kmalloc_cache(0, 256)->magazine_size(), 7);
  EXPECT_EQ(b->kmalloc_cache(0, 1024)->magazine_size(), 3);
  EXPECT_EQ(b->kmalloc_cache(0, 4096)->magazine_size(), 1);
  auto big = make_slab("magazine_rounds=100");
  EXPECT_EQ(big->kmalloc_cache(0, 16)->magazine_size(), 143);
  EXPECT_EQ(big->kmalloc_cache(0, 4096)->magazine_size(), 143);
}

// One thread allocating 1000 4 KiB blocks and freeing them visits the depot
// for every block with illumos's 1-round start: the depot lock is never
// contended, but the traffic grows the magazines (up to illumos's maxbuf limit
// for the chunk size, 31 rounds); with depot_rate=0 only contention would.
// The rate here is 1 exchange per ms, which any machine (and sanitizer) beats.
TEST(SlabBackend, DepotTrafficGrowsMagazinesUnlessTurnedOff) {
  EXPECT_EQ(make_slab()->kmem(0).tunables().depot_rate, 1000u);
  for (const char* params : {"depot_rate=1", "depot_rate=0"}) {
    auto b = make_slab(params);
    slab::ObjectCache* cp = b->kmalloc_cache(0, 4096);
    ASSERT_EQ(cp->magazine_size(), 1);
    std::vector<void*> blocks(1000);
    for (int round = 0; round < 200 && cp->magazine_size() < 31; ++round) {
      for (void*& p : blocks) p = b->allocate(4096, kMinAlign, kNoTag, kAnyNode);
      for (void* p : blocks) b->free(p, 4096);
    }
    if (std::string(params) == "depot_rate=1") {
      EXPECT_EQ(cp->magazine_size(), 31);
      EXPECT_GE(metric(*b, "backend.slab.magazine.resizes"), 4);
    } else {
      EXPECT_EQ(cp->magazine_size(), 1) << params;
      EXPECT_EQ(cp->stats().depot_contention, 0u);
    }
  }
}

TEST(SlabBackend, BadParametersAreUsageErrors) {
  EXPECT_THROW(make_slab("debug=maybe"), UsageError);
  EXPECT_THROW(make_slab("colour=on"), UsageError);
  EXPECT_THROW(make_slab("update_ms=soon"), UsageError);
  EXPECT_THROW(make_slab("qcache_max=1000"), UsageError);
  EXPECT_THROW(make_slab("magazine_rounds=500"), UsageError);
  EXPECT_THROW(make_slab("depot_rate=2000000000"), UsageError);
  auto b = make_slab();
  EXPECT_THROW(b->create_cache("zero", 0), UsageError);
  EXPECT_THROW(b->create_cache("odd", 64, 24), UsageError);
  EXPECT_THROW(b->create_cache("far", 64, 0, nullptr, nullptr, nullptr, 3), UsageError);
}

TEST(SlabNuma, BlocksLandOnTheNodeAskedForOnASyntheticTwoNodeMachine) {
  auto b = make_slab("", 2);
  physmem::Machine& m = slab_machine(2);
  ASSERT_EQ(b->node_count(), 2u);
  for (NodeId node : {0, 1}) {
    std::vector<std::pair<void*, std::size_t>> blocks;
    for (std::size_t size : {16u, 100u, 4096u, 20000u, 65536u, 1u << 20}) {
      void* p = b->allocate(size, kMinAlign, kNoTag, node);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(m.node_of(p), node) << "size " << size;
      EXPECT_EQ(b->node_of(p), node);
      std::memset(p, 0x5a, size);
      blocks.emplace_back(p, size);
    }
    void* aligned = b->allocate(64, 4096, kNoTag, node);
    EXPECT_EQ(m.node_of(aligned), node);
    blocks.emplace_back(aligned, 64);
    for (auto [p, size] : blocks) {
      b->free(p, size);
    }
    EXPECT_GT(b->kmalloc_cache(node, 100)->stats().slabs, 0u);
  }
  slab::ObjectCache* cp = b->create_cache("node1-objects", 48, 0, nullptr, nullptr, nullptr, 1);
  void* o = cp->alloc();
  EXPECT_EQ(m.node_of(o), 1);
  cp->free(o);
  b->destroy_cache(cp);
  // A free from node 0's caches' point of view goes back to the block's own node.
  void* p = b->allocate(64, kMinAlign, kNoTag, 1);
  b->free(p, 64);
  EXPECT_EQ(b->reclaim(ReclaimLevel::drain) > 0, true);
  EXPECT_EQ(b->kmalloc_cache(1, 64)->stats().slabs, 0u);
}

// try_allocate and try_free (the KPI's hot calls use them inline) take and give
// only the loaded magazine's rounds: LIFO with allocate and free, nullptr or
// false once it is spent or full, and nothing at all in a debugging cache.
TEST(SlabBackend, TriesTakeAndGiveOnlyTheLoadedMagazinesRounds) {
  auto b = make_slab();
  void* p = b->allocate(64, kMinAlign, kNoTag, kAnyNode);
  ASSERT_NE(p, nullptr);
  b->free(p, 64);
  EXPECT_EQ(b->try_allocate(64), p);  // the round free just gave
  EXPECT_TRUE(b->try_free(p, 64));
  std::vector<void*> taken;
  while (void* q = b->try_allocate(64)) {
    taken.push_back(q);
    ASSERT_LE(taken.size(), 143u) << "more rounds than the largest magazine holds";
  }
  EXPECT_LE(taken.size(), static_cast<std::size_t>(b->kmalloc_cache(0, 64)->magazine_size()));
  EXPECT_EQ(std::set<void*>(taken.begin(), taken.end()).size(), taken.size());
  void* r = b->allocate(64, kMinAlign, kNoTag, kAnyNode);  // the full path reloads
  ASSERT_NE(r, nullptr);
  taken.push_back(r);
  std::size_t given = 0;
  while (given < taken.size() && b->try_free(taken[given], 64)) ++given;
  EXPECT_GE(given, 1u);
  for (std::size_t i = given; i < taken.size(); ++i) b->free(taken[i], 64);
  EXPECT_EQ(b->try_allocate(slab::kSmallMax + 1), nullptr);  // beyond the caches

  auto debug = make_slab("debug=on");
  void* d = debug->allocate(64, kMinAlign, kNoTag, kAnyNode);
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE(debug->try_free(d, 64));  // the buftag checks are the full path's
  debug->free(d, 64);
  EXPECT_EQ(debug->try_allocate(64), nullptr);
}

}  // namespace
}  // namespace kmbench
