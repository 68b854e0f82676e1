// Memory pressure on a replay's timed pass (--pressure, pressure_spec.h): a
// controller thread holds each node's balloon (physmem::Machine) at the size
// the schedule asks for, as a hypervisor's balloon driver does, while the
// replay threads allocate. A balloon takes only free memory: when backends
// hold more than the schedule leaves, it grows as they give memory back.
//
// Background reclaim is the machine's kswapd (physmem.h): for the timed pass
// the controller registers the backend's reclaim as a shrinker, which kswapd
// runs (trim, or drain when a trim gave nothing back) whenever an allocation
// or the balloon leaves a zone below its low watermark, until the node's
// zones are above high or a pass frees nothing. Caps hold from the first
// warm-up pass on (memory is short from the start, so no backend comes to the
// timed pass holding more than the cap); take and balloon clauses run on the
// timed pass's clock and steps.
//
// Replay threads that find no memory do what a kernel's allocation does
// (replay_steps.h): a blocking allocation reclaims (the backend's trim, then
// drain) and tries again, up to twice; a noblock or nowait one fails at once.
// A failed allocation is counted by kind, and the stream goes on without its
// block: its frees and maps are skipped and counted.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "allocators/backend.h"
#include "harness/replay/pressure_spec.h"

namespace kmbench::physmem {
class Machine;
struct NodeStats;
}

namespace kmbench::replay {

/// The schedule's state at one moment, summed over nodes.
struct PressureSample {
  std::uint64_t t_ns = 0;
  std::uint64_t ops = 0;
  std::uint64_t available_bytes = 0;  // what the schedule leaves
  std::uint64_t balloon_bytes = 0;    // what the balloons hold (short of the schedule while backends hold it)
};

/// One node under the schedule.
struct PressureNode {
  NodeId node = 0;
  std::uint64_t ram_bytes = 0;
  std::uint64_t min_available_bytes = 0;  // the tightest the schedule got
  std::uint64_t balloon_peak_bytes = 0;
  std::uint64_t max_shortfall_bytes = 0;  // the balloon's largest gap to its target (memory backends held)
  /// Linux's unusable free space index per order at the pass's end, with the balloon still in:
  /// the share of free memory in blocks too small for a block of that order.
  std::vector<double> unusable_index;
};

/// The machine's watermark and kswapd counters over the timed pass, summed over nodes
/// (physmem::NodeStats).
struct KswapdRecord {
  std::uint64_t wakeups = 0, passes = 0, reclaimed_bytes = 0, failed_runs = 0;
  std::uint64_t below_low_allocs = 0, reserve_allocs = 0, min_failures = 0;
  std::uint64_t direct_reclaims = 0, direct_reclaimed_bytes = 0;

  /// One node's counters.
  static KswapdRecord of(const physmem::NodeStats& n);
  /// Member by member.
  KswapdRecord& operator+=(const KswapdRecord& o);
  KswapdRecord operator-(const KswapdRecord& o) const;
};

/// What the controller saw; the replay adds what its threads counted (PressureResult).
struct PressureRecord {
  std::vector<PressureNode> nodes;
  std::vector<PressureSample> timeline;
  std::vector<std::uint64_t> lifts_ns;    // when the memory left rose on some node (pressure eased)
  std::vector<std::uint64_t> squeezes_ns; // when it fell
  std::uint64_t ticks = 0;
  // Background reclaim: the backend's reclaim as kswapd ran it; calls, bytes given back, each call's ns.
  std::uint64_t background_reclaims = 0, background_reclaimed_bytes = 0;
  std::vector<std::uint64_t> background_reclaim_ns;
  KswapdRecord kswapd;
};

class PressureController {
 public:
  /// The backend's reclaim, kswapd's shrinker for the timed pass (empty: the backend has none).
  using Reclaim = std::function<std::size_t(ReclaimLevel)>;
  /// steps_done: all replay threads' steps so far (they add to it as they go).
  PressureController(PressureSpec spec, physmem::Machine& machine, std::uint64_t peak_live_bytes,
                     const std::atomic<std::uint64_t>& steps_done, Reclaim reclaim,
                     std::chrono::microseconds tick = std::chrono::microseconds(500));
  ~PressureController();
  PressureController(const PressureController&) = delete;
  PressureController& operator=(const PressureController&) = delete;

  /// Inflates the balloons to the caps alone, before the warm-up passes.
  void hold_caps();
  /// Applies the whole schedule at the timed pass's start, then keeps it on a thread of its own;
  /// registers the backend's reclaim with the machine's kswapd.
  void start();
  /// Stops the thread and kswapd's use of the backend, notes the end state, and lets every
  /// balloon go. post: record() is final.
  void stop();
  const PressureRecord& record() const { return record_; }

 private:
  void loop();
  /// Moves each balloon toward the schedule at `now`; one sample when anything changed.
  void apply(PassPoint now);
  /// Inflates or deflates node k's balloon to leave `available` bytes; the pages it holds after.
  std::uint64_t resize_balloon(std::size_t k, std::uint64_t available);
  /// kswapd's shrinker: the backend's reclaim, timed when kswapd runs it.
  std::size_t shrink(ReclaimLevel level);

  PressureSpec spec_;
  PressureSpec caps_;  // the cap clauses alone
  Reclaim reclaim_;
  std::uint64_t shrinker_ = 0;  // its id with the machine (0: none registered)
  KswapdRecord kswapd_before_;  // the machine's counters at the timed pass's start
  physmem::Machine& machine_;
  std::uint64_t peak_live_bytes_;
  const std::atomic<std::uint64_t>& steps_done_;
  std::chrono::microseconds tick_;
  std::chrono::steady_clock::time_point start_;
  std::vector<std::uint64_t> target_;  // by node, bytes available at the last tick
  PressureRecord record_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kmbench::replay
