#include "harness/replay/kpi_path.h"

#include <IOKit/IOLib.h>
#include <kmbench/kpi.h>
#include <libkern/OSMalloc.h>
#include <libkern/c++/OSObject.h>

#include "base/errors.h"

namespace kmbench::replay {

using ops::Call;

namespace {

bool is_os_malloc(Call c) noexcept {
  return c == Call::os_malloc || c == Call::os_malloc_noblock || c == Call::os_malloc_nowait;
}

}  // namespace

KpiTags::KpiTags(const Program& program) : tags_(program.tag_names.size(), nullptr) {
  std::vector<std::uint8_t> used(tags_.size(), 0), pageable(tags_.size(), 0);
  for (const auto& steps : program.threads) {
    for (const Step& s : steps) {
      if (is_alloc(s.kind) && is_os_malloc(s.call) && s.tag < used.size()) {
        used[s.tag] = 1;
        pageable[s.tag] |= (s.flags & ops::kOpPageable) != 0 ? 1 : 0;
      }
    }
  }
  for (std::size_t id = 0; id < tags_.size(); ++id) {
    if (used[id] != 0) {
      const std::string& name = program.tag_names[id];
      tags_[id] = OSMalloc_Tagalloc(name.empty() ? "(untagged)" : name.c_str(),
                                    pageable[id] != 0 ? OSMT_PAGEABLE : OSMT_DEFAULT);
    }
  }
}

KpiTags::~KpiTags() {
  for (__OSMallocTag__* t : tags_) {
    if (t != nullptr) OSMalloc_Tagfree(t);
  }
}

void* kpi_allocate(const Step& st, const KpiTags& tags) noexcept {
  const vm_size_t size = st.size();
  const vm_size_t align = vm_size_t{1} << st.align_log2;
  switch (st.call) {
    case Call::io_malloc:
      return IOMalloc(size);
    case Call::io_malloc_zero:
      return IOMallocZero(size);
    case Call::io_malloc_aligned:
      return IOMallocAligned(size, align);
    case Call::io_malloc_pageable:
      return (st.flags & ops::kOpZero) != 0 ? IOMallocPageableZero(size, align) : IOMallocPageable(size, align);
    case Call::io_malloc_contiguous: {
      // The driver asked for the physical address (the block then lies below 4 GiB).
      IOPhysicalAddress physical = 0;
      return IOMallocContiguous(size, align, (st.flags & ops::kOpDma32) != 0 ? &physical : nullptr);
    }
    case Call::os_malloc:
      return OSMalloc(static_cast<uint32_t>(size), tags[st.tag]);
    case Call::os_malloc_noblock:
      return OSMalloc_noblock(static_cast<uint32_t>(size), tags[st.tag]);
    case Call::os_malloc_nowait:
      return OSMalloc_nowait(static_cast<uint32_t>(size), tags[st.tag]);
    case Call::os_object_new:
      return OSObject::operator new(size);
    default:
      return nullptr;  // not a call the program gives this path (program.cpp: kpi_allocation)
  }
}

void kpi_free(void* p, const Step& st, const KpiTags& tags) noexcept {
  const vm_size_t size = st.size();
  switch (st.call) {
    case Call::io_malloc:
    case Call::io_malloc_zero:
      IOFree(p, size);
      break;
    case Call::io_malloc_aligned:
      IOFreeAligned(p, size);
      break;
    case Call::io_malloc_pageable:
      IOFreePageable(p, size);
      break;
    case Call::io_malloc_contiguous:
      IOFreeContiguous(p, size);
      break;
    case Call::os_malloc:
    case Call::os_malloc_noblock:
    case Call::os_malloc_nowait:
      OSFree(p, static_cast<uint32_t>(size), tags[st.tag]);
      break;
    case Call::os_object_new:
      OSObject::operator delete(p, size);
      break;
    default:
      break;
  }
}

bool kpi_from_pages(const Step& st) noexcept {
  return st.call == Call::io_malloc_pageable || st.call == Call::io_malloc_contiguous ||
         (is_os_malloc(st.call) && (st.flags & ops::kOpPageable) != 0);
}

std::vector<KpiFamilyCount> kpi_family_counts() {
  std::vector<KpiFamilyCount> out;
  for (const kpi::FamilyUsage& f : kpi::family_usage()) out.push_back({f.family, f.allocs, f.frees});
  return out;
}

std::vector<KpiFamilyCount> kpi_family_delta(const std::vector<KpiFamilyCount>& before,
                                             const std::vector<KpiFamilyCount>& after) {
  std::vector<KpiFamilyCount> out;
  for (const KpiFamilyCount& a : after) {
    KpiFamilyCount d = a;
    for (const KpiFamilyCount& b : before) {
      if (b.family == a.family) {
        d.allocs -= b.allocs;
        d.frees -= b.frees;
      }
    }
    if (d.allocs + d.frees > 0) out.push_back(d);
  }
  return out;
}

std::string kpi_note(kpi::Mode mode) {
  return std::string("each allocation and free a KPI call made runs that call again (IOMalloc, IOMallocAligned, "
                     "IOMallocContiguous, IOMallocPageable, OSMalloc*, OSObject::operator new, and their frees) in "
                     "KPI mode ") +
         (mode == kpi::Mode::strict ? "strict" : "xnu") +
         " on this backend lent to the KPI, timed whole; the page families take pages from the run's machine, "
         "outside the backend's footprint and the counting wrapper; IOBufferMemoryDescriptor and IODMACommand "
         "steps keep the replay's own paths";
}

KpiModeScope::KpiModeScope(kpi::Mode mode) : previous_(kpi::mode()) { kpi::set_mode(mode); }

KpiModeScope::~KpiModeScope() {
  try {
    kpi::set_mode(previous_);
  } catch (const UsageError&) {
    // Blocks the replay could not free are still live: the mode stays; the accounting check reports them.
  }
}

}  // namespace kmbench::replay
