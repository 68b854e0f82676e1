// physmem: simulated physical memory, NUMA topology and the page layer.
//
// Each NUMA node of the run's topology (hwloc: the real machine, a synthetic
// string or an XML export) owns one reserved range of address space acting as
// its RAM. Node k's memory sits at physical address k * stride, so a physical
// address is the offset into one reservation: PA <-> VA is one subtraction,
// node 0 starts at 0 and a DMA32 (< 4 GiB) region exists. The first MiB of
// node 0 is reserved (as firmware keeps it on x86), so no page handed out has
// physical address 0.
//
// Pages are managed as Linux does: a binary buddy per node and zone (DMA
// < 16 MiB, DMA32 < 4 GiB, Normal), orders 0..kMaxOrder, with per-CPU page
// lists (pcp) in front for orders below kPcpOrders. A pcp set belongs to one
// CPU slot (allocators/cpu_slot.h) and one node, so its fast path takes no lock.
// Max-order blocks are carved from a zone's untouched memory on first need, so
// a large simulated machine costs nothing until used.
//
// Each zone has Linux's watermarks min/low/high (from vm.min_free_kbytes and
// vm.watermark_scale_factor). A request that keeps them (kGfpKernel,
// kGfpAtomic) is served above low; below that it wakes the background
// reclaimer (kswapd), which runs the registered shrinkers until every zone of
// the node is above high, and is served down to min (an atomic request lower,
// into the reserve); a request that may wait then reclaims itself.
#pragma once

#include <hwloc.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "allocators/backend.h"
#include "allocators/cpu_slot.h"

