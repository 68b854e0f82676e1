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

namespace detail {
unsigned acquire_cpu_slot();  // slow path: claims the lowest free slot; aborts if none
inline thread_local int tls_cpu_slot = -1;
}  // namespace detail

/// The calling thread's slot, in [0, kMaxCpuSlots). Owned by this thread until it exits.
inline unsigned this_cpu_slot() noexcept {
  int slot = detail::tls_cpu_slot;
  if (slot >= 0) [[likely]] {
    return static_cast<unsigned>(slot);
  }
  return detail::acquire_cpu_slot();
}

/// Number of slots ever claimed (an upper bound for walking per-slot state).
unsigned cpu_slots_in_use() noexcept;

}  // namespace kmbench
