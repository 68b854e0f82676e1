// The KPI's core: the active backend and mode, the one allocate/release path
// every KPI family goes through, its accounts, and the emulated panic.
// Internal to kpi/src.
//
// The path is inline so that IOMalloc's body is the whole of it: the backend
// past its counting decorator, then, in strict mode, the block's record
// (block_map.h), then the CPU slot's counters. Nothing on it is shared between
// threads but what the backend itself shares, and the block records' cache
// lines, which neighbouring blocks of two threads may share.
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
#include "libkern/OSMalloc.h"


namespace kmbench::kpi::detail {

/// A counter only one thread writes (its CPU slot's): a load and a store, no read-modify-write.
template <class T>
[[gnu::always_inline]] inline void bump(std::atomic<T>& c, T delta) noexcept {
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
///
/// Every allocation reads the total, so a fold is what threads pay for
/// sharing a tag: the next read of the total by every other thread misses. A
/// share folds every kFoldBytes / 2 of net allocation: at 64 KiB, two threads
/// each filling with 4 KiB blocks folded every eighth block, and each took 1.8
/// times as long as one thread alone (bench_kpi, OSMalloc batch/4096).
struct __OSMallocTag__ {
  static constexpr std::uint32_t kMagic = 0x4f534d54;  // "OSMT"
  static constexpr std::int64_t kFoldBytes = std::int64_t{1} << 20;
  std::uint32_t magic = kMagic;
  std::atomic<int> state{0};  // kmbench::kpi::TagUsage::State: active or freed_pending (released is derived)
  std::uint32_t flags = 0;
  kmbench::TagId id = kmbench::kNoTag;
  char name[64] = {};
  __OSMallocTag__* next = nullptr;  // creation order
  std::atomic<kmbench::kpi::detail::TagSlot*> slots[kmbench::kMaxCpuSlots] = {};
  alignas(64) std::atomic<std::int64_t> folded_bytes{0};
  alignas(64) std::atomic<std::int64_t> peak_bytes{0};

  /// The share of the calling thread, whose CPU slot is `slot`.
  [[gnu::always_inline]] kmbench::kpi::detail::TagSlot& share(unsigned slot) noexcept {
    kmbench::kpi::detail::TagSlot* s = slots[slot].load(std::memory_order_relaxed);
    return s != nullptr ? *s : new_share();
  }
  kmbench::kpi::detail::TagSlot& new_share() noexcept;

  [[gnu::always_inline]] void count_alloc(std::int64_t bytes, unsigned slot) noexcept {
    count_alloc_in(share(slot), bytes);
  }
  [[gnu::always_inline]] void count_free(std::int64_t bytes, unsigned slot) noexcept {
    count_free_in(share(slot), bytes);
  }
  /// The counts in the calling thread's share s.
  [[gnu::always_inline]] void count_alloc_in(kmbench::kpi::detail::TagSlot& s, std::int64_t bytes) noexcept {
    using kmbench::kpi::detail::bump;
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
  [[gnu::always_inline]] void count_free_in(kmbench::kpi::detail::TagSlot& s, std::int64_t bytes) noexcept {
    using kmbench::kpi::detail::bump;
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

// The core's globals and functions are the KPI's own: hidden, a position-
// independent path reaches each word with one load, not two through the GOT.
#pragma GCC visibility push(hidden)

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
/// Before a backend is open the allocation words hold calls that open it first, so no caller tests them.
extern std::atomic<void*> g_direct_self;
extern std::atomic<decltype(AnyBackend::DirectCalls::allocate)> g_direct_allocate;
extern std::atomic<decltype(AnyBackend::DirectCalls::allocate_heap)> g_direct_allocate_heap;
extern std::atomic<decltype(AnyBackend::DirectCalls::free)> g_direct_free;
inline void* backend_allocate(std::size_t size, std::size_t align, TagId tag) noexcept {
  if (align == kMinAlign) {
    return g_direct_allocate_heap.load(std::memory_order_acquire)(g_direct_self.load(std::memory_order_relaxed), size,
                                                                  tag);
  }
  return g_direct_allocate.load(std::memory_order_acquire)(g_direct_self.load(std::memory_order_relaxed), size, align,
                                                           tag, kAnyNode);
}
/// pre: p came from backend_allocate with this size.
inline void backend_free(void* p, std::size_t size) noexcept {
  g_direct_free.load(std::memory_order_acquire)(g_direct_self.load(std::memory_order_relaxed), p, size);
}

/// How a path reaches the backend for heap blocks (kMinAlign): AnyHeap through
/// the published words, whatever the backend; HeapOf<B> with the backend's
/// own calls inline, for a path made for backends of type B (hot_backends.cpp).
struct AnyHeap {
  static constexpr bool kTries = false;
  static void* allocate(std::size_t size, TagId tag) noexcept { return backend_allocate(size, kMinAlign, tag); }
  static void free(void* p, std::size_t size) noexcept { backend_free(p, size); }
};
template <class B>
struct HeapOf {
  static B& backend() noexcept {
    return static_cast<Counting<B>*>(g_direct_self.load(std::memory_order_relaxed))->inner();
  }
  static void* allocate(std::size_t size, TagId tag) noexcept {
    return backend().allocate(size, kMinAlign, tag, kAnyNode);
  }
  static void free(void* p, std::size_t size) noexcept { backend().free(p, size); }
  static constexpr bool kTries = TriesInline<B>;
  static void* try_allocate(std::size_t size) noexcept { return backend().try_allocate(size); }
  static bool try_free(void* p, std::size_t size) noexcept { return backend().try_free(p, size); }
};
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

/// One family's counts in one CPU slot (requested bytes in strict mode,
/// backing bytes in xnu mode): a call touches one line of its slot.
struct FamilyCounts {
  std::atomic<std::uint64_t> allocs{0};
  std::atomic<std::uint64_t> frees{0};
  std::atomic<std::int64_t> live_bytes{0};
  std::uint64_t unused = 0;  // 32 bytes: two families to a cache line
};
/// One CPU slot's counts, 256 bytes apart so the slot's index finds them with a shift.
struct alignas(256) FamilySlot {
  FamilyCounts family[kFamilies];
};
extern FamilySlot g_family_slots[kMaxCpuSlots];

/// Whether a family's counts are kept in the family slots. OSMalloc's are not:
/// every OSMalloc block has a tag, whose shares count it (and the tag's
/// pageable blocks, counted in os_pageable too), so family_usage() takes them
/// from the tags; an OSMalloc/OSFree pair so counts once, not twice.
constexpr bool counted_by_family(Family f) { return f != Family::os_malloc; }

/// The family's counts in CPU slot `slot` (the calling thread's).
[[gnu::always_inline]] inline void count_family_alloc(unsigned slot, Family f, std::uint64_t bytes) noexcept {
  if (!counted_by_family(f)) return;
  FamilyCounts& c = g_family_slots[slot].family[std::size_t(f)];
  bump(c.allocs, std::uint64_t{1});
  bump(c.live_bytes, static_cast<std::int64_t>(bytes));
}
[[gnu::always_inline]] inline void count_family_free(unsigned slot, Family f, std::uint64_t bytes) noexcept {
  if (!counted_by_family(f)) return;
  FamilyCounts& c = g_family_slots[slot].family[std::size_t(f)];
  bump(c.frees, std::uint64_t{1});
  bump(c.live_bytes, -static_cast<std::int64_t>(bytes));
}
/// What every tag's shares counted, over all tags ever made: blocks of the
/// os_malloc and os_pageable families (osmalloc.cpp).
struct TagTotals {
  std::uint64_t allocs = 0, frees = 0;
  std::int64_t live_bytes = 0;
};
TagTotals all_tags_totals() noexcept;
[[gnu::always_inline]] inline void account_alloc(Family f, std::uint64_t bytes, __OSMallocTag__* tag) noexcept {
  const unsigned slot = this_cpu_slot();
  count_family_alloc(slot, f, bytes);
  if (tag != nullptr) tag->count_alloc(static_cast<std::int64_t>(bytes), slot);
}
[[gnu::always_inline]] inline void account_free(Family f, std::uint64_t bytes, __OSMallocTag__* tag) noexcept {
  const unsigned slot = this_cpu_slot();
  count_family_free(slot, f, bytes);
  if (tag != nullptr) tag->count_free(static_cast<std::int64_t>(bytes), slot);
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
/// record_block's common case alone: false (nothing written) when it needs record_slow.
[[gnu::always_inline]] inline bool try_record_block(Family family, void* p, std::uint64_t size,
                                                   __OSMallocTag__* tag) noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  if (!BlockMap::out_of_range(addr, size)) [[likely]] {
    const BlockMap::Tier& tier = BlockMap::tier(size);
    if (std::atomic<std::uint64_t>* w = g_blocks.existing(tier, addr)) [[likely]] {
      if (!BlockRecord(w->load(std::memory_order_relaxed)).is_live()) [[likely]] {
        w->store(BlockMap::live_word(family, size, tag_id(tag), tier, addr), std::memory_order_relaxed);
        return true;
      }
    }
  }
  return false;
}
[[gnu::always_inline]] inline bool record_block(Family family, void* p, std::uint64_t size,
                                               __OSMallocTag__* tag) noexcept {
  return try_record_block(family, p, size, tag) || record_slow(family, p, size, tag);
}

/// The block a free names, checked against its record; panics on any misuse.
/// In xnu mode a page run freed with another size of the same page count is accepted.
/// post: the record is marked freed; returns the block's size as recorded.
std::uint64_t retire_slow(Family expected, const char* fn, void* p, std::uint64_t size,
                          __OSMallocTag__* tag) noexcept;

/// retire_block's common case alone, the record exactly as the free names it:
/// false (nothing written) when it needs retire_slow.
[[gnu::always_inline]] inline bool try_retire_block(Family expected, void* p, std::uint64_t size,
                                                   __OSMallocTag__* tag) noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  if (!BlockMap::out_of_range(addr, size)) [[likely]] {
    const BlockMap::Tier& tier = BlockMap::tier(size);
    if (std::atomic<std::uint64_t>* w = g_blocks.existing(tier, addr)) [[likely]] {
      const std::uint64_t want = BlockMap::live_word(expected, size, tag_id(tag), tier, addr);
      if (w->load(std::memory_order_relaxed) == want) [[likely]] {
        w->store(BlockRecord(want).freed().word(), std::memory_order_relaxed);  // before the backend can hand p out again
        return true;
      }
    }
  }
  return false;
}
[[gnu::always_inline]] inline std::uint64_t retire_block(Family expected, const char* fn, void* p,
                                                        std::uint64_t size, __OSMallocTag__* tag) noexcept {
  return try_retire_block(expected, p, size, tag) ? size : retire_slow(expected, fn, p, size, tag);
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
template <class Heap = AnyHeap>
inline void* backing_allocate(Family family, std::uint64_t bytes, std::size_t align, __OSMallocTag__* tag,
                              std::uint64_t max_phys) noexcept {
  if (is_page_family(family)) {
    return pages_alloc(bytes, std::max<std::size_t>(align, kPage), max_phys);
  }
  if (align <= kMinAlign) return Heap::allocate(bytes, tag_id(tag));
  return backend_allocate(bytes, align, tag_id(tag));
}

/// The memory of a block of `family` for a call that may not wait
/// (OSMalloc_noblock, _nowait): a heap block from the backend's no-wait call,
/// which may take a reserve a call that may wait is kept from (buddy's below
/// min, as GFP_ATOMIC does), and never reclaims.
void* backing_allocate_nowait(Family family, std::uint64_t bytes, std::size_t align, __OSMallocTag__* tag,
                              std::uint64_t max_phys) noexcept;

/// A call that may wait found no memory: direct reclaim (trim, then drain,
/// the allocation tried again after each; then it fails), with the replay's
/// policy and backoff (allocators/direct_reclaim.h). The wait is bounded by
/// those two passes (kmbench::kpi::reclaim_stats counts them).
void* backing_allocate_after_reclaim(Family family, std::uint64_t bytes, std::size_t align, __OSMallocTag__* tag,
                                     std::uint64_t max_phys) noexcept;

/// Sets g_page_runs_recorded, once: xnu mode's heap frees then take the path that checks for page runs.
void note_page_runs() noexcept;

/// Allocates a block of `family` and accounts (and, where recorded, records) it. post: nullptr on failure.
///  pre: align is a power of two; max_phys bounds the physical address (page families only).
template <class Heap = AnyHeap>
[[gnu::always_inline]] inline void* allocate_in(Mode mode, Family family, std::uint64_t size, std::size_t align,
                                              __OSMallocTag__* tag, std::uint64_t max_phys = ~0ull,
                                              Wait wait = Wait::may_wait) noexcept {
  // xnu mode's heap blocks up to kalloc's largest class need no other bound.
  const bool kalloc_sized = mode == Mode::xnu && !is_page_family(family) && size <= 16384;
  if (!kalloc_sized && size > BlockRecord::kMaxSize) return nullptr;
  const std::uint64_t bytes = backing_size(family, size, mode);
  void* p = wait == Wait::never ? backing_allocate_nowait(family, bytes, align, tag, max_phys)
                                : backing_allocate<Heap>(family, bytes, align, tag, max_phys);
  if (p == nullptr) [[unlikely]] {
    if (wait == Wait::never) return nullptr;
    p = backing_allocate_after_reclaim(family, bytes, align, tag, max_phys);
    if (p == nullptr) return nullptr;
  }
  if (is_page_family(family) && !g_page_runs_recorded.load(std::memory_order_relaxed)) {
    note_page_runs();
  }
  if (recorded(family, mode) && !record_block(family, p, size, tag)) [[unlikely]] {
    if (is_page_family(family)) {
      pages_free(p, bytes);
    } else {
      Heap::free(p, bytes);
    }
    return nullptr;
  }
  account_alloc(family, mode == Mode::strict ? size : bytes, tag);
  return p;
}
[[gnu::always_inline]] inline void* allocate(Family family, std::uint64_t size, std::size_t align, __OSMallocTag__* tag,
                                           std::uint64_t max_phys = ~0ull, Wait wait = Wait::may_wait) noexcept {
  return allocate_in(active_mode(), family, size, align, tag, max_phys, wait);
}

/// Checks a free (panics on misuse), then gives the memory back. `fn` names the
/// KPI function; `tag` is the tag OSFree was given (or nullptr). In xnu mode a
/// heap free looks for a page run at p once page runs exist (`page_runs`).
/// The counts go first, so that the backend's free is the last call (a jump).
template <class Heap = AnyHeap>
[[gnu::always_inline]] inline void release_in(Mode mode, bool page_runs, Family expected, const char* fn, void* p,
                                             std::uint64_t size, __OSMallocTag__* tag) noexcept {
  if (p == nullptr) return;
  if (recorded(expected, mode)) {
    size = retire_block(expected, fn, p, size, tag);  // the recorded size (xnu: of the same pages)
  } else if (page_runs &&
             g_blocks.find(BlockMap::kLargestShift, reinterpret_cast<std::uintptr_t>(p)).is_live()) [[unlikely]] {
    page_run_given_to_heap_free(expected, fn, p, size, tag);
  }
  const std::uint64_t bytes = backing_size(expected, size, mode);
  account_free(expected, mode == Mode::strict ? size : bytes, tag);
  if (is_page_family(expected)) {
    pages_free(p, bytes);
  } else {
    Heap::free(p, bytes);
  }
}
[[gnu::always_inline]] inline void release(Family expected, const char* fn, void* p, std::uint64_t size,
                                          __OSMallocTag__* tag) noexcept {
  release_in(active_mode(), g_page_runs_recorded.load(std::memory_order_relaxed), expected, fn, p, size, tag);
}

// ---- the hot calls

/// IOMalloc, IOFree, OSMalloc, OSFree and OSObject's new and delete each jump
/// through a word of their own (IOMalloc is `return g_io_malloc_calls.allocate
/// (size, nullptr, caller)`). refresh_hot_calls() points the words at the
/// calls' general path (the first calls, while recording) or at a path made
/// for the mode (and, where the build has one, the backend's type) alone,
/// which asks nothing already answered. `site` is the KPI call's return
/// address, for the recording.
using HotAllocate = void* (*)(std::uint64_t size, __OSMallocTag__* tag, const void* site) noexcept;
using HotRelease = void (*)(void* p, std::uint64_t size, __OSMallocTag__* tag, const void* site) noexcept;

/// general: the backend or the mode not known yet, or the calls recorded;
/// xnu_page_runs: xnu mode once a page run exists (its heap frees check for one).
enum class HotPath : unsigned { general, xnu, xnu_page_runs, strict };
inline constexpr std::size_t kHotPaths = 4;

/// One pair of hot calls' entries for each path (each KPI file keeps its own).
struct HotEntries {
  HotAllocate allocate[kHotPaths];
  HotRelease release[kHotPaths];
};
/// The words the calls jump through.
struct HotCalls {
  std::atomic<HotAllocate> allocate;
  std::atomic<HotRelease> release;
};
extern const HotEntries kIOMallocEntries, kOSMallocEntries, kOSObjectEntries;
extern HotCalls g_io_malloc_calls, g_os_malloc_calls, g_os_object_calls;

/// Points every hot call at the path the backend, the mode, the recording and
/// the page runs call for. Called after any of them changes; lock-free, so a
/// forked child may call it.
void refresh_hot_calls() noexcept;

// A path made for a backend type whose per-CPU paths make no call
// (HeapOf<B>::kTries) first tries the whole call inline: the backend's try,
// the record (strict mode) and the counts. Whatever step would call out
// sends the call on, as a tail call, to the same path in full (`full`)
// before that step has changed anything, or to a finish_* that completes
// what is begun. The try so makes no call that returns to it, and needs no
// register saved and no frame: a kext's kalloc, inline, and a few loads and
// stores. The full path is the one a heap of any type takes.

/// The requests the tries take: kalloc's classes, whose backing size is a table load.
inline constexpr std::uint64_t kTryMax = 16384;

/// A tried allocation whose record needs record_slow: records, counts and
/// returns p, or gives p back and returns nullptr when no record can be kept.
template <Family F, Mode M, class Heap>
[[gnu::noinline]] void* finish_allocate(void* p, std::uint64_t size, __OSMallocTag__* tag) noexcept {
  if (!record_slow(F, p, size, tag)) {
    Heap::free(p, backing_size(F, size, M));
    return nullptr;
  }
  account_alloc(F, M == Mode::strict ? size : backing_size(F, size, M), tag);
  return p;
}
/// A tried free, checked and counted, whose backend needs its full free.
template <class Heap>
[[gnu::noinline]] void finish_release(void* p, std::uint64_t bytes) noexcept {
  Heap::free(p, bytes);
}

/// The try of a heap family's allocation (see above), which ends the call.
/// share: tag's share at slot, or nullptr (untagged).
template <Family F, Mode M, class Heap, HotAllocate kFull>
[[gnu::always_inline]] inline void* try_allocate_in(unsigned slot, std::uint64_t size, __OSMallocTag__* tag,
                                                  TagSlot* share, const void* site) noexcept {
  const std::uint64_t bytes = backing_size(F, size, M);
  void* p = Heap::try_allocate(bytes);
  if (p == nullptr) [[unlikely]] return kFull(size, tag, site);
  if (M == Mode::strict && !try_record_block(F, p, size, tag)) [[unlikely]] {
    return finish_allocate<F, M, Heap>(p, size, tag);
  }
  const std::uint64_t counted = M == Mode::strict ? size : bytes;
  count_family_alloc(slot, F, counted);
  if (share != nullptr) tag->count_alloc_in(*share, static_cast<std::int64_t>(counted));
  return p;
}
/// The try of a heap family's free, which ends the call.
template <Family F, Mode M, bool kPageRuns, class Heap, HotRelease kFull>
[[gnu::always_inline]] inline void try_release_in(unsigned slot, void* p, std::uint64_t size, __OSMallocTag__* tag,
                                                  TagSlot* share, const void* site) noexcept {
  if constexpr (M == Mode::strict) {
    if (!try_retire_block(F, p, size, tag)) [[unlikely]] return kFull(p, size, tag, site);
  } else if constexpr (kPageRuns) {
    if (g_blocks.find(BlockMap::kLargestShift, reinterpret_cast<std::uintptr_t>(p)).is_live()) [[unlikely]] {
      return kFull(p, size, tag, site);
    }
  }
  const std::uint64_t bytes = backing_size(F, size, M);
  const std::uint64_t counted = M == Mode::strict ? size : bytes;
  count_family_free(slot, F, counted);
  if (share != nullptr) tag->count_free_in(*share, static_cast<std::int64_t>(counted));
  if (!Heap::try_free(p, bytes)) [[unlikely]] return finish_release<Heap>(p, bytes);
}

/// A heap family's allocation on the path of mode M, at kMinAlign, in full.
/// Untagged families (kTagged false) ignore `tag`.
template <Family F, Mode M, bool kTagged, class Heap = AnyHeap>
[[gnu::noinline]] void* hot_allocate_full(std::uint64_t size, __OSMallocTag__* tag, const void*) noexcept {
  static_assert(!is_page_family(F));
  return allocate_in<Heap>(M, F, size, kMinAlign, kTagged ? tag : nullptr);
}
/// A heap family's allocation on the path of mode M: tried first where the heap can.
template <Family F, Mode M, bool kTagged, class Heap = AnyHeap>
[[gnu::noinline]] void* hot_allocate(std::uint64_t size, __OSMallocTag__* tag, const void* site) noexcept {
  if constexpr (Heap::kTries) {
    const unsigned slot = this_cpu_slot_or_unclaimed();
    if (size <= kTryMax && slot < kMaxCpuSlots) [[likely]] {
      return try_allocate_in<F, M, Heap, &hot_allocate_full<F, M, kTagged, Heap>>(slot, size, nullptr, nullptr, site);
    }
  }
  return hot_allocate_full<F, M, kTagged, Heap>(size, tag, site);
}
/// The KPI function a hot free names in a panic.
constexpr const char* hot_free_name(Family f) {
  return f == Family::io_malloc ? "IOFree" : f == Family::os_malloc ? "OSFree" : "OSObject::operator delete";
}
/// A heap family's free on the path of mode M, in full.
template <Family F, Mode M, bool kPageRuns, bool kTagged, class Heap = AnyHeap>
[[gnu::noinline]] void hot_release_full(void* p, std::uint64_t size, __OSMallocTag__* tag, const void*) noexcept {
  static_assert(!is_page_family(F));
  release_in<Heap>(M, kPageRuns, F, hot_free_name(F), p, size, kTagged ? tag : nullptr);
}
/// A heap family's free on the path of mode M: tried first where the heap can.
template <Family F, Mode M, bool kPageRuns, bool kTagged, class Heap = AnyHeap>
[[gnu::noinline]] void hot_release(void* p, std::uint64_t size, __OSMallocTag__* tag, const void* site) noexcept {
  if constexpr (Heap::kTries) {
    const unsigned slot = this_cpu_slot_or_unclaimed();
    if (p != nullptr && size <= kTryMax && slot < kMaxCpuSlots) [[likely]] {
      return try_release_in<F, M, kPageRuns, Heap, &hot_release_full<F, M, kPageRuns, kTagged, Heap>>(
          slot, p, size, nullptr, nullptr, site);
    }
  }
  hot_release_full<F, M, kPageRuns, kTagged, Heap>(p, size, tag, site);
}
/// The mode paths' entries of an untagged heap family, with the general
/// paths given (nullptr: a backend's own table, whose general paths are the KPI's).
template <Family F, HotAllocate kGeneralAllocate, HotRelease kGeneralRelease, class Heap = AnyHeap>
inline constexpr HotEntries kHeapEntries = {
    {kGeneralAllocate, &hot_allocate<F, Mode::xnu, false, Heap>, &hot_allocate<F, Mode::xnu, false, Heap>,
     &hot_allocate<F, Mode::strict, false, Heap>},
    {kGeneralRelease, &hot_release<F, Mode::xnu, false, false, Heap>, &hot_release<F, Mode::xnu, true, false, Heap>,
     &hot_release<F, Mode::strict, false, false, Heap>},
};

// OSMalloc's and OSFree's: the tag is checked first (osmalloc.cpp has the general paths).

/// Tag states (kmbench::kpi::TagUsage::State).
inline constexpr int kTagActive = static_cast<int>(TagUsage::State::active);
/// Panics unless tag is a tag blocks may be allocated with (or, for frees, one
/// that is waiting for its last block); every case but an active tag's.
void check_tag_slow(__OSMallocTag__* tag, const char* fn, const void* addr, std::uint64_t size, bool for_free);
[[gnu::always_inline]] inline void check_tag(__OSMallocTag__* tag, const char* fn, const void* addr,
                                             std::uint64_t size, bool for_free) {
  if (tag != nullptr && tag->magic == __OSMallocTag__::kMagic &&
      tag->state.load(std::memory_order_acquire) == kTagActive) [[likely]] {
    return;
  }
  check_tag_slow(tag, fn, addr, size, for_free);
}
/// A tag's block's family: a pageable tag's page-sized blocks are pages.
inline Family family_for(const __OSMallocTag__* tag, std::uint64_t size) {
  return (tag->flags & OSMT_PAGEABLE) != 0 && size >= kPage ? Family::os_pageable : Family::os_malloc;
}
/// OSMalloc's and OSFree's general paths (osmalloc.cpp): a pageable tag's pages take them too.
void* os_malloc_general(std::uint64_t size, __OSMallocTag__* tag, const void* site) noexcept;
void os_free_general(void* addr, std::uint64_t size, __OSMallocTag__* tag, const void* site) noexcept;

template <Mode M, class Heap = AnyHeap>
[[gnu::noinline]] void* os_malloc_full(std::uint64_t size, __OSMallocTag__* tag, const void* site) noexcept {
  check_tag(tag, "OSMalloc", nullptr, size, false);
  if (family_for(tag, size) != Family::os_malloc) [[unlikely]] return os_malloc_general(size, tag, site);
  return allocate_in<Heap>(M, Family::os_malloc, size, kMinAlign, tag);
}
template <Mode M, bool kPageRuns, class Heap = AnyHeap>
[[gnu::noinline]] void os_free_full(void* addr, std::uint64_t size, __OSMallocTag__* tag, const void* site) noexcept {
  check_tag(tag, "OSFree", addr, size, true);
  if (family_for(tag, size) != Family::os_malloc) [[unlikely]] return os_free_general(addr, size, tag, site);
  release_in<Heap>(M, kPageRuns, Family::os_malloc, "OSFree", addr, size, tag);
}
/// Whether a try may take an OSMalloc or OSFree of tag: an active tag with a
/// share at `slot` already, and a heap block (a pageable tag's pages are not).
[[gnu::always_inline]] inline TagSlot* tag_share_for_try(__OSMallocTag__* tag, unsigned slot,
                                                         std::uint64_t size) noexcept {
  if (tag == nullptr || tag->magic != __OSMallocTag__::kMagic ||
      tag->state.load(std::memory_order_acquire) != kTagActive || family_for(tag, size) != Family::os_malloc) {
    return nullptr;
  }
  return tag->slots[slot].load(std::memory_order_relaxed);  // nullptr: the full path makes it
}
template <Mode M, class Heap = AnyHeap>
[[gnu::noinline]] void* os_malloc_hot(std::uint64_t size, __OSMallocTag__* tag, const void* site) noexcept {
  if constexpr (Heap::kTries) {
    const unsigned slot = this_cpu_slot_or_unclaimed();
    if (size <= kTryMax && slot < kMaxCpuSlots) [[likely]] {
      if (TagSlot* share = tag_share_for_try(tag, slot, size)) [[likely]] {
        return try_allocate_in<Family::os_malloc, M, Heap, &os_malloc_full<M, Heap>>(slot, size, tag, share, site);
      }
    }
  }
  return os_malloc_full<M, Heap>(size, tag, site);
}
template <Mode M, bool kPageRuns, class Heap = AnyHeap>
[[gnu::noinline]] void os_free_hot(void* addr, std::uint64_t size, __OSMallocTag__* tag, const void* site) noexcept {
  if constexpr (Heap::kTries) {
    const unsigned slot = this_cpu_slot_or_unclaimed();
    if (addr != nullptr && size <= kTryMax && slot < kMaxCpuSlots) [[likely]] {
      if (TagSlot* share = tag_share_for_try(tag, slot, size)) [[likely]] {
        return try_release_in<Family::os_malloc, M, kPageRuns, Heap, &os_free_full<M, kPageRuns, Heap>>(
            slot, addr, size, tag, share, site);
      }
    }
  }
  os_free_full<M, kPageRuns, Heap>(addr, size, tag, site);
}
template <HotAllocate kGeneralAllocate, HotRelease kGeneralRelease, class Heap = AnyHeap>
inline constexpr HotEntries kTaggedEntries = {
    {kGeneralAllocate, &os_malloc_hot<Mode::xnu, Heap>, &os_malloc_hot<Mode::xnu, Heap>,
     &os_malloc_hot<Mode::strict, Heap>},
    {kGeneralRelease, &os_free_hot<Mode::xnu, false, Heap>, &os_free_hot<Mode::xnu, true, Heap>,
     &os_free_hot<Mode::strict, false, Heap>},
};

/// The hot calls' mode paths made for one backend type, its calls inline
/// (hot_backends.cpp), so that a driver's call into the KPI makes one call
/// into the backend's code, as a kext's kalloc does, not two.
struct BackendHotEntries {
  const HotEntries* io_malloc;
  const HotEntries* os_malloc;
  const HotEntries* os_object;
};
/// Those of the backend whose direct calls these are; nullptr for a type this
/// build has none for (its calls then go through the words, AnyHeap).
const BackendHotEntries* backend_hot_entries(const AnyBackend::DirectCalls& calls) noexcept;

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

#pragma GCC visibility pop
