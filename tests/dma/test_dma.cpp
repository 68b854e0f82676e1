#include <IOKit/IOBufferMemoryDescriptor.h>
#include <IOKit/IODMACommand.h>
#include <IOKit/IODeviceMemory.h>
#include <IOKit/IOInterleavedMemoryDescriptor.h>
#include <IOKit/IOLib.h>
#include <IOKit/IOMapper.h>
#include <IOKit/IOMemoryCursor.h>
#include <IOKit/IOMultiMemoryDescriptor.h>
#include <IOKit/IORangeAllocator.h>
#include <IOKit/IOSubMemoryDescriptor.h>
#include <libkern/OSByteOrder.h>

#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

#include "tests/dma/dma_test.h"

namespace kmbench::testing {
namespace {

constexpr UInt64 k4GiB = 4ull << 30;

std::vector<unsigned char> pattern(std::size_t n, unsigned seed) {
  std::vector<unsigned char> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = static_cast<unsigned char>((i * 131 + seed * 7 + (i >> 12)) & 0xff);
  }
  return v;
}

/// Every segment of a prepared command, generated with a small array at a time.
std::vector<IODMACommand::Segment64> all_segments(IODMACommand* cmd) {
  std::vector<IODMACommand::Segment64> out;
  UInt64 offset = 0;
  for (;;) {
    IODMACommand::Segment64 segs[7];
    UInt32 n = 7;
    const IOReturn r = cmd->gen64IOVMSegments(&offset, segs, &n);
    out.insert(out.end(), segs, segs + n);
    if (r != kIOReturnSuccess) {
      EXPECT_EQ(r, kIOReturnOverrun);
      break;
    }
  }
  return out;
}

UInt64 sum_lengths(const std::vector<IODMACommand::Segment64>& segs) {
  UInt64 total = 0;
  for (const auto& s : segs) {
    total += s.fLength;
  }
  return total;
}

using Dma = DmaTest;

TEST_P(Dma, A256KiBBufferThroughA32Bit4KiBCommandGivesFittingSegments) {
  IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withOptions(kIODirectionInOut, 256 << 10);
  ASSERT_NE(buf, nullptr);
  IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost64, 32, 4096);
  ASSERT_NE(cmd, nullptr);
  ASSERT_EQ(cmd->setMemoryDescriptor(buf), kIOReturnSuccess);
  const auto segs = all_segments(cmd);
  ASSERT_EQ(segs.size(), 64u);
  for (const auto& s : segs) {
    EXPECT_LE(s.fLength, 4096u);
    EXPECT_LT(s.fIOVMAddr + s.fLength - 1, k4GiB);
  }
  EXPECT_EQ(sum_lengths(segs), 256u << 10);
  cmd->clearMemoryDescriptor();
  cmd->release();
  buf->release();
}

