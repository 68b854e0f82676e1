// OSMalloc on every in-process backend: tags, per-tag accounting, the
// pageable-at-a-page-or-more rule and the noblock variants.
#include <IOKit/IOLib.h>
#include <libkern/OSMalloc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <cstring>
#include <string>
#include <vector>

#include "tests/kpi/kpi_test.h"

namespace kmbench::testing {
namespace {

using OSMallocTest = KpiTest;

TEST_P(OSMallocTest, TagNamesAreCutTo63CharactersAndTwoTagsMayShareAName) {
  const std::string long_name(100, 'n');
  OSMallocTag a = OSMalloc_Tagalloc(long_name.c_str(), OSMT_DEFAULT);
  OSMallocTag b = OSMalloc_Tagalloc("com.kmbench.same", OSMT_DEFAULT);
  OSMallocTag c = OSMalloc_Tagalloc("com.kmbench.same", OSMT_DEFAULT);
  EXPECT_NE(b, c);
  EXPECT_EQ(tag(std::string(63, 'n')).name.size(), 63u);
  int same = 0;
  TagId id_b = kNoTag, id_c = kNoTag;
  for (const kpi::TagUsage& t : kpi::tag_usage()) {
    if (t.name == "com.kmbench.same" && t.state == kpi::TagUsage::State::active) {
      (same++ == 0 ? id_b : id_c) = t.id;
    }
  }
  EXPECT_EQ(same, 2);
  EXPECT_NE(id_b, id_c);
  void* p = OSMalloc(10, b);
  void* q = OSMalloc(20, c);
  ASSERT_NE(q, nullptr);
  OSFree(p, 10, b);
  OSMalloc_Tagfree(a);
  OSMalloc_Tagfree(b);
  // c lives on with its block: tags that share a name are separate.
  EXPECT_EQ(tag("com.kmbench.same").live_blocks, 1);
  EXPECT_EQ(tag("com.kmbench.same").state, kpi::TagUsage::State::active);
  OSFree(q, 20, c);
  OSMalloc_Tagfree(c);
}

TEST_P(OSMallocTest, AccountingPerTagReturnsToZeroAndKeepsThePeak) {
  OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.acct", OSMT_DEFAULT);
  std::vector<std::pair<void*, std::uint32_t>> blocks;
  std::int64_t total = 0;
  for (std::uint32_t i = 0; i < 100; ++i) {
    const std::uint32_t size = 1 + i * 37;
    void* p = OSMalloc(size, t);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x11, size);
    blocks.emplace_back(p, size);
    total += size;
  }
  kpi::TagUsage u = tag("com.kmbench.acct");
  EXPECT_EQ(u.live_blocks, 100);
  EXPECT_EQ(u.live_bytes, total);
  EXPECT_EQ(u.peak_live_bytes, total);
  EXPECT_EQ(u.allocs, 100u);
  for (auto [p, n] : blocks) {
    OSFree(p, n, t);
  }
  u = tag("com.kmbench.acct");
  EXPECT_EQ(u.live_blocks, 0);
  EXPECT_EQ(u.live_bytes, 0);
  EXPECT_EQ(u.peak_live_bytes, total);
  EXPECT_EQ(u.frees, 100u);
  EXPECT_EQ(u.state, kpi::TagUsage::State::active);
  OSMalloc_Tagfree(t);
  EXPECT_EQ(tag("com.kmbench.acct").state, kpi::TagUsage::State::released);
}

// OSMalloc and OSFree on a backend whose per-CPU caches the hot calls try
// inline (zones with its caches on, slab), with more blocks live than the
// caches hold: the tag's counts and peak are exact in both modes, through
// every hand-over to the full path.
TEST_P(OSMallocTest, TaggedHotCallsKeepTheTagsCountsExactWhenTheCachesSpill) {
  BackendConfig config = conformance_config();
  if (GetParam() == "zones") config.params["cache"] = "on";
  kpi::use_backend(GetParam(), config);
  for (kpi::Mode mode : {kpi::Mode::strict, kpi::Mode::xnu}) {
    kpi::set_mode(mode);
    const std::string name = std::string("com.kmbench.spill.") + (mode == kpi::Mode::strict ? "strict" : "xnu");
    OSMallocTag t = OSMalloc_Tagalloc(name.c_str(), OSMT_DEFAULT);
    std::vector<void*> blocks;
    for (int i = 0; i < 2000; ++i) {
      void* p = OSMalloc(64, t);
      ASSERT_NE(p, nullptr) << i;
      std::memset(p, 0x22, 64);
      blocks.push_back(p);
    }
    kpi::TagUsage u = tag(name);
    EXPECT_EQ(u.live_blocks, 2000);
    EXPECT_EQ(u.live_bytes, 2000 * 64);
    EXPECT_EQ(u.peak_live_bytes, 2000 * 64);  // one thread: exact
    for (void* p : blocks) {
      OSFree(p, 64, t);
    }
    u = tag(name);
    EXPECT_EQ(u.live_blocks, 0);
    EXPECT_EQ(u.live_bytes, 0);
    EXPECT_EQ(u.allocs, 2000u);
    EXPECT_EQ(u.frees, 2000u);
    EXPECT_EQ(family("OSMalloc").live_blocks, 0);
    OSMalloc_Tagfree(t);
  }
}

/// A backend that remembers the tag each allocation was asked with (over the C heap).
struct TagRecordingBackend {
  static constexpr BackendVariant kVariants[] = {{"tag-recorder", "remembers tags", ""}};
  static constexpr std::uint32_t kFeatures = kFeatureSizedFree;
  explicit TagRecordingBackend(const BackendConfig&) {}
  void* allocate(std::size_t size, std::size_t align, TagId tag, NodeId) noexcept {
    last_tag = tag;
    void* p = nullptr;
    return posix_memalign(&p, std::max(align, kMinAlign), std::max<std::size_t>(size, 1)) == 0 ? p : nullptr;
  }
  void free(void* p, std::size_t) noexcept { std::free(p); }
  BackendStats stats() const { return {}; }
  static inline TagId last_tag = kNoTag;
};

TEST(OSMallocTagTest, TheBackendIsAskedWithTheTagsId) {
  kpi::set_backend(std::make_unique<AnyBackend>("tag-recorder", TagRecordingBackend::kFeatures,
                                                new Counting<TagRecordingBackend>(BackendConfig{}),
                                                &kOpsFor<TagRecordingBackend>));
  OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.backendtag", OSMT_DEFAULT);
  TagId id = kNoTag;
  for (const kpi::TagUsage& u : kpi::tag_usage()) {
    if (u.name == "com.kmbench.backendtag") id = u.id;
  }
  void* p = OSMalloc(300, t);
  EXPECT_NE(id, kNoTag);
  EXPECT_EQ(TagRecordingBackend::last_tag, id);
  void* q = IOMalloc(300);
  EXPECT_EQ(TagRecordingBackend::last_tag, kNoTag);
  IOFree(q, 300);
  OSFree(p, 300, t);
  OSMalloc_Tagfree(t);
  kpi::use_backend("system");
}

TEST_P(OSMallocTest, PageableTagsGivePageableMemoryFromOnePageUp) {
  OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.pg", OSMT_PAGEABLE);
  void* small = OSMalloc(4095, t);
  void* page = OSMalloc(4096, t);
  void* big = OSMalloc(3 * 4096 + 10, t);
  ASSERT_NE(small, nullptr);
  ASSERT_NE(page, nullptr);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(page) % 4096, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(big) % 4096, 0u);
  EXPECT_EQ(family("OSMalloc").live_blocks, 1);
  EXPECT_EQ(family("OSMalloc(pageable)").live_blocks, 2);
  std::memset(big, 0x77, 3 * 4096 + 10);
  EXPECT_EQ(tag("com.kmbench.pg").live_bytes, 4095 + 4096 + 3 * 4096 + 10);
  // The noblock variants never take pageable memory.
  EXPECT_EQ(OSMalloc_noblock(64, t), nullptr);
  EXPECT_EQ(OSMalloc_nowait(8192, t), nullptr);
  OSFree(small, 4095, t);
  OSFree(page, 4096, t);
  OSFree(big, 3 * 4096 + 10, t);
  OSMalloc_Tagfree(t);
}

