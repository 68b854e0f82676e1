// buddy: the binary buddy over simulated physical memory as an allocator.
//
// Every request becomes a power-of-two run of pages from the page layer
// (allocators/physmem), as Linux's kmalloc_large does: a 16-byte request costs
// a 4 KiB page. That waste is what this backend exists to show. Orders 0..3
// go through the per-CPU page lists; beyond 4 MiB a page-granular contiguous
// run is taken. Every block has a physical address.
//
// Requests keep the zones' watermarks as a kernel's page allocations do:
// allocate is GFP_KERNEL (served down to min, reclaiming before it fails),
// allocate_nowait GFP_ATOMIC (never reclaims, may take the reserve below min);
// the replay's noblock and nowait steps come through the latter.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "allocators/backend.h"
#include "allocators/params.h"
#include "allocators/cpu_slot.h"
#include "allocators/physmem/physmem.h"

namespace kmbench {

class BuddyBackend {
 public:
  static constexpr BackendVariant kVariants[] = {
      {"buddy",
       "binary buddy over simulated physical memory: power-of-two pages, per-CPU page lists", ""},
  };
  static constexpr std::uint32_t kFeatures = kKernelBackendFeatures;
  static constexpr ParamSpec kParams[] = {
      {"max_phys", ParamSpec::Kind::address, "none",
       "every block below this physical address, inclusive (e.g. 0xffffffff); none: no ceiling", {}, 4096,
       INT64_MAX},
      {"pcp_high", ParamSpec::Kind::integer, "machine",
       "per-CPU page list high mark in order-0 pages (Linux's pcp->high): a free that finds a list this "
       "full spills it down to pcp_high - pcp_batch; higher orders hold half as many blocks per order. "
       "Set on the machine for as long as the backend lives; machine: the machine's (384)",
       {}, 1, physmem::kPcpCapPages},
      {"pcp_batch", ParamSpec::Kind::integer, "machine",
       "pages a per-CPU list refills from or spills to the buddy at once (pcp->batch), at most pcp_high; "
       "machine: the machine's (64), or pcp_high when that is lower",
       {}, 1, physmem::kPcpCapPages},
  };

  /// Throws UsageError on a bad parameter (pcp_batch above pcp_high too).
  explicit BuddyBackend(const BackendConfig& config);
  ~BuddyBackend();
  BuddyBackend(const BuddyBackend&) = delete;
  BuddyBackend& operator=(const BuddyBackend&) = delete;

  void* allocate(std::size_t size, std::size_t align, TagId, NodeId node) noexcept {
    return allocate_below(size, align, node, max_phys_, physmem::kGfpKernel);
  }
  /// Below 4 GiB: the page layer's DMA32 and DMA zones (GFP_DMA32).
  void* allocate_low(std::size_t size, std::size_t align, TagId, NodeId node) noexcept {
    return allocate_below(size, align, node, std::min(max_phys_, kLowMemoryLimit - 1), physmem::kGfpKernel);
  }
  /// As allocate and allocate_low, for a request that may not wait (GFP_ATOMIC,
  /// OSMalloc_noblock): it never reclaims and may dip into the reserve below min.
  void* allocate_nowait(std::size_t size, std::size_t align, TagId, NodeId node) noexcept {
    return allocate_below(size, align, node, max_phys_, physmem::kGfpAtomic);
  }
  void* allocate_low_nowait(std::size_t size, std::size_t align, TagId, NodeId node) noexcept {
    return allocate_below(size, align, node, std::min(max_phys_, kLowMemoryLimit - 1), physmem::kGfpAtomic);
  }
  void free_low(void* p, std::size_t size) noexcept { free(p, size); }

  void free(void* p, std::size_t size) noexcept {
    if (p == nullptr) {
      return;
    }
    const std::uint64_t pfn = machine_.phys_of(p) >> physmem::kPageShift;
    if (size <= physmem::kPageSize && shape_[pfn] == kShapeBySize) [[likely]] {
      machine_.free_pages(p, 0);
      add_block(-1, -1);
      return;
    }
    free_large(p, size, pfn);
  }

