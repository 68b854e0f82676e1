#include "allocators/nodemem/nodemem.h"

#include <numa.h>
#include <numaif.h>
#include <sched.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace kmbench::nodemem {
namespace {

constexpr std::size_t kPage = 4096;

unsigned real_node_count() {
  if (numa_available() < 0) {
    return 1;
  }
  return static_cast<unsigned>(numa_max_node()) + 1;
}

}  // namespace

NodeMemory::NodeMemory(const BackendConfig&) : nodes_(real_node_count()) {
  if (nodes_ > kMaxNodes) {
    throw UsageError("machine has " + std::to_string(nodes_) + " NUMA nodes; at most " +
                     std::to_string(kMaxNodes) + " are supported");
  }
}

std::string NodeMemory::description() const {
  return "real: " + std::to_string(nodes_) + (nodes_ == 1 ? " node" : " nodes") +
         ", mbind MPOL_BIND";
}

void* NodeMemory::map(std::size_t bytes, std::size_t align, NodeId node) noexcept {
  if (node < 0 || static_cast<unsigned>(node) >= nodes_ || bytes == 0) {
    return nullptr;
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

void NodeMemory::unmap(void* p, std::size_t bytes) noexcept { munmap(p, bytes); }

void NodeMemory::discard(void* p, std::size_t bytes) noexcept {
  madvise(p, bytes, MADV_DONTNEED);
}

NodeId NodeMemory::local_node() const noexcept {
  if (nodes_ == 1) {
    return 0;
  }
  thread_local NodeId cached = -1;
  if (cached < 0) {
    const int cpu = sched_getcpu();
    const int node = cpu < 0 ? 0 : numa_node_of_cpu(cpu);
    cached = node < 0 || static_cast<unsigned>(node) >= nodes_ ? 0 : node;
  }
  return cached;
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
