#include "allocators/nodemem/nodemem.h"

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
      nodes_(machine_->node_count()) {
  if (nodes_ > kMaxNodes) {
    throw UsageError("the topology has " + std::to_string(nodes_) + " NUMA nodes; at most " +
                     std::to_string(kMaxNodes) + " are supported");
  }
}

std::string NodeMemory::description() const {
  return machine_->topology_description() + "; memory from the simulated machine's node ranges" +
         (machine_->populated() ? ", resident" : "");
}

void* NodeMemory::map(std::size_t bytes, std::size_t align, NodeId node,
                      std::uint64_t max_phys) noexcept {
  if (node < 0 || static_cast<unsigned>(node) >= nodes_ || bytes == 0) {
    return nullptr;
  }
  return machine_->alloc_contiguous(bytes, align < kPage ? kPage : align, node, max_phys);
}

void NodeMemory::unmap(void* p, std::size_t bytes) noexcept { machine_->free_contiguous(p, bytes); }

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
