// The replay's KPI path: a recording made through the KPI (KMBENCH_RECORD)
// replays each allocation and free through the KPI call the driver made —
// IOMalloc, IOMallocAligned, IOMallocContiguous, IOMallocPageable, OSMalloc
// and its noblock/nowait forms, OSObject::operator new — and the free of the
// same family, on the run's backend lent to the KPI (kpi::BackendLoan), so
// that a result holds what the driver paid: the KPI's checks and bookkeeping
// and the backend's call. Page families take their pages from the run's
// machine, as the KPI takes them from the kernel's VM, not from the backend.
// IOBufferMemoryDescriptor and IODMACommand steps keep the replay's own paths.
//
// The KPI's types stay in kpi_path.cpp; the replay loop holds opaque tags.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/replay/replay.h"

struct __OSMallocTag__;

namespace kmbench::replay {

/// The OSMalloc tags of a run, one per dense tag id its OSMalloc steps use,
/// made (OSMalloc_Tagalloc, with the program's tag names; OSMT_PAGEABLE when
/// one of the tag's allocations was pageable) before the passes and freed
/// after them. pre: a kpi::BackendLoan is in force for the object's life.
class KpiTags {
 public:
  explicit KpiTags(const Program& program);
  ~KpiTags();
  KpiTags(const KpiTags&) = delete;
  KpiTags& operator=(const KpiTags&) = delete;
  __OSMallocTag__* operator[](std::uint16_t id) const noexcept { return tags_[id]; }

 private:
  std::vector<__OSMallocTag__*> tags_;  // by dense tag id; nullptr where no OSMalloc step uses it
};

/// The step's KPI call (st.call); nullptr when it failed.
void* kpi_allocate(const Step& st, const KpiTags& tags) noexcept;
/// Frees a block kpi_allocate gave for a step of the same call, size and tag
/// (a free step carries its allocation's), through that family's free.
void kpi_free(void* p, const Step& st, const KpiTags& tags) noexcept;
/// True when the KPI serves the step's call from page runs of the machine,
/// not from the backend (IOMallocPageable, IOMallocContiguous, pageable OSMalloc).
bool kpi_from_pages(const Step& st) noexcept;

/// The KPI's allocations and frees so far, by family (kpi::family_usage()).
std::vector<KpiFamilyCount> kpi_family_counts();
/// after - before, by family; families with no call in between left out.
std::vector<KpiFamilyCount> kpi_family_delta(const std::vector<KpiFamilyCount>& before,
                                             const std::vector<KpiFamilyCount>& after);

/// Says in a result what a replay through the KPI in `mode` measured.
std::string kpi_note(kpi::Mode mode);

/// The KPI in `mode` for the scope's life (the replay's --kpi-mode), then in
/// the mode it was in. pre: no KPI block is live (kpi::set_mode).
class KpiModeScope {
 public:
  explicit KpiModeScope(kpi::Mode mode);
  ~KpiModeScope();
  KpiModeScope(const KpiModeScope&) = delete;
  KpiModeScope& operator=(const KpiModeScope&) = delete;

 private:
  kpi::Mode previous_;
};

}  // namespace kmbench::replay
