// The jemalloc backend's extent hooks and the machine: purged extents give
// their pages back, later extents take pages again, an allocation fails
// cleanly when the machine has none, and the footprint is what the machine
// gave, never below the live bytes (docs/pressure.md).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "allocators/jemalloc/jemalloc.h"
#include "allocators/registry.h"

namespace kmbench {
namespace {

constexpr std::size_t kPage = physmem::kPageSize;

/// A machine of its own per test, so that every page it lends is this backend's.
std::unique_ptr<physmem::Machine> one_node(std::uint64_t bytes) {
  physmem::TopologySpec spec;
  spec.kind = physmem::TopologySpec::Kind::synthetic;
  spec.text = "pack:1 [numa] core:1 pu:1";
  spec.node_bytes = bytes;
  return std::make_unique<physmem::Machine>(spec);
}

/// Pages the machine has lent out: neither free (in the buddy or the CPU lists) nor the balloon's.
std::uint64_t lent(const physmem::Machine& m) {
  std::uint64_t pages = 0;
  for (const physmem::NodeStats& n : m.stats().nodes) {
    pages += n.total_pages - n.free_pages - n.pcp_pages - n.balloon_pages;
  }
  return pages;
}

BackendConfig on(physmem::Machine& m, std::string_view params = {}) {
  BackendConfig config;
  config.machine = &m;
  apply_params(config, params);
  return config;
}

double metric(const BackendStats& s, const std::string& name) {
  for (const Metric& x : s.metrics) {
    if (x.name == name) {
      return x.value;
    }
  }
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

struct Block {
  void* p;
  std::size_t size;
};

/// A working set of small, page-sized and large blocks, written so their pages are used.
std::vector<Block> allocate_set(JemallocBackend& b, std::size_t scale) {
  std::vector<Block> blocks;
  for (std::size_t i = 0; i < 2000 * scale; ++i) {
    const std::size_t size = i % 3 == 0 ? 256 : i % 3 == 1 ? 4096 : 40000;
    void* p = b.allocate(size, kMinAlign, kNoTag, 0);
    if (p == nullptr) {
      ADD_FAILURE() << "block " << i << " of " << size << " bytes";
      break;
    }
    std::memset(p, 0x5a, size);
    blocks.push_back({p, size});
  }
  for (std::size_t i = 0; i < scale; ++i) {
    void* p = b.allocate(3u << 20, kMinAlign, kNoTag, 0);
    EXPECT_NE(p, nullptr);
    blocks.push_back({p, 3u << 20});
  }
  return blocks;
}

std::size_t bytes_of(const std::vector<Block>& blocks) {
  std::size_t bytes = 0;
  for (const Block& b : blocks) bytes += b.size;
  return bytes;
}

void free_set(JemallocBackend& b, const std::vector<Block>& blocks) {
  for (const Block& x : blocks) b.free(x.p, x.size);
}

// Retained extents would hold the machine's pages where purge cannot reach
// them: jemalloc keeps none, and after a purge holds only its metadata.
TEST(JemallocReclaim, NothingIsRetained) {
  auto m = one_node(256ull << 20);
  JemallocBackend b{on(*m)};
  const std::uint64_t metadata = b.footprint().mapped_bytes;
  const std::vector<Block> set = allocate_set(b, 1);
  EXPECT_EQ(metric(b.stats(), "backend.jemalloc.arena.0.retained"), 0);
  free_set(b, set);
  b.reclaim(ReclaimLevel::drain);
  const BackendStats s = b.stats();
  EXPECT_EQ(metric(s, "backend.jemalloc.arena.0.retained"), 0);
  EXPECT_EQ(metric(s, "backend.jemalloc.arena.0.pactive"), 0);
  EXPECT_LE(s.mapped_bytes, metadata + (2u << 20)) << "the metadata, grown by the working set's";
}

// Purge gives the freed working set's pages to the machine, and the same
// working set takes pages again; the footprint is the machine's count
// throughout. One arena takes pages as jemalloc asks; several (here with
// arena_per_tag=on) take whole granules.
class JemallocPurge : public ::testing::TestWithParam<const char*> {};

TEST_P(JemallocPurge, GivesPagesBackAndLaterExtentsTakeThemAgain) {
  auto m = one_node(512ull << 20);
  {
    JemallocBackend b{on(*m, GetParam())};
    EXPECT_EQ(b.footprint().mapped_bytes, lent(*m) * kPage) << "the arena's metadata";
    for (int round = 0; round < 3; ++round) {
      const std::vector<Block> set = allocate_set(b, 2);
      const std::size_t live = bytes_of(set);
      BackendStats s = b.stats();
      EXPECT_EQ(s.mapped_bytes, lent(*m) * kPage) << "round " << round;
      EXPECT_GE(s.mapped_bytes, static_cast<std::uint64_t>(s.live_bytes));
      EXPECT_GE(s.live_bytes, static_cast<std::int64_t>(live));
      free_set(b, set);
      const std::uint64_t before = lent(*m);
      const std::size_t given = b.reclaim(ReclaimLevel::drain);
      EXPECT_EQ(before - lent(*m), given / kPage) << "the machine has exactly the pages back";
      EXPECT_EQ(given % kPage, 0u);
      EXPECT_GE(given, live * 3 / 4) << "most of what was freed, round " << round;
      s = b.stats();
      EXPECT_EQ(s.mapped_bytes, lent(*m) * kPage);
      EXPECT_GE(metric(s, "backend.jemalloc.hook_returned_bytes"), static_cast<double>(given));
      EXPECT_EQ(b.reclaim(ReclaimLevel::drain), 0u) << "nothing left to give";
    }
  }
  EXPECT_EQ(lent(*m), 0u) << "the backend gave every page back when it ended";
}

INSTANTIATE_TEST_SUITE_P(OneAndSeveralArenas, JemallocPurge,
                         ::testing::Values("", "arena_per_tag=on"),
                         [](const auto& info) { return info.index == 0 ? "one_arena" : "arena_per_tag"; });

// With decay on, jemalloc purges on its own as it allocates and frees: pages
// go back without reclaim being asked.
TEST(JemallocReclaim, DecayGivesPagesBackWithoutReclaim) {
  auto m = one_node(256ull << 20);
  JemallocBackend b{on(*m, "decay_ms=0,tcache=off")};
  void* big = b.allocate(32u << 20, kMinAlign, kNoTag, 0);
  ASSERT_NE(big, nullptr);
  const std::uint64_t holding = lent(*m);
  b.free(big, 32u << 20);
  EXPECT_LE(lent(*m) + (32u << 20) / kPage, holding) << "freed and purged at once (decay_ms=0)";
  EXPECT_EQ(b.footprint().mapped_bytes, lent(*m) * kPage);
}

// When the machine has no pages, an allocation that needs a new extent fails
// (nullptr, no crash) and the backend's books stay exact; what jemalloc has
// cached still serves; once pages are back, allocations succeed again.
TEST(JemallocReclaim, AllocationsFailCleanlyWithoutPagesAndSucceedOnceTheyAreBack) {
  auto m = one_node(256ull << 20);
  JemallocBackend b{on(*m)};
  free_set(b, allocate_set(b, 1));  // jemalloc keeps the dirty extents (decay off)
  m->drain_all_quiescent();
  const std::uint64_t taken = m->balloon_inflate(0, ~std::uint64_t{0} >> 1);
  ASSERT_GT(taken, 0u);
  ASSERT_EQ(m->stats().nodes[0].free_pages, 0u) << "the machine has nothing left";

  constexpr std::size_t kHuge = 64u << 20;  // more than jemalloc holds
  EXPECT_EQ(b.allocate(kHuge, kMinAlign, kNoTag, 0), nullptr);
  std::vector<Block> small;
  for (int i = 0; i < 100000; ++i) {  // bounded: 400 MB, more than the machine has
    void* p = b.allocate(4096, kMinAlign, kNoTag, 0);
    if (p == nullptr) {
      break;
    }
    std::memset(p, 7, 4096);
    small.push_back({p, 4096});
  }
  EXPECT_GT(small.size(), 100u) << "the dirty extents jemalloc kept serve";
  EXPECT_LT(small.size(), 100000u) << "then allocations fail";
  BackendStats s = b.stats();
  EXPECT_GE(metric(s, "backend.jemalloc.hook_failed_refills"), 1);
  EXPECT_EQ(s.mapped_bytes, lent(*m) * kPage);
  EXPECT_GE(s.mapped_bytes, static_cast<std::uint64_t>(s.live_bytes));

  // What the backend gives back under pressure is the machine's again.
  free_set(b, small);
  const std::size_t given = b.reclaim(ReclaimLevel::drain);
  EXPECT_GT(given, 0u);
  EXPECT_EQ(m->stats().nodes[0].free_pages + m->stats().nodes[0].pcp_pages, given / kPage);
  EXPECT_EQ(b.footprint().mapped_bytes, lent(*m) * kPage);

  EXPECT_EQ(m->balloon_deflate(0, taken), taken);
  void* big = b.allocate(kHuge, kMinAlign, kNoTag, 0);
  ASSERT_NE(big, nullptr) << "memory is back";
  std::memset(big, 1, kHuge);
  const std::vector<Block> set = allocate_set(b, 1);
  s = b.stats();
  EXPECT_EQ(s.mapped_bytes, lent(*m) * kPage);
  EXPECT_GE(s.mapped_bytes, static_cast<std::uint64_t>(s.live_bytes));
  free_set(b, set);
  b.free(big, kHuge);
}

// Hooks run on every thread at once: threads allocate and free (extents are
// taken and, with decay at 0, given back) while another reclaims. At the end
// the books match the machine exactly.
TEST(JemallocReclaim, ConcurrentHooksKeepTheBooksExact) {
  auto m = one_node(512ull << 20);
  {
    JemallocBackend b{on(*m, "decay_ms=0")};
    std::atomic<bool> done{false};
    std::atomic<int> failures{0};
    std::thread reclaimer([&] {
      while (!done.load()) {
        b.reclaim(ReclaimLevel::drain);
        if (b.footprint().mapped_bytes == 0) {
          failures.fetch_add(1);  // the arenas' metadata is always held
        }
        std::this_thread::yield();
      }
    });
    std::vector<std::thread> workers;
    for (int t = 0; t < 3; ++t) {
      workers.emplace_back([&b, &failures, t] {
        std::vector<Block> held;
        for (int i = 0; i < 3000; ++i) {
          const std::size_t size = (i * 7 + t) % 5 == 0 ? (256u << 10) + 4096u * (i % 9)
                                                        : 64u + 48u * (i % 40);
          void* p = b.allocate(size, kMinAlign, kNoTag, 0);
          if (p == nullptr) {
            failures.fetch_add(1);
            continue;
          }
          std::memset(p, t, size < 4096 ? size : 4096);
          held.push_back({p, size});
          if (held.size() > 64) {
            for (const Block& x : held) b.free(x.p, x.size);
            held.clear();
          }
        }
        for (const Block& x : held) b.free(x.p, x.size);
        b.flush_thread_caches();
      });
    }
    for (auto& w : workers) w.join();
    done = true;
    reclaimer.join();
    EXPECT_EQ(failures.load(), 0);
    b.reclaim(ReclaimLevel::drain);
    EXPECT_EQ(b.footprint().mapped_bytes, lent(*m) * kPage);
  }
  EXPECT_EQ(lent(*m), 0u);
}

}  // namespace
}  // namespace kmbench
