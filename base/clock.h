// The cheapest monotonic clock there is (the time-stamp counter on x86), the
// fences that make an interval hold only what it times, and the counter's
// rate against the steady clock.
#pragma once

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#else
#include <chrono>
#endif

namespace kmbench::base {

/// Ticks of the cheapest monotonic counter (rdtsc on x86).
inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

/// Starts a timed interval: the stores before it drained and the instructions
/// before it done, so that the interval holds nothing that came before (a
/// store buffer still full of an earlier memset would otherwise bill its
/// drain to whatever is timed next). x86: mfence, lfence, rdtsc, lfence.
inline std::uint64_t interval_begin() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_mfence();
  _mm_lfence();
  const std::uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
#else
  return ticks();
#endif
}

/// Ends a timed interval: a plain counter read, so that the timed code's
/// overlap with what follows it is not billed to it.
inline std::uint64_t interval_end() noexcept { return ticks(); }

/// Nanoseconds per tick, measured once against the steady clock (about 20 ms).
double ns_per_tick();

}  // namespace kmbench::base
