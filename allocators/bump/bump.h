// bump: a pre-reserved region handed out front to back, never reused.
//
// It exists to measure the harness: replaying through bump costs a pointer
// bump per allocation and nothing per free, so a replay's time on bump is
// the harness's own cost per event. Each CPU slot bumps inside a chunk of its
// own (no shared cache line per allocation); chunks and large blocks come
// from one atomic cursor over the region. Address space is never reused; the
// pages of freed large blocks are given back (madvise) so long runs do not
// grow resident memory without bound.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "allocators/backend.h"
#include "allocators/params.h"
#include "allocators/cpu_slot.h"

namespace kmbench {

class BumpBackend {
 public:
  static constexpr BackendVariant kVariants[] = {
      {"bump", "pre-reserved region, bump pointer, no reuse: the harness's own cost per event", ""},
  };
  static constexpr std::uint32_t kFeatures = kFeatureSizedFree | kFeatureUsableSize;
  static constexpr ParamSpec kParams[] = {
      {"reserve", ParamSpec::Kind::bytes, "64g", "address space reserved for the region", {}, 4096,
       std::int64_t{1} << 46},
      {"chunk", ParamSpec::Kind::bytes, "1m", "bytes each CPU slot takes from the region at a time", {}, 4096,
       std::int64_t{1} << 40},
      {"prefault", ParamSpec::Kind::bytes, "auto",
       "bytes made resident at construction (auto: the run's demand and half again)", {}, 0,
       std::int64_t{1} << 46},
  };

  /// params: reserve=<bytes, k/m/g suffix> (default 64g of address space),
  ///         chunk=<bytes> per CPU slot (default 1m),
  ///         prefault=<bytes> of the region made resident at construction, so a
  ///         replay does not time first-touch faults (default: the run's
  ///         demand_bytes and half again for alignment and partly used chunks,
  ///         at most a quarter of physical memory; 128m when the demand is unknown).
  explicit BumpBackend(const BackendConfig& config);
  ~BumpBackend();
  BumpBackend(const BumpBackend&) = delete;
  BumpBackend& operator=(const BumpBackend&) = delete;

  void* allocate(std::size_t size, std::size_t align, TagId, NodeId) noexcept {
    const std::size_t need = size == 0 ? 1 : size;
    if (need <= chunk_bytes_ / 4 && align <= kSlotAlign) [[likely]] {
      Slot& s = slots_[this_cpu_slot()];
      const std::uintptr_t mask = (align < kMinAlign ? kMinAlign : align) - 1;
      const std::uintptr_t at = (s.cursor + mask) & ~mask;
      if (at + need <= s.end) [[likely]] {
        s.cursor = at + need;
        return reinterpret_cast<void*>(at);
      }
      return refill_and_allocate(s, need, mask);
    }
    return allocate_large(need, align);
  }

  void free(void* p, std::size_t size) noexcept {
    if (size >= kReleaseBytes && reinterpret_cast<std::uintptr_t>(p) + size > prefault_end_) [[unlikely]] {
      release(p, size);
    }
  }

  std::size_t usable_size(void*, std::size_t size) const noexcept { return size == 0 ? 1 : size; }

  /// Starts over from the region's first byte, so that a replay's passes each
  /// use the prefaulted prefix. pre: no block is live, no thread allocates.
  void rewind() noexcept;

  BackendStats stats() const;
  BackendFootprint footprint() const;  // stats()'s mapped and resident bytes, nothing else

 private:
  static constexpr std::size_t kReleaseBytes = 64 * 1024;
  static constexpr std::size_t kSlotAlign = 4096;  // larger alignments go to allocate_large

  struct alignas(64) Slot {
    std::uintptr_t cursor = 0;
    std::uintptr_t end = 0;
  };

  void* refill_and_allocate(Slot& s, std::size_t need, std::uintptr_t mask) noexcept;
  void* allocate_large(std::size_t need, std::size_t align) noexcept;
  std::uintptr_t take(std::size_t bytes, std::size_t align) noexcept;  // 0 when exhausted
  void release(void* p, std::size_t size) noexcept;

  std::uintptr_t base_ = 0;
  std::uintptr_t prefault_end_ = 0;  // resident from the start: never given back
  std::size_t reserve_bytes_ = 0;
  std::size_t chunk_bytes_ = 0;
  alignas(64) std::atomic<std::uintptr_t> next_{0};
  alignas(64) std::atomic<std::uint64_t> released_bytes_{0};
  std::array<Slot, kMaxCpuSlots> slots_{};
};

}  // namespace kmbench
