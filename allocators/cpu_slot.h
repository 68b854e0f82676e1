// CPU slots: the user-space stand-in for "this CPU" in per-CPU caches.
//
// A kernel disables preemption to own its CPU's cache; a user-space thread can
// be preempted anywhere. So kmbench gives each live thread a slot it owns
// exclusively (a replay thread stands for one recorded CPU). A backend indexes
// its per-CPU state by slot and needs no lock for it. A slot outlives its
// thread: the next thread to take it inherits its caches, as a CPU's caches
// outlive the tasks that ran on it.
#pragma once

#include <cstdint>

namespace kmbench {

inline constexpr unsigned kMaxCpuSlots = 256;
/// What this_cpu_slot_or_unclaimed() says before the thread has a slot.
inline constexpr unsigned kUnclaimedSlot = kMaxCpuSlots;

namespace detail {
unsigned acquire_cpu_slot();  // slow path: claims the lowest free slot; aborts if none
// initial-exec: one load from the thread's block, not a call through the TLS
// resolver, even from position-independent code (kmbench is linked into
// programs and preloaded libraries, never dlopen()ed).
[[gnu::tls_model("initial-exec")]] inline thread_local unsigned tls_cpu_slot = kUnclaimedSlot;
}  // namespace detail

/// The calling thread's slot, in [0, kMaxCpuSlots). Owned by this thread until it exits.
inline unsigned this_cpu_slot() noexcept {
  const unsigned slot = detail::tls_cpu_slot;
  if (slot < kMaxCpuSlots) [[likely]] {
    return slot;
  }
  return detail::acquire_cpu_slot();
}

/// The calling thread's slot, or kUnclaimedSlot while it has none, without
/// claiming one: for per-slot tables with one more entry, whose last entry
/// leads every operation to a slow path that calls this_cpu_slot(). Saves
/// the hottest paths a test and a branch.
inline unsigned this_cpu_slot_or_unclaimed() noexcept { return detail::tls_cpu_slot; }

/// Number of slots ever claimed (an upper bound for walking per-slot state).
unsigned cpu_slots_in_use() noexcept;

}  // namespace kmbench
