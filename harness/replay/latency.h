// The latency recorder: a time-stamp counter read around each operation and
// a fixed-bucket log histogram (8 buckets per power of two, at most 12.5%
// wide), one per replay thread and operation kind. Recording is a subtract,
// a count-leading-zeros and an increment; no allocation, no sharing.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "base/clock.h"

namespace kmbench::replay {

using base::interval_begin;
using base::interval_end;
using base::ns_per_tick;
using base::ticks;

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 3;
  static constexpr int kBuckets = 8 + (64 - kSubBits) * 8;

  void record(std::uint64_t t) noexcept {
    ++counts_[bucket_of(t)];
    max_ = std::max(max_, t);
  }
  void merge(const LatencyHistogram& other) noexcept {
    for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    max_ = std::max(max_, other.max_);
  }
  std::uint64_t count() const noexcept {
    std::uint64_t n = 0;
    for (std::uint64_t c : counts_) n += c;
    return n;
  }
  std::uint64_t max() const noexcept { return max_; }
  std::uint64_t bucket_count(int i) const noexcept { return counts_[i]; }

  /// Exclusive upper bound of bucket i, in ticks.
  static std::uint64_t upper_bound(int i) noexcept {
    if (i < 8) return static_cast<std::uint64_t>(i) + 1;
    const int octave = (i - 8) / 8 + kSubBits;
    const std::uint64_t sub = static_cast<std::uint64_t>((i - 8) % 8);
    return (9 + sub) << (octave - kSubBits);
  }
  static int bucket_of(std::uint64_t t) noexcept {
    if (t < 8) return static_cast<int>(t);
    const int msb = 63 - __builtin_clzll(t);
    return 8 + (msb - kSubBits) * 8 + static_cast<int>((t >> (msb - kSubBits)) & 7);
  }

  /// The q-quantile (0..1) as the upper bound of its bucket, never above max().
  std::uint64_t quantile(double q) const noexcept {
    const std::uint64_t n = count();
    if (n == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n - 1)) + 1;
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper_bound(i), max_);
    }
    return max_;
  }

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t max_ = 0;
};

/// An empty interval's length, from many of them. Some counters step in
/// coarse units (a virtual machine's time-stamp counter may read in steps of
/// 26 ticks, 10 ns), so a short interval reads as one of a few multiples of
/// the step, and which one depends on where the interval starts between two
/// steps. Over intervals that start anywhere, the mean of the readings is the
/// true length, and the median is not: on a 2-vCPU Intel Xeon VM the empty
/// intervals read 26 or 52 ticks and average 17.9 to 18.7 ns, and their
/// median (52 ticks, 20.0 ns) took 1.3 to 2.1 ns too much off every call.
struct TimerFloor {
  std::uint64_t median = 0;  // taken off each interval before it is binned (latency percentiles)
  double mean = 0;           // taken off sums of intervals (the time split, ns per op): over
                             // the readings up to 4 x the median (longer ones were interrupted)
  std::uint64_t step = 0;    // the smallest gap between two readings: the counter's resolution
                             // (0: every reading alike)
};
/// pre: !ticks.empty(); reorders ticks.
TimerFloor timer_floor_of(std::vector<std::uint64_t>& ticks);

/// What the recorder costs, measured on this machine before a run.
struct RecorderCost {
  double ns_per_record = 0;  // an interval timed and recorded, back to back
  double timer_floor_ns = 0;       // an empty interval (interval_begin to interval_end), its mean:
                                   // taken off the sums of timed intervals (the time split)
  double timer_resolution_ns = 0;  // the counter's step (TimerFloor::step)
  TimerFloor floor;                // of interval_begin to interval_end, in ticks
  TimerFloor end_floor;            // of interval_end to interval_end (touch after an allocation)
};
RecorderCost measure_recorder_cost();

}  // namespace kmbench::replay