// Ordinary memory lies wherever the backend put it: a 32-bit device reaches
// every byte of it, through bounce buffers for exactly the physical runs that
// lie above 4 GiB and directly for the rest.
TEST_P(Dma, HeapMemoryReachesA32BitDeviceBouncedWhereItLiesAbove4GiB) {
  // Ordinary memory: a general descriptor over an IOMalloc'd block.
  constexpr std::size_t kLen = 64 << 10;
  void* mem = IOMallocAligned(kLen, 4096);
  ASSERT_NE(mem, nullptr);
  const auto data = pattern(kLen, 3);
  std::memcpy(mem, data.data(), kLen);
  IOMemoryDescriptor* md = IOMemoryDescriptor::withAddress(mem, kLen, kIODirectionOut);
  ASSERT_NE(md, nullptr);
  ASSERT_EQ(md->prepare(), kIOReturnSuccess);
  // The block's physical runs, read from the descriptor: those above 4 GiB
  // must bounce (whole pages), the others must not.
  UInt64 expected_bounce = 0;
  unsigned runs = 0;
  for (IOByteCount at = 0; at < kLen;) {
    IOByteCount len = 0;
    const addr64_t pa = md->getPhysicalSegment(at, &len, 0);
    ASSERT_NE(pa, 0u);
    len = std::min<IOByteCount>(len, kLen - at);
    if (pa + len - 1 >= k4GiB) expected_bounce += (len + 4095) & ~IOByteCount{4095};
    ++runs;
    at += len;
  }
  const kpi::DmaStats before = kpi::dma_stats();
  IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost32, 32, 0);
  ASSERT_NE(cmd, nullptr);
  ASSERT_EQ(cmd->setMemoryDescriptor(md), kIOReturnSuccess);
  UInt64 offset = 0;
  IODMACommand::Segment32 segs[64];
  UInt32 n = 64;
  ASSERT_EQ(cmd->genIOVMSegments(&offset, segs, &n), kIOReturnSuccess);
  UInt64 total = 0;
  std::vector<unsigned char> seen;
  for (UInt32 i = 0; i < n; ++i) {
    total += segs[i].fLength;
    std::vector<unsigned char> part(segs[i].fLength);
    ASSERT_EQ(cmd->kmbenchDeviceRead(segs[i].fIOVMAddr, part.data(), part.size()), part.size());
    seen.insert(seen.end(), part.begin(), part.end());
  }
  EXPECT_EQ(total, kLen);
  EXPECT_EQ(seen, data);
  for (UInt32 i = 0; i < n; ++i) {
    EXPECT_LE(UInt64{segs[i].fIOVMAddr} + segs[i].fLength, k4GiB) << "segment " << i;
  }
  EXPECT_GE(n, 1u);
  EXPECT_EQ(kpi::dma_stats().bounce_bytes - before.bounce_bytes, expected_bounce) << runs << " physical runs";
  cmd->clearMemoryDescriptor();
  cmd->release();
  md->complete();
  md->release();
  IOFreeAligned(mem, kLen);
}

TEST_P(Dma, ABufferAbove4GiBIsBouncedAndDataRoundTripsBothWays) {
  kpi::set_dma_node(1);
  constexpr std::size_t kLen = 48 << 10;
  IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withOptions(kIODirectionInOut, kLen);
  ASSERT_NE(buf, nullptr);
  ASSERT_GE(buf->getPhysicalAddress(), k4GiB);
  const auto out = pattern(kLen, 1);
  std::memcpy(buf->getBytesNoCopy(), out.data(), kLen);

  IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost64, 32, 0);
  ASSERT_NE(cmd, nullptr);
  ASSERT_EQ(cmd->setMemoryDescriptor(buf), kIOReturnSuccess);
  const auto segs = all_segments(cmd);
  ASSERT_FALSE(segs.empty());
  std::vector<unsigned char> device_saw;
  for (const auto& s : segs) {
    EXPECT_LT(s.fIOVMAddr + s.fLength - 1, k4GiB) << "segment beyond the device's reach";
    std::vector<unsigned char> part(s.fLength);
    cmd->kmbenchDeviceRead(s.fIOVMAddr, part.data(), part.size());
    device_saw.insert(device_saw.end(), part.begin(), part.end());
  }
  EXPECT_EQ(device_saw, out) << "memory -> device through the bounce buffer";

  // Device -> memory: the device writes its segments; complete() copies back.
  const auto in = pattern(kLen, 2);
  UInt64 at = 0;
  for (const auto& s : segs) {
    cmd->kmbenchDeviceWrite(s.fIOVMAddr, in.data() + at, s.fLength);
    at += s.fLength;
  }
  EXPECT_NE(std::memcmp(buf->getBytesNoCopy(), in.data(), kLen), 0) << "copied back too early";
  ASSERT_EQ(cmd->complete(), kIOReturnSuccess);
  EXPECT_EQ(std::memcmp(buf->getBytesNoCopy(), in.data(), kLen), 0) << "device -> memory";
  const kpi::DmaStats stats = kpi::dma_stats();
  EXPECT_EQ(stats.bounce_bytes, kLen);
  EXPECT_EQ(stats.bounce_copies, 2u);
  cmd->clearMemoryDescriptor();
  cmd->release();
  buf->release();
}