namespace kmbench::physmem {

inline constexpr std::size_t kPageSize = 4096;
inline constexpr unsigned kPageShift = 12;
inline constexpr unsigned kMaxOrder = 10;  // orders 0..10: 4 KiB..4 MiB
inline constexpr unsigned kPcpOrders = 4;  // orders 0..3 go through per-CPU page lists
inline constexpr std::uint32_t kPcpCapPages = 1024;  // largest pcp high mark, in pages
inline constexpr std::uint32_t kPcpDefaultHighPages = 384;  // pcp high mark when a topology names none
inline constexpr std::uint32_t kPcpDefaultBatchPages = 64;  // pages per refill or spill, likewise
inline constexpr std::uint64_t kDmaLimit = 16ull << 20;   // ZONE_DMA ends here (ISA)
inline constexpr std::uint64_t kDma32Limit = 4ull << 30;  // ZONE_DMA32 ends here
inline constexpr std::uint64_t kReservedLowBytes = 1ull << 20;  // node 0's firmware area
inline constexpr std::uint32_t kDefaultWatermarkScaleFactor = 10;  // vm.watermark_scale_factor, in 1/10000
inline constexpr std::uint32_t kMaxWatermarkScaleFactor = 3000;    // Linux's limit for it (30%)

/// How a page allocation may get its pages: the parts of Linux's gfp_t the page
/// layer models. Flags combine; the presets below are what callers pass.
enum Gfp : std::uint32_t {
  kGfpWatermarks = 1u << 0,     // keep the zones' reserves: served above low, then above min once kswapd is woken
  kGfpKswapdReclaim = 1u << 1,  // __GFP_KSWAPD_RECLAIM: wake the node's reclaimer when a zone falls below low
  kGfpDirectReclaim = 1u << 2,  // __GFP_DIRECT_RECLAIM: may wait; runs the shrinkers itself before failing
  kGfpHigh = 1u << 3,           // __GFP_HIGH (ALLOC_HIGH): min is halved
  kGfpHarder = 1u << 4,         // ALLOC_HARDER, an atomic request's: what is left of min loses a quarter
};
/// GFP_KERNEL: may wait and reclaim; never takes a zone below min.
inline constexpr std::uint32_t kGfpKernel = kGfpWatermarks | kGfpKswapdReclaim | kGfpDirectReclaim;
/// GFP_ATOMIC, and what kmbench's noblock and nowait requests get: never waits
/// or reclaims, and may take a zone down to 3/8 of min (the atomic reserve).
inline constexpr std::uint32_t kGfpAtomic = kGfpWatermarks | kGfpKswapdReclaim | kGfpHigh | kGfpHarder;
/// What every caller of the page layer got before it had watermarks, and still
/// gets unless it asks for more: any free page, the reserve's too; a zone left
/// below low wakes kswapd. The backends drawing their memory in chunks (zones,
/// slab, jemalloc, mimalloc) and the KPI's page runs and DMA buffers use it.
inline constexpr std::uint32_t kGfpNoWatermarks = kGfpKswapdReclaim;

/// A zone's watermarks, in pages.
struct ZoneWatermarks {
  std::uint64_t min = 0, low = 0, high = 0;
  bool operator==(const ZoneWatermarks&) const = default;
};

/// Linux's default vm.min_free_kbytes for lowmem_pages of memory:
/// sqrt(16 x KiB), within [128, 262144] (mm/page_alloc.c, init_per_zone_wmark_min).
std::uint64_t default_min_free_kbytes(std::uint64_t lowmem_pages) noexcept;
/// A zone's marks as __setup_per_zone_wmarks sets them: min is the zone's share
/// (by size) of min_free_kbytes; low = min + max(min / 4, pages x scale_factor /
/// 10000), high = low + the same gap. pre: zone_pages <= lowmem_pages.
ZoneWatermarks zone_watermarks(std::uint64_t zone_pages, std::uint64_t lowmem_pages,
                               std::uint64_t min_free_kbytes, std::uint32_t scale_factor) noexcept;

/// How the run's topology is chosen.
struct TopologySpec {
  enum class Kind { real, synthetic, xml } kind = Kind::real;
  std::string text;              // hwloc synthetic string or XML path
  std::uint64_t node_bytes = 0;  // simulated RAM per node (0: default_node_bytes)
  /// Of node 0's RAM, the bytes below 4 GiB (DMA and DMA32); the rest lies from
  /// 4 GiB up, as x86 firmware remaps RAM above the PCI hole. 0: min(node_bytes, 4 GiB).
  std::uint64_t low_bytes = 0;
  std::uint32_t pcp_high_pages = 0;   // per-CPU list high mark in pages (0: kPcpDefaultHighPages); <= kPcpCapPages
  std::uint32_t pcp_batch_pages = 0;  // pages moved per refill/spill (0: kPcpDefaultBatchPages); <= high
  std::uint64_t min_free_kbytes = 0;         // vm.min_free_kbytes (0: default_min_free_kbytes of all RAM)
  std::uint32_t watermark_scale_factor = 0;  // vm.watermark_scale_factor (0: 10); <= kMaxWatermarkScaleFactor
};

/// The most objects a synthetic topology's last level may have (PUs, or
/// whatever it ends with).
inline constexpr std::uint64_t kMaxSyntheticLeaves = 4096;

/// Parses a topology as users write it: "real", "synthetic:<hwloc string>" or
/// "xml:<path>". Throws UsageError naming the text, or a synthetic machine
/// of more than kMaxSyntheticLeaves objects at its last level.
TopologySpec topology_from_string(const std::string& text, std::uint64_t node_bytes = 0);

/// Simulated RAM per node when TopologySpec::node_bytes is 0: 8 GiB over all
/// nodes, at least 1 GiB each (reserved address space; only touched pages cost
/// RAM until populate()).
std::uint64_t default_node_bytes(unsigned node_count) noexcept;

/// Makes [p, p + bytes) resident (MADV_POPULATE_WRITE, else a write per page):
/// for a backend's own tables over a populated machine. false if it could not.
bool populate_range(void* p, std::size_t bytes, bool huge = false) noexcept;

/// One NUMA node of the run's topology.
struct NodeInfo {
  NodeId id = 0;
  std::vector<unsigned> cpus;           // OS CPU numbers (synthetic: hwloc's own numbering)
  std::uint64_t os_memory_bytes = 0;    // what the topology says the node has
  std::uint64_t sim_bytes = 0;          // simulated RAM of this run
  std::uint64_t phys_base = 0;          // first physical address
  std::uint64_t phys_end = 0;           // one past the last: RAM, and node 0's hole below 4 GiB
  bool bound = false;                   // range bound to the real node (hwloc membind)
  bool placement_verified = false;      // a touched page was found on the node it is bound to
};

enum class ZoneKind : std::uint8_t { dma, dma32, normal };
const char* zone_name(ZoneKind kind) noexcept;

/// Free memory of one zone of one node.
struct ZoneStats {
  ZoneKind kind = ZoneKind::normal;
  std::uint64_t phys_begin = 0, phys_end = 0;
  std::uint64_t free_pages = 0;
  std::uint64_t managed_pages = 0;  // pages of the zone the allocator manages (reserved ones excluded)
  ZoneWatermarks wmark;
  std::array<std::uint64_t, kMaxOrder + 1> free_blocks{};  // untouched memory counts at kMaxOrder
};

/// Free memory of one node: buddy free lists of all its zones, and pages parked in pcp lists.
struct NodeStats {
  NodeId node = 0;
  std::uint64_t total_pages = 0;  // allocatable pages (reserved ones excluded)
  std::uint64_t free_pages = 0;   // in the buddy (not counting pcp lists)
  std::uint64_t pcp_pages = 0;    // free pages cached in per-CPU lists
  std::uint64_t balloon_pages = 0;  // taken out of use by the balloon (neither free nor allocated)
  std::array<std::uint64_t, kMaxOrder + 1> free_blocks{};
  std::vector<ZoneStats> zones;
  // Watermarks and reclaim, since the machine was made:
  std::uint64_t below_low_allocs = 0;  // allocations that left a zone below its low mark
  std::uint64_t reserve_allocs = 0;    // of which below min: atomic requests (or callers keeping no watermarks)
  std::uint64_t min_failures = 0;      // requests keeping the watermarks that failed: no zone had pages above min
  std::uint64_t kswapd_wakeups = 0;    // the reclaimer woken for this node
  std::uint64_t kswapd_passes = 0;     // its passes over the shrinkers
  std::uint64_t kswapd_reclaimed_pages = 0;  // what those passes gave back, as the shrinkers count it
  std::uint64_t kswapd_failed_runs = 0;      // runs that ended with nothing freed and a zone still below high
  std::uint64_t direct_reclaims = 0;         // shrinker passes run by an allocation that may wait
  std::uint64_t direct_reclaimed_pages = 0;

