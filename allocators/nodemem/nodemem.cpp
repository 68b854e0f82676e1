#include "allocators/nodemem/nodemem.h"

#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace kmbench::nodemem {
namespace {

constexpr std::size_t kPage = 4096;

}  // namespace

NodeMemory::NodeMemory(const BackendConfig& config)
    : machine_(config.machine != nullptr ? config.machine : &physmem::current_machine()),
      synthetic_(machine_->synthetic()),
      nodes_(machine_->node_count()) {
  if (nodes_ > kMaxNodes) {
    throw UsageError("the topology has " + std::to_string(nodes_) + " NUMA nodes; at most " +
                     std::to_string(kMaxNodes) + " are supported");
  }
  if (!synthetic_ && numa_available() >= 0 &&
      nodes_ > static_cast<unsigned>(numa_max_node()) + 1) {
    throw UsageError("topology has " + std::to_string(nodes_) + " nodes, the kernel " +
                     std::to_string(numa_max_node() + 1));
  }
}

std::string NodeMemory::description() const {
  return machine_->topology_description() +
         (synthetic_ ? "; memory from the page layer's simulated node ranges, not bound"
                     : "; mbind MPOL_BIND");
}

void* NodeMemory::map(std::size_t bytes, std::size_t align, NodeId node) noexcept {
  if (node < 0 || static_cast<unsigned>(node) >= nodes_ || bytes == 0) {
    return nullptr;
  }
  if (synthetic_) {
    return machine_->alloc_contiguous(bytes, align < kPage ? kPage : align, node);
  }
  align = align < kPage ? kPage : align;
  const std::size_t span = bytes + align - kPage;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    return nullptr;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t start = (base + align - 1) & ~(align - 1);
  if (start > base) {
    munmap(raw, start - base);
  }
  const std::uintptr_t end = start + bytes;
  if (base + span > end) {
    munmap(reinterpret_cast<void*>(end), base + span - end);
  }
  unsigned long mask[kMaxNodes / (8 * sizeof(unsigned long))] = {};
  mask[node / (8 * sizeof(unsigned long))] = 1ul << (node % (8 * sizeof(unsigned long)));
  if (mbind(reinterpret_cast<void*>(start), bytes, MPOL_BIND, mask, kMaxNodes + 1, 0) != 0) {
    munmap(reinterpret_cast<void*>(start), bytes);
    return nullptr;
  }
  return reinterpret_cast<void*>(start);
}

void NodeMemory::unmap(void* p, std::size_t bytes) noexcept {
  if (synthetic_) {
    machine_->free_contiguous(p, bytes);
  } else {
    munmap(p, bytes);
  }
}

bool NodeMemory::discard(void* p, std::size_t bytes) noexcept {
  // Simulated RAM stays with its owner until unmap: the page layer has no partial free.
  return !synthetic_ && madvise(p, bytes, MADV_DONTNEED) == 0;
}

int resident_node(const void* p) noexcept {
  void* page = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) & ~(kPage - 1));
  int status = -1;
  if (move_pages(0, 1, &page, nullptr, &status, 0) != 0) {
    return -errno;
  }
  return status;
}

GranuleMap& GranuleMap::instance() {
  static GranuleMap map;
  return map;
}

GranuleMap::GranuleMap() {
  // 128 MiB of address space; only the pages of granules in use are ever touched.
  void* p = mmap(nullptr, kEntries * sizeof(std::atomic<std::uint16_t>), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "kmbench: cannot reserve the granule map\n");
    std::abort();
  }
  entries_ = static_cast<std::atomic<std::uint16_t>*>(p);
}

void GranuleMap::set(const void* p, std::size_t bytes, std::uint16_t owner) noexcept {
  const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(p) >> kShift;
  const std::uintptr_t last = (reinterpret_cast<std::uintptr_t>(p) + bytes - 1) >> kShift;
  for (std::uintptr_t g = first; g <= last; ++g) {
    entries_[g & kMask].store(owner, std::memory_order_relaxed);
  }
}

}  // namespace kmbench::nodemem