TEST_P(Dma, ForceDoubleBufferBouncesReachableMemoryToo) {
  IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withOptions(kIODirectionOut, 8192);
  ASSERT_NE(buf, nullptr);
  std::memset(buf->getBytesNoCopy(), 0x5a, 8192);
  IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost64, 64, 0);
  ASSERT_EQ(cmd->setMemoryDescriptor(buf), kIOReturnSuccess);
  EXPECT_EQ(kpi::dma_stats().bounce_bytes, 0u);
  ASSERT_EQ(cmd->synchronize(IODMACommand::kForceDoubleBuffer | kIODirectionOut), kIOReturnSuccess);
  const auto segs = all_segments(cmd);
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_NE(segs[0].fIOVMAddr, buf->getPhysicalAddress());
  unsigned char b[8192];
  cmd->kmbenchDeviceRead(segs[0].fIOVMAddr, b, sizeof b);
  EXPECT_EQ(b[0], 0x5a);
  EXPECT_EQ(b[8191], 0x5a);
  EXPECT_EQ(kpi::dma_stats().bounce_bytes, 8192u);
  cmd->release();  // completes and clears
  buf->release();
}

TEST_P(Dma, PhysicallyContiguousBuffersGiveOneSegment) {
  IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withCapacity(1 << 20, kIODirectionIn, true);
  ASSERT_NE(buf, nullptr);
  EXPECT_EQ(buf->getPhysicalAddress() % (1 << 20), 0u) << "aligned to its capacity";
  IOByteCount len = 0;
  buf->getPhysicalSegment(0, &len);
  EXPECT_EQ(len, 1u << 20);
  IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputLittle64, 64, 0);
  ASSERT_EQ(cmd->setMemoryDescriptor(buf), kIOReturnSuccess);
  UInt64 offset = 0;
  IODMACommand::Segment64 seg[4];
  UInt32 n = 4;
  ASSERT_EQ(cmd->genIOVMSegments(&offset, seg, &n), kIOReturnSuccess);
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(OSSwapLittleToHostInt64(seg[0].fLength), 1u << 20);
  EXPECT_EQ(OSSwapLittleToHostInt64(seg[0].fIOVMAddr), buf->getPhysicalAddress());
  EXPECT_EQ(cmd->genIOVMSegments(&offset, seg, &n), kIOReturnOverrun);
  cmd->release();
  buf->release();
}

