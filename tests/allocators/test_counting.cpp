// The counting decorator, over a backend whose behaviour the test controls.
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>
#include <vector>

#include "allocators/counting.h"

namespace kmbench {
namespace {

/// Rounds every request up to 64 bytes and fails requests of exactly 13 bytes.
class Fake {
 public:
  static constexpr BackendVariant kVariants[] = {{"fake", "test double", ""}};
  static constexpr std::uint32_t kFeatures = kFeatureUsableSize;
  explicit Fake(const BackendConfig&) {}
  void* allocate(std::size_t size, std::size_t, TagId, NodeId) noexcept {
    return size == 13 ? nullptr : std::aligned_alloc(64, 64 * ((size + 63) / 64 + (size == 0)));
  }
  void free(void* p, std::size_t) noexcept { std::free(p); }
  std::size_t usable_size(void*, std::size_t size) const noexcept {
    return 64 * ((size + 63) / 64 + (size == 0));
  }
  BackendStats stats() const { return {1, 2, 3, -1, -1, {{"backend.fake.x", 4}}}; }
};
static_assert(Backend<Fake>);

TEST(Counting, CountsRequestedHandedOutLiveAndPeak) {
  Counting<Fake> c(BackendConfig{});
  void* a = c.allocate(100, 16, kNoTag, kAnyNode);  // 128 handed out
  void* b = c.allocate(10, 16, kNoTag, kAnyNode);   // 64
  c.free(a, 100);
  void* d = c.allocate(1, 16, kNoTag, kAnyNode);    // 64
  EXPECT_EQ(c.allocate(13, 16, kNoTag, kAnyNode), nullptr);
  c.free(nullptr, 5);

  CountingStats s = c.stats();
  EXPECT_EQ(s.allocs, 3u);
  EXPECT_EQ(s.frees, 1u);
  EXPECT_EQ(s.failed_allocs, 1u);
  EXPECT_EQ(s.requested_bytes, 111u);
  EXPECT_EQ(s.handed_out_bytes, 256u);
  EXPECT_EQ(s.live_blocks, 2);
  EXPECT_EQ(s.live_bytes, 11);
  EXPECT_EQ(s.live_handed_out_bytes, 128);
  EXPECT_EQ(s.peak_live_bytes, 110);
  EXPECT_EQ(s.backend.mapped_bytes, 1u);
  ASSERT_EQ(s.backend.metrics.size(), 1u);
  EXPECT_EQ(s.backend.metrics[0].name, "backend.fake.x");

  c.free(b, 10);
  c.free(d, 1);
  s = c.stats();
  EXPECT_EQ(s.live_blocks, 0);
  EXPECT_EQ(s.live_bytes, 0);
  EXPECT_EQ(s.live_handed_out_bytes, 0);
  EXPECT_EQ(s.peak_live_bytes, 110);
}

TEST(Counting, PerTagTotalsReturnToZero) {
  Counting<Fake> c(BackendConfig{});
  void* a = c.allocate(40, 16, 7, kAnyNode);
  void* b = c.allocate(60, 16, 7, kAnyNode);
  void* x = c.allocate(5, 16, 9, kAnyNode);
  void* big = c.allocate(8, 16, 1'000'000, kAnyNode);  // beyond the table: overflow slot
  c.free(a, 40, 7);

  CountingStats s = c.stats();
  ASSERT_EQ(s.tags.size(), 3u);
  EXPECT_EQ(s.tags[0].tag, 7u);
  EXPECT_EQ(s.tags[0].live_blocks, 1);
  EXPECT_EQ(s.tags[0].live_bytes, 60);
  EXPECT_EQ(s.tags[0].peak_live_bytes, 100);
  EXPECT_EQ(s.tags[1].tag, 9u);
  EXPECT_EQ(s.tags[2].tag, kOverflowTag);

  c.free(b, 60, 7);
  c.free(x, 5, 9);
  c.free(big, 8, 1'000'000);
  for (const TagStats& t : c.stats().tags) {
    EXPECT_EQ(t.live_blocks, 0) << "tag " << t.tag;
    EXPECT_EQ(t.live_bytes, 0) << "tag " << t.tag;
  }
}

TEST(Counting, ExactUnderCrossThreadFrees) {
  Counting<Fake> c(BackendConfig{});
  constexpr int kPerThread = 20000;
  std::vector<void*> handoff(2 * kPerThread);
  // Two threads allocate; then each frees the other's blocks.
  auto alloc = [&](int t) {
    for (int i = 0; i < kPerThread; ++i) {
      handoff[t * kPerThread + i] = c.allocate(32, 16, 3, kAnyNode);
    }
  };
  auto release = [&](int t) {
    for (int i = 0; i < kPerThread; ++i) {
      c.free(handoff[(1 - t) * kPerThread + i], 32, 3);
    }
  };
  {
    std::thread a(alloc, 0), b(alloc, 1);
    a.join();
    b.join();
  }
  EXPECT_EQ(c.stats().peak_live_bytes, 2 * kPerThread * 32);
  {
    std::thread a(release, 0), b(release, 1);
    a.join();
    b.join();
  }
  const CountingStats s = c.stats();
  EXPECT_EQ(s.allocs, 2u * kPerThread);
  EXPECT_EQ(s.frees, 2u * kPerThread);
  EXPECT_EQ(s.live_bytes, 0);
  ASSERT_EQ(s.tags.size(), 1u);
  EXPECT_EQ(s.tags[0].live_blocks, 0);
}

}  // namespace
}  // namespace kmbench
