#include "block_map.h"

#include <sys/mman.h>

namespace kmbench::kpi::detail {
namespace {

/// Address space reserved, not committed: the kernel commits a page when it is first written.
void* reserve_memory(std::size_t bytes) noexcept {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

const char* family_name(Family f) noexcept {
  static constexpr const char* kNames[kFamilies] = {
      "IOMalloc", "IOMallocAligned", "IOMallocPageable", "IOMallocContiguous",
      "OSMalloc", "OSMalloc(pageable)", "OSObject"};
  return kNames[std::size_t(f)];
}

const char* family_free_name(Family f) noexcept {
  static constexpr const char* kNames[kFamilies] = {
      "IOFree", "IOFreeAligned", "IOFreePageable", "IOFreeContiguous",
      "OSFree", "OSFree", "OSObject::release"};
  return kNames[std::size_t(f)];
}

std::atomic<std::uint64_t>* BlockMap::install(unsigned shift, std::uintptr_t addr) noexcept {
  constexpr std::size_t kRootsBytes = (std::size_t{kTiers} << kRootBits) * sizeof(Leaf);
  std::atomic<Leaf>* roots = roots_.load(std::memory_order_acquire);
  if (roots == nullptr) {
    auto* fresh = static_cast<std::atomic<Leaf>*>(reserve_memory(kRootsBytes));
    if (fresh == nullptr) return nullptr;
    if (roots_.compare_exchange_strong(roots, fresh, std::memory_order_acq_rel)) {
      roots = fresh;
    } else {
      munmap(fresh, kRootsBytes);  // another thread made it first
    }
  }
  const Tier& tier = tier_of_shift(shift);
  std::atomic<Leaf>* root = roots + tier.root;
  constexpr std::size_t kLeafBytes = (std::size_t{1} << kLeafBits) * sizeof(std::uint64_t);
  const std::uintptr_t word = (addr >> tier.word_shift) & tier.word_mask;
  std::atomic<Leaf>& slot = root[word >> kLeafBits];
  Leaf leaf = slot.load(std::memory_order_acquire);
  if (leaf == nullptr) {
    auto* fresh = static_cast<Leaf>(reserve_memory(kLeafBytes));
    if (fresh == nullptr) return nullptr;
    if (slot.compare_exchange_strong(leaf, fresh, std::memory_order_acq_rel)) {
      leaf = fresh;
      leaves_reserved_.fetch_add(1, std::memory_order_relaxed);
    } else {
      munmap(fresh, kLeafBytes);
    }
  }
  return &leaf[word & kLeafMask];
}

std::size_t BlockMap::reserved_bytes() const noexcept {
  return leaves_reserved_.load(std::memory_order_relaxed) * (std::size_t{1} << kLeafBits) * sizeof(std::uint64_t);
}

}  // namespace kmbench::kpi::detail