TEST_P(Dma, SubAndMultiDescriptorsWalkAcrossBoundaries) {
  IOBufferMemoryDescriptor* a = IOBufferMemoryDescriptor::withCapacity(8192, kIODirectionInOut);
  IOBufferMemoryDescriptor* b = IOBufferMemoryDescriptor::withCapacity(12288, kIODirectionInOut);
  ASSERT_TRUE(a && b);
  const auto pa = pattern(8192, 4), pb = pattern(12288, 5);
  ASSERT_EQ(a->writeBytes(0, pa.data(), pa.size()), pa.size());
  ASSERT_EQ(b->writeBytes(0, pb.data(), pb.size()), pb.size());

  IOSubMemoryDescriptor* sub = IOSubMemoryDescriptor::withSubRange(a, 1000, 5000, kIODirectionInOut);
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(IOSubMemoryDescriptor::withSubRange(a, 4000, 5000, kIODirectionIn), nullptr);
  IOMemoryDescriptor* parts[] = {sub, b};
  IOMultiMemoryDescriptor* multi = IOMultiMemoryDescriptor::withDescriptors(parts, 2, kIODirectionInOut);
  ASSERT_NE(multi, nullptr);
  ASSERT_EQ(multi->getLength(), 5000u + 12288u);

  // Bytes across the sub/b boundary.
  std::vector<unsigned char> got(200);
  ASSERT_EQ(multi->readBytes(4900, got.data(), got.size()), got.size());
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(got[i], pa[1000 + 4900 + i]);
    EXPECT_EQ(got[100 + i], pb[i]);
  }
  // Physical segments at the boundaries are the parts' own.
  IOByteCount len = 0;
  EXPECT_EQ(multi->getPhysicalSegment(0, &len), a->getPhysicalSegment(1000, nullptr));
  EXPECT_LE(len, 5000u);
  EXPECT_EQ(multi->getPhysicalSegment(5000, &len), b->getPhysicalSegment(0, nullptr));
  EXPECT_EQ(multi->getPhysicalSegment(5000 + 12288, &len), 0u);
  EXPECT_EQ(len, 0u);

  // An interleaved descriptor: b's second page, then a's first 100 bytes.
  IOInterleavedMemoryDescriptor* il = IOInterleavedMemoryDescriptor::withCapacity(2, kIODirectionOut);
  ASSERT_TRUE(il->setMemoryDescriptor(b, 4096, 4096));
  ASSERT_TRUE(il->setMemoryDescriptor(a, 0, 100));
  EXPECT_FALSE(il->setMemoryDescriptor(a, 0, 1)) << "beyond capacity";
  std::vector<unsigned char> il_bytes(4196);
  ASSERT_EQ(il->readBytes(0, il_bytes.data(), il_bytes.size()), il_bytes.size());
  EXPECT_TRUE(std::equal(pb.begin() + 4096, pb.begin() + 8192, il_bytes.begin()));
  EXPECT_TRUE(std::equal(pa.begin(), pa.begin() + 100, il_bytes.begin() + 4096));

  // Through a DMA command: segments cover the multi descriptor exactly.
  IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost64, 64, 2048);
  ASSERT_EQ(cmd->setMemoryDescriptor(multi), kIOReturnSuccess);
  const auto segs = all_segments(cmd);
  EXPECT_EQ(sum_lengths(segs), multi->getLength());
  std::vector<unsigned char> device(multi->getLength());
  UInt64 at = 0;
  for (const auto& s : segs) {
    EXPECT_LE(s.fLength, 2048u);
    cmd->kmbenchDeviceRead(s.fIOVMAddr, device.data() + at, s.fLength);
    at += s.fLength;
  }
  EXPECT_TRUE(std::equal(pa.begin() + 1000, pa.begin() + 6000, device.begin()));
  EXPECT_TRUE(std::equal(pb.begin(), pb.end(), device.begin() + 5000));

  cmd->release();
  il->release();
  multi->release();
  sub->release();
  a->release();
  b->release();
}

TEST_P(Dma, CompositePrepareWiresEveryPieceAndCompleteUnwiresThem) {
  IOBufferMemoryDescriptor* a = IOBufferMemoryDescriptor::withCapacity(8192, kIODirectionInOut);
  IOBufferMemoryDescriptor* b = IOBufferMemoryDescriptor::withCapacity(4096, kIODirectionInOut);
  ASSERT_TRUE(a && b);
  IOSubMemoryDescriptor* sub = IOSubMemoryDescriptor::withSubRange(a, 4096, 4096, kIODirectionInOut);
  IOMemoryDescriptor* parts[] = {sub, b};
  IOMultiMemoryDescriptor* multi = IOMultiMemoryDescriptor::withDescriptors(parts, 2, kIODirectionInOut);
  IOInterleavedMemoryDescriptor* il = IOInterleavedMemoryDescriptor::withCapacity(2, kIODirectionOut);
  ASSERT_TRUE(sub && multi && il);
  ASSERT_TRUE(il->setMemoryDescriptor(b, 0, 100));
  ASSERT_TRUE(il->setMemoryDescriptor(a, 0, 100));

  // Wire counts of a, b, sub, multi, il.
  const auto wired = [&] {
    return std::vector<UInt32>{a->kmbenchWireCount(), b->kmbenchWireCount(), sub->kmbenchWireCount(),
                               multi->kmbenchWireCount(), il->kmbenchWireCount()};
  };
  ASSERT_EQ(multi->prepare(), kIOReturnSuccess);
  EXPECT_EQ(wired(), (std::vector<UInt32>{1, 1, 1, 1, 0}));
  ASSERT_EQ(il->prepare(), kIOReturnSuccess);
  EXPECT_EQ(wired(), (std::vector<UInt32>{2, 2, 1, 1, 1}));
  EXPECT_EQ(multi->complete(), kIOReturnSuccess);
  EXPECT_EQ(wired(), (std::vector<UInt32>{1, 1, 0, 0, 1}));
  // Completing what is not prepared does nothing to the pieces.
  EXPECT_EQ(multi->complete(), kIOReturnSuccess);
  EXPECT_EQ(sub->complete(), kIOReturnSuccess);
  EXPECT_EQ(wired(), (std::vector<UInt32>{1, 1, 0, 0, 1}));
  EXPECT_EQ(il->complete(), kIOReturnSuccess);
  EXPECT_EQ(wired(), (std::vector<UInt32>{0, 0, 0, 0, 0}));

  il->release();
  multi->release();
  sub->release();
  b->release();
  a->release();
}

