// The page allocator: per-CPU page lists over a binary buddy per node and zone,
// and contiguous runs of any length.
#include <algorithm>
#include <bit>
#include <cstring>

#include "allocators/physmem/physmem.h"

namespace kmbench::physmem {
namespace {

constexpr std::uint32_t kNil = ~0u;
constexpr std::uint8_t kFreeHead = 1;
constexpr std::uint32_t kMaxBlockPages = 1u << kMaxOrder;

unsigned ceil_log2(std::uint64_t v) noexcept {
  return v <= 1 ? 0 : static_cast<unsigned>(64 - std::countl_zero(v - 1));
}

// The watermark an attempt is held to: Linux's ALLOC_WMARK_MIN/LOW (an index
// into Zone::wmark), ALLOC_NO_WATERMARKS, ALLOC_HIGH and ALLOC_HARDER.
constexpr unsigned kMarkMin = 0, kMarkLow = 1, kMarkIndex = 3;
constexpr unsigned kMarkNone = 1u << 2, kMarkHighPrio = 1u << 3, kMarkHarder = 1u << 4;
// How low an attempt left the zone it took from.
constexpr unsigned kServedBelowLow = 1u << 0, kServedBelowMin = 1u << 1;

unsigned slow_mark(std::uint32_t gfp) noexcept {
  if ((gfp & kGfpWatermarks) == 0) {
    return kMarkNone;
  }
  return kMarkMin | ((gfp & kGfpHigh) != 0 ? kMarkHighPrio : 0) | ((gfp & kGfpHarder) != 0 ? kMarkHarder : 0);
}

}  // namespace

// ---- watermarks ------------------------------------------------------------------

bool Machine::zone_allows(const Zone& z, std::uint64_t pages, unsigned mark) noexcept {
  if ((mark & kMarkNone) != 0) {
    return true;
  }
  std::uint64_t m = z.wmark[mark & kMarkIndex];
  if ((mark & kMarkHighPrio) != 0) {
    m -= m / 2;
  }
  if ((mark & kMarkHarder) != 0) {
    m -= m / 4;
  }
  return z.free_pages >= m + pages;  // __zone_watermark_ok: what is left after it stays at the mark
}

unsigned Machine::zone_served(const Zone& z) noexcept {
  return (z.free_pages < z.wmark[kMarkLow] ? kServedBelowLow : 0) |
         (z.free_pages < z.wmark[kMarkMin] ? kServedBelowMin : 0);
}

// ---- free lists ---------------------------------------------------------------

Machine::Zone& Machine::zone_of(Node& n, std::uint32_t pfn) noexcept {
  for (auto& z : n.zones) {
    if (pfn < z->end) {
      return *z;
    }
  }
  return *n.zones.back();
}

void Machine::list_push(Node& n, Zone& z, std::uint32_t pfn, unsigned order) noexcept {
  PageMeta& m = n.meta[pfn];
  m.next = z.head[order];
  m.prev = kNil;
  m.state = kFreeHead;
  m.order = static_cast<std::uint8_t>(order);
  if (m.next != kNil) {
    n.meta[m.next].prev = pfn;
  }
  z.head[order] = pfn;
  ++z.count[order];
}

void Machine::list_remove(Node& n, Zone& z, std::uint32_t pfn, unsigned order) noexcept {
  PageMeta& m = n.meta[pfn];
  if (m.prev != kNil) {
    n.meta[m.prev].next = m.next;
  } else {
    z.head[order] = m.next;
  }
  if (m.next != kNil) {
    n.meta[m.next].prev = m.prev;
  }
  m.state = 0;
  --z.count[order];
}

void Machine::split(Node& n, Zone& z, std::uint32_t pfn, unsigned from, unsigned to) noexcept {
  while (from > to) {
    --from;
    list_push(n, z, pfn + (1u << from), from);
  }
}

std::uint32_t Machine::take(Node& n, Zone& z, unsigned order, std::uint64_t max_phys,
                            std::uint64_t node_phys) noexcept {
  const std::uint64_t last = (kPageSize << order) - 1;
  const auto fits = [&](std::uint32_t pfn) {
    return node_phys + (std::uint64_t{pfn} << kPageShift) + last <= max_phys;
  };
  const bool whole_zone = node_phys + (std::uint64_t{z.end} << kPageShift) - 1 <= max_phys;
  for (unsigned o = order; o <= kMaxOrder; ++o) {
    std::uint32_t pfn = z.head[o];
    if (!whole_zone) {
      while (pfn != kNil && !fits(pfn)) {
        pfn = n.meta[pfn].next;
      }
    }
    if (pfn == kNil) {
      continue;
    }
    list_remove(n, z, pfn, o);
    split(n, z, pfn, o, order);
    z.free_pages -= 1u << order;
    return pfn;
  }
  if (z.frontier < z.end && (whole_zone || fits(z.frontier))) {
    const std::uint32_t pfn = z.frontier;
    z.frontier += kMaxBlockPages;
    split(n, z, pfn, kMaxOrder, order);
    z.free_pages -= 1u << order;
    return pfn;
  }
  return kNil;
}

void Machine::give(Node& n, Zone& z, std::uint32_t pfn, unsigned order) noexcept {
  z.free_pages += 1u << order;
  while (order < kMaxOrder) {
    const std::uint32_t buddy = pfn ^ (1u << order);
    const PageMeta& b = n.meta[buddy];
    if (b.state != kFreeHead || b.order != order) {
      break;
    }
    list_remove(n, z, buddy, order);
    pfn &= ~(1u << order);
    ++order;
  }
  list_push(n, z, pfn, order);
}

void Machine::give_run(Node& n, Zone& z, std::uint32_t pfn, std::uint64_t pages) noexcept {
  while (pages != 0) {
    const unsigned align = pfn == 0 ? kMaxOrder : static_cast<unsigned>(std::countr_zero(pfn));
    const unsigned fit = static_cast<unsigned>(63 - std::countl_zero(pages));
    const unsigned order = std::min({align, fit, kMaxOrder});
    give(n, z, pfn, order);
    pfn += 1u << order;
    pages -= 1u << order;
  }
}

// ---- buddy ----------------------------------------------------------------------

void* Machine::buddy_alloc(NodeId node, unsigned order, std::uint64_t max_phys, unsigned mark,
                           unsigned& served) noexcept {
  Node& n = mem_[static_cast<std::size_t>(node)];
  const std::uint64_t node_phys = nodes_[static_cast<std::size_t>(node)].phys_base;
  const std::uint64_t last = (kPageSize << order) - 1;
  for (auto it = n.zones.rbegin(); it != n.zones.rend(); ++it) {
    Zone& z = **it;
    if (node_phys + (std::uint64_t{z.begin} << kPageShift) + last > max_phys) {
      continue;
    }
    std::uint32_t pfn = kNil;
    {
      std::lock_guard<std::mutex> hold(z.lock);
      if (zone_allows(z, std::uint64_t{1} << order, mark)) {
        pfn = take(n, z, order, max_phys, node_phys);
        served |= pfn != kNil ? zone_served(z) : 0;
      }
    }
    if (pfn != kNil) {
      return reinterpret_cast<void*>(n.va + (std::uintptr_t{pfn} << kPageShift));
    }
  }
  return nullptr;
}

void Machine::buddy_free(void* p, unsigned order) noexcept {
  const std::uint64_t pa = phys_of(p);
  Node& n = mem_[pa >> stride_shift_];
  const auto pfn = static_cast<std::uint32_t>((pa & ((1ull << stride_shift_) - 1)) >> kPageShift);
  Zone& z = zone_of(n, pfn);
  std::lock_guard<std::mutex> hold(z.lock);
  give(n, z, pfn, order);
}

// ---- per-CPU page lists -----------------------------------------------------------

void* Machine::pcp_refill(PcpSet& set, unsigned order, NodeId node, unsigned mark,
                          unsigned& served) noexcept {
  Node& n = mem_[static_cast<std::size_t>(node)];
  const std::uint64_t node_phys = nodes_[static_cast<std::size_t>(node)].phys_base;
  void** stack = set.stack + kPcpOffset[order];
  std::uint32_t count = set.count[order];
  const std::uint32_t want = count + pcp_batch_[order];
  for (auto it = n.zones.rbegin(); it != n.zones.rend() && count < want; ++it) {
    Zone& z = **it;
    std::lock_guard<std::mutex> hold(z.lock);
    const std::uint32_t before = count;
    while (count < want && zone_allows(z, std::uint64_t{1} << order, mark)) {
      const std::uint32_t pfn = take(n, z, order, ~0ull, node_phys);
      if (pfn == kNil) {
        break;
      }
      stack[count++] = reinterpret_cast<void*>(n.va + (std::uintptr_t{pfn} << kPageShift));
    }
    served |= count != before ? zone_served(z) : 0;
  }
  store(set.misses, set.misses + 1);
  if (count == 0) {
    return nullptr;
  }
  store(set.refills, set.refills + 1);
  store(set.count[order], count - 1);
  return stack[count - 1];
}

void Machine::pcp_spill(PcpSet& set, unsigned order, NodeId node, std::uint32_t keep) noexcept {
  Node& n = mem_[static_cast<std::size_t>(node)];
  void** stack = set.stack + kPcpOffset[order];
  const std::uint32_t count = set.count[order];
  if (count <= keep) {
    return;
  }
  const std::uint32_t out = count - keep;
  Zone* held = nullptr;
  for (std::uint32_t i = 0; i < out; ++i) {  // the coldest blocks: the bottom of the stack
    const auto pfn = static_cast<std::uint32_t>(
        (reinterpret_cast<std::uintptr_t>(stack[i]) - n.va) >> kPageShift);
    Zone& z = zone_of(n, pfn);
    if (&z != held) {
      if (held != nullptr) {
        held->lock.unlock();
      }
      z.lock.lock();
      held = &z;
    }
    give(n, z, pfn, order);
  }
  if (held != nullptr) {
    held->lock.unlock();
  }
  std::memmove(stack, stack + out, sizeof(void*) * keep);
  store(set.count[order], keep);
  store(set.spills, set.spills + 1);
}

std::size_t Machine::drain_slot(unsigned slot, NodeId node, bool keep_batch) noexcept {
  PcpSet& set = pcp(slot, node);
  std::size_t bytes = 0;
  for (unsigned o = 0; o < kPcpOrders; ++o) {
    const std::uint32_t count = set.count[o];
    const std::uint32_t keep = keep_batch ? std::min(count, pcp_batch_[o]) : 0;
    if (count > keep) {
      bytes += std::size_t{count - keep} * (kPageSize << o);
      pcp_spill(set, o, node, keep);
    }
  }
  return bytes;
}

std::size_t Machine::drain_local(bool keep_batch) noexcept {
  const unsigned slot = this_cpu_slot();
  std::size_t bytes = 0;
  for (std::size_t k = 0; k < mem_.size(); ++k) {
    bytes += drain_slot(slot, static_cast<NodeId>(k), keep_batch);
  }
  return bytes;
}

std::size_t Machine::drain_all_quiescent() noexcept {
  std::size_t bytes = 0;
  const unsigned slots = cpu_slots_in_use();
  for (unsigned slot = 0; slot < slots; ++slot) {
    for (std::size_t k = 0; k < mem_.size(); ++k) {
      bytes += drain_slot(slot, static_cast<NodeId>(k), false);
    }
  }
  return bytes;
}

// ---- allocation entry points --------------------------------------------------------

void* Machine::get_page(unsigned order, NodeId node, std::uint64_t max_phys, unsigned mark,
                        unsigned& served) noexcept {
  const bool pcp_ok = order < kPcpOrders && max_phys >= mem_[static_cast<std::size_t>(node)].phys_last;
  if (pcp_ok) {
    PcpSet& set = pcp(this_cpu_slot(), node);
    const std::uint32_t count = set.count[order];
    if (count != 0) {
      store(set.count[order], count - 1);
      store(set.hits, set.hits + 1);
      return set.stack[kPcpOffset[order] + count - 1];
    }
    if (void* p = pcp_refill(set, order, node, mark, served)) {
      return p;
    }
  }
  return buddy_alloc(node, order, max_phys, mark, served);
}

void Machine::note_served(NodeId node, std::uint32_t gfp, unsigned served) noexcept {
  NodeReclaim& r = reclaim_[static_cast<std::size_t>(node)];
  if ((served & kServedBelowLow) == 0) {
    // Memory above low again (frees, a balloon let go): kswapd may help this node again.
    if (r.fruitless.load(std::memory_order_relaxed) != 0) {
      r.fruitless.store(0, std::memory_order_relaxed);
    }
    return;
  }
  r.below_low.fetch_add(1, std::memory_order_relaxed);
  if ((served & kServedBelowMin) != 0) {
    r.reserve.fetch_add(1, std::memory_order_relaxed);
  }
  if ((gfp & kGfpKswapdReclaim) != 0) {
    wake_kswapd(node);
  }
}

template <class Attempt>
void* Machine::allocate_with(NodeId node, std::uint32_t gfp, const Attempt& attempt) noexcept {
  const NodeId first = node == kAnyNode ? local_node() : node;
  const std::size_t nodes = node == kAnyNode ? mem_.size() : 1;
  // The local (or given) node first, then the others in order.
  const auto nth = [&](std::size_t i) {
    return i == 0 ? first : static_cast<NodeId>(i - 1 < static_cast<std::size_t>(first) ? i - 1 : i);
  };
  // The fast path: every node held to low, so that no node's reserve goes
  // while another has memory to spare.
  const unsigned fast = (gfp & kGfpWatermarks) != 0 ? kMarkLow : kMarkNone;
  for (std::size_t i = 0; i < nodes; ++i) {
    unsigned served = 0;
    if (void* p = attempt(nth(i), fast, served)) {
      note_served(nth(i), gfp, served);
      return p;
    }
  }
  const unsigned slow = slow_mark(gfp);
  for (std::size_t i = 0; i < nodes; ++i) {
    const NodeId k = nth(i);
    if ((gfp & kGfpKswapdReclaim) != 0) {
      wake_kswapd(k);
    }
    unsigned served = 0;
    void* p = slow != fast ? attempt(k, slow, served) : nullptr;  // the same mark would find the same
    // Out of memory on this node: give this CPU's cached pages back (they may
    // coalesce into what is asked for) and try once more.
    if (p == nullptr && drain_slot(this_cpu_slot(), k, false) != 0) {
      p = attempt(k, slow, served);
    }
    if (p == nullptr && (gfp & kGfpDirectReclaim) != 0 && direct_reclaim(k) != 0) {
      p = attempt(k, slow, served);
    }
    if (p != nullptr) {
      note_served(k, gfp & ~kGfpKswapdReclaim, served);  // woken above already: once a request
      return p;
    }
    if ((gfp & kGfpWatermarks) != 0) {
      reclaim_[static_cast<std::size_t>(k)].min_failures.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return nullptr;
}

void* Machine::alloc_on(unsigned order, NodeId node, std::uint64_t max_phys, std::uint32_t gfp) noexcept {
  if (order > kMaxOrder || (node != kAnyNode && (node < 0 || static_cast<std::size_t>(node) >= mem_.size()))) {
    return nullptr;
  }
  return allocate_with(node, gfp, [&](NodeId k, unsigned mark, unsigned& served) {
    return get_page(order, k, max_phys, mark, served);
  });
}

// ---- contiguous runs -------------------------------------------------------------------

void* Machine::contiguous_scan(NodeId node, std::uint64_t pages, std::uint64_t align_bytes,
                               std::uint64_t max_phys, unsigned mark, unsigned& served) noexcept {
  Node& n = mem_[static_cast<std::size_t>(node)];
  const std::uint64_t node_phys = nodes_[static_cast<std::size_t>(node)].phys_base;
  const std::uint64_t step = std::max<std::uint64_t>(align_bytes, kPageSize << kMaxOrder);
  const std::uint64_t blocks = (pages + kMaxBlockPages - 1) >> kMaxOrder;
  const std::uint64_t run_pages = blocks << kMaxOrder;
  for (auto it = n.zones.rbegin(); it != n.zones.rend(); ++it) {
    Zone& z = **it;
    std::lock_guard<std::mutex> hold(z.lock);
    if (!zone_allows(z, pages, mark)) {
      continue;
    }
    const std::uint64_t zone_pa = node_phys + (std::uint64_t{z.begin} << kPageShift);
    for (std::uint64_t pa = (zone_pa + step - 1) & ~(step - 1);; pa += step) {
      const std::uint64_t s = (pa - node_phys) >> kPageShift;
      if (s + run_pages > z.end || pa + (pages << kPageShift) - 1 > max_phys) {
        break;
      }
      bool free = true;
      for (std::uint64_t b = s; b < s + run_pages && free; b += kMaxBlockPages) {
        const PageMeta& m = n.meta[b];
        free = b >= z.frontier || (m.state == kFreeHead && m.order == kMaxOrder);
      }
      if (!free) {
        continue;
      }
      const auto first = static_cast<std::uint32_t>(s);
      const auto end = static_cast<std::uint32_t>(s + run_pages);
      for (std::uint32_t b = first; b < end && b < z.frontier; b += kMaxBlockPages) {
        list_remove(n, z, b, kMaxOrder);
      }
      if (end > z.frontier) {
        for (std::uint32_t b = z.frontier; b < first; b += kMaxBlockPages) {
          list_push(n, z, b, kMaxOrder);
        }
        z.frontier = end;
      }
      z.free_pages -= run_pages;
      give_run(n, z, static_cast<std::uint32_t>(s + pages), run_pages - pages);
      served |= zone_served(z);
      return reinterpret_cast<void*>(n.va + (static_cast<std::uintptr_t>(s) << kPageShift));
    }
  }
  return nullptr;
}

void* Machine::contiguous_on(NodeId node, std::uint64_t pages, unsigned align_order,
                             std::uint64_t max_phys, unsigned mark, unsigned& served) noexcept {
  if (pages <= kMaxBlockPages && align_order <= kMaxOrder) {
    const unsigned order = std::max(ceil_log2(pages), align_order);
    void* p = buddy_alloc(node, order, max_phys, mark, served);
    if (p != nullptr && pages < (1u << order)) {
      Node& n = mem_[static_cast<std::size_t>(node)];
      const auto pfn =
          static_cast<std::uint32_t>((reinterpret_cast<std::uintptr_t>(p) - n.va) >> kPageShift);
      Zone& z = zone_of(n, pfn);
      std::lock_guard<std::mutex> hold(z.lock);
      give_run(n, z, static_cast<std::uint32_t>(pfn + pages), (1u << order) - pages);
    }
    return p;
  }
  return contiguous_scan(node, pages, kPageSize << align_order, max_phys, mark, served);
}

void* Machine::alloc_contiguous(std::size_t bytes, std::size_t align, NodeId node,
                                std::uint64_t max_phys, std::uint32_t gfp) noexcept {
  if (bytes == 0 || bytes > (1ull << 44) || (align & (align - 1)) != 0 || align > va_align_ ||
      (node != kAnyNode && (node < 0 || static_cast<std::size_t>(node) >= mem_.size()))) {
    return nullptr;
  }
  const std::uint64_t pages = (bytes + kPageSize - 1) >> kPageShift;
  const unsigned align_order =
      align <= kPageSize ? 0 : static_cast<unsigned>(std::countr_zero(align)) - kPageShift;
  return allocate_with(node, gfp, [&](NodeId k, unsigned mark, unsigned& served) {
    return contiguous_on(k, pages, align_order, max_phys, mark, served);
  });
}

void Machine::free_contiguous(void* p, std::size_t bytes) noexcept {
  if (p == nullptr || bytes == 0) {
    return;
  }
  const std::uint64_t pa = phys_of(p);
  Node& n = mem_[pa >> stride_shift_];
  const auto pfn = static_cast<std::uint32_t>((pa & ((1ull << stride_shift_) - 1)) >> kPageShift);
  Zone& z = zone_of(n, pfn);
  std::lock_guard<std::mutex> hold(z.lock);
  give_run(n, z, pfn, (bytes + kPageSize - 1) >> kPageShift);
}

}  // namespace kmbench::physmem
