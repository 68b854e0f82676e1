// The KPI's core: the active backend and mode, the one allocate/release path
// every KPI family goes through, its accounts, and the emulated panic.
// Internal to kpi/src.
//
// The path is inline so that IOMalloc's body is the whole of it: the backend
// past its counting decorator, then, in strict mode, the block's record
// (block_map.h), then the CPU slot's counters. Nothing on it is shared between
// threads but what the backend itself shares.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "allocators/any_backend.h"
#include "allocators/cpu_slot.h"
#include "block_map.h"
#include "kmbench/kpi.h"

namespace kmbench::kpi::detail {

/// A counter only one thread writes (its CPU slot's): a load and a store, no read-modify-write.
template <class T>
inline void bump(std::atomic<T>& c, T delta) noexcept {
  c.store(c.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}

/// One CPU slot's share of a tag's counts. Bytes: see TagBytes.
struct alignas(64) TagSlot {
  std::atomic<std::uint64_t> allocs{0}, frees{0};
  std::atomic<std::int64_t> pending_bytes{0};  // live bytes not yet folded into the tag's; never below 0
};

}  // namespace kmbench::kpi::detail

/// An OSMalloc tag (opaque to drivers). Never freed: a stale tag stays readable
/// so a use after OSMalloc_Tagfree is caught instead of reading freed memory.
///
/// Its counts live in per-CPU-slot shares, so threads allocating with one tag
/// share no cache line. Live bytes are the tag's folded total plus every
/// share's pending bytes: a share folds into the total once it holds more than
/// kFoldBytes, keeping kFoldBytes / 2, and never goes below zero, so the total
/// never exceeds the true live bytes. The peak is the highest total plus the
/// allocating share's pending bytes: exact with one thread, and with n threads
/// at most (n - 1) * kFoldBytes below the true peak, never above it.
struct __OSMallocTag__ {
  static constexpr std::uint32_t kMagic = 0x4f534d54;  // "OSMT"
  static constexpr std::int64_t kFoldBytes = 64 << 10;
  std::uint32_t magic = kMagic;
  std::atomic<int> state{0};  // kmbench::kpi::TagUsage::State: active or freed_pending (released is derived)
  std::uint32_t flags = 0;
  kmbench::TagId id = kmbench::kNoTag;
  char name[64] = {};
  __OSMallocTag__* next = nullptr;  // creation order
  std::atomic<kmbench::kpi::detail::TagSlot*> slots[kmbench::kMaxCpuSlots] = {};
  alignas(64) std::atomic<std::int64_t> folded_bytes{0};
  alignas(64) std::atomic<std::int64_t> peak_bytes{0};

  kmbench::kpi::detail::TagSlot& share() noexcept {
    kmbench::kpi::detail::TagSlot* s = slots[kmbench::this_cpu_slot()].load(std::memory_order_relaxed);
    return s != nullptr ? *s : new_share();
  }
  kmbench::kpi::detail::TagSlot& new_share() noexcept;