  /// Largest free buddy block in bytes (0: none).
  std::uint64_t largest_free_bytes() const noexcept;
  /// Linux's fragmentation index for a request of that order, in [0, 1]: near 0 an
  /// allocation would fail for lack of memory, near 1 for fragmentation; -1 when a
  /// free block of that order exists.
  double fragmentation_index(unsigned order) const noexcept;
  /// Gorman's unusable free space index: share of free pages in blocks below that order.
  double unusable_index(unsigned order) const noexcept;
};

/// Snapshot of the page layer. pcp counters are exact once allocating threads are quiet.
struct PageStats {
  std::vector<NodeStats> nodes;
  std::uint64_t pcp_hits = 0;     // pcp allocations served from the list
  std::uint64_t pcp_misses = 0;   // pcp allocations that had to refill from the buddy
  std::uint64_t pcp_refills = 0;  // batches moved buddy -> pcp
  std::uint64_t pcp_spills = 0;   // batches moved pcp -> buddy (high mark reached, or a drain)
  std::uint32_t pcp_high_pages = 0, pcp_batch_pages = 0;  // the marks (set_pcp_marks)
  std::uint64_t min_free_kbytes = 0;                       // the watermarks' parameters (set_watermark_params)
  std::uint32_t watermark_scale_factor = 0;
  std::uint64_t metadata_bytes = 0;  // page descriptors and pcp lists actually reserved

