// IOLib on every in-process backend: zeroing, alignment, sizes, pageable and
// contiguous rules, the typed macros, and that memory really comes from the backend.
#include <IOKit/IOLib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "tests/kpi/kpi_test.h"

namespace kmbench::testing {
namespace {

using IOLib = KpiTest;

bool aligned(const void* p, std::uint64_t align) {
  return reinterpret_cast<std::uintptr_t>(p) % align == 0;
}

bool all_zero(const void* p, std::size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  return std::all_of(b, b + n, [](unsigned char c) { return c == 0; });
}

const std::vector<std::size_t> kSizes = {1, 15, 16, 17, 100, 4095, 4096, 4097, 65536, 1u << 20};

TEST_P(IOLib, IOMallocGivesUsableBlocksAndIOMallocZeroZeroes) {
  for (std::size_t size : kSizes) {
    void* p = IOMalloc(size);
    ASSERT_NE(p, nullptr) << size;
    EXPECT_TRUE(aligned(p, 16));
    std::memset(p, 0xa5, size);
    IOFree(p, size);
    // Dirty memory first so that zeroing is what makes it zero.
    void* z = IOMallocZero(size);
    ASSERT_NE(z, nullptr) << size;
    EXPECT_TRUE(all_zero(z, size)) << size;
    IOFree(z, size);
  }
}

TEST_P(IOLib, IOMallocOfZeroIsARealSixteenByteBlock) {
  void* a = IOMalloc(0);
  void* b = IOMalloc(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  std::memset(a, 1, 16);
  EXPECT_EQ(family("IOMalloc").live_bytes, 0);  // requested bytes
  EXPECT_EQ(family("IOMalloc").live_blocks, 2);
  IOFree(a, 0);
  IOFree(b, 0);
}

// Every backend this library is built with has paths of its own: a driver's
// IOMalloc runs the backend's code inline, in both modes, and the counts and
// checks still hold on them.
TEST_P(IOLib, TheHotCallsRunTheBackendInlineInBothModes) {
  for (kpi::Mode mode : {kpi::Mode::strict, kpi::Mode::xnu}) {
    kpi::set_mode(mode);
    void* p = IOMalloc(100);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(kpi::calls_inline()) << GetParam();
    EXPECT_EQ(family("IOMalloc").live_blocks, 1);
    EXPECT_EQ(family("IOMalloc").live_bytes, mode == kpi::Mode::strict ? 100 : 128);
    IOFree(p, 100);
    EXPECT_EQ(family("IOMalloc").live_bytes, 0);
  }
}

// A backend whose per-CPU caches the hot calls try inline (zones with its
// caches on, slab) hands a call over to the full path whenever a magazine is
// spent or full. Thousands of blocks live at once, of several classes, freed
// in both orders: every block is distinct and writable, and the counts are
// exact after each phase, in both modes.
TEST_P(IOLib, TheHotCallsHandOverToTheFullPathWhenTheBackendsCachesSpill) {
  BackendConfig config = conformance_config();
  if (GetParam() == "zones") config.params["cache"] = "on";
  kpi::use_backend(GetParam(), config);
  const std::size_t sizes[] = {16, 64, 100, 256, 4096};
  for (kpi::Mode mode : {kpi::Mode::strict, kpi::Mode::xnu}) {
    kpi::set_mode(mode);
    for (bool lifo : {true, false}) {
      std::vector<std::pair<void*, std::size_t>> live;
      std::int64_t bytes = 0;
      for (int i = 0; i < 3000; ++i) {
        const std::size_t size = sizes[i % 5];
        void* p = IOMalloc(size);
        ASSERT_NE(p, nullptr) << i;
        std::memset(p, i & 0xff, size);
        live.emplace_back(p, size);
        bytes += static_cast<std::int64_t>(mode == kpi::Mode::strict ? size : (size == 100 ? 128 : size));
      }
      std::vector<void*> addresses;
      for (const auto& [p, size] : live) addresses.push_back(p);
      std::sort(addresses.begin(), addresses.end());
      EXPECT_EQ(std::adjacent_find(addresses.begin(), addresses.end()), addresses.end()) << "a block given twice";
      EXPECT_EQ(family("IOMalloc").live_blocks, 3000);
      EXPECT_EQ(family("IOMalloc").live_bytes, bytes);
      if (lifo) std::reverse(live.begin(), live.end());
      for (std::size_t i = 0; i < live.size(); ++i) {
        const auto [p, size] = live[i];
        EXPECT_EQ(*static_cast<unsigned char*>(p), (lifo ? live.size() - 1 - i : i) & 0xff) << "block " << i;
        IOFree(p, size);
      }
      EXPECT_EQ(family("IOMalloc").live_blocks, 0);
      EXPECT_EQ(family("IOMalloc").live_bytes, 0);
    }
  }
}

TEST_P(IOLib, FreesOfNullAreNoOps) {
  const auto before = kpi::family_usage();
  IOFree(nullptr, 0);
  IOFree(nullptr, 64);
  IOFreeAligned(nullptr, 64);
  IOFreePageable(nullptr, 4096);
  IOFreeContiguous(nullptr, 4096);
  const auto after = kpi::family_usage();
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(before[i].frees, after[i].frees) << before[i].family;
  }
}

TEST_P(IOLib, IOMallocAlignedHonoursEveryPowerOfTwoUpTo64KiB) {
  for (std::size_t align = 1; align <= 64 * 1024; align *= 2) {
    for (std::size_t size : {std::size_t{1}, align / 2 + 1, align, 3 * align + 5}) {
      void* p = IOMallocAligned(size, align);
      ASSERT_NE(p, nullptr) << "size " << size << " align " << align;
      EXPECT_TRUE(aligned(p, align)) << "size " << size << " align " << align;
      std::memset(p, 0x5a, size);
      IOFreeAligned(p, size);
    }
  }
}

TEST_P(IOLib, IOMallocAlignedRoundsAlignmentUpToAPowerOfTwo) {
  for (auto [asked, expected] : {std::pair{48u, 64u}, {3000u, 4096u}, {0u, 16u}, {100u, 128u}}) {
    void* p = IOMallocAligned(10, asked);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned(p, expected)) << asked;
    IOFreeAligned(p, 10);
  }
}

TEST_P(IOLib, ZeroSizedAlignedPageableAndContiguousRequestsGiveNull) {
  EXPECT_EQ(IOMallocAligned(0, 64), nullptr);
  EXPECT_EQ(IOMallocPageable(0, 4096), nullptr);
  IOPhysicalAddress pa = 0;
  EXPECT_EQ(IOMallocContiguous(0, 4096, &pa), nullptr);
}

TEST_P(IOLib, HugeSizesGiveNull) {
  EXPECT_EQ(IOMalloc(vm_size_t{1} << 62), nullptr);
  EXPECT_EQ(IOMallocZero(vm_size_t{1} << 62), nullptr);
  EXPECT_EQ(IOMallocAligned(vm_size_t{1} << 62, 64), nullptr);
  EXPECT_EQ(kpi::live_blocks(), 0);
}

struct Packet {
  std::uint64_t id;
  std::uint32_t len;
  std::uint8_t data[52];
};

TEST_P(IOLib, IONewChecksCountTimesSizeForOverflow) {
  Packet* none = IONew(Packet, SIZE_MAX / 8);
  EXPECT_EQ(none, nullptr);
  EXPECT_EQ(IONewZero(Packet, SIZE_MAX / 2), nullptr);
  EXPECT_EQ(kpi::live_blocks(), 0);

  Packet* ring = IONew(Packet, 32);
  ASSERT_NE(ring, nullptr);
  EXPECT_EQ(family("IOMalloc").live_bytes, static_cast<std::int64_t>(32 * sizeof(Packet)));
  ring[31].id = 7;
  IODelete(ring, Packet, 32);

  Packet* zeroed = IONewZero(Packet, 9);
  ASSERT_NE(zeroed, nullptr);
  EXPECT_TRUE(all_zero(zeroed, 9 * sizeof(Packet)));
  IOSafeDeleteNULL(zeroed, Packet, 9);
  EXPECT_EQ(zeroed, nullptr);
  IOSafeDeleteNULL(zeroed, Packet, 9);  // NULL: nothing happens
}

TEST_P(IOLib, PageableFollowsXnuRules) {
  EXPECT_EQ(IOMallocPageable(4096, 8192), nullptr) << "alignment above a page";
  EXPECT_EQ(IOMallocPageable((512u << 20) + 1, 4096), nullptr) << "above 512 MiB";
  for (std::size_t size : {std::size_t{1}, std::size_t{100}, std::size_t{4096},
                           std::size_t{3 * 4096 + 1}, std::size_t{1u << 20}}) {
    for (std::size_t align : {std::size_t{1}, std::size_t{256}, std::size_t{4096}}) {
      void* p = IOMallocPageable(size, align);
      ASSERT_NE(p, nullptr) << size;
      EXPECT_TRUE(aligned(p, align));
      std::memset(p, 0x33, size);
      IOFreePageable(p, size);
    }
  }
  void* z = IOMallocPageableZero(10000, 4096);
  ASSERT_NE(z, nullptr);
  EXPECT_TRUE(all_zero(z, 10000));
  EXPECT_EQ(family("IOMallocPageable").live_blocks, 1);
  IOFreePageable(z, 10000);
}

TEST_P(IOLib, ContiguousBlocksHavePhysicalAddressesBelow4GiB) {
  for (std::size_t size : {std::size_t{100}, std::size_t{4096}, std::size_t{5 * 4096 + 7}}) {
    for (std::size_t align : {std::size_t{0}, std::size_t{4096}, std::size_t{64 * 1024}}) {
      IOPhysicalAddress pa = 0;
      void* p = IOMallocContiguous(size, align, &pa);
      ASSERT_NE(p, nullptr) << size << " " << align;
      EXPECT_NE(pa, 0u);
      EXPECT_LE(pa + size, 0x100000000ull);
      EXPECT_TRUE(aligned(p, std::max<std::size_t>(align, 4096)));
      EXPECT_EQ(pa % std::max<std::size_t>(align, 4096), 0u);
      // The physical address reaches the same bytes.
      static_cast<unsigned char*>(p)[size - 1] = 0x42;
      EXPECT_EQ(IOMappedRead8(pa + size - 1), 0x42);
      IOMappedWrite32(pa, 0xfeedf00d);
      std::uint32_t v;
      std::memcpy(&v, p, 4);
      EXPECT_EQ(v, 0xfeedf00du);
      IOMappedWrite64(pa + 8, 0x0123456789abcdefull);
      EXPECT_EQ(IOMappedRead64(pa + 8), 0x0123456789abcdefull);
      IOMappedWrite16(pa + 16, 0xbeef);
      EXPECT_EQ(IOMappedRead16(pa + 16), 0xbeef);
      IOMappedWrite8(pa + 18, 0x7);
      IOMappedWrite8(pa + 19, 0);  // the block is not zeroed: an earlier run of these pages may have left a byte
      EXPECT_EQ(IOMappedRead32(pa + 16), 0x0007beefu);
      IOFreeContiguous(p, size);
    }
  }
  void* unbounded = IOMallocContiguous(3 * 4096, 4096, nullptr);
  ASSERT_NE(unbounded, nullptr);
  IOFreeContiguous(unbounded, 3 * 4096);
}

TEST_P(IOLib, PageSizeAndCacheFlush) {
  EXPECT_EQ(IOVMPageSize, 4096u);
  EXPECT_EQ(PAGE_SIZE, 4096u);
  EXPECT_EQ(round_page(1), 4096u);
  void* p = IOMalloc(64);
  EXPECT_EQ(IOFlushProcessorCache(kernel_task, reinterpret_cast<IOVirtualAddress>(p), 64),
            kIOReturnSuccess);
  EXPECT_EQ(IOFlushProcessorCache(TASK_NULL, reinterpret_cast<IOVirtualAddress>(p), 64),
            kIOReturnUnsupported);
  IOFree(p, 64);
}

TEST_P(IOLib, MemoryComesFromTheActiveBackend) {
  const std::int64_t before = backend_live_blocks();
  void* a = IOMalloc(200);
  void* b = IOMallocAligned(300, 1024);
  EXPECT_EQ(kpi::backend().name(), GetParam());
  if (before >= 0) {
    EXPECT_GE(backend_live_blocks(), 2);  // slab's count holds its CPU caches too
  }
  EXPECT_EQ(kpi::live_blocks(), 2);
  // The KPI calls the backend past its counting decorator: the decorator saw none of it.
  EXPECT_EQ(kpi::backend().stats().allocs, 0u);
  IOFree(a, 200);
  IOFreeAligned(b, 300);
}

TEST_P(IOLib, FamilyAccountingReturnsToZero) {
  std::vector<std::pair<void*, std::size_t>> blocks;
  for (std::size_t i = 1; i <= 50; ++i) {
    blocks.emplace_back(IOMalloc(i * 24), i * 24);
  }
  EXPECT_EQ(family("IOMalloc").live_blocks, 50);
  EXPECT_EQ(family("IOMalloc").live_bytes, 24 * 50 * 51 / 2);
  for (auto [p, n] : blocks) {
    IOFree(p, n);
  }
  EXPECT_EQ(family("IOMalloc").live_blocks, 0);
  EXPECT_EQ(family("IOMalloc").live_bytes, 0);
}

TEST_P(IOLib, XnuModeAcceptsAnotherSizeOfTheSameKallocClass) {
  kpi::set_mode(kpi::Mode::xnu);
  void* p = IOMalloc(100);  // kalloc.128
  IOFree(p, 120);
  void* q = IOMalloc(0);  // kalloc.16
  IOFree(q, 16);
  void* large = IOMalloc(20000);  // page-level: 5 pages
  IOFree(large, 20480);
  void* pg = IOMallocPageable(5000, 4096);
  IOFreePageable(pg, 8192);
  void* al = IOMallocAligned(100, 64);  // 100 + 16 + 63 = 179: kalloc.192
  IOFreeAligned(al, 110);
  EXPECT_EQ(kpi::live_blocks(), 0);
}

TEST_P(IOLib, SwitchingBackendWithLiveBlocksIsRefused) {
  void* p = IOMalloc(10);
  EXPECT_THROW(kpi::use_backend(GetParam(), conformance_config()), UsageError);
  IOFree(p, 10);
  EXPECT_NO_THROW(kpi::use_backend(GetParam(), conformance_config()));
  EXPECT_THROW(kpi::use_backend("no-such-backend"), UsageError);
}

TEST(KpiSelection, ModeNamesParse) {
  EXPECT_EQ(kpi::parse_mode("strict"), kpi::Mode::strict);
  EXPECT_EQ(kpi::parse_mode("xnu"), kpi::Mode::xnu);
  EXPECT_THROW(kpi::parse_mode("lenient"), UsageError);
}

TEST(KpiSelection, WorkerBackendsAreRefusedNamingTheirExecutable) {
  for (const BackendInfo& b : all_backends()) {
    if (!b.executable.empty()) {
      try {
        kpi::use_backend(b.name);
        ADD_FAILURE() << b.name << " opened in process";
      } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find(b.executable), std::string::npos) << e.what();
      }
      return;
    }
  }
  GTEST_SKIP() << "no backend lives in a worker executable in this build";
}

KMBENCH_KPI_ON_EVERY_BACKEND(IOLib);

}  // namespace
}  // namespace kmbench::testing
