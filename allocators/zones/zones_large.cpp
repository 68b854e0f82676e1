// zones: kalloc_large, the requests above the largest class or asking more
// than 16-byte alignment: page-rounded runs from the page layer, marked in the
// page map and accounted under the caller's VM tag.
#include <algorithm>
#include <cinttypes>
#include <mutex>

#include "allocators/zones/zones_internal.h"

namespace kmbench {

void* ZonesInternals::large_alloc(std::size_t size, std::size_t align, TagId tag, NodeId node,
                                  std::uint64_t max_phys) {
  const std::size_t bytes =
      (std::max<std::size_t>(size, 1) + kPageBytes - 1) / kPageBytes * kPageBytes;
  if (bytes < size) {
    return nullptr;
  }
  const unsigned n = node < 0 ? percpu().node : static_cast<unsigned>(node);
  void* p = s.machine->alloc_contiguous(bytes, std::max(align, kPageBytes),
                                        static_cast<NodeId>(n), max_phys);
  if (p == nullptr) {
    s.failed_allocs.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  PageEntry e;
  e.large_bytes = bytes;
  e.number = kLargeClass;
  e.node = static_cast<std::uint8_t>(n);
  set_pages(p, 1, e);
  std::lock_guard lock(s.large_mu);
  s.large.emplace(p, ZonesBackend::State::Large{bytes, tag, n});
  s.large_bytes += bytes;
  ++s.large_allocs;
  s.large_bytes_by_tag[tag == kNoTag ? kVmTagKalloc : tag] += bytes;
  return p;
}

void ZonesInternals::large_free(void* p, std::size_t size) {
  const PageEntry& e = b.page_entry(p);
  const std::size_t want =
      (std::max<std::size_t>(size, 1) + kPageBytes - 1) / kPageBytes * kPageBytes;
  if (want != e.large_bytes) {
    panic("kfree of %p with size %zu, but the kalloc_large block holds %" PRIu64 " bytes", p,
          size, e.large_bytes);
  }
  ZonesBackend::State::Large rec{};
  {
    std::lock_guard lock(s.large_mu);
    auto it = s.large.find(p);
    if (it == s.large.end()) {
      panic("kfree of %p (size %zu): not a kalloc_large block", p, size);
    }
    rec = it->second;
    s.large.erase(it);
    s.large_bytes -= rec.bytes;
    s.large_bytes_by_tag[rec.tag == kNoTag ? kVmTagKalloc : rec.tag] -= rec.bytes;
    set_pages(p, 1, kNoPage);
  }
  s.machine->free_contiguous(p, rec.bytes);
}

void* ZonesBackend::allocate_low(std::size_t size, std::size_t align, TagId tag,
                                 NodeId) noexcept {
  if ((align & (align - 1)) != 0) {
    return nullptr;
  }
  ZonesInternals in{*this, *state_};
  return in.large_alloc(size, align, tag, 0, kLowMemoryLimit - 1);
}

}  // namespace kmbench