  std::uint64_t free_pages() const noexcept;
  /// Dotted metrics: physmem.pcp.hits, physmem.node0.free_pages.order3, ...
  std::vector<Metric> metrics() const;
};

/// Where a range really lies, as the kernel reports it (real topologies only).
struct Placement {
  bool measured = false;  // false: synthetic topology or nothing touched yet
  NodeId node = kAnyNode; // the single node holding the touched pages, kAnyNode if several
  std::string note;       // "synthetic topology: placement not measured", ...
};

/// What Machine::populate() did.
struct PopulateStats {
  std::uint64_t bytes = 0;        // RAM and page-layer metadata made resident
  double seconds = 0;
  bool huge_pages = false;        // transparent huge pages were asked for (MADV_HUGEPAGE)
  std::uint64_t huge_bytes = 0;   // of the process's anonymous memory, in huge pages after
  std::string method;             // "MADV_POPULATE_WRITE" or "page writes"
};

/// A range of simulated RAM in the address space.
struct RamRange {
  std::uintptr_t va = 0;
  std::uint64_t bytes = 0;
  NodeId node = 0;
};

/// A simulated machine: topology, RAM per node and the page allocator over it.
/// Thread safe. Memory is released when the Machine is destroyed.
class Machine {
 public:
  explicit Machine(const TopologySpec& spec = {});  // throws UsageError on a bad spec
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  bool synthetic() const noexcept { return synthetic_; }  // true: nothing is bound to real nodes
  std::string topology_description() const;  // "real: 1 node", "synthetic: pack:2 [numa] ..."
  /// What a result should say about NUMA placement on this machine.
  std::string numa_note() const;
  unsigned node_count() const noexcept { return node_count_; }
  const NodeInfo& node(NodeId id) const { return nodes_.at(static_cast<std::size_t>(id)); }
  NodeId node_of_cpu(unsigned cpu) const noexcept;  // cpu not in the topology: node 0
  NodeId node_of_phys(std::uint64_t pa) const noexcept;  // kAnyNode: not memory of this machine
  NodeId node_of(const void* va) const noexcept;         // kAnyNode: not memory of this machine
  /// The calling thread's node: its CPU's (real) or its CPU slot's (synthetic).
  NodeId local_node() const noexcept;

  /// 2^order pages, naturally aligned physically and virtually, below max_phys
  /// (inclusive); nullptr when none. node kAnyNode: the local node, then the
  /// others; a given node: only that node. gfp (Gfp): which watermarks hold
  /// and whether the caller may reclaim; it waits for nothing but its own
  /// reclaim (kGfpDirectReclaim). A hit in the CPU's page list is served
  /// whatever the marks: its pages are already off the zones' free counts.
  void* alloc_pages(unsigned order, NodeId node, std::uint64_t max_phys = ~0ull,
                    std::uint32_t gfp = kGfpNoWatermarks) noexcept;
  /// pre: p came from alloc_pages with this order and is not freed yet.
  void free_pages(void* p, unsigned order) noexcept;
  /// alloc_pages(order, kAnyNode, max_phys) and free_pages's CPU page list
  /// paths alone, for the calling thread's CPU slot `slot`: neither makes a
  /// call. nullptr or false, with nothing changed, when the list is empty or
  /// full or is not the one to serve the request (a machine of several nodes,
  /// a ceiling below the node's memory); the caller then calls alloc_pages or
  /// free_pages.
  void* try_alloc_pages(unsigned slot, unsigned order, std::uint64_t max_phys) noexcept;
  bool try_free_pages(unsigned slot, void* p, unsigned order) noexcept;

  /// Page-granular runs of any length (Linux alloc_pages_exact; beyond kMaxOrder
  /// like alloc_contig_range): physically contiguous, aligned to `align` (a power
  /// of two; at least a page). nullptr when none, bytes is 0 or align is bad.
  /// gfp as alloc_pages's.
  void* alloc_contiguous(std::size_t bytes, std::size_t align, NodeId node,
                         std::uint64_t max_phys = ~0ull, std::uint32_t gfp = kGfpNoWatermarks) noexcept;
  /// pre: [p, p + bytes rounded to pages) came from alloc_contiguous and is not freed yet.
  void free_contiguous(void* p, std::size_t bytes) noexcept;

  /// pre: owns(va). O(1).
  std::uint64_t phys_of(const void* va) const noexcept {
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(va) - va_base_);
  }
  /// nullptr when pa is not memory of this machine. O(1).
  void* virt_of(std::uint64_t pa) const noexcept {
    return node_of_phys(pa) == kAnyNode ? nullptr : reinterpret_cast<void*>(va_base_ + pa);
  }
  bool owns(const void* va) const noexcept { return node_of(va) != kAnyNode; }
  /// The one reserved range holding every node's memory (and the gaps between
  /// nodes): [memory_base(), memory_base() + memory_span()). For tables by page.
  std::uintptr_t memory_base() const noexcept { return va_base_; }
  std::uintptr_t memory_span() const noexcept {
    return static_cast<std::uintptr_t>(node_count_) << stride_shift_;
  }

  /// Gives the calling CPU slot's pcp pages back to the buddy; returns bytes given back.
  /// trim keeps up to batch pages per list, drain keeps none.
  std::size_t drain_local(bool keep_batch = false) noexcept;
  /// Drains every CPU slot's lists. pre: no other thread uses this machine meanwhile.
  std::size_t drain_all_quiescent() noexcept;

