// Maps of descriptors whose pieces are not virtually adjacent: one new range
// shows the pieces end to end, and each byte of it is the piece's own byte.
#include <IOKit/IOBufferMemoryDescriptor.h>
#include <IOKit/IOMultiMemoryDescriptor.h>
#include <IOKit/IOSubMemoryDescriptor.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "tests/dma/dma_test.h"

namespace kmbench::testing {
namespace {

constexpr IOByteCount kPage = 4096;

char* bytes_of(IOBufferMemoryDescriptor* b) { return static_cast<char*>(b->getBytesNoCopy()); }
char* bytes_of(IOMemoryMap* m) { return reinterpret_cast<char*>(m->getVirtualAddress()); }

/// The lines of /proc/self/maps that show memory moved for views.
int view_files_mapped() {
  std::FILE* f = std::fopen("/proc/self/maps", "re");
  int n = 0;
  char line[512];
  while (f != nullptr && std::fgets(line, sizeof line, f) != nullptr) {
    n += std::strstr(line, "kmbench-view") != nullptr;
  }
  if (f != nullptr) {
    std::fclose(f);
  }
  return n;
}

/// The permissions of the mapping holding `address` ("rw-p", ...).
std::string protection_at(const void* address) {
  std::FILE* f = std::fopen("/proc/self/maps", "re");
  char line[512];
  std::string perms;
  const auto a = reinterpret_cast<unsigned long long>(address);
  while (f != nullptr && std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long long begin = 0, end = 0;
    char p[5] = {};
    if (std::sscanf(line, "%llx-%llx %4s", &begin, &end, p) == 3 && begin <= a && a < end) {
      perms = p;
    }
  }
  if (f != nullptr) {
    std::fclose(f);
  }
  return perms;
}

/// Two page-layer buffers of two pages each, apart in memory: a multi-descriptor of (a, b).
class GatheredMap : public DmaTest {
 protected:
  void SetUp() override {
    DmaTest::SetUp();
    a_ = IOBufferMemoryDescriptor::withCapacity(2 * kPage, kIODirectionInOut);
    spacer_ = IOBufferMemoryDescriptor::withCapacity(kPage, kIODirectionInOut);
    b_ = IOBufferMemoryDescriptor::withCapacity(2 * kPage, kIODirectionInOut);
    ASSERT_NE(a_, nullptr);
    ASSERT_NE(b_, nullptr);
    if (bytes_of(a_) + 2 * kPage == bytes_of(b_)) {
      std::swap(a_, b_);  // the page layer put b right after a: (b, a) are apart
    }
    std::memset(bytes_of(a_), 'a', 2 * kPage);
    std::memset(bytes_of(b_), 'b', 2 * kPage);
    IOMemoryDescriptor* parts[] = {a_, b_};
    multi_ = IOMultiMemoryDescriptor::withDescriptors(parts, 2, kIODirectionInOut);
    ASSERT_NE(multi_, nullptr);
  }
  void TearDown() override {
    OSSafeReleaseNULL(multi_);
    OSSafeReleaseNULL(a_);
    OSSafeReleaseNULL(spacer_);
    OSSafeReleaseNULL(b_);
    EXPECT_EQ(kpi::dma_stats().gathered_pages, 0u) << "a view outlived its map";
    EXPECT_EQ(view_files_mapped(), 0) << "pages stayed shared after their last view";
    DmaTest::TearDown();
  }