  /// allocate's and free's CPU page list paths alone (a page for a block of a
  /// page or less, kMinAlign, any node), for a caller that keeps its own slow
  /// path out of line, as the KPI's hot calls do: neither makes a call.
  /// nullptr or false: nothing was taken or written, and the caller goes on to
  /// allocate or free.
  void* try_allocate(std::size_t size) noexcept {
    const unsigned slot = this_cpu_slot_or_unclaimed();
    if (size <= physmem::kPageSize && slot < kMaxCpuSlots) [[likely]] {
      if (void* p = machine_.try_alloc_pages(slot, 0, max_phys_)) [[likely]] {
        add_block_at(slot, 1, 1);
        return p;
      }
    }
    return nullptr;
  }
  bool try_free(void* p, std::size_t size) noexcept {
    const unsigned slot = this_cpu_slot_or_unclaimed();
    if (size <= physmem::kPageSize && slot < kMaxCpuSlots &&
        shape_[machine_.phys_of(p) >> physmem::kPageShift] == kShapeBySize &&
        machine_.try_free_pages(slot, p, 0)) [[likely]] {
      add_block_at(slot, -1, -1);
      return true;
    }
    return false;
  }

  std::size_t usable_size(void* p, std::size_t size) const noexcept;
  std::uint64_t physical_address(const void* p) const noexcept { return machine_.phys_of(p); }
  /// Gives the calling CPU slot's cached pages back to the buddy (trim keeps a batch per list).
  std::size_t reclaim(ReclaimLevel level);
  BackendStats stats() const;
  BackendFootprint footprint() const;  // stats()'s mapped and resident bytes, nothing else

  physmem::Machine& machine() const noexcept { return machine_; }

 private:
  // shape_ values: how a block's head page was allocated, when its size does not say.
  static constexpr std::uint8_t kShapeBySize = 0;   // order (or run) follows from the size
  static constexpr std::uint8_t kShapeRun = 0xff;   // a contiguous run of the page-rounded size
  // 1..kMaxOrder+1: order - 1, raised above the size's order by the alignment

  struct alignas(64) Shard {
    std::int64_t pages = 0;      // pages held (a shard may go negative: frees by other threads)
    std::int64_t blocks = 0;     // blocks held, likewise
    std::uint64_t raised = 0;    // blocks whose order the alignment raised
    std::uint64_t runs = 0;      // contiguous runs (beyond kMaxOrder or alignment)
    std::uint64_t failures = 0;  // allocations that found no memory
  };
  template <class T>
  static void bump(T& counter, T delta) noexcept {
    std::atomic_ref<T>(counter).store(counter + delta, std::memory_order_relaxed);
  }
  template <class T>
  static T load(const T& counter) noexcept {
    return std::atomic_ref<T>(const_cast<T&>(counter)).load(std::memory_order_relaxed);
  }
  void add_block(std::int64_t pages, std::int64_t blocks) noexcept { add_block_at(this_cpu_slot(), pages, blocks); }
  void add_block_at(unsigned slot, std::int64_t pages, std::int64_t blocks) noexcept {
    Shard& s = shards_[slot];
    bump(s.pages, pages);
    bump(s.blocks, blocks);
  }

  void* allocate_below(std::size_t size, std::size_t align, NodeId node, std::uint64_t max_phys,
                       std::uint32_t gfp) noexcept {
    if (size <= physmem::kPageSize && align <= physmem::kPageSize) [[likely]] {
      void* p = machine_.alloc_pages(0, node, max_phys, gfp);
      if (p != nullptr) [[likely]] {
        add_block(1, 1);
      } else {
        Shard& s = shards_[this_cpu_slot()];
        bump(s.failures, std::uint64_t{1});
      }
      return p;
    }
    return allocate_large(size, align, node, max_phys, gfp);
  }
  void* allocate_large(std::size_t size, std::size_t align, NodeId node, std::uint64_t max_phys,
                       std::uint32_t gfp) noexcept;
  void free_large(void* p, std::size_t size, std::uint64_t pfn) noexcept;

  physmem::Machine& machine_;
  std::uint64_t max_phys_ = ~0ull;
  // The machine's pcp marks before this backend set its own (0: it set none).
  std::uint32_t saved_pcp_high_ = 0, saved_pcp_batch_ = 0;
  std::uint8_t* shape_ = nullptr;  // one byte per physical page of the machine
  std::size_t shape_bytes_ = 0;
  std::array<Shard, kMaxCpuSlots> shards_{};
};

}  // namespace kmbench