// The OSMalloc family's counts are its tags' (less the pageable tags' page
// blocks, which are OSMalloc(pageable)'s): exact over several tags, a tag
// freed with its blocks gone, blocks freed through the hot calls and the
// full path, and a pageable tag's blocks on either side of a page, in both
// modes (xnu mode counts kalloc's classes, as the tags do).
TEST_P(OSMallocTest, TheOSMallocFamilyCountsWhatItsTagsCount) {
  for (const kpi::Mode mode : {kpi::Mode::strict, kpi::Mode::xnu}) {
    kpi::set_mode(mode);
    const kpi::FamilyUsage os0 = family("OSMalloc"), pg0 = family("OSMalloc(pageable)");
    OSMallocTag wired = OSMalloc_Tagalloc("com.kmbench.fam.w", OSMT_DEFAULT);
    OSMallocTag pageable = OSMalloc_Tagalloc("com.kmbench.fam.p", OSMT_PAGEABLE);
    OSMallocTag gone = OSMalloc_Tagalloc("com.kmbench.fam.g", OSMT_DEFAULT);
    void* g = OSMalloc(48, gone);
    OSFree(g, 48, gone);
    OSMalloc_Tagfree(gone);
    struct Block {
      void* p;
      std::uint32_t size;
      OSMallocTag tag;
    };
    std::vector<Block> blocks;
    for (std::uint32_t i = 0; i < 300; ++i) {  // more than the per-CPU caches hold
      const std::uint32_t size = 16 + (i % 7) * 40;
      blocks.push_back({OSMalloc(size, wired), size, wired});
    }
    blocks.push_back({OSMalloc(100, pageable), 100, pageable});    // OSMalloc: under a page
    blocks.push_back({OSMalloc(8192, pageable), 8192, pageable});  // OSMalloc(pageable)
    blocks.push_back({OSMalloc_noblock(5000, wired), 5000, wired});
    for (const Block& b : blocks) ASSERT_NE(b.p, nullptr) << b.size;

    const kpi::TagUsage w = tag("com.kmbench.fam.w"), p = tag("com.kmbench.fam.p");
    const kpi::FamilyUsage os = family("OSMalloc"), pg = family("OSMalloc(pageable)");
    EXPECT_EQ(os.allocs - os0.allocs, 302u + 1u);  // and the freed tag's block
    EXPECT_EQ(os.frees - os0.frees, 1u);
    EXPECT_EQ(os.live_blocks - os0.live_blocks, 302);
    EXPECT_EQ(pg.live_blocks - pg0.live_blocks, 1);
    EXPECT_EQ(pg.live_bytes - pg0.live_bytes, 8192);
    EXPECT_EQ(os.live_bytes - os0.live_bytes, w.live_bytes + p.live_bytes - 8192);
    if (mode == kpi::Mode::strict) {
      std::int64_t asked = 0;
      for (const Block& b : blocks) asked += b.tag == wired || b.size < 4096 ? b.size : 0;
      EXPECT_EQ(os.live_bytes - os0.live_bytes, asked);
    }
    // Freed in reverse: the first frees find full caches, the last empty ones.
    for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) OSFree(it->p, it->size, it->tag);
    const kpi::FamilyUsage os1 = family("OSMalloc"), pg1 = family("OSMalloc(pageable)");
    EXPECT_EQ(os1.live_blocks, os0.live_blocks);
    EXPECT_EQ(os1.live_bytes, os0.live_bytes);
    EXPECT_EQ(os1.frees - os0.frees, 303u);
    EXPECT_EQ(pg1.live_bytes, pg0.live_bytes);
    EXPECT_EQ(kpi::live_blocks(), 0);
    OSMalloc_Tagfree(wired);
    OSMalloc_Tagfree(pageable);
  }
}

TEST_P(OSMallocTest, NoblockAndNowaitServeWiredTags) {
  OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.nb", OSMT_DEFAULT);
  void* a = OSMalloc_noblock(128, t);
  void* b = OSMalloc_nowait(8192, t);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(family("OSMalloc").live_blocks, 2);
  OSFree(a, 128, t);
  OSFree(b, 8192, t);
  OSMalloc_Tagfree(t);
}

TEST_P(OSMallocTest, ZeroSizeAndNullFree) {
  OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.zero", OSMT_DEFAULT);
  void* p = OSMalloc(0, t);
  ASSERT_NE(p, nullptr);
  OSFree(nullptr, 64, t);
  EXPECT_EQ(tag("com.kmbench.zero").frees, 0u);
  OSFree(p, 0, t);
  OSMalloc_Tagfree(t);
}

KMBENCH_KPI_ON_EVERY_BACKEND(OSMallocTest);

}  // namespace
}  // namespace kmbench::testing