  /// The per-CPU page lists' marks, in order-0 pages: a free that finds a list
  /// at `high` spills it down to high - batch; an empty list refills `batch`.
  /// Each order above 0 holds half the blocks of the one below (at least 1).
  /// Drains every list first. Throws UsageError unless 1 <= batch <= high <=
  /// kPcpCapPages. pre: no other thread uses this machine meanwhile.
  void set_pcp_marks(std::uint32_t high_pages, std::uint32_t batch_pages);
  std::uint32_t pcp_high_pages() const noexcept { return pcp_high_[0]; }
  std::uint32_t pcp_batch_pages() const noexcept { return pcp_batch_[0]; }

  /// vm.min_free_kbytes and vm.watermark_scale_factor (0: Linux's default for
  /// each): sets every zone's marks from them, as writing the sysctls does.
  /// Throws UsageError when scale_factor exceeds kMaxWatermarkScaleFactor or
  /// the marks would leave some zone no page above high.
  void set_watermark_params(std::uint64_t min_free_kbytes, std::uint32_t scale_factor);
  /// Sets one zone's marks (tests, experiments). Throws UsageError unless the
  /// zone exists and min <= low <= high <= its managed pages.
  void set_zone_watermarks(NodeId node, ZoneKind zone, ZoneWatermarks marks);

  /// A cache owner's reclaim (Linux's shrinker): gives cached memory back to
  /// the machine and returns the bytes. Run by kswapd, and by an allocation
  /// that may wait (kGfpDirectReclaim) before it fails, on their own threads.
  /// pre: thread safe, does not throw, and does not register or unregister shrinkers.
  using Shrinker = std::function<std::size_t(ReclaimLevel)>;
  /// Registers a shrinker; the first one starts kswapd. Returns its id.
  std::uint64_t register_shrinker(Shrinker shrinker);
  /// post: the shrinker runs no more; the last one's going stops kswapd (its thread is joined).
  void unregister_shrinker(std::uint64_t id) noexcept;

  /// The balloon: memory taken out of a node's use, as a hypervisor's balloon
  /// driver takes it from a guest (docs/pressure.md). inflate takes up to
  /// `pages` free pages of `node` from its buddy lists, highest zone and order
  /// first, and returns how many it took (fewer when the node has fewer free;
  /// pages in per-CPU lists stay there). deflate gives up to `pages` back,
  /// the last taken first, and returns how many. pre: node < node_count().
  std::uint64_t balloon_inflate(NodeId node, std::uint64_t pages) noexcept;
  std::uint64_t balloon_deflate(NodeId node, std::uint64_t pages) noexcept;
  /// Pages the balloon holds on `node` now.
  std::uint64_t balloon_pages(NodeId node) const noexcept;

  PageStats stats() const;
  /// Where [p, p + bytes) lies on the real machine (its touched pages).
  Placement placement(const void* p, std::size_t bytes) const;

  /// Every range of RAM, by node (node 0 has two when it reaches above 4 GiB).
  const std::vector<RamRange>& ram() const noexcept { return ram_; }
  std::uint64_t ram_bytes() const noexcept;
  /// Makes every page of RAM and of the page layer's metadata resident, as a
  /// kernel's direct map is, in huge pages where the system allows; on a real
  /// multi-node machine after each node's range is bound. Throws RunError
  /// when the system cannot (the message says how much was asked).
  /// post: populated()
  PopulateStats populate();
  /// True once populate() ran: no page of RAM faults any more. Backends then
  /// make their own per-page tables resident too (populate_range).
  bool populated() const noexcept { return populated_; }
  /// Said by a user that may hold pages of this machine until the process ends
  /// (mimalloc's arenas): whoever owns the machine must then never destroy it.
  void keep_for_process() noexcept { kept_for_process_.store(true, std::memory_order_relaxed); }
  bool kept_for_process() const noexcept { return kept_for_process_.load(std::memory_order_relaxed); }
  /// For a backend's table with one entry_bytes entry per page from memory_base():
  /// once populated(), makes the entries of every RAM page resident (else nothing).
  void populate_page_table(void* table, std::size_t entry_bytes) const noexcept;