TEST_P(Dma, OutOfRangeAccessReturnsZero) {
  IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withCapacity(1000, kIODirectionInOut);
  ASSERT_NE(buf, nullptr);
  char b[16];
  EXPECT_EQ(buf->readBytes(1000, b, sizeof b), 0u);
  EXPECT_EQ(buf->writeBytes(5000, b, sizeof b), 0u);
  EXPECT_EQ(buf->readBytes(990, b, sizeof b), 10u);
  IOByteCount len = 77;
  EXPECT_EQ(buf->getPhysicalSegment(1000, &len), 0u);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(buf->getBytesNoCopy(900, 200), nullptr);
  EXPECT_NE(buf->getBytesNoCopy(900, 100), nullptr);
  buf->setLength(2000);  // above the capacity: ignored
  EXPECT_EQ(buf->getLength(), 1000u);
  buf->setLength(10);
  EXPECT_EQ(buf->getLength(), 10u);
  EXPECT_EQ(buf->getBytesNoCopy(10, 1), nullptr);
  buf->release();
}

TEST_P(Dma, BufferRules) {
  EXPECT_EQ(IOBufferMemoryDescriptor::withCapacity(0, kIODirectionIn), nullptr);
  IOBufferMemoryDescriptor* low = IOBufferMemoryDescriptor::inTaskWithPhysicalMask(
      kernel_task, kIODirectionInOut, 20000, 0x00000000FFFFF000ull);
  ASSERT_NE(low, nullptr);
  const IOPhysicalAddress pa = low->getPhysicalAddress();
  EXPECT_EQ(pa % 4096, 0u);
  EXPECT_LT(pa + low->getCapacity() - 1, k4GiB);
  EXPECT_EQ(low->getCapacity(), 20480u) << "page alignment rounds the capacity to pages";
  low->release();

  IOBufferMemoryDescriptor* b = IOBufferMemoryDescriptor::withBytes("hello", 5, kIODirectionOut);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->getLength(), 5u);
  EXPECT_TRUE(b->appendBytes("!!!", 3));
  EXPECT_EQ(b->getLength(), 5u) << "withBytes makes capacity == length";
  EXPECT_EQ(std::memcmp(b->getBytesNoCopy(), "hello", 5), 0);
  b->release();

  IOBufferMemoryDescriptor* c = IOBufferMemoryDescriptor::withCapacity(64, kIODirectionOut);
  c->setLength(0);
  EXPECT_TRUE(c->appendBytes("abc", 3));
  EXPECT_TRUE(c->appendBytes("def", 3));
  EXPECT_EQ(c->getLength(), 6u);
  EXPECT_EQ(std::memcmp(c->getBytesNoCopy(), "abcdef", 6), 0);
  IOMemoryMap* map = c->map();
  ASSERT_NE(map, nullptr);
  EXPECT_EQ(map->getVirtualAddress(), reinterpret_cast<IOVirtualAddress>(c->getBytesNoCopy()));
  EXPECT_EQ(map->getLength(), 6u);
  EXPECT_EQ(map->getPhysicalAddress(), c->getPhysicalAddress());
  map->release();
  IOMemoryMap* uncached = c->map(kIOMapInhibitCache);
  IOMemoryMap* combined = c->map(kIOMapWriteCombineCache);
  ASSERT_NE(uncached, nullptr);
  ASSERT_NE(combined, nullptr);
  EXPECT_EQ(uncached->getMapOptions() & kIOMapCacheMask, static_cast<IOOptionBits>(kIOMapInhibitCache));
  const kpi::DmaStats maps = kpi::dma_stats();
  EXPECT_EQ(maps.maps_by_cache[kIODefaultCache], 1u) << "map() asks for the default cache mode";
  EXPECT_EQ(maps.maps_by_cache[kIOInhibitCache], 1u);
  EXPECT_EQ(maps.maps_by_cache[kIOWriteCombineCache], 1u);
  EXPECT_STREQ(kpi::cache_mode_name(kIOWriteCombineCache), "writecombine");
  uncached->release();
  combined->release();
  c->release();
  EXPECT_EQ(kpi::dma_stats().buffers, 3u);
}

