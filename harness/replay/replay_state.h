// The state of a replay: what each replay thread measures (ThreadOutcome),
// what the replay holds of each object (HeldBlock), and what the replay
// threads and the coordinating thread share (Shared). The loop that uses them
// is replay_loop.h.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "allocators/direct_reclaim.h"
#include "allocators/physmem/physmem.h"
#include "harness/replay/dma_path.h"
#include "harness/replay/footprint.h"
#include "harness/replay/kpi_path.h"
#include "harness/replay/latency.h"
#include "harness/replay/replay.h"

namespace kmbench::replay {

using Clock = std::chrono::steady_clock;

/// Nodes the locality matrix keeps apart; beyond, memory counts as remote only.
inline constexpr unsigned kLocalityNodes = 16;

/// What one replay thread measured in the timed pass; merged after the run.
struct alignas(64) ThreadOutcome {
  std::array<LatencyHistogram, ops::kOpKinds> latency;
  LatencyHistogram lag;  // paced: ns behind schedule
  std::uint64_t noblock_failures = 0, failed_allocs = 0, stalls = 0;
  // The time split, in ticks; the timed parts include the timer floor (taken off later).
  std::uint64_t allocator_ticks = 0, touch_ticks = 0, dma_ticks = 0, wait_ticks = 0;
  std::uint64_t pause_ticks = 0, pacing_ticks = 0;
  std::uint64_t allocator_ops = 0, touches = 0, dma_steps = 0;
  std::uint64_t start_tick = 0, end_tick = 0;
  std::uint64_t max_lag_ns = 0;
  double lag_sum_ns = 0;
  // NUMA locality, by memory node.
  NodeId node = 0;
  std::array<std::uint64_t, kLocalityNodes> bytes_on{};
  std::uint64_t local_bytes = 0, remote_bytes = 0, local_allocs = 0, remote_allocs = 0;
  std::uint64_t frees = 0, remote_frees = 0;
  FlagCounts flags;
  ReallocCounts reallocs;
  LatencyHistogram realloc_latency;  // joined reallocs: apart from the kinds' (latency)
  std::uint64_t realloc_ticks = 0;   // of allocator_ticks
  std::uint64_t kpi_calls = 0;       // allocation and free steps run through the KPI
  // Failures and reclaim (under memory pressure, pressure.h).
  std::array<std::array<std::uint64_t, 2>, 3> failures{};  // [alloc, page, dma][blocking, noblock]
  std::uint64_t skipped_frees = 0, skipped_maps = 0;
  std::uint64_t reclaim_calls = 0, reclaimed_bytes = 0, rescued = 0, reclaim_skipped = 0;
  ReclaimBackoff reclaim_backoff;  // reclaim gave nothing back: failures skip it until then
  LatencyHistogram reclaim_latency;
  std::vector<std::pair<std::uint64_t, std::uint8_t>> failure_ticks;  // (tick, kind) of each failure
  // By call site (the program's step_sites): [2s] allocator ticks, [2s + 1] timed calls; empty without sites.
  std::vector<std::uint64_t> site_time;
  Clock::time_point end;
};

/// The old block of a joined realloc, between its free step and the
/// allocation step right after it that reallocates it.
struct ReallocStash {
  void* block = nullptr;
  std::uint64_t handed_out = 0;
  std::uint64_t size = 0;
  std::uint16_t tag = 0;
};

/// What the coordinating thread asks of every replay thread.
enum class Command : std::uint8_t { none, warm, timed, leftovers, flush, exit };

/// What the replay holds of an object: its block, and the bytes the backend
/// handed out for it, read once after the allocation, so that the free's
/// bookkeeping need not ask the backend about the block just before the timed
/// free (which would warm the very metadata the free reads).
struct HeldBlock {
  /// handed_out of a block the backend did not hand out (the KPI's page runs, kpi_path.h).
  static constexpr std::uint64_t kNotBackend = ~std::uint64_t{0};
  void* block = nullptr;
  std::uint64_t handed_out = 0;
};

/// State the replay threads share: blocks by object id, the handoffs,
/// the command channel and the safepoint.
struct Shared {
  std::unique_ptr<HeldBlock[]> blocks;
  /// By handoff (Program::handoffs): 1 once published; none when no step waits for another thread.
  std::unique_ptr<std::atomic<std::uint32_t>[]> handoffs;
  std::unique_ptr<DmaHandle[]> dma;  // by object id; only when the program maps buffers for DMA
  std::uint32_t objects = 0;
  unsigned threads = 0;
  // Commands: the coordinator writes `command`, then bumps `generation`.
  Command command = Command::none;
  std::atomic<std::uint32_t> generation{0};
  std::atomic<unsigned> done{0}, ready{0};
  std::atomic<bool> go{false};
  Clock::time_point start;
  std::uint64_t start_tick = 0;
  // Safepoint: threads between two step boundaries count in `active`.
  std::atomic<bool> pause{false};
  std::atomic<unsigned> active{0};
  // Samples by step count: each replay thread samples every this many of its steps (0: never).
  FootprintSampler* sampler = nullptr;
  std::uint64_t sample_every_steps = 0;
  // Samples at the live peak: a replay thread whose allocation lifts the live
  // bytes to peak_sample_at or more samples at once (sample_at_peak).
  std::atomic<std::int64_t> peak_sample_at{INT64_MAX};
  std::atomic<std::uint64_t> peak_samples{0};
  // Settings.
  double speed = 1;
  Touch touch = Touch::first;
  Realloc realloc = Realloc::backend;
  const KpiTags* kpi_tags = nullptr;  // a replay through the KPI's OSMalloc tags
  std::uint64_t floor_ticks = 0;      // the timer floor's median, taken off each timed interval
  double floor_mean_ticks = 0;        // its mean, taken off sums of them
  const physmem::Machine* machine = nullptr;  // for NUMA locality (null: not measured)
  // Memory pressure: failed blocking allocations reclaim and retry; the
  // controller reads the steps done, which the threads add at each sample point.
  bool pressure = false;
  std::atomic<std::uint64_t> steps_done{0};
};

}  // namespace kmbench::replay