 private:
  struct PageMeta {            // one per page of a node (Linux: struct page)
    std::uint32_t next, prev;  // free-list links (page indices within the node)
    std::uint8_t state;        // kFreeHead: head of a block on a buddy free list
    std::uint8_t order;
    std::uint16_t unused;
  };
  struct Zone {
    ZoneKind kind = ZoneKind::normal;
    std::uint32_t begin = 0, end = 0;  // page indices within the node
    std::uint32_t frontier = 0;        // [frontier, end): untouched, free at kMaxOrder
    std::uint64_t free_pages = 0;      // including untouched
    std::uint64_t managed = 0;         // pages it can hand out (the firmware's excluded)
    std::array<std::uint64_t, 3> wmark{};  // min, low, high (guarded by lock)
    std::array<std::uint32_t, kMaxOrder + 1> head{};
    std::array<std::uint64_t, kMaxOrder + 1> count{};
    mutable std::mutex lock;
  };
  struct Node {
    PageMeta* meta = nullptr;
    std::uintptr_t va = 0;
    std::uint64_t phys_last = 0;  // last physical address of the node (RAM or hole)
    std::uint32_t pages = 0;      // pages spanned, node 0's hole included
    std::uint32_t ram_pages = 0;  // pages of RAM
    std::uint32_t reserved = 0;   // leading pages never handed out
    std::vector<std::unique_ptr<Zone>> zones;  // ascending addresses
  };
  /// One CPU slot's page lists for one node. Only the slot's thread touches
  /// the stacks; counters are read by stats() through atomic_ref.
  struct PcpSet {
    std::uint32_t count[kPcpOrders];
    std::uint64_t hits, misses, refills, spills;
    void* stack[2 * kPcpCapPages];  // order o's stack at kPcpOffset[o]
  };
  static constexpr std::uint32_t kPcpOffset[kPcpOrders] = {
      0, kPcpCapPages, kPcpCapPages + kPcpCapPages / 2,
      kPcpCapPages + kPcpCapPages / 2 + kPcpCapPages / 4};

  template <class T>
  static T load(const T& v) noexcept {
    return std::atomic_ref<T>(const_cast<T&>(v)).load(std::memory_order_relaxed);
  }
  template <class T>
  static void store(T& v, T x) noexcept {
    std::atomic_ref<T>(v).store(x, std::memory_order_relaxed);
  }

  PcpSet& pcp(unsigned slot, NodeId node) const noexcept {
    return pcp_[slot * node_count_ + static_cast<unsigned>(node)];
  }
  std::uintptr_t node_va(NodeId n) const noexcept {
    return va_base_ + (static_cast<std::uintptr_t>(n) << stride_shift_);
  }

  NodeId local_node_slow() const noexcept;
  // `mark` (page_alloc.cpp's kMark*): the watermark an attempt is held to.
  // `served` gathers how low the zones it took from were left (kServed*).
  void* alloc_on(unsigned order, NodeId node, std::uint64_t max_phys, std::uint32_t gfp) noexcept;
  void* get_page(unsigned order, NodeId node, std::uint64_t max_phys, unsigned mark,
                 unsigned& served) noexcept;
  /// Linux's __alloc_pages around attempt(node, mark, served): every node at
  /// low, then each in turn: kswapd woken, min, the CPU's lists drained, direct reclaim.
  template <class Attempt>
  void* allocate_with(NodeId node, std::uint32_t gfp, const Attempt& attempt) noexcept;
  void note_served(NodeId node, std::uint32_t gfp, unsigned served) noexcept;
  std::size_t drain_slot(unsigned slot, NodeId node, bool keep_batch) noexcept;
  void* pcp_refill(PcpSet& set, unsigned order, NodeId node, unsigned mark, unsigned& served) noexcept;
  void pcp_spill(PcpSet& set, unsigned order, NodeId node, std::uint32_t keep) noexcept;
  void* buddy_alloc(NodeId node, unsigned order, std::uint64_t max_phys, unsigned mark,
                    unsigned& served) noexcept;
  void buddy_free(void* p, unsigned order) noexcept;
  void* contiguous_on(NodeId node, std::uint64_t pages, unsigned align_order,
                      std::uint64_t max_phys, unsigned mark, unsigned& served) noexcept;
  void* contiguous_scan(NodeId node, std::uint64_t pages, std::uint64_t align_bytes,
                        std::uint64_t max_phys, unsigned mark, unsigned& served) noexcept;
  // pre (these two): z.lock held
  static bool zone_allows(const Zone& z, std::uint64_t pages, unsigned mark) noexcept;
  static unsigned zone_served(const Zone& z) noexcept;

