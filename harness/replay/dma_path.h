// The replay's DMA path: a dma_map step is what a driver does to start a
// transfer on a buffer — an IOMemoryDescriptor over the block, an
// IODMACommand (64-bit, or 32-bit for a kOpDma32 transfer) prepared on it and
// its segments generated — and dma_unmap completes and releases them. It goes
// through the KPI's own DMA layer (kpi/src/dma, docs/dma.md), so segments,
// bounce buffers and IOMMU mappings are the KPI's: physical pages of the
// simulated machine for machine-backed backends, lent frames (above 1 TiB, one
// segment per page) for the glibc and bump backends, a system IOMapper when
// asked for.
//
// The IOKit types stay in dma_path.cpp; the replay loop holds opaque handles.
#pragma once

#include <kmbench/dma.h>

#include <string>

#include "harness/replay/program.h"

namespace kmbench::replay {

/// One prepared transfer: the IODMACommand and its IOMemoryDescriptor.
struct DmaHandle {
  void* command = nullptr;
  void* descriptor = nullptr;
  bool bounced = false;  // the device was given a bounce buffer, not the block itself
};

/// Prepares a transfer of s.size() bytes at `block` in the step's direction and
/// generates its segments. post: an empty handle when the KPI refused it.
DmaHandle dma_prepare(void* block, const Step& s) noexcept;
/// Completes the transfer and releases what dma_prepare made. post: h is empty.
void dma_complete(DmaHandle& h) noexcept;

/// Starts a replay's DMA accounting; with `iommu`, transfers go through a
/// system IOMapper of `iommu_bits` address bits until dma_end.
void dma_begin(bool iommu, unsigned iommu_bits);
/// The DMA layer's counters since dma_begin; removes the system IOMapper.
kpi::DmaStats dma_end();
/// Says in a result what the DMA figures are.
/// lent: the backend replayed serves the KPI (a replay through the KPI, kpi_path.h).
std::string dma_note(bool physical_backend, bool iommu, unsigned iommu_bits, bool lent);
/// Zeroes the DMA layer's counters (the timed pass starts).
void dma_reset_counters();

}  // namespace kmbench::replay