  void count_alloc(std::int64_t bytes) noexcept {
    using kmbench::kpi::detail::bump;
    kmbench::kpi::detail::TagSlot& s = share();
    bump(s.allocs, std::uint64_t{1});
    std::int64_t pending = s.pending_bytes.load(std::memory_order_relaxed) + bytes;
    if (pending > kFoldBytes) [[unlikely]] {
      folded_bytes.fetch_add(pending - kFoldBytes / 2, std::memory_order_relaxed);
      pending = kFoldBytes / 2;
    }
    s.pending_bytes.store(pending, std::memory_order_relaxed);
    const std::int64_t seen = folded_bytes.load(std::memory_order_relaxed) + pending;
    std::int64_t peak = peak_bytes.load(std::memory_order_relaxed);
    while (seen > peak && !peak_bytes.compare_exchange_weak(peak, seen, std::memory_order_relaxed)) {
    }
  }
  void count_free(std::int64_t bytes) noexcept {
    using kmbench::kpi::detail::bump;
    kmbench::kpi::detail::TagSlot& s = share();
    bump(s.frees, std::uint64_t{1});
    std::int64_t pending = s.pending_bytes.load(std::memory_order_relaxed) - bytes;
    if (pending < 0) [[unlikely]] {
      folded_bytes.fetch_add(pending - kFoldBytes / 2, std::memory_order_relaxed);
      pending = kFoldBytes / 2;
    }
    s.pending_bytes.store(pending, std::memory_order_relaxed);
  }
  /// Sums of the shares: exact once the threads using the tag are quiet.
  std::int64_t live_blocks() const noexcept;
  std::int64_t live_bytes() const noexcept;
};

namespace kmbench::kpi::detail {

inline constexpr std::size_t kPage = 4096;
inline constexpr std::uint64_t kMaxPageable = 512ull << 20;  // IOMallocPageable's x86_64 limit

inline constexpr std::uint64_t page_round(std::uint64_t n) { return (n + kPage - 1) & ~std::uint64_t{kPage - 1}; }

/// kalloc's class for every multiple of 16 up to 16 KiB, indexed by (size + 15) / 16.
extern const std::array<std::uint16_t, 16384 / 16 + 1> g_kalloc_class_of16;
/// The XNU kalloc size class of a request (16 for 0; page multiples above 16 KiB).
inline std::uint64_t kalloc_class(std::uint64_t size) noexcept {
  return size <= 16384 ? g_kalloc_class_of16[(size + 15) >> 4] : page_round(size);
}

/// The active backend; opened from KMBENCH_BACKEND on first use.
AnyBackend& open_from_environment();
extern std::atomic<AnyBackend*> g_backend;
inline AnyBackend& active_backend() {
  if (AnyBackend* b = g_backend.load(std::memory_order_acquire)) [[likely]] {
    return *b;
  }
  return open_from_environment();
}
/// The active backend's direct calls, each in a word of its own (set with g_backend, before it).
extern std::atomic<void*> g_direct_self;
extern std::atomic<decltype(AnyBackend::DirectCalls::allocate)> g_direct_allocate;
extern std::atomic<decltype(AnyBackend::DirectCalls::free)> g_direct_free;
inline void* backend_allocate(std::size_t size, std::size_t align, TagId tag) noexcept {
  auto fn = g_direct_allocate.load(std::memory_order_acquire);
  if (fn == nullptr) [[unlikely]] {
    open_from_environment();
    fn = g_direct_allocate.load(std::memory_order_acquire);
  }
  return fn(g_direct_self.load(std::memory_order_relaxed), size, align, tag, kAnyNode);
}
/// pre: p came from backend_allocate with this size.
inline void backend_free(void* p, std::size_t size) noexcept {
  g_direct_free.load(std::memory_order_acquire)(g_direct_self.load(std::memory_order_relaxed), p, size);
}
/// The name of the tag of that id, for messages ("(unknown tag)" when none has it).
const char* tag_name_of_id(TagId id) noexcept;
/// The active backend's name, or "(none)" before first use; never opens one.
const char* backend_name() noexcept;

extern std::atomic<int> g_mode;
Mode mode_from_environment();
inline Mode active_mode() {
  const int m = g_mode.load(std::memory_order_relaxed);
  return m >= 0 ? static_cast<Mode>(m) : mode_from_environment();
}

/// An emulated kernel panic: one line on stderr (what, address, size, tag, backend), then abort().
[[noreturn]] void panic(const char* what, const void* address, std::uint64_t size,
                        const char* tag, const char* detail_format, ...)
    __attribute__((format(printf, 5, 6)));

inline constexpr bool is_page_family(Family f) {
  return f == Family::io_pageable || f == Family::io_contiguous || f == Family::os_pageable;
}

/// Size handed to the backend (or page layer) for a request of `size`. Strict
/// mode gives the backend the size asked for (a real 16-byte element for 0, as
/// kalloc); xnu mode gives it kalloc's class, as kalloc does before its zones,
/// so that two sizes XNU takes for one are one to every backend.
inline std::uint64_t backing_size(Family family, std::uint64_t size, Mode mode) noexcept {
  if (is_page_family(family)) return page_round(size);
  if (mode == Mode::xnu) return kalloc_class(size);
  if (size == 0 && (family == Family::io_malloc || family == Family::os_malloc)) return 16;
  return size;
}

// ---- accounts

/// One CPU slot's counts per family (requested bytes in strict mode, backing bytes in xnu mode).
struct alignas(64) FamilySlot {
  std::atomic<std::uint64_t> allocs[kFamilies] = {};
  std::atomic<std::uint64_t> frees[kFamilies] = {};
  std::atomic<std::int64_t> live_bytes[kFamilies] = {};
};
extern FamilySlot g_family_slots[kMaxCpuSlots];

inline void account_alloc(Family f, std::uint64_t bytes, __OSMallocTag__* tag) noexcept {
  FamilySlot& s = g_family_slots[this_cpu_slot()];
  bump(s.allocs[std::size_t(f)], std::uint64_t{1});
  bump(s.live_bytes[std::size_t(f)], static_cast<std::int64_t>(bytes));
  if (tag != nullptr) tag->count_alloc(static_cast<std::int64_t>(bytes));
}
inline void account_free(Family f, std::uint64_t bytes, __OSMallocTag__* tag) noexcept {
  FamilySlot& s = g_family_slots[this_cpu_slot()];
  bump(s.frees[std::size_t(f)], std::uint64_t{1});
  bump(s.live_bytes[std::size_t(f)], -static_cast<std::int64_t>(bytes));
  if (tag != nullptr) tag->count_free(static_cast<std::int64_t>(bytes));
}

// ---- records (strict mode: every block; xnu mode: page runs)

extern BlockMap g_blocks;
/// Set once a page run has been recorded: xnu mode's heap frees then check they are not given one.
extern std::atomic<bool> g_page_runs_recorded;

inline bool recorded(Family family, Mode mode) { return mode == Mode::strict || is_page_family(family); }

inline std::uint32_t tag_id(const __OSMallocTag__* tag) { return tag != nullptr ? tag->id : kNoTag; }

/// record_block's rarer cases: a first record near p, a block the map cannot hold, a live record in the way.
bool record_slow(Family family, void* p, std::uint64_t size, __OSMallocTag__* tag) noexcept;

/// Records a block the backend just returned. post: false when no record can be
/// kept for it (no memory for the map): the caller gives the block back.
inline bool record_block(Family family, void* p, std::uint64_t size, __OSMallocTag__* tag) noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  if (!BlockMap::out_of_range(addr, size)) [[likely]] {
    const unsigned shift = BlockMap::granule_shift(size);
    if (std::atomic<std::uint64_t>* w = g_blocks.existing(shift, addr)) [[likely]] {
      if (!BlockRecord(w->load(std::memory_order_relaxed)).is_live()) [[likely]] {
        w->store(BlockMap::live_word(family, size, tag_id(tag), shift, addr), std::memory_order_relaxed);
        return true;
      }
    }
  }
  return record_slow(family, p, size, tag);
}

/// The block a free names, checked against its record; panics on any misuse.
/// In xnu mode a page run freed with another size of the same page count is accepted.
/// post: the record is marked freed; returns the block's size as recorded.
std::uint64_t retire_slow(Family expected, const char* fn, void* p, std::uint64_t size,
                          __OSMallocTag__* tag) noexcept;

inline std::uint64_t retire_block(Family expected, const char* fn, void* p, std::uint64_t size,
                                  __OSMallocTag__* tag) noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  if (!BlockMap::out_of_range(addr, size)) [[likely]] {
    const unsigned shift = BlockMap::granule_shift(size);
    if (std::atomic<std::uint64_t>* w = g_blocks.existing(shift, addr)) [[likely]] {
      const std::uint64_t want = BlockMap::live_word(expected, size, tag_id(tag), shift, addr);
      if (w->load(std::memory_order_relaxed) == want) [[likely]] {
        w->store(BlockRecord(want).freed().word(), std::memory_order_relaxed);  // before the backend can hand p out again
        return size;
      }
    }
  }
  return retire_slow(expected, fn, p, size, tag);
}