  // Reclaim (reclaim.cpp).
  void wake_kswapd(NodeId node) noexcept;
  void kswapd_main() noexcept;
  bool kswapd_balance(NodeId node) noexcept;  // true: the node is balanced or the run freed something
  bool node_balanced(NodeId node) const noexcept;
  std::size_t run_shrinkers() noexcept;
  std::size_t direct_reclaim(NodeId node) noexcept;
  void stop_kswapd() noexcept;
  void apply_watermark_params(std::uint64_t min_free_kbytes, std::uint32_t scale_factor);

  Zone& zone_of(Node& n, std::uint32_t pfn) noexcept;
  void list_push(Node& n, Zone& z, std::uint32_t pfn, unsigned order) noexcept;
  void list_remove(Node& n, Zone& z, std::uint32_t pfn, unsigned order) noexcept;
  void split(Node& n, Zone& z, std::uint32_t pfn, unsigned from, unsigned to) noexcept;
  // pre (these four): z.lock held
  std::uint32_t take(Node& n, Zone& z, unsigned order, std::uint64_t max_phys,
                     std::uint64_t node_phys) noexcept;
  void give(Node& n, Zone& z, std::uint32_t pfn, unsigned order) noexcept;
  void give_run(Node& n, Zone& z, std::uint32_t pfn, std::uint64_t pages) noexcept;

  void load_topology(const TopologySpec& spec);
  void release() noexcept;
  void reserve_memory(const TopologySpec& spec);
  void bind_nodes();

  hwloc_topology_t topo_ = nullptr;
  bool synthetic_ = true;
  TopologySpec::Kind kind_ = TopologySpec::Kind::real;
  std::string spec_text_;
  std::vector<NodeInfo> nodes_;
  std::vector<Node> mem_;
  /// A node's balloon: runs of pages it took, in the order taken.
  struct Balloon {
    mutable std::mutex lock;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> runs;  // (first page index, pages)
    std::atomic<std::uint64_t> pages{0};
  };
  std::unique_ptr<Balloon[]> balloons_;
  /// A node's watermark and reclaim counters, and its kswapd state.
  struct NodeReclaim {
    std::atomic<std::uint64_t> below_low{0}, reserve{0}, min_failures{0};
    std::atomic<std::uint64_t> wakeups{0}, passes{0}, reclaimed_pages{0}, failed_runs{0};
    std::atomic<std::uint64_t> direct{0}, direct_pages{0};
    std::atomic<std::uint32_t> fruitless{0};  // consecutive kswapd runs that freed nothing
    std::atomic<bool> pending{false};         // woken, and its run not over yet
  };
  std::unique_ptr<NodeReclaim[]> reclaim_;
  std::uint64_t min_free_kbytes_ = 0;
  std::uint32_t watermark_scale_factor_ = kDefaultWatermarkScaleFactor;
  // kswapd: one thread for the machine (reclaim.cpp says why), alive while a shrinker is registered.
  std::mutex registry_lock_;             // orders register/unregister, and the thread's start and join
  mutable std::shared_mutex shrinker_lock_;  // shared while shrinkers run; exclusive to change the list
  std::vector<std::pair<std::uint64_t, Shrinker>> shrinkers_;
  std::uint64_t next_shrinker_ = 1;
  std::atomic<unsigned> shrinker_count_{0};
  std::mutex kswapd_lock_;
  std::condition_variable kswapd_wake_;
  bool kswapd_work_ = false, kswapd_stop_ = false;  // guarded by kswapd_lock_
  std::thread kswapd_;
  unsigned node_count_ = 0;
  std::vector<NodeId> cpu_node_;  // by OS CPU number
  std::array<NodeId, kMaxCpuSlots> slot_node_{};  // synthetic: the node a CPU slot stands on
  std::uintptr_t va_align_ = 0;
  std::uintptr_t va_base_ = 0;
  unsigned stride_shift_ = 0;
  void* reservation_ = nullptr;
  std::size_t reservation_bytes_ = 0;
  std::vector<RamRange> ram_;
  std::uint64_t hole_begin_ = 0, hole_end_ = 0;  // node 0's physical hole below 4 GiB, if any
  bool populated_ = false;
  std::atomic<bool> kept_for_process_{false};
  PcpSet* pcp_ = nullptr;
  std::size_t pcp_bytes_ = 0;
  std::size_t meta_bytes_ = 0;
  /// Checks and sets the marks (set_pcp_marks without the drain).
  void assign_pcp_marks(std::uint32_t high, std::uint32_t batch);
  std::array<std::uint32_t, kPcpOrders> pcp_high_{};   // in blocks of that order
  std::array<std::uint32_t, kPcpOrders> pcp_batch_{};
};

