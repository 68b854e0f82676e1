// Machine: the simulated RAM of every node (one reservation), page descriptors,
// zones, pcp sets; and the process's current machine.
#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "allocators/physmem/physmem.h"
#include "base/errors.h"
#include "base/proc.h"

namespace kmbench::physmem {
namespace {

constexpr std::uint64_t kMaxBlockBytes = kPageSize << kMaxOrder;
constexpr std::uint64_t kMinNodeBytes = 2 * kMaxBlockBytes;
constexpr std::uint64_t kMaxNodeBytes = 1ull << 40;
constexpr std::uint64_t kMaxSpanBytes = 1ull << 45;
constexpr std::uint64_t kMinLowBytes = 32ull << 20;  // DMA and some DMA32

void* map_noreserve(std::size_t bytes, int prot) {
  void* p = mmap(nullptr, bytes, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw RunError("physmem: cannot reserve " + std::to_string(bytes >> 20) +
                   " MiB of address space: " + std::strerror(errno));
  }
  return p;
}

std::size_t page_round(std::size_t bytes) { return (bytes + kPageSize - 1) & ~(kPageSize - 1); }

}  // namespace

const char* zone_name(ZoneKind kind) noexcept {
  switch (kind) {
    case ZoneKind::dma:
      return "dma";
    case ZoneKind::dma32:
      return "dma32";
    case ZoneKind::normal:
      return "normal";
  }
  return "?";
}

/// The objects at the last level of an hwloc synthetic description: the
/// product of its levels' counts ("pack:2 [numa] core:4 pu:2": 16), saturated.
static std::uint64_t synthetic_leaves(const std::string& s) {
  std::uint64_t leaves = 1;
  for (std::size_t at = s.find(':'); at != std::string::npos; at = s.find(':', at + 1)) {
    std::uint64_t n = 0;
    std::size_t d = at + 1;
    for (; d < s.size() && s[d] >= '0' && s[d] <= '9' && n <= kMaxSyntheticLeaves; ++d) n = n * 10 + (s[d] - '0');
    if (d > at + 1) leaves = std::min<std::uint64_t>(leaves * std::max<std::uint64_t>(n, 1), kMaxSyntheticLeaves + 1);
  }
  return leaves;
}

TopologySpec topology_from_string(const std::string& text, std::uint64_t node_bytes) {
  TopologySpec spec;
  spec.node_bytes = node_bytes;
  const auto colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  const std::string rest = colon == std::string::npos ? std::string() : text.substr(colon + 1);
  if (kind == "real" && colon == std::string::npos) {
    spec.kind = TopologySpec::Kind::real;
  } else if (kind == "synthetic" && !rest.empty()) {
    spec.kind = TopologySpec::Kind::synthetic;
    spec.text = rest;
    // hwloc builds a synthetic machine in time quadratic in its objects: 100,000 took minutes.
    if (synthetic_leaves(rest) > kMaxSyntheticLeaves) {
      throw UsageError("topology '" + text + "': more than " + std::to_string(kMaxSyntheticLeaves) +
                       " objects at its last level (threads run on " + std::to_string(kMaxCpuSlots) +
                       " CPU slots)");
    }
  } else if (kind == "xml" && !rest.empty()) {
    spec.kind = TopologySpec::Kind::xml;
    spec.text = rest;
  } else {
    throw UsageError("topology '" + text +
                     "': expected real, synthetic:<hwloc synthetic string> or xml:<file>");
  }
  return spec;
}

std::uint64_t default_node_bytes(unsigned node_count) noexcept {
  const std::uint64_t each = (8ull << 30) / std::max(1u, node_count);
  return std::max<std::uint64_t>(1ull << 30, each) & ~(kMaxBlockBytes - 1);
}

void Machine::assign_pcp_marks(std::uint32_t high, std::uint32_t batch) {
  if (batch == 0 || high > kPcpCapPages || batch > high) {
    throw UsageError("pcp marks: need 1 <= batch <= high <= " + std::to_string(kPcpCapPages) +
                     " pages (got high " + std::to_string(high) + ", batch " + std::to_string(batch) + ")");
  }
  for (unsigned o = 0; o < kPcpOrders; ++o) {
    pcp_high_[o] = std::max(1u, high >> o);
    pcp_batch_[o] = std::max(1u, batch >> o);
  }
}

void Machine::set_pcp_marks(std::uint32_t high_pages, std::uint32_t batch_pages) {
  drain_all_quiescent();  // no list may hold more than its new high mark
  assign_pcp_marks(high_pages, batch_pages);
}

Machine::Machine(const TopologySpec& spec) {
  try {
    load_topology(spec);
    reserve_memory(spec);
    bind_nodes();
  } catch (...) {
    release();
    throw;
  }
}

Machine::~Machine() {
  stop_kswapd();  // a shrinker left registered: its thread must not outlive the memory it reclaims
  release();
}

void Machine::release() noexcept {
  if (reservation_ != nullptr) {
    munmap(reservation_, reservation_bytes_);
    reservation_ = nullptr;
  }
  for (Node& n : mem_) {
    if (n.meta != nullptr) {
      munmap(n.meta, page_round(std::size_t{n.pages} * sizeof(PageMeta)));
      n.meta = nullptr;
    }
  }
  if (pcp_ != nullptr) {
    munmap(pcp_, pcp_bytes_);
    pcp_ = nullptr;
  }
  if (topo_ != nullptr) {
    hwloc_topology_destroy(topo_);
    topo_ = nullptr;
  }
}

void Machine::reserve_memory(const TopologySpec& spec) {
  const unsigned count = static_cast<unsigned>(nodes_.size());
  std::uint64_t bytes = spec.node_bytes != 0 ? spec.node_bytes : default_node_bytes(count);
  if (bytes < kMinNodeBytes || bytes > kMaxNodeBytes) {
    throw UsageError("topology: node_bytes " + std::to_string(bytes) + " is outside [" +
                     std::to_string(kMinNodeBytes) + ", " + std::to_string(kMaxNodeBytes) + "]");
  }
  bytes &= ~(kMaxBlockBytes - 1);
  std::uint64_t low = spec.low_bytes != 0 ? spec.low_bytes : std::min(bytes, kDma32Limit);
  if (low > bytes || low > kDma32Limit || low < std::min(bytes, kMinLowBytes)) {
    throw UsageError("topology: low_bytes " + std::to_string(low) + " must lie within [" +
                     std::to_string(std::min(bytes, kMinLowBytes)) + ", min(node_bytes, 4 GiB)]");
  }
  low &= ~(kMaxBlockBytes - 1);
  // Node 0: [0, low) below 4 GiB, the rest from 4 GiB up; the other nodes lie
  // above 4 GiB (a stride of at least 4 GiB), as on a real multi-node machine.
  const std::uint64_t span0 = low == bytes ? bytes : kDma32Limit + (bytes - low);
  std::uint64_t stride = std::bit_ceil(std::max(span0, bytes));
  if (count > 1) {
    stride = std::max(stride, kDma32Limit);
  }
  stride_shift_ = static_cast<unsigned>(std::countr_zero(stride));
  if (stride * count > kMaxSpanBytes) {
    throw UsageError("topology: " + std::to_string(count) + " nodes of " +
                     std::to_string(bytes >> 20) + " MiB exceed the simulated address space");
  }
  if (low < span0 && low < kDma32Limit) {
    hole_begin_ = low;
    hole_end_ = kDma32Limit;
  }

  assign_pcp_marks(spec.pcp_high_pages != 0 ? spec.pcp_high_pages : kPcpDefaultHighPages,
                   spec.pcp_batch_pages != 0 ? spec.pcp_batch_pages : kPcpDefaultBatchPages);

  // One reservation for all nodes, aligned so that VA and PA share their low bits.
  va_align_ = std::max<std::uint64_t>(stride, 1ull << 30);
  const std::size_t span = stride * count;
  reservation_bytes_ = span + va_align_;
  reservation_ = map_noreserve(reservation_bytes_, PROT_NONE);
  const auto raw = reinterpret_cast<std::uintptr_t>(reservation_);
  va_base_ = (raw + va_align_ - 1) & ~(va_align_ - 1);

  mem_.resize(count);
  balloons_ = std::make_unique<Balloon[]>(count);
  reclaim_ = std::make_unique<NodeReclaim[]>(count);
  node_count_ = count;
  for (unsigned k = 0; k < count; ++k) {
    NodeInfo& info = nodes_[k];
    Node& n = mem_[k];
    const std::uint64_t node_span = k == 0 ? span0 : bytes;
    info.sim_bytes = bytes;
    info.phys_base = std::uint64_t{k} << stride_shift_;
    info.phys_end = info.phys_base + node_span;
    n.va = node_va(static_cast<NodeId>(k));
    n.pages = static_cast<std::uint32_t>(node_span >> kPageShift);
    n.ram_pages = static_cast<std::uint32_t>(bytes >> kPageShift);
    n.phys_last = info.phys_end - 1;
    const std::size_t meta = page_round(std::size_t{n.pages} * sizeof(PageMeta));
    n.meta = static_cast<PageMeta*>(map_noreserve(meta, PROT_READ | PROT_WRITE));
    meta_bytes_ += meta;

    // RAM ranges in physical addresses: node 0 may have a second one above its hole.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
    if (k == 0 && hole_end_ != 0) {
      ranges = {{0, low}, {kDma32Limit, span0}};
    } else {
      ranges = {{info.phys_base, info.phys_end}};
    }
    for (const auto& [rb, re] : ranges) {
      void* va = reinterpret_cast<void*>(va_base_ + rb);
      if (mprotect(va, re - rb, PROT_READ | PROT_WRITE) != 0) {
        throw RunError(std::string("physmem: mprotect of node memory failed: ") +
                       std::strerror(errno));
      }
      ram_.push_back({va_base_ + rb, re - rb, static_cast<NodeId>(k)});
      // Zones as in Linux: DMA below 16 MiB, DMA32 below 4 GiB, Normal above.
      const std::uint64_t limits[] = {kDmaLimit, kDma32Limit, ~0ull};
      const ZoneKind kinds[] = {ZoneKind::dma, ZoneKind::dma32, ZoneKind::normal};
      std::uint64_t lo = 0;
      for (int z = 0; z < 3; ++z) {
        const std::uint64_t zb = std::max(rb, lo);
        const std::uint64_t ze = std::min(re, limits[z]);
        lo = limits[z];
        if (zb >= ze) {
          continue;
        }
        auto zone = std::make_unique<Zone>();
        zone->kind = kinds[z];
        zone->begin = static_cast<std::uint32_t>((zb - info.phys_base) >> kPageShift);
        zone->end = static_cast<std::uint32_t>((ze - info.phys_base) >> kPageShift);
        zone->frontier = zone->begin;
        zone->head.fill(~0u);
        zone->free_pages = zone->end - zone->begin;
        n.zones.push_back(std::move(zone));
      }
    }
  }
  // Node 0's first MiB is firmware's: carve its first max-order block and give back the rest.
  {
    Node& n0 = mem_[0];
    Zone& z = *n0.zones.front();
    n0.reserved = static_cast<std::uint32_t>(kReservedLowBytes >> kPageShift);
    z.frontier = z.begin + (1u << kMaxOrder);
    z.free_pages -= 1u << kMaxOrder;
    std::lock_guard<std::mutex> hold(z.lock);
    give_run(n0, z, n0.reserved, (1u << kMaxOrder) - n0.reserved);
  }
  for (Node& n : mem_) {
    for (auto& z : n.zones) {
      z->managed = z->free_pages;
    }
  }
  apply_watermark_params(spec.min_free_kbytes, spec.watermark_scale_factor);

  pcp_bytes_ = page_round(sizeof(PcpSet) * kMaxCpuSlots * count);
  pcp_ = static_cast<PcpSet*>(map_noreserve(pcp_bytes_, PROT_READ | PROT_WRITE));
}

std::uint64_t Machine::ram_bytes() const noexcept {
  std::uint64_t total = 0;
  for (const RamRange& r : ram_) {
    total += r.bytes;
  }
  return total;
}

bool populate_range(void* p, std::size_t bytes, bool huge) noexcept {
  if (bytes == 0) {
    return true;
  }
  if (huge) {
    madvise(p, bytes, MADV_HUGEPAGE);  // a hint: without THP the pages are small
  }
  if (madvise(p, bytes, MADV_POPULATE_WRITE) == 0) {
    return true;
  }
  if (errno != EINVAL) {
    return false;  // ENOMEM and the like: the memory is not there
  }
  // Kernels before 5.14: write each page (the memory is fresh, or ours to clobber).
  auto* bytes_at = static_cast<volatile unsigned char*>(p);
  for (std::size_t off = 0; off < bytes; off += kPageSize) {
    bytes_at[off] = bytes_at[off];
  }
  return true;
}

void Machine::populate_page_table(void* table, std::size_t entry_bytes) const noexcept {
  if (!populated_) {
    return;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(table);
  for (const RamRange& r : ram_) {
    const std::uintptr_t first = base + ((r.va - va_base_) >> kPageShift) * entry_bytes;
    const std::uintptr_t last = first + (r.bytes >> kPageShift) * entry_bytes;
    const std::uintptr_t begin = first & ~(kPageSize - 1);
    const std::uintptr_t end = (last + kPageSize - 1) & ~(kPageSize - 1);
    populate_range(reinterpret_cast<void*>(begin), end - begin);
  }
}

PopulateStats Machine::populate() {
  PopulateStats out;
  const auto t0 = std::chrono::steady_clock::now();
  out.huge_pages = true;
  out.method = "MADV_POPULATE_WRITE";
  errno = 0;
  auto fill = [&](void* p, std::size_t bytes, bool huge, const char* what) {
    if (!populate_range(p, bytes, huge)) {
      throw RunError("physmem: cannot make " + std::to_string(bytes >> 20) + " MiB of " + what +
                     " resident (" + std::to_string(ram_bytes() >> 20) +
                     " MiB of simulated RAM in all): " + std::strerror(errno));
    }
    out.bytes += bytes;
  };
  for (const RamRange& r : ram_) {
    fill(reinterpret_cast<void*>(r.va), r.bytes, true, "simulated RAM");
  }
  for (const Node& n : mem_) {
    fill(n.meta, page_round(std::size_t{n.pages} * sizeof(PageMeta)), false, "page descriptors");
  }
  fill(pcp_, pcp_bytes_, false, "per-CPU page lists");
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.huge_bytes = base::proc_kib_field("/proc/self/smaps_rollup", "AnonHugePages");
  populated_ = true;
  return out;
}

namespace {
std::atomic<Machine*> g_current{nullptr};
}  // namespace

Machine& current_machine() {
  Machine* m = g_current.load(std::memory_order_acquire);
  if (m != nullptr) [[likely]] {
    return *m;
  }
  static Machine* const fallback = [] {
    const char* env = std::getenv("KMBENCH_TOPOLOGY");
    return new Machine(env != nullptr && *env != '\0' ? topology_from_string(env) : TopologySpec{});
  }();
  return *fallback;
}

void set_current_machine(Machine* m) noexcept { g_current.store(m, std::memory_order_release); }

}  // namespace kmbench::physmem
