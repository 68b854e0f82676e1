// The balloon: pages taken out of a node's use and given back, the way a
// hypervisor's balloon driver inflates inside a guest. What memory pressure
// acts through (harness/replay/pressure.h): every backend that draws from
// the machine finds less free memory while the balloon holds it.
#include <algorithm>

#include "allocators/physmem/physmem.h"

namespace kmbench::physmem {

std::uint64_t Machine::balloon_inflate(NodeId node, std::uint64_t pages) noexcept {
  Node& n = mem_[static_cast<std::size_t>(node)];
  Balloon& b = balloons_[static_cast<std::size_t>(node)];
  std::lock_guard<std::mutex> hold_balloon(b.lock);
  std::uint64_t taken = 0;
  bool below_low = false;
  // As a balloon driver asks for movable memory: the highest zone first, and
  // whole high-order blocks before splitting any, to leave small blocks be.
  for (auto it = n.zones.rbegin(); it != n.zones.rend() && taken < pages; ++it) {
    Zone& z = **it;
    std::lock_guard<std::mutex> hold_zone(z.lock);
    const std::uint64_t before = taken;
    for (int order = static_cast<int>(kMaxOrder); order >= 0 && taken < pages;) {
      const std::uint64_t block = std::uint64_t{1} << order;
      if (pages - taken < block) {
        --order;
        continue;
      }
      const std::uint32_t pfn = take(n, z, static_cast<unsigned>(order), ~0ull, 0);
      if (pfn == ~0u) {
        --order;
        continue;
      }
      if (!b.runs.empty() && b.runs.back().first + b.runs.back().second == pfn) {
        b.runs.back().second += static_cast<std::uint32_t>(block);
      } else {
        b.runs.emplace_back(pfn, static_cast<std::uint32_t>(block));
      }
      taken += block;
    }
    below_low |= taken != before && z.free_pages < z.wmark[1];
  }
  b.pages.fetch_add(taken, std::memory_order_relaxed);
  // The balloon takes memory as a hypervisor does, the zones' reserves too;
  // what it leaves below low is kswapd's to win back from the caches.
  if (below_low) {
    wake_kswapd(node);
  }
  return taken;
}

std::uint64_t Machine::balloon_deflate(NodeId node, std::uint64_t pages) noexcept {
  Node& n = mem_[static_cast<std::size_t>(node)];
  Balloon& b = balloons_[static_cast<std::size_t>(node)];
  std::lock_guard<std::mutex> hold_balloon(b.lock);
  std::uint64_t given = 0;
  while (given < pages && !b.runs.empty()) {
    auto& [first, count] = b.runs.back();
    const auto part = static_cast<std::uint32_t>(std::min<std::uint64_t>(count, pages - given));
    const std::uint32_t pfn = first + count - part;  // the run's tail, the last pages taken
    // Runs taken in two zones that touch were merged into one: give back zone by zone.
    for (std::uint32_t at = pfn; at < pfn + part;) {
      Zone& z = zone_of(n, at);
      const std::uint32_t end = std::min(pfn + part, z.end);
      std::lock_guard<std::mutex> hold_zone(z.lock);
      give_run(n, z, at, end - at);
      at = end;
    }
    given += part;
    count -= part;
    if (count == 0) {
      b.runs.pop_back();
    }
  }
  b.pages.fetch_sub(given, std::memory_order_relaxed);
  return given;
}

std::uint64_t Machine::balloon_pages(NodeId node) const noexcept {
  return balloons_[static_cast<std::size_t>(node)].pages.load(std::memory_order_relaxed);
}

}  // namespace kmbench::physmem