TEST_P(Dma, TransferLimitsAndSpecifications) {
  EXPECT_EQ(IODMACommand::withSpecification(kIODMACommandOutputHost32, 40, 0), nullptr)
      << "32-bit output functions cannot take more than 32 address bits";
  IODMACommand* c32 = IODMACommand::withSpecification(kIODMACommandOutputBig32, 0, 0);
  ASSERT_NE(c32, nullptr);
  EXPECT_EQ(c32->getNumAddressBits(), 32);
  c32->release();

  IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withCapacity(16384, kIODirectionOut);
  IODMACommand* cmd =
      IODMACommand::withSpecification(kIODMACommandOutputHost64, 64, 0, IODMACommand::kMapped, 8192);
  ASSERT_EQ(cmd->setMemoryDescriptor(buf, false), kIOReturnSuccess);
  EXPECT_EQ(cmd->prepare(), kIOReturnNoSpace);
  EXPECT_EQ(cmd->prepare(4096, 8192), kIOReturnSuccess);
  EXPECT_EQ(cmd->prepare(4096, 8192), kIOReturnSuccess) << "nested";
  UInt64 off = 0, len = 0;
  ASSERT_EQ(cmd->getPreparedOffsetAndLength(&off, &len), kIOReturnSuccess);
  EXPECT_EQ(off, 4096u);
  EXPECT_EQ(len, 8192u);
  EXPECT_EQ(buf->kmbenchWireCount(), 1u);
  EXPECT_EQ(cmd->complete(), kIOReturnSuccess);
  EXPECT_EQ(cmd->complete(), kIOReturnSuccess);
  EXPECT_EQ(cmd->complete(), kIOReturnNotReady);
  EXPECT_EQ(buf->kmbenchWireCount(), 0u);
  IODMACommand* clone = cmd->cloneCommand();
  ASSERT_NE(clone, nullptr);
  EXPECT_EQ(clone->getMemoryDescriptor(), nullptr);
  clone->release();
  cmd->release();
  buf->release();
}

