#include "base/clock.h"

#include <chrono>
#include <cstdint>
#include <thread>
#include <type_traits>

namespace kmbench::base {
namespace {

using Clock = std::chrono::steady_clock;

/// A counter reading and the steady clock's time of it: the middle of the
/// narrowest of a few brackets (clock, counter, clock). A thread preempted
/// between its clock read and its counter read would otherwise put the
/// preemption into one clock and not the other: half a millisecond of it in
/// a 20 ms calibration made every tick 2.5% too long on a loaded machine.
struct Reading {
  std::int64_t ns = 0;
  std::uint64_t tick = 0;
};

Reading read_both() {
  Reading best;
  std::int64_t narrowest = INT64_MAX;
  for (int i = 0; i < 16; ++i) {
    const std::int64_t c0 = Clock::now().time_since_epoch().count();
    const std::uint64_t t = ticks();
    const std::int64_t c1 = Clock::now().time_since_epoch().count();
    if (c1 - c0 < narrowest) {
      narrowest = c1 - c0;
      best = {c0 + (c1 - c0) / 2, t};
    }
  }
  return best;
}

}  // namespace

double ns_per_tick() {
  static_assert(std::is_same_v<Clock::period, std::nano>);
  static const double value = [] {
    const Reading a = read_both();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const Reading b = read_both();
    return b.tick > a.tick ? static_cast<double>(b.ns - a.ns) / static_cast<double>(b.tick - a.tick) : 1.0;
  }();
  return value;
}

}  // namespace kmbench::base
