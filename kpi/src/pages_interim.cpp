// Page runs for the pageable and contiguous families, until the simulated
// physical memory (allocators/physmem) serves them: whole pages from mmap,
// and a "physical" address equal to the virtual one. Runs that must lie below
// 4 GiB are mapped with MAP_32BIT, so the identity address honours the limit.
#include <sys/mman.h>

#include <cstdint>
#include <map>
#include <mutex>

#include "core.h"

namespace kmbench::kpi::detail {
namespace {

std::mutex g_runs_mutex;
std::map<std::uintptr_t, std::uint64_t>& runs() {
  static auto* m = new std::map<std::uintptr_t, std::uint64_t>;
  return *m;
}

}  // namespace

void* pages_alloc(std::uint64_t bytes, std::size_t align, std::uint64_t max_phys) noexcept {
  const std::uint64_t span = bytes + (align > kPage ? align - kPage : 0);
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
  if (max_phys <= 0xFFFFFFFFull) {
    flags |= MAP_32BIT;
  }
  void* m = mmap(nullptr, span, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (m == MAP_FAILED) {
    return nullptr;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(m);
  const std::uintptr_t start = (base + align - 1) & ~(std::uintptr_t{align} - 1);
  if (start > base) {
    munmap(m, start - base);
  }
  const std::uintptr_t tail = base + span - (start + bytes);
  if (tail > 0) {
    munmap(reinterpret_cast<void*>(start + bytes), tail);
  }
  if (start + bytes - 1 > max_phys) {
    munmap(reinterpret_cast<void*>(start), bytes);
    return nullptr;
  }
  std::lock_guard lock(g_runs_mutex);
  runs()[start] = bytes;
  return reinterpret_cast<void*>(start);
}

void pages_free(void* p, std::uint64_t bytes) noexcept {
  {
    std::lock_guard lock(g_runs_mutex);
    runs().erase(reinterpret_cast<std::uintptr_t>(p));
  }
  munmap(p, bytes);
}

std::uint64_t pages_phys(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

void* pages_virt(std::uint64_t pa) noexcept {
  std::lock_guard lock(g_runs_mutex);
  auto it = runs().upper_bound(pa);
  if (it == runs().begin()) {
    return nullptr;
  }
  --it;
  return pa < it->first + it->second ? reinterpret_cast<void*>(pa) : nullptr;
}

}  // namespace kmbench::kpi::detail