  IOBufferMemoryDescriptor* a_ = nullptr;
  IOBufferMemoryDescriptor* spacer_ = nullptr;
  IOBufferMemoryDescriptor* b_ = nullptr;
  IOMultiMemoryDescriptor* multi_ = nullptr;
};

TEST_P(GatheredMap, PiecesShowEndToEndAndShareEveryByte) {
  IOMemoryMap* map = multi_->map();
  ASSERT_NE(map, nullptr);
  char* v = bytes_of(map);
  EXPECT_EQ(map->getLength(), 4 * kPage);
  EXPECT_NE(v, bytes_of(a_));
  EXPECT_EQ(v[0], 'a');
  EXPECT_EQ(v[2 * kPage - 1], 'a');
  EXPECT_EQ(v[2 * kPage], 'b');
  EXPECT_EQ(v[4 * kPage - 1], 'b');

  v[10] = 'X';            // through the map, into a
  v[2 * kPage + 20] = 'Y';  // into b
  bytes_of(a_)[kPage + 7] = 'Z';  // through the piece, seen in the map
  EXPECT_EQ(bytes_of(a_)[10], 'X');
  EXPECT_EQ(bytes_of(b_)[20], 'Y');
  EXPECT_EQ(v[kPage + 7], 'Z');

  EXPECT_EQ(map->getPhysicalSegment(2 * kPage, nullptr), b_->getPhysicalAddress())
      << "the map's physical pages are the pieces' own";
  const kpi::DmaStats s = kpi::dma_stats();
  EXPECT_EQ(s.gathered_maps, 1u);
  EXPECT_EQ(s.gathered_pages, 4u);
  EXPECT_EQ(view_files_mapped(), 2 * 2) << "the pieces' pages and the view, for each piece";

  map->release();
  EXPECT_EQ(kpi::dma_stats().gathered_pages, 0u);
  EXPECT_EQ(protection_at(bytes_of(a_)), "rw-p") << "the pieces are private memory again";
  EXPECT_EQ(bytes_of(a_)[10], 'X') << "with the bytes written through the map";
  EXPECT_EQ(bytes_of(b_)[20], 'Y');
  EXPECT_EQ(bytes_of(a_)[kPage + 7], 'Z');
  EXPECT_EQ(bytes_of(b_)[2 * kPage - 1], 'b');
}

TEST_P(GatheredMap, TwoMapsShowTheSameBytesUntilTheLastGoes) {
  IOMemoryMap* first = multi_->map();
  IOMemoryMap* second = multi_->map();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_NE(bytes_of(first), bytes_of(second)) << "each map is a range of its own";
  bytes_of(first)[3] = 'Q';
  EXPECT_EQ(bytes_of(second)[3], 'Q');
  EXPECT_EQ(kpi::dma_stats().gathered_pages, 4u) << "a page is shared once, whatever the views";

  first->release();
  bytes_of(second)[4] = 'R';
  EXPECT_EQ(bytes_of(a_)[4], 'R') << "the pieces stay shared while a view shows them";
  EXPECT_EQ(kpi::dma_stats().gathered_pages, 4u);
  second->release();
  EXPECT_EQ(bytes_of(a_)[3], 'Q');
  EXPECT_EQ(bytes_of(a_)[4], 'R');
}

TEST_P(GatheredMap, PartsOfPiecesAndReadOnlyMaps) {
  // From the middle of a's first page to the middle of b's second: the view keeps the offset.
  IOMemoryMap* part =
      multi_->createMappingInTask(kernel_task, 0, kIOMapAnywhere | kIOMapReadOnly, 100, 3 * kPage);
  ASSERT_NE(part, nullptr);
  EXPECT_EQ(part->getVirtualAddress() % kPage, 100u);
  EXPECT_EQ(part->getLength(), 3 * kPage);
  bytes_of(a_)[100] = 'F';
  bytes_of(b_)[kPage + 99] = 'L';
  EXPECT_EQ(bytes_of(part)[0], 'F');
  EXPECT_EQ(bytes_of(part)[3 * kPage - 1], 'L');
  EXPECT_EQ(protection_at(bytes_of(part)), "r--s");
  EXPECT_EQ(part->getMapOptions() & kIOMapReadOnly, static_cast<IOOptionBits>(kIOMapReadOnly));
  EXPECT_EQ(part->unmap(), kIOReturnSuccess);
  EXPECT_EQ(part->getVirtualAddress(), 0u);
  EXPECT_EQ(kpi::dma_stats().gathered_pages, 0u) << "unmap() gives the view back at once";
  part->release();

  // Within one piece there is nothing to gather: the piece's own address.
  IOMemoryMap* inside = multi_->createMappingInTask(kernel_task, 0, kIOMapAnywhere, 2 * kPage, kPage);
  ASSERT_NE(inside, nullptr);
  EXPECT_EQ(bytes_of(inside), bytes_of(b_));
  inside->release();
  EXPECT_EQ(kpi::dma_stats().gathered_maps, 1u);
}

TEST_P(GatheredMap, PiecesThatMeetInsideAPageAreRefused) {
  IOSubMemoryDescriptor* head = IOSubMemoryDescriptor::withSubRange(a_, 0, 100, kIODirectionInOut);
  IOSubMemoryDescriptor* tail = IOSubMemoryDescriptor::withSubRange(b_, 0, 100, kIODirectionInOut);
  IOMemoryDescriptor* parts[] = {head, tail};
  IOMultiMemoryDescriptor* cut = IOMultiMemoryDescriptor::withDescriptors(parts, 2, kIODirectionInOut);
  EXPECT_EQ(cut->map(), nullptr) << "a page of the view would have to show two pieces";
  EXPECT_EQ(kpi::dma_stats().maps_refused_unaligned, 1u);
  EXPECT_EQ(kpi::dma_stats().gathered_pages, 0u);
  cut->release();
  head->release();
  tail->release();
}

TEST_P(GatheredMap, TheDriversOwnMemoryMapsAndReadOnlyMemoryIsRefused) {
  const std::size_t bytes = 3 * kPage;
  auto* own = static_cast<char*>(
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(own, MAP_FAILED);
  own[0] = '0';
  own[2 * kPage] = '2';
  IOAddressRange ranges[] = {{reinterpret_cast<mach_vm_address_t>(own), kPage},
                             {reinterpret_cast<mach_vm_address_t>(own + 2 * kPage), kPage}};
  IOMemoryDescriptor* md =
      IOMemoryDescriptor::withAddressRanges(ranges, 2, kIODirectionInOut, kernel_task);
  ASSERT_NE(md, nullptr);
  IOMemoryMap* map = md->map();
  ASSERT_NE(map, nullptr);
  EXPECT_EQ(bytes_of(map)[0], '0');
  EXPECT_EQ(bytes_of(map)[kPage], '2') << "the skipped page is not in the view";
  bytes_of(map)[kPage + 1] = '!';
  EXPECT_EQ(own[2 * kPage + 1], '!');
  map->release();
  md->release();

  ASSERT_EQ(mprotect(own + 2 * kPage, kPage, PROT_READ), 0);
  md = IOMemoryDescriptor::withAddressRanges(ranges, 2, kIODirectionInOut, kernel_task);
  EXPECT_EQ(md->map(), nullptr) << "read-only memory cannot move to shared memory";
  EXPECT_EQ(kpi::dma_stats().maps_refused_memory, 1u);
  EXPECT_EQ(own[0], '0') << "a refused map changes nothing";
  EXPECT_EQ(protection_at(own), "rw-p");
  md->release();
  munmap(own, bytes);
}

TEST_P(GatheredMap, ThreadsMapAndUnmapTheSamePieces) {
  auto round_trips = [this](char mark) {
    for (int i = 0; i < 40; ++i) {
      IOMemoryMap* map = multi_->map();
      ASSERT_NE(map, nullptr);
      // Each thread writes its own byte of b; both stay, whoever maps last.
      bytes_of(map)[2 * kPage + (mark == 'x' ? 0 : 64)] = mark;
      EXPECT_EQ(bytes_of(map)[0], 'a');
      map->release();
    }
  };
  std::thread one(round_trips, 'x');
  std::thread two(round_trips, 'y');
  one.join();
  two.join();
  EXPECT_EQ(kpi::dma_stats().gathered_maps, 80u);
  EXPECT_EQ(bytes_of(b_)[0], 'x');
  EXPECT_EQ(bytes_of(b_)[64], 'y');
}

INSTANTIATE_TEST_SUITE_P(AllBackends, GatheredMap, ::testing::ValuesIn(dma_backends()), dma_test_name);

}  // namespace
}  // namespace kmbench::testing