TEST_P(Dma, AnIOMMUMakesScatteredMemoryOneSegment) {
  constexpr std::size_t kLen = 32 << 10;
  std::vector<unsigned char> heap(kLen + 4096);
  auto* mem = reinterpret_cast<unsigned char*>(
      (reinterpret_cast<std::uintptr_t>(heap.data()) + 4095) & ~std::uintptr_t{4095});
  const auto data = pattern(kLen, 9);
  std::memcpy(mem, data.data(), kLen);
  IOMemoryDescriptor* md = IOMemoryDescriptor::withAddress(mem, kLen, kIODirectionOut);
  IOByteCount first = 0;
  md->getPhysicalSegment(0, &first);
  EXPECT_EQ(first, 4096u) << "heap pages get scattered frames";

  IOMapper* mapper = IOMapper::withAddressBits(32);
  ASSERT_NE(mapper, nullptr);
  IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost64, 32, 0,
                                                      IODMACommand::kMapped, 0, 1, mapper);
  ASSERT_EQ(cmd->setMemoryDescriptor(md), kIOReturnSuccess);
  const auto segs = all_segments(cmd);
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(segs[0].fLength, kLen);
  EXPECT_LT(segs[0].fIOVMAddr + kLen - 1, k4GiB);
  std::vector<unsigned char> seen(kLen);
  EXPECT_EQ(cmd->kmbenchDeviceRead(segs[0].fIOVMAddr, seen.data(), kLen), kLen);
  EXPECT_EQ(seen, data);
  const kpi::DmaStats s = kpi::dma_stats();
  EXPECT_EQ(s.bounce_bytes, 0u);
  EXPECT_EQ(s.iommu_mappings, 1u);
  EXPECT_EQ(s.iommu_pages, 8u);
  cmd->release();
  EXPECT_EQ(mapper->mapToPhysicalAddress(segs[0].fIOVMAddr), 0u) << "unmapped at complete";
  mapper->release();
  md->release();
}

TEST_P(Dma, MemoryCursorsCutSegments) {
  // withCapacity(.., true) would align to the capacity and round it to pages.
  IOBufferMemoryDescriptor* buf =
      IOBufferMemoryDescriptor::withOptions(kIODirectionOut | kIOMemoryPhysicallyContiguous, 10000);
  ASSERT_EQ(buf->getLength(), 10000u);
  IONaturalMemoryCursor* natural = IONaturalMemoryCursor::withSpecification(4096, 0);
  IOMemoryCursor::PhysicalSegment segs[8];
  IOByteCount moved = 0;
  const UInt32 n = natural->getPhysicalSegments(buf, 0, segs, 8, 0, &moved);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(moved, 10000u);
  EXPECT_EQ(segs[0].location, buf->getPhysicalAddress());
  EXPECT_EQ(segs[2].length, 10000u - 8192u);
  IOBigMemoryCursor* big = IOBigMemoryCursor::withSpecification(0, 6000);
  ASSERT_EQ(big->getPhysicalSegments(buf, 0, segs, 8, 0, &moved), 1u);
  EXPECT_EQ(moved, 6000u);
  EXPECT_EQ(OSSwapBigToHostInt64(segs[0].length), 6000u);
  big->release();
  natural->release();
  buf->release();
}

TEST_P(Dma, DeviceMemoryReadsTheSimulatedRAM) {
  IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withCapacity(4096, kIODirectionOut, true);
  std::memcpy(buf->getBytesNoCopy(), "device registers", 17);
  IODeviceMemory* dev = IODeviceMemory::withRange(buf->getPhysicalAddress(), 4096);
  ASSERT_NE(dev, nullptr);
  char b[17];
  EXPECT_EQ(dev->readBytes(0, b, 17), 17u);
  EXPECT_STREQ(b, "device registers");
  IODeviceMemory* sub = IODeviceMemory::withSubRange(dev, 7, 9);
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->getPhysicalAddress(), buf->getPhysicalAddress() + 7);
  EXPECT_EQ(IODeviceMemory::withSubRange(dev, 4000, 100), nullptr);
  EXPECT_EQ(IOMappedRead8(buf->getPhysicalAddress() + 7), 'r');
  sub->release();
  dev->release();
  buf->release();
}

INSTANTIATE_TEST_SUITE_P(AllBackends, Dma, ::testing::ValuesIn(dma_backends()), dma_test_name);

