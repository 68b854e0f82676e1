// Misuse "panics" (one line on stderr, then abort) as the kernel or the
// documented contract would: in strict mode whatever backend serves the KPI;
// in xnu mode where XNU or the backend itself would (kpi/README.md).
#include <IOKit/IOLib.h>
#include <libkern/OSMalloc.h>

#include <cstdio>
#include <cstdlib>

#include "tests/kpi/kpi_test.h"

namespace kmbench::testing {
namespace {

class KpiDeathTest : public KpiTest {
 protected:
  // The panic line: what, address, size, tag, backend.
  std::string line(const std::string& what, const std::string& size, const std::string& tag) {
    return "kmbench: panic: " + what + ".*address 0x[0-9a-f]+, size " + size + ", tag " + tag +
           ", backend " + GetParam();
  }
};

TEST_P(KpiDeathTest, IOFreeWithALargerSize) {
  void* p = IOMalloc(64);
  EXPECT_DEATH(IOFree(p, 128), line("IOFree: size 128 is larger than the block \\(64 bytes\\)", "128", "-"));
  EXPECT_DEATH(IOFree(p, 65), line("IOFree: size 65 is larger than the block", "65", "-"));
  void* big = IOMalloc(5000);  // another tier of the record
  EXPECT_DEATH(IOFree(big, 6000), line("IOFree: size 6000 is larger than the block \\(5000 bytes\\)", "6000", "-"));
  IOFree(big, 5000);
  IOFree(p, 64);
}

TEST_P(KpiDeathTest, IOFreeWithAnotherSize) {
  void* p = IOMalloc(100);
  EXPECT_DEATH(IOFree(p, 99), line("IOFree: size 99 does not match the block \\(100 bytes\\)", "99", "-"));
  EXPECT_DEATH(IOFree(p, 16), line("IOFree: size 16 does not match the block \\(100 bytes\\)", "16", "-"));
  EXPECT_DEATH(IOFree(p, 128), line("IOFree: size 128 is larger than the block", "128", "-"));
  IOFree(p, 100);
}

TEST_P(KpiDeathTest, APointerInsideABlock) {
  auto* p = static_cast<char*>(IOMalloc(4096));
  EXPECT_DEATH(IOFree(p + 16, 4080), line("IOFree: pointer is not a live KPI block", "4080", "-"));
  EXPECT_DEATH(IOFree(p + 8, 4088), line("IOFree: pointer is not a live KPI block", "4088", "-"));
  IOFree(p, 4096);
}

TEST_P(KpiDeathTest, DoubleFree) {
  void* p = IOMalloc(48);
  IOFree(p, 48);
  EXPECT_DEATH(IOFree(p, 48), line("IOFree: double free", "48", "-"));
  void* a = IOMallocAligned(48, 256);
  IOFreeAligned(a, 48);
  EXPECT_DEATH(IOFreeAligned(a, 48), line("IOFreeAligned: double free", "48", "-"));
}

TEST_P(KpiDeathTest, FreeOfAPointerNeverAllocated) {
  static char not_a_block[64];
  EXPECT_DEATH(IOFree(not_a_block, 64), line("IOFree: pointer is not a live KPI block", "64", "-"));
}

TEST_P(KpiDeathTest, FreeWithTheWrongFunction) {
  void* p = IOMalloc(100);
  EXPECT_DEATH(IOFreeAligned(p, 100),
               line("IOFreeAligned: block was allocated by IOMalloc, not IOMallocAligned", "100", "-"));
  EXPECT_DEATH(IOFreePageable(p, 100), line("IOFreePageable: block was allocated by IOMalloc", "100", "-"));
  IOFree(p, 100);
  void* a = IOMallocAligned(100, 64);
  EXPECT_DEATH(IOFree(a, 100), line("IOFree: block was allocated by IOMallocAligned", "100", "-"));
  IOFreeAligned(a, 100);
  static char stray[16];
  EXPECT_DEATH(IOFreeAligned(stray, 16), line("IOFreeAligned: pointer is not a live KPI block .*IOMallocAligned", "16", "-"));
}

TEST_P(KpiDeathTest, OSMallocAndOSFreeWithANullTag) {
  EXPECT_DEATH(OSMalloc(10, nullptr), line("OSMalloc: NULL tag", "10", "-"));
  EXPECT_DEATH(OSMalloc_noblock(10, nullptr), line("OSMalloc_noblock: NULL tag", "10", "-"));
  int x = 0;
  EXPECT_DEATH(OSFree(&x, 4, nullptr), line("OSFree: NULL tag", "4", "-"));
}

TEST_P(KpiDeathTest, OSMallocAndOSFreeWithAFreedTag) {
  OSMallocTag tag = OSMalloc_Tagalloc("com.kmbench.freed", OSMT_DEFAULT);
  OSMallocTag other = OSMalloc_Tagalloc("com.kmbench.other", OSMT_DEFAULT);
  void* p = OSMalloc(32, other);
  OSMalloc_Tagfree(tag);
  EXPECT_DEATH(OSMalloc(32, tag), line("OSMalloc: tag was freed", "32", "com.kmbench.freed"));
  EXPECT_DEATH(OSFree(p, 32, tag), line("OSFree: tag was freed", "32", "com.kmbench.freed"));
  EXPECT_DEATH(OSMalloc_Tagfree(tag), "kmbench: panic: OSMalloc_Tagfree: tag already freed");
  OSFree(p, 32, other);
  OSMalloc_Tagfree(other);
}

TEST_P(KpiDeathTest, OSFreeWithTheWrongTag) {
  OSMallocTag a = OSMalloc_Tagalloc("com.kmbench.a", OSMT_DEFAULT);
  OSMallocTag b = OSMalloc_Tagalloc("com.kmbench.b", OSMT_DEFAULT);
  void* p = OSMalloc(64, a);
  EXPECT_DEATH(OSFree(p, 64, b), line("OSFree: wrong tag: the block belongs to tag 'com.kmbench.a'", "64", "com.kmbench.b"));
  EXPECT_DEATH(OSFree(p, 65, a), line("OSFree: size 65 is larger than the block", "65", "com.kmbench.a"));
  OSFree(p, 64, a);
  OSMalloc_Tagfree(a);
  OSMalloc_Tagfree(b);
}

TEST_P(KpiDeathTest, OSFreeDoubleFree) {
  OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.df", OSMT_DEFAULT);
  void* p = OSMalloc(64, t);
  OSFree(p, 64, t);
  EXPECT_DEATH(OSFree(p, 64, t), line("OSFree: double free", "64", "com.kmbench.df"));
  OSMalloc_Tagfree(t);
}

TEST_P(KpiDeathTest, TagfreeWithLiveBlocksPanicsInStrictMode) {
  OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.live", OSMT_DEFAULT);
  void* p = OSMalloc(64, t);
  EXPECT_DEATH(OSMalloc_Tagfree(t), "kmbench: panic: OSMalloc_Tagfree: 1 blocks of the tag are still live.*tag com.kmbench.live");
  OSFree(p, 64, t);
  OSMalloc_Tagfree(t);
}

// Both modes: page runs keep their record in xnu mode too.
TEST_P(KpiDeathTest, PageableOSFreeWithAWiredSize) {
  for (kpi::Mode mode : {kpi::Mode::strict, kpi::Mode::xnu}) {
    kpi::set_mode(mode);
    OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.pageable", OSMT_PAGEABLE);
    void* p = OSMalloc(8192, t);
    EXPECT_DEATH(OSFree(p, 100, t), line("OSFree: size 100 makes this a wired free, but the block of 8192 bytes is pageable", "100", "com.kmbench.pageable"));
    OSFree(p, 8192, t);
    OSMalloc_Tagfree(t);
  }
}

TEST_P(KpiDeathTest, TheModeChangesOnlyWhileNoBlockIsLive) {
  void* p = IOMalloc(64);
  EXPECT_THROW(kpi::set_mode(kpi::Mode::xnu), UsageError);
  EXPECT_EQ(kpi::mode(), kpi::Mode::strict);
  IOFree(p, 64);
  kpi::set_mode(kpi::Mode::xnu);
  EXPECT_EQ(kpi::mode(), kpi::Mode::xnu);
}

/// xnu mode: the KPI keeps no record of heap blocks. It checks tags and page
/// runs; what else is caught is what the backend itself catches.
class KpiXnuDeathTest : public KpiDeathTest {
 protected:
  void SetUp() override {
    KpiDeathTest::SetUp();
    kpi::set_mode(kpi::Mode::xnu);
  }
};

TEST_P(KpiXnuDeathTest, AFreeWithAnotherSizeOfTheSameKallocClassIsAccepted) {
  void* p = IOMalloc(100);
  EXPECT_EQ(family("IOMalloc").live_bytes, 128);  // kalloc's class, what XNU's zone holds
  IOFree(p, 128);
  void* q = IOMalloc(5000);
  IOFree(q, 6000);  // kalloc.6144 both
  void* r = IOMallocAligned(40, 32);
  IOFreeAligned(r, 48);
  EXPECT_EQ(family("IOMalloc").live_bytes, 0);
  EXPECT_EQ(family("IOMallocAligned").live_bytes, 0);
}

TEST_P(KpiXnuDeathTest, PageRunsKeepTheirRecord) {
  void* p = IOMallocPageable(3 * 4096 + 1, 4096);
  EXPECT_DEATH(IOFreePageable(p, 4096), line("IOFreePageable: size 4096 does not match the block \\(12289 bytes, another page count\\)", "4096", "-"));
  EXPECT_DEATH(IOFree(p, 12289), line("IOFree: block was allocated by IOMallocPageable, not IOMalloc", "12289", "-"));
  IOFreePageable(p, 4 * 4096);  // the same pages: accepted
  EXPECT_DEATH(IOFreePageable(p, 4 * 4096), line("IOFreePageable: double free \\(a IOMallocPageable block of 12289 bytes", "16384", "-"));
}

TEST_P(KpiXnuDeathTest, TagfreeWithLiveBlocksIsDeferred) {
  OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.deferred", OSMT_DEFAULT);
  void* p = OSMalloc(64, t);
  void* q = OSMalloc(8000, t);
  OSMalloc_Tagfree(t);
  EXPECT_EQ(tag("com.kmbench.deferred").state, kpi::TagUsage::State::freed_pending);
  EXPECT_DEATH(OSMalloc(16, t), line("OSMalloc: tag was freed .*waits for its last block", "16", "com.kmbench.deferred"));
  OSFree(p, 64, t);
  EXPECT_EQ(tag("com.kmbench.deferred").state, kpi::TagUsage::State::freed_pending);
  OSFree(q, 8000, t);
  EXPECT_EQ(tag("com.kmbench.deferred").state, kpi::TagUsage::State::released);
  EXPECT_DEATH(OSFree(p, 64, t), line("OSFree: tag was freed", "64", "com.kmbench.deferred"));
}

TEST_P(KpiXnuDeathTest, NullAndFreedTagsStillPanic) {
  EXPECT_DEATH(OSMalloc(10, nullptr), line("OSMalloc: NULL tag", "10", "-"));
  OSMallocTag t = OSMalloc_Tagalloc("com.kmbench.gone", OSMT_DEFAULT);
  OSMalloc_Tagfree(t);
  EXPECT_DEATH(OSMalloc(32, t), line("OSMalloc: tag was freed", "32", "com.kmbench.gone"));
  EXPECT_DEATH(OSMalloc_Tagfree(t), "kmbench: panic: OSMalloc_Tagfree: tag already freed");
}

/// On zones the checks are XNU's own: the zone's page map and its free cookie.
class KpiXnuZonesDeathTest : public KpiXnuDeathTest {};

TEST_P(KpiXnuZonesDeathTest, TheZoneCatchesAnotherClassADoubleFreeAndAStrayPointer) {
  void* p = IOMalloc(100);
  EXPECT_DEATH(IOFree(p, 60), "kmbench: panic: kfree of 0x[0-9a-f]+ with size 64 \\(zone .*64\\) but the element is in zone .*128");
  IOFree(p, 100);
  EXPECT_DEATH(IOFree(p, 100), "kmbench: panic: double free of 0x[0-9a-f]+ \\(size 128\\)");
  static char not_a_block[64];
  EXPECT_DEATH(IOFree(not_a_block, 64), "kmbench: panic: kfree of 0x[0-9a-f]+ \\(size 64\\): the pointer belongs to no zone");
}

// KMBENCH_BACKEND=NAME,key=value,...: the backend opens with those parameters;
// a parameter it does not have, or a value out of range, exits with 2 naming it.
TEST(KpiEnvironmentDeathTest, BackendParametersInTheEnvironment) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: the KPI not yet opened
  EXPECT_EXIT(
      {
        setenv("KMBENCH_BACKEND", "zones,cache=on,magazine=16", 1);
        IOFree(IOMalloc(64), 64);
        double magazine = 0;
        for (const Metric& m : kpi::backend().stats().backend.metrics) {
          if (m.name == "backend.zones.cache.magazine_size") magazine = m.value;
        }
        std::fprintf(stderr, "backend %s, magazine %g\n", kpi::backend().name().c_str(), magazine);
        std::exit(magazine == 16 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "backend zones, magazine 16");
  EXPECT_EXIT(
      {
        setenv("KMBENCH_BACKEND", "zones,magazine=2048", 1);
        IOMalloc(1);
      },
      ::testing::ExitedWithCode(2), "KMBENCH_BACKEND=zones,magazine=2048: zones: magazine=2048 is outside 1..1024");
  EXPECT_EXIT(
      {
        setenv("KMBENCH_BACKEND", "slab,wombat", 1);
        IOMalloc(1);
      },
      ::testing::ExitedWithCode(2), "KMBENCH_BACKEND=slab,wombat: backend parameter 'wombat' is not key=value");
}

// A worker's backend is a link-time choice: the message names the library to link.
TEST(KpiEnvironmentDeathTest, AWorkersBackendNamesTheLibraryToLink) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("KMBENCH_BACKEND", "jemalloc,tcache=off", 1);
        IOMalloc(1);
      },
      ::testing::ExitedWithCode(2),
      "KMBENCH_BACKEND=jemalloc,tcache=off: backend 'jemalloc' owns the process's malloc; link the driver "
      "with kmbench::kpi_jemalloc instead of kmbench::kpi");
}

TEST(KpiEnvironmentDeathTest, UnknownBackendInTheEnvironmentExitsWith2) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: the KPI not yet opened
  EXPECT_EXIT(
      {
        setenv("KMBENCH_BACKEND", "no-such-backend", 1);
        IOMalloc(1);
      },
      ::testing::ExitedWithCode(2), "KMBENCH_BACKEND=no-such-backend: unknown backend");
  EXPECT_EXIT(
      {
        setenv("KMBENCH_KPI_MODE", "lenient", 1);
        IOMalloc(1);
      },
      ::testing::ExitedWithCode(2), "KMBENCH_KPI_MODE: KPI mode 'lenient' is not 'strict' or 'xnu'");
}

KMBENCH_KPI_ON_EVERY_BACKEND(KpiDeathTest);
KMBENCH_KPI_ON_EVERY_BACKEND(KpiXnuDeathTest);
INSTANTIATE_TEST_SUITE_P(Zones, KpiXnuZonesDeathTest, ::testing::Values("zones", "zones-kt"),
                         ::kmbench::testing::backend_test_name);

}  // namespace
}  // namespace kmbench::testing
