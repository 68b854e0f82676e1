#include "harness/replay/dma_path.h"

#include <IOKit/IODMACommand.h>
#include <IOKit/IOMapper.h>
#include <IOKit/IOMemoryDescriptor.h>
#include <mach/mach_types.h>

namespace kmbench::replay {
namespace {

IODirection direction_of(const Step& s) {
  const bool in = (s.flags & ops::kOpDirIn) != 0;
  const bool out = (s.flags & ops::kOpDirOut) != 0;
  if (in && out) return kIODirectionInOut;
  return in ? kIODirectionIn : kIODirectionOut;  // no direction recorded: the device reads
}

}  // namespace

DmaHandle dma_prepare(void* block, const Step& s) noexcept {
  DmaHandle h;
  if (block == nullptr || s.size() == 0) return h;
  IOMemoryDescriptor* md = IOMemoryDescriptor::withAddressRange(
      reinterpret_cast<mach_vm_address_t>(block), s.size(), direction_of(s), kernel_task);
  if (md == nullptr) return h;
  const UInt8 bits = (s.flags & ops::kOpDma32) != 0 ? 32 : 64;
  IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost64, bits, 0);
  if (cmd == nullptr || cmd->setMemoryDescriptor(md, true) != kIOReturnSuccess) {
    OSSafeReleaseNULL(cmd);
    md->release();
    return h;
  }
  // What the driver then hands its device: every segment of the transfer.
  UInt64 offset = 0;
  IODMACommand::Segment64 segments[16];
  bool first = true;
  for (;;) {
    UInt32 n = 16;
    if (cmd->gen64IOVMSegments(&offset, segments, &n) != kIOReturnSuccess || n == 0) break;
    if (first) {
      // Without an IOMMU the device sees the block's own physical address, or a bounce buffer's.
      h.bounced = IOMapper::gSystem == nullptr &&
                  segments[0].fIOVMAddr != md->getPhysicalSegment(0, nullptr, kIOMemoryMapperNone);
      first = false;
    }
  }
  h.command = cmd;
  h.descriptor = md;
  return h;
}

void dma_complete(DmaHandle& h) noexcept {
  if (h.command == nullptr) return;
  auto* cmd = static_cast<IODMACommand*>(h.command);
  cmd->clearMemoryDescriptor(true);  // completes the prepare
  cmd->release();
  static_cast<IOMemoryDescriptor*>(h.descriptor)->release();
  h = DmaHandle{};
}

void dma_begin(bool iommu, unsigned iommu_bits) {
  kpi::reset_dma_stats();
  if (iommu) {
    IOMapper* mapper = IOMapper::withAddressBits(static_cast<UInt8>(iommu_bits));
    IOMapper::setSystemMapper(mapper);
    OSSafeReleaseNULL(mapper);
  }
}

void dma_reset_counters() { kpi::reset_dma_stats(); }

kpi::DmaStats dma_end() {
  const kpi::DmaStats s = kpi::dma_stats();
  IOMapper::setSystemMapper(nullptr);
  return s;
}

std::string dma_note(bool physical_backend, bool iommu, unsigned iommu_bits, bool lent) {
  std::string note =
      "KPI IODMACommand: prepare, gen64IOVMSegments and complete over IOMemoryDescriptor::withAddressRange "
      "of each buffer the backend handed out; ";
  note += physical_backend ? "physical pages of the simulated machine; "
                           : "process memory (not the simulated machine's): lent frames above "
                             "1 TiB, never adjacent; ";
  note += iommu ? "system IOMapper with " + std::to_string(iommu_bits) + "-bit I/O addresses"
                : physical_backend ? "no IOMMU" : "no IOMMU, so every 32-bit transfer bounces";
  note += lent ? "; the KPI's own objects (a descriptor and a command per transfer) come from this backend, lent "
                 "to the KPI"
               : "; the KPI's own objects come from the KPI's backend";
  return note;
}

}  // namespace kmbench::replay
