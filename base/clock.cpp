#include "base/clock.h"

#include <chrono>
#include <thread>

namespace kmbench::base {

double ns_per_tick() {
  using Clock = std::chrono::steady_clock;
  static const double value = [] {
    const auto c0 = Clock::now();
    const std::uint64_t t0 = ticks();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::uint64_t t1 = ticks();
    const auto c1 = Clock::now();
    const double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(c1 - c0).count());
    return t1 > t0 ? ns / static_cast<double>(t1 - t0) : 1.0;
  }();
  return value;
}

}  // namespace kmbench::base
