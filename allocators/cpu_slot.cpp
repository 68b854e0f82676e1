#include "cpu_slot.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace kmbench {
namespace {

constexpr unsigned kWords = kMaxCpuSlots / 64;
std::atomic<std::uint64_t> g_taken[kWords];
std::atomic<unsigned> g_high_water{0};

/// Gives the slot back when its thread exits.
struct SlotOwner {
  unsigned slot = kUnclaimedSlot;
  ~SlotOwner() {
    if (slot != kUnclaimedSlot) {
      g_taken[slot / 64].fetch_and(~(std::uint64_t{1} << (slot % 64)), std::memory_order_release);
      detail::tls_cpu_slot = kUnclaimedSlot;
    }
  }
};
thread_local SlotOwner t_owner;

}  // namespace

unsigned detail::acquire_cpu_slot() {
  for (unsigned w = 0; w < kWords; ++w) {
    std::uint64_t bits = g_taken[w].load(std::memory_order_relaxed);
    while (~bits != 0) {
      unsigned bit = static_cast<unsigned>(__builtin_ctzll(~bits));
      if (g_taken[w].compare_exchange_weak(bits, bits | (std::uint64_t{1} << bit),
                                           std::memory_order_acquire)) {
        unsigned slot = w * 64 + bit;
        t_owner.slot = slot;
        tls_cpu_slot = slot;
        unsigned high = g_high_water.load(std::memory_order_relaxed);
        while (high < slot + 1 &&
               !g_high_water.compare_exchange_weak(high, slot + 1, std::memory_order_relaxed)) {
        }
        return slot;
      }
    }
  }
  std::fprintf(stderr, "kmbench: more than %u threads use allocators at once; no CPU slot left\n",
               kMaxCpuSlots);
  std::abort();
}

unsigned cpu_slots_in_use() noexcept { return g_high_water.load(std::memory_order_relaxed); }

}  // namespace kmbench