/// xnu mode's heap free given a page run (OSFree of a pageable block with a wired size, say).
[[noreturn]] void page_run_given_to_heap_free(Family expected, const char* fn, void* p, std::uint64_t size,
                                              __OSMallocTag__* tag) noexcept;

// ---- the path

/// Pages for the page families. post: nullptr on failure.
void* pages_alloc(std::uint64_t bytes, std::size_t align, std::uint64_t max_phys) noexcept;
void pages_free(void* p, std::uint64_t bytes) noexcept;

/// Whether a call may wait for memory: every KPI allocation may, but OSMalloc_noblock and _nowait.
enum class Wait : bool { may_wait, never };

/// The memory of a block of `family`: the page layer's, or the active backend's.
inline void* backing_allocate(Family family, std::uint64_t bytes, std::size_t align, __OSMallocTag__* tag,
                              std::uint64_t max_phys) noexcept {
  if (is_page_family(family)) {
    return pages_alloc(bytes, std::max<std::size_t>(align, kPage), max_phys);
  }
  return backend_allocate(bytes, std::max<std::size_t>(align, kMinAlign), tag_id(tag));
}

/// A call that may wait found no memory: the backend reclaims (trim, then
/// drain) and the allocation is tried again after each; then it fails. The
/// wait is bounded by those two passes (kmbench::kpi::reclaim_stats counts them).
void* backing_allocate_after_reclaim(Family family, std::uint64_t bytes, std::size_t align, __OSMallocTag__* tag,
                                     std::uint64_t max_phys) noexcept;