/// True on the machine's kswapd thread (Linux's current_is_kswapd()): for a
/// shrinker that counts its background calls apart from direct reclaim.
bool current_is_kswapd() noexcept;

/// The process's machine: the one given to set_current_machine() or, on first
/// use, the topology in $KMBENCH_TOPOLOGY (topology_from_string; default: the
/// real one) with default sizes, never destroyed. Throws UsageError on a bad value.
Machine& current_machine();
/// pre: m outlives its use as the current machine; nullptr restores the default.
void set_current_machine(Machine* m) noexcept;

// ---- fast paths -------------------------------------------------------------

inline NodeId Machine::node_of(const void* va) const noexcept {
  return node_of_phys(phys_of(va));
}

inline NodeId Machine::node_of_phys(std::uint64_t pa) const noexcept {
  const std::uint64_t n = pa >> stride_shift_;
  if (n >= node_count_ || pa > mem_[n].phys_last || pa - hole_begin_ < hole_end_ - hole_begin_) {
    return kAnyNode;
  }
  return static_cast<NodeId>(n);
}

inline NodeId Machine::local_node() const noexcept {
  if (node_count_ == 1) [[likely]] {
    return 0;
  }
  return local_node_slow();
}

inline void* Machine::alloc_pages(unsigned order, NodeId node, std::uint64_t max_phys,
                                  std::uint32_t gfp) noexcept {
  const NodeId n0 = node == kAnyNode ? local_node() : node;
  if (static_cast<unsigned>(n0) < node_count_ && order < kPcpOrders &&
      max_phys >= mem_[static_cast<std::size_t>(n0)].phys_last) [[likely]] {
    PcpSet& set = pcp(this_cpu_slot(), n0);
    const std::uint32_t n = set.count[order];
    if (n != 0) [[likely]] {
      store(set.count[order], n - 1);
      store(set.hits, set.hits + 1);
      return set.stack[kPcpOffset[order] + n - 1];
    }
  }
  return alloc_on(order, node, max_phys, gfp);
}

inline void* Machine::try_alloc_pages(unsigned slot, unsigned order, std::uint64_t max_phys) noexcept {
  if (node_count_ == 1 && order < kPcpOrders && max_phys >= mem_[0].phys_last) [[likely]] {
    PcpSet& set = pcp(slot, 0);
    const std::uint32_t n = set.count[order];
    if (n != 0) [[likely]] {
      store(set.count[order], n - 1);
      store(set.hits, set.hits + 1);
      return set.stack[kPcpOffset[order] + n - 1];
    }
  }
  return nullptr;
}

inline bool Machine::try_free_pages(unsigned slot, void* p, unsigned order) noexcept {
  if (node_count_ == 1 && order < kPcpOrders) [[likely]] {
    PcpSet& set = pcp(slot, 0);
    const std::uint32_t n = set.count[order];
    if (n != pcp_high_[order]) [[likely]] {
      set.stack[kPcpOffset[order] + n] = p;
      store(set.count[order], n + 1);
      return true;
    }
  }
  return false;
}

inline void Machine::free_pages(void* p, unsigned order) noexcept {
  if (order < kPcpOrders) [[likely]] {
    const NodeId node = static_cast<NodeId>(phys_of(p) >> stride_shift_);
    PcpSet& set = pcp(this_cpu_slot(), node);
    const std::uint32_t n = set.count[order];
    if (n == pcp_high_[order]) [[unlikely]] {
      pcp_spill(set, order, node, pcp_high_[order] - pcp_batch_[order]);
      set.stack[kPcpOffset[order] + set.count[order]] = p;
      store(set.count[order], set.count[order] + 1);
      return;
    }
    set.stack[kPcpOffset[order] + n] = p;
    store(set.count[order], n + 1);
    return;
  }
  buddy_free(p, order);
}

}  // namespace kmbench::physmem
