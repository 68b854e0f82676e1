#include "allocators/bump/bump.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <string>

#include "base/errors.h"
#include "base/units.h"

namespace kmbench {
namespace {

constexpr std::size_t kPage = 4096;
#ifdef MADV_POPULATE_WRITE
constexpr int kMadvPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kMadvPopulateWrite = 23;  // Linux 5.14; older kernels answer EINVAL
#endif

std::size_t setting(const BackendConfig& config, const char* key) {
  return static_cast<std::size_t>(ParamReader("bump", BumpBackend::kParams, config).integer(key));
}

}  // namespace

BumpBackend::BumpBackend(const BackendConfig& config)
    : reserve_bytes_(setting(config, "reserve")), chunk_bytes_(setting(config, "chunk")) {
  reserve_bytes_ = (reserve_bytes_ + kPage - 1) & ~(kPage - 1);
  void* region = mmap(nullptr, reserve_bytes_, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) {
    throw RunError("bump: cannot reserve " + std::to_string(reserve_bytes_) +
                   " bytes of address space: " + std::strerror(errno));
  }
  base_ = reinterpret_cast<std::uintptr_t>(region);
  std::size_t prefault = std::size_t{128} << 20;
  if (config.params.count("prefault")) {
    prefault = setting(config, "prefault");
  } else if (config.demand_bytes > 0) {
    // Blocks are packed, page and larger ones aligned to pages; every CPU slot
    // may leave most of two chunks unused.
    const std::size_t slots = std::max<std::size_t>(config.cpus, 1);
    const std::size_t want = config.demand_bytes + config.demand_bytes / 2 + 2 * slots * chunk_bytes_;
    const auto phys = static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) * kPage;
    prefault = std::min(want, phys / 4);
  }
  prefault = std::min(reserve_bytes_, (prefault + kPage - 1) & ~(kPage - 1));
  if (prefault > 0 && madvise(region, prefault, kMadvPopulateWrite) != 0) {
    for (std::size_t off = 0; off < prefault; off += kPage) {  // kernels before 5.14
      static_cast<volatile char*>(region)[off] = 0;
    }
  }
  prefault_end_ = base_ + prefault;
  next_.store(base_, std::memory_order_relaxed);
}

BumpBackend::~BumpBackend() { munmap(reinterpret_cast<void*>(base_), reserve_bytes_); }

void BumpBackend::rewind() noexcept {
  next_.store(base_, std::memory_order_relaxed);
  for (Slot& s : slots_) {
    s = Slot{};
  }
}

std::uintptr_t BumpBackend::take(std::size_t bytes, std::size_t align) noexcept {
  const std::uintptr_t mask = align - 1;
  std::uintptr_t cur = next_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uintptr_t at = (cur + mask) & ~mask;
    if (at + bytes > base_ + reserve_bytes_ || at + bytes < at) {
      return 0;
    }
    if (next_.compare_exchange_weak(cur, at + bytes, std::memory_order_relaxed)) {
      return at;
    }
  }
}

void* BumpBackend::refill_and_allocate(Slot& s, std::size_t need, std::uintptr_t mask) noexcept {
  const std::uintptr_t chunk = take(chunk_bytes_, kPage);
  if (chunk == 0) {
    return nullptr;
  }
  s.cursor = chunk;
  s.end = chunk + chunk_bytes_;
  const std::uintptr_t at = (s.cursor + mask) & ~mask;
  s.cursor = at + need;
  return reinterpret_cast<void*>(at);
}

void* BumpBackend::allocate_large(std::size_t need, std::size_t align) noexcept {
  const std::size_t a = align < kPage ? kPage : align;
  const std::size_t bytes = (need + kPage - 1) & ~(kPage - 1);
  return reinterpret_cast<void*>(take(bytes, a));
}

void BumpBackend::release(void* p, std::size_t size) noexcept {
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + kPage - 1) & ~(kPage - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + size) & ~(kPage - 1);
  if (end > begin) {
    madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
    released_bytes_.fetch_add(end - begin, std::memory_order_relaxed);
  }
}

BackendFootprint BumpBackend::footprint() const {
  const std::uint64_t used = next_.load(std::memory_order_relaxed) - base_;
  const std::uint64_t released = released_bytes_.load(std::memory_order_relaxed);
  const std::uint64_t touched = std::max<std::uint64_t>(used, prefault_end_ - base_);
  return {used, touched > released ? touched - released : 0};
}

BackendStats BumpBackend::stats() const {
  BackendStats s;
  const std::uint64_t used = next_.load(std::memory_order_relaxed) - base_;
  const std::uint64_t released = released_bytes_.load(std::memory_order_relaxed);
  const BackendFootprint f = footprint();
  s.mapped_bytes = f.mapped_bytes;
  s.resident_bytes = f.resident_bytes;
  s.metrics = {
      {"backend.bump.reserved_bytes", static_cast<double>(reserve_bytes_)},
      {"backend.bump.used_bytes", static_cast<double>(used)},
      {"backend.bump.released_bytes", static_cast<double>(released)},
      {"backend.bump.prefaulted_bytes", static_cast<double>(prefault_end_ - base_)},
  };
  return s;
}

}  // namespace kmbench
