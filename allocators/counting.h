// Counting: the one decorator that counts what callers asked of a backend.
//
// Every backend gets the same numbers (requested, handed out, live, peak, ops,
// per tag) from this class, so no backend counts them itself. Operation and
// byte counters live in per-CPU-slot shards (no shared cache line on the hot
// path); live bytes and their peak are one shared atomic each, so the peak is
// exact. Its cost is measured (bench/) and the replay can run without it.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "allocators/backend.h"
#include "allocators/cpu_slot.h"

namespace kmbench {

/// Per-tag accounting: live blocks and bytes (requested sizes) and their peak.
struct TagStats {
  TagId tag = kNoTag;
  std::uint64_t allocs = 0;
  std::uint64_t frees = 0;
  std::int64_t live_blocks = 0;
  std::int64_t live_bytes = 0;
  std::int64_t peak_live_bytes = 0;
};

/// Everything the decorator counted, plus the backend's own statistics.
struct CountingStats {
  std::uint64_t allocs = 0;          // successful allocations
  std::uint64_t frees = 0;           // frees of non-null pointers
  std::uint64_t failed_allocs = 0;   // allocate returned nullptr
  std::uint64_t requested_bytes = 0; // sum of sizes asked for (cumulative)
  std::uint64_t handed_out_bytes = 0;// sum of bytes handed out (cumulative)
  std::int64_t live_blocks = 0;
  std::int64_t live_bytes = 0;       // requested bytes still allocated
  std::int64_t live_handed_out_bytes = 0;
  std::int64_t peak_live_bytes = 0;
  std::vector<TagStats> tags;        // tags with any activity, by tag id
  BackendStats backend;
};

/// What the footprint sampler reads: the backend's footprint and the live bytes.
struct CountingFootprint {
  BackendFootprint backend;
  std::int64_t live_bytes = 0;  // requested bytes still allocated
};

/// Tags with their own counters; larger ids are counted under kOverflowTag.
inline constexpr TagId kMaxCountedTags = 4096;
inline constexpr TagId kOverflowTag = kMaxCountedTags - 1;

template <Backend B>
class Counting {
 public:
  static constexpr auto& kVariants = B::kVariants;
  static constexpr std::uint32_t kFeatures = B::kFeatures;

  template <class... Args>
  explicit Counting(Args&&... args) : backend_(std::forward<Args>(args)...) {}

  Counting(const Counting&) = delete;
  Counting& operator=(const Counting&) = delete;

  void* allocate(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
    void* p = backend_.allocate(size, align, tag, node);
    count_alloc(p, size, tag);
    return p;
  }

  /// pre: tag is the tag the block was allocated with (kNoTag: not counted per tag).
  void free(void* p, std::size_t size, TagId tag = kNoTag) noexcept {
    if (p == nullptr) {
      return;
    }
    count_free(p, size, tag);
    backend_.free(p, size);
  }

  /// realloc through the backend (its own, or allocate, copy and free:
  /// kmbench::reallocate), counted as the old block's free and the new one's
  /// allocation. p nullptr: allocate. On failure p stays live and counted.
  void* reallocate(void* p, std::size_t old_size, std::size_t new_size, std::size_t align, TagId tag,
                   NodeId node) noexcept {
    if (p == nullptr) {
      return allocate(new_size, align, tag, node);
    }
    const std::size_t old_given = handed_out(backend_, p, old_size);
    void* q = kmbench::reallocate(backend_, p, old_size, new_size, align, tag, node);
    if (q == nullptr) [[unlikely]] {
      bump(shard().failed, 1);
      return nullptr;
    }
    count_free_handed(old_size, old_given, tag);
    count_alloc(q, new_size, tag);
    return q;
  }