// IORangeAllocator needs no backend.
TEST(IORangeAllocator, FirstFitAlignmentMergingAndOverlapRefusal) {
  IORangeAllocator* r = IORangeAllocator::withRange(0xFFFF, 16);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->getFreeCount(), 0x10000u);
  IORangeScalar a, b, c;
  ASSERT_TRUE(r->allocate(100, &a));
  ASSERT_TRUE(r->allocate(100, &b));
  ASSERT_TRUE(r->allocate(100, &c, 0x1000));
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 112u) << "default alignment 16";
  EXPECT_EQ(c, 0x1000u);
  EXPECT_EQ(r->getFragmentCount(), 3u) << "[100,111], [212,0xfff], [0x1064,0xffff]";
  EXPECT_FALSE(r->allocateRange(150, 10)) << "allocated already";
  EXPECT_TRUE(r->allocateRange(0x2000, 0x100));
  r->deallocate(b, 100);
  const IORangeScalar before = r->getFreeCount();
  r->deallocate(b, 100);  // twice: refused
  r->deallocate(b + 50, 100);
  EXPECT_EQ(r->kmbenchRefusedCount(), 2u);
  EXPECT_EQ(r->getFreeCount(), before);
  r->deallocate(a, 100);
  r->deallocate(c, 100);
  r->deallocate(0x2000, 0x100);
  EXPECT_EQ(r->getFreeCount(), 0x10000u);
  EXPECT_EQ(r->getFragmentCount(), 1u) << "neighbours merged back into one range";
  IORangeScalar big;
  EXPECT_TRUE(r->allocate(0x10000, &big));
  EXPECT_FALSE(r->allocate(1, &big));
  r->release();
}

TEST(IODMACommand, OutputFunctionsWritePairsInTheirByteOrder) {
  using Bytes = std::vector<unsigned char>;
  const Bytes big32{1, 2, 3, 4, 0, 0x0a, 0x0b, 0x0c}, little32{4, 3, 2, 1, 0x0c, 0x0b, 0x0a, 0};
  const Bytes big64{0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0x0a, 0x0b, 0x0c};
  const Bytes little64{4, 3, 2, 1, 0, 0, 0, 0, 0x0c, 0x0b, 0x0a, 0, 0, 0, 0, 0};
  constexpr bool kLittleHost = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
  const struct {
    IODMACommand::SegmentFunction fn;
    Bytes pair;  // segment 1 as written
  } cases[] = {
      {kIODMACommandOutputHost32, kLittleHost ? little32 : big32},
      {kIODMACommandOutputBig32, big32},
      {kIODMACommandOutputLittle32, little32},
      {kIODMACommandOutputHost64, kLittleHost ? little64 : big64},
      {kIODMACommandOutputBig64, big64},
      {kIODMACommandOutputLittle64, little64},
  };
  const IODMACommand::Segment64 s{0x01020304u, 0x000a0b0cu};
  const IODMACommand::Segment64 above4g{0xFFFFF000u, 0x2000u};
  for (const auto& c : cases) {
    alignas(8) unsigned char out[32] = {};
    ASSERT_TRUE(c.fn(nullptr, s, out, 1));
    EXPECT_EQ(Bytes(out + c.pair.size(), out + 2 * c.pair.size()), c.pair);
    // A 32-bit pair takes only a segment below 4 GiB.
    EXPECT_EQ(c.fn(nullptr, above4g, out, 0), c.pair.size() == 16);
  }
}

TEST(IOMapper, SystemMapperFunctions) {
  EXPECT_EQ(IOMapperIOVMAlloc(4), 0u) << "no system mapper by default";
  IOMapper* m = IOMapper::withAddressBits(30);
  IOMapper::setSystemMapper(m);
  const ppnum_t base = IOMapperIOVMAlloc(4);
  ASSERT_NE(base, 0u);
  EXPECT_EQ(IOMapperInsertPage(base, 2, 0x1234), base + 2);
  EXPECT_EQ(m->mapToPhysicalAddress((UInt64(base) + 2) * 4096 + 5), 0x1234ull * 4096 + 5);
  IOMapperIOVMFree(base, 4);
  EXPECT_EQ(m->mapToPhysicalAddress((UInt64(base) + 2) * 4096), 0u);
  IOMapper::setSystemMapper(nullptr);
  m->release();
}

}  // namespace
}  // namespace kmbench::testing
