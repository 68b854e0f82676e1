// Page runs for the pageable and contiguous families, from the simulated
// physical memory (allocators/physmem): the machine the KPI's backend was
// opened with, else the process's current machine.
#include <atomic>

#include "allocators/physmem/physmem.h"
#include "core.h"

namespace kmbench::kpi::detail {
namespace {

std::atomic<physmem::Machine*> g_machine{nullptr};

physmem::Machine& machine() noexcept { return page_machine(); }

}  // namespace

physmem::Machine& page_machine() noexcept {
  physmem::Machine* m = g_machine.load(std::memory_order_acquire);
  return m != nullptr ? *m : physmem::current_machine();
}

void set_page_machine(physmem::Machine* m) noexcept { g_machine.store(m, std::memory_order_release); }

physmem::Machine* page_machine_set() noexcept { return g_machine.load(std::memory_order_acquire); }

void* pages_alloc(std::uint64_t bytes, std::size_t align, std::uint64_t max_phys) noexcept {
  return machine().alloc_contiguous(bytes, align, kAnyNode, max_phys);
}

void pages_free(void* p, std::uint64_t bytes) noexcept { machine().free_contiguous(p, bytes); }

std::uint64_t pages_phys(const void* p) noexcept { return machine().phys_of(p); }

void* pages_virt(std::uint64_t pa) noexcept { return machine().virt_of(pa); }

}  // namespace kmbench::kpi::detail