  void* allocate_low(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept
    requires((B::kFeatures & kFeatureLowMemory) != 0)
  {
    void* p = backend_.allocate_low(size, align, tag, node);
    count_alloc(p, size, tag);
    return p;
  }
  void free_low(void* p, std::size_t size, TagId tag = kNoTag) noexcept
    requires((B::kFeatures & kFeatureLowMemory) != 0)
  {
    if (p == nullptr) {
      return;
    }
    count_free(p, size, tag);
    backend_.free_low(p, size);
  }

  /// The bookkeeping half of allocate, for callers that time the backend's own
  /// call apart (the replay): after inner().allocate returned p (nullptr: failed).
  /// Returns the bytes handed out for the block (0: failed), for count_free_handed.
  /// Always inline: the replay loop's code stays one body around the timed call.
  [[gnu::always_inline]] std::size_t count_alloc(void* p, std::size_t size, TagId tag) noexcept {
    Shard& s = shard();
    if (p == nullptr) [[unlikely]] {
      bump(s.failed, 1);
      return 0;
    }
    const std::size_t given = handed_out(backend_, p, size);
    bump(s.allocs, 1);
    bump(s.requested, size);
    bump(s.handed_out, given);
    bump(s.live_handed_out, static_cast<std::int64_t>(given));
    add_live(static_cast<std::int64_t>(size));
    if (tag != kNoTag) {
      count_tag(tag, static_cast<std::int64_t>(size), +1);
    }
    return given;
  }
  /// The bookkeeping half of free, before inner().free(p, size): a block leaves
  /// the live count before its memory can leave the footprint.
  /// pre: p is not nullptr.
  [[gnu::always_inline]] void count_free(void* p, std::size_t size, TagId tag) noexcept {  // inline: as count_alloc
    count_free_handed(size, handed_out(backend_, p, size), tag);
  }
  /// count_free with the bytes count_alloc returned for the block: a caller
  /// that times the free keeps them, so that its bookkeeping does not ask the
  /// backend about the block (warming the metadata the free reads) just before.
  [[gnu::always_inline]] void count_free_handed(std::size_t size, std::size_t given, TagId tag) noexcept {
    Shard& s = shard();
    bump(s.frees, 1);
    bump(s.live_handed_out, -static_cast<std::int64_t>(given));
    add_live(-static_cast<std::int64_t>(size));
    if (tag != kNoTag) {
      count_tag(tag, static_cast<std::int64_t>(size), -1);
    }
  }
  /// Starts the peaks (live bytes, per tag) again from the current values: a
  /// replay's timed pass reports its own peaks, not its warm-up's.
  void reset_peaks() noexcept {
    peak_live_bytes_.store(live_bytes_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    for (TagCounters& c : *tags_) {
      c.peak.store(c.live_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
  }

  std::size_t usable_size(void* p, std::size_t size) const noexcept
    requires((B::kFeatures & kFeatureUsableSize) != 0)
  {
    return backend_.usable_size(p, size);
  }
  std::size_t reclaim(ReclaimLevel level)
    requires((B::kFeatures & kFeatureReclaim) != 0)
  {
    return backend_.reclaim(level);
  }
  std::uint64_t physical_address(const void* p) const noexcept
    requires((B::kFeatures & kFeaturePhysical) != 0)
  {
    return backend_.physical_address(p);
  }

  /// A consistent-enough snapshot: exact once the threads using the backend are quiet.
  CountingStats stats() const {
    CountingStats out;
    for (const Shard& s : shards_) {
      out.allocs += s.allocs.load(std::memory_order_relaxed);
      out.frees += s.frees.load(std::memory_order_relaxed);
      out.failed_allocs += s.failed.load(std::memory_order_relaxed);
      out.requested_bytes += s.requested.load(std::memory_order_relaxed);
      out.handed_out_bytes += s.handed_out.load(std::memory_order_relaxed);
      out.live_handed_out_bytes += s.live_handed_out.load(std::memory_order_relaxed);
    }
    out.live_blocks = static_cast<std::int64_t>(out.allocs) - static_cast<std::int64_t>(out.frees);
    out.live_bytes = live_bytes_.load(std::memory_order_relaxed);
    out.peak_live_bytes = peak_live_bytes_.load(std::memory_order_relaxed);
    {
      for (TagId t = 0; t < kMaxCountedTags; ++t) {
        const TagCounters& c = (*tags_)[t];
        const std::uint64_t allocs = c.allocs.load(std::memory_order_relaxed);
        if (allocs == 0) {
          continue;
        }
        out.tags.push_back({t, allocs, c.frees.load(std::memory_order_relaxed),
                            c.live_blocks.load(std::memory_order_relaxed),
                            c.live_bytes.load(std::memory_order_relaxed),
                            c.peak.load(std::memory_order_relaxed)});
      }
    }
    out.backend = backend_.stats();
    return out;
  }

  /// The live bytes now, and their peak since reset_peaks(): one load each.
  std::int64_t live_bytes() const noexcept { return live_bytes_.load(std::memory_order_relaxed); }
  std::int64_t peak_live_bytes() const noexcept { return peak_live_bytes_.load(std::memory_order_relaxed); }

  /// stats()'s live bytes and the backend's footprint, without the rest.
  CountingFootprint footprint() const {
    return {footprint_of(backend_), live_bytes_.load(std::memory_order_relaxed)};
  }

  B& inner() noexcept { return backend_; }
  const B& inner() const noexcept { return backend_; }

 private:
  /// One CPU slot's counters. Only the owning thread writes them (plain
  /// load+store, no read-modify-write); stats() reads them from anywhere.
  struct alignas(64) Shard {
    std::atomic<std::uint64_t> allocs{0}, frees{0}, failed{0}, requested{0}, handed_out{0};
    std::atomic<std::int64_t> live_handed_out{0};
  };
  struct TagCounters {
    std::atomic<std::uint64_t> allocs{0}, frees{0};
    std::atomic<std::int64_t> live_blocks{0}, live_bytes{0}, peak{0};
  };

  template <class T, class D>
  static void bump(std::atomic<T>& c, D delta) noexcept {
    c.store(c.load(std::memory_order_relaxed) + static_cast<T>(delta), std::memory_order_relaxed);
  }
  static void raise_to(std::atomic<std::int64_t>& peak, std::int64_t v) noexcept {
    std::int64_t seen = peak.load(std::memory_order_relaxed);
    while (v > seen && !peak.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
    }
  }

  Shard& shard() noexcept { return shards_[this_cpu_slot()]; }

  void add_live(std::int64_t delta) noexcept {
    const std::int64_t now = live_bytes_.fetch_add(delta, std::memory_order_relaxed) + delta;
    if (delta > 0) {
      raise_to(peak_live_bytes_, now);
    }
  }

  void count_tag(TagId tag, std::int64_t bytes, int sign) noexcept {
    TagCounters& c = (*tags_)[std::min(tag, kOverflowTag)];
    if (sign > 0) {
      c.allocs.fetch_add(1, std::memory_order_relaxed);
      c.live_blocks.fetch_add(1, std::memory_order_relaxed);
      raise_to(c.peak, c.live_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes);
    } else {
      c.frees.fetch_add(1, std::memory_order_relaxed);
      c.live_blocks.fetch_sub(1, std::memory_order_relaxed);
      c.live_bytes.fetch_sub(bytes, std::memory_order_relaxed);
    }
  }

  B backend_;
  std::array<Shard, kMaxCpuSlots> shards_{};
  alignas(64) std::atomic<std::int64_t> live_bytes_{0};
  alignas(64) std::atomic<std::int64_t> peak_live_bytes_{0};
  // Heap-allocated (160 KiB) so a Counting<B> fits on a stack.
  std::unique_ptr<std::array<TagCounters, kMaxCountedTags>> tags_ =
      std::make_unique<std::array<TagCounters, kMaxCountedTags>>();
};

}  // namespace kmbench