/// Allocates a block of `family` and accounts (and, where recorded, records) it. post: nullptr on failure.
///  pre: align is a power of two; max_phys bounds the physical address (page families only).
[[gnu::always_inline]] inline void* allocate(Family family, std::uint64_t size, std::size_t align, __OSMallocTag__* tag,
                      std::uint64_t max_phys = ~0ull, Wait wait = Wait::may_wait) noexcept {
  const Mode mode = active_mode();
  if (size > BlockRecord::kMaxSize) return nullptr;
  const std::uint64_t bytes = backing_size(family, size, mode);
  void* p = backing_allocate(family, bytes, align, tag, max_phys);
  if (p == nullptr) [[unlikely]] {
    if (wait == Wait::never) return nullptr;
    p = backing_allocate_after_reclaim(family, bytes, align, tag, max_phys);
    if (p == nullptr) return nullptr;
  }
  if (is_page_family(family) && !g_page_runs_recorded.load(std::memory_order_relaxed)) {
    g_page_runs_recorded.store(true, std::memory_order_relaxed);
  }
  if (recorded(family, mode) && !record_block(family, p, size, tag)) [[unlikely]] {
    if (is_page_family(family)) {
      pages_free(p, bytes);
    } else {
      backend_free(p, bytes);
    }
    return nullptr;
  }
  account_alloc(family, mode == Mode::strict ? size : bytes, tag);
  return p;
}

/// Checks a free (panics on misuse), then gives the memory back. `fn` names the
/// KPI function; `tag` is the tag OSFree was given (or nullptr).
[[gnu::always_inline]] inline void release(Family expected, const char* fn, void* p, std::uint64_t size,
                    __OSMallocTag__* tag) noexcept {
  if (p == nullptr) return;
  const Mode mode = active_mode();
  if (recorded(expected, mode)) {
    size = retire_block(expected, fn, p, size, tag);  // the recorded size (xnu: of the same pages)
  } else if (g_page_runs_recorded.load(std::memory_order_relaxed) &&
             g_blocks.find(BlockMap::kLargestShift, reinterpret_cast<std::uintptr_t>(p)).is_live()) [[unlikely]] {
    page_run_given_to_heap_free(expected, fn, p, size, tag);
  }
  const std::uint64_t bytes = backing_size(expected, size, mode);
  if (is_page_family(expected)) {
    pages_free(p, bytes);
  } else {
    backend_free(p, bytes);
  }
  account_free(expected, mode == Mode::strict ? size : bytes, tag);
}

/// The machine page runs come from (nullptr: physmem::current_machine()).
/// pre: no page run is live.
void set_page_machine(physmem::Machine* machine) noexcept;
/// The machine set_page_machine gave (nullptr: none).
physmem::Machine* page_machine_set() noexcept;
/// The machine the KPI's page runs and DMA buffers come from.
physmem::Machine& page_machine() noexcept;
std::uint64_t pages_phys(const void* p) noexcept;
/// The virtual address of a physical address in a live page run, or nullptr.
void* pages_virt(std::uint64_t pa) noexcept;

}  // namespace kmbench::kpi::detail
