// One replay step, cut into its phases (the backend's call, the touch, the
// DMA layer, the wait for another thread, the bookkeeping), each forced
// inline so that a pass's loop (replay_loop.h) compiles as one body, as a
// kernel's fast path would; and the safepoints at which the footprint
// sampler stops the replay threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "allocators/direct_reclaim.h"
#include "allocators/counting.h"
#include "allocators/physmem/physmem.h"
#include "base/spin_lock.h"
#include "harness/replay/dma_path.h"
#include "harness/replay/footprint.h"
#include "harness/replay/kpi_path.h"
#include "harness/replay/latency.h"
#include "harness/replay/program.h"
#include "harness/replay/replay.h"
#include "harness/replay/replay_state.h"

namespace kmbench::replay {

using base::cpu_relax;


// ---- safepoints -------------------------------------------------------------

/// Leaves the active set while `pause` holds; returns the ticks spent parked.
inline std::uint64_t park(Shared& sh) noexcept {
  const std::uint64_t t0 = ticks();
  do {
    sh.active.fetch_sub(1, std::memory_order_release);
    while (sh.pause.load(std::memory_order_acquire)) {
      std::this_thread::yield();
    }
    sh.active.fetch_add(1, std::memory_order_seq_cst);
  } while (sh.pause.load(std::memory_order_seq_cst));
  return ticks() - t0;
}

/// Enters the active set (a thread starting its steps, or back from a wait).
inline std::uint64_t enter(Shared& sh) noexcept {
  sh.active.fetch_add(1, std::memory_order_seq_cst);
  return sh.pause.load(std::memory_order_seq_cst) ? park(sh) : 0;
}
inline void leave(Shared& sh) noexcept { sh.active.fetch_sub(1, std::memory_order_release); }

/// For the sampler: stops every replay thread at a step boundary, runs f, lets them go.
template <class F>
auto at_safepoint(Shared& sh, F&& f) {
  sh.pause.store(true, std::memory_order_seq_cst);
  for (unsigned spins = 0; sh.active.load(std::memory_order_seq_cst) != 0; ++spins) {
    if (spins < 64) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  auto out = f();
  sh.pause.store(false, std::memory_order_release);
  return out;
}

/// A sample by step count, taken by the replay thread that reached it at its
/// step boundary: it leaves the active set, stops the others, samples, comes
/// back. Returns the ticks it spent (sampling time, not harness time).
[[gnu::noinline, gnu::cold]] inline std::uint64_t sample_at_step(Shared& sh) {
  const std::uint64_t t0 = ticks();
  leave(sh);
  sh.sampler->take_now();
  enter(sh);
  return ticks() - t0;
}

/// Samples at the live peak. Samples at fixed points miss a peak that lasts a
/// few steps, and the peak footprint then reads below the exact peak live
/// bytes, which no backend can hold. So the thread whose allocation lifts the
/// live bytes to `sh.peak_sample_at` or above samples right after it, and
/// moves the mark just above the bytes it saw; after kExactPeakSamples such
/// samples, 1/64 above them. The timed pass starts with the mark at the
/// warm-up's peak (first_peak_mark). With one thread, whose passes repeat the
/// same steps, that is one sample, at the peak itself. With several the peak
/// moves from pass to pass (the mark starts an eighth lower, and a pass whose
/// peak stays below it is not sampled there), and a sample waits for the
/// other threads to end the step they are in: a free among them lowers the
/// live bytes it sees.
inline constexpr std::uint64_t kExactPeakSamples = 16;
inline std::int64_t first_peak_mark(std::int64_t warm_peak_live, unsigned threads) {
  const std::int64_t mark = threads > 1 ? warm_peak_live - warm_peak_live / 8 : warm_peak_live;
  return std::max<std::int64_t>(mark, 1);
}
[[gnu::noinline, gnu::cold]] inline std::uint64_t sample_at_peak(Shared& sh, std::int64_t live, std::int64_t mark) {
  const std::uint64_t taken = sh.peak_samples.load(std::memory_order_relaxed);
  const std::int64_t next = live + 1 + (taken < kExactPeakSamples ? 0 : live / 64);
  if (!sh.peak_sample_at.compare_exchange_strong(mark, next, std::memory_order_relaxed)) return 0;  // another took it
  sh.peak_samples.fetch_add(1, std::memory_order_relaxed);
  return sample_at_step(sh);
}
template <class B>
[[gnu::always_inline]] inline std::uint64_t maybe_sample_at_peak(const Counting<B>& b, Shared& sh) {
  const std::int64_t live = b.live_bytes();
  const std::int64_t mark = sh.peak_sample_at.load(std::memory_order_relaxed);
  return live < mark ? 0 : sample_at_peak(sh, live, mark);
}

// ---- one step's parts -------------------------------------------------------

template <class B>
inline constexpr bool kHasLow = (B::kFeatures & kFeatureLowMemory) != 0;
template <class B>
inline constexpr bool kPhysical = (B::kFeatures & kFeaturePhysical) != 0;
/// The backend's own call for an allocation step: below 4 GiB for a dma32
/// step where the backend can, its no-wait call for a noblock step where it
/// has one. (A zeroed step is cleared after the call, as kzalloc clears after
/// kmalloc, for every backend alike: touch_block.)
template <Backend B>
inline void* allocate_step(B& b, const Step& st) noexcept {
  const std::size_t align = std::size_t{1} << st.align_log2;
  if constexpr (NowaitBackend<B>) {
    if ((st.flags & ops::kOpNoblock) != 0) [[unlikely]] {
      return (st.ctl & kStepLow) != 0 ? b.allocate_low_nowait(st.size(), align, st.tag, st.node)
                                      : b.allocate_nowait(st.size(), align, st.tag, st.node);
    }
  }
  if constexpr (kHasLow<B>) {
    if ((st.ctl & kStepLow) != 0) [[unlikely]] {
      return b.allocate_low(st.size(), align, st.tag, st.node);
    }
  }
  return b.allocate(st.size(), align, st.tag, st.node);
}

template <Backend B>
inline void free_step(B& b, void* p, const Step& st) noexcept {
  if constexpr (kHasLow<B>) {
    if ((st.ctl & kStepLow) != 0) [[unlikely]] {
      b.free_low(p, st.size());
      return;
    }
  }
  b.free(p, st.size());
}

/// The writes to a new block: zero-filling a zeroed step, then --touch.
[[gnu::always_inline]] inline void touch_block(void* p, const Step& s, Touch touch) noexcept {
  if ((s.flags & ops::kOpZero) != 0) {
    std::memset(p, 0, s.size());
  }
  if (touch == Touch::none || s.size() == 0) {
    return;
  }
  auto* bytes = static_cast<volatile unsigned char*>(p);
  if (touch == Touch::pages || s.kind != ops::OpKind::alloc) {
    for (std::uint64_t off = 0; off < s.size(); off += kPageBytes) {
      bytes[off] = 1;
    }
  } else {
    bytes[0] = 1;
  }
}

// ---- a step in a pass ----------------------------------------------------------
// One step is cut into its phases below; each is forced inline, so that a
// pass's loop compiles as one body, as a kernel's fast path would.
#define KMBENCH_STEP_INLINE [[gnu::always_inline]] inline

/// What a pass reads on every step, loaded once before its loop.
struct PassContext {
  std::atomic<std::uint32_t>* handoffs;  // Shared::handoffs
  DmaHandle* dma;
  const physmem::Machine* machine;
  std::uint64_t floor_ticks;
  Touch touch;
  Realloc realloc;
  const KpiTags* kpi_tags;  // a replay through the KPI's (else null: no step carries a call)
  bool locality;  // the timed pass measures each block's node
  bool pressure;  // under memory pressure: a failed blocking allocation reclaims and retries
  std::uint64_t* site_time;  // ThreadOutcome::site_time when timing by call site, else null
};

/// The interval timer of a pass with per-step latency; free of cost otherwise.
template <bool kLatency>
KMBENCH_STEP_INLINE std::uint64_t begin_interval() noexcept {
  return kLatency ? interval_begin() : std::uint64_t{0};
}
template <bool kLatency>
KMBENCH_STEP_INLINE std::uint64_t end_interval() noexcept {
  return kLatency ? interval_end() : std::uint64_t{0};
}

/// Paced: waits (outside the safepoint's active set) for the step's time in
/// the capture / speed, then records how late the step starts.
KMBENCH_STEP_INLINE void pace(const Step& st, Shared& sh, Clock::time_point start, ThreadOutcome& out) {
  // A step 292 years away waits as long as one at the int64 nanoseconds' end: the cast of more is undefined.
  const double ns = std::min(static_cast<double>(st.time_ns()) / sh.speed, 9.2e18);
  const auto target = start + std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
  auto now = Clock::now();
  if (now < target) {
    const std::uint64_t p0 = ticks();
    leave(sh);  // waiting for its time: the sampler need not wait for it
    if (target - now > std::chrono::microseconds(200)) {
      std::this_thread::sleep_for(target - now - std::chrono::microseconds(100));
      now = Clock::now();
    }
    while (now < target) {
      cpu_relax();
      now = Clock::now();
    }
    const std::uint64_t parked = enter(sh);
    out.pacing_ticks += ticks() - p0 - parked;
    out.pause_ticks += parked;
  }
  const auto lag = static_cast<std::uint64_t>(std::max<std::int64_t>(0, (now - target).count()));
  out.max_lag_ns = std::max(out.max_lag_ns, lag);
  out.lag_sum_ns += static_cast<double>(lag);
  out.lag.record(lag);
}

/// A step that depends on another thread's step on the same object waits
/// until that one publishes their handoff (counted as wait, less safepoint parking).
template <bool kTimed>
KMBENCH_STEP_INLINE void wait_for_handoff(std::atomic<std::uint32_t>& q, Shared& sh, ThreadOutcome& out) {
  if (q.load(std::memory_order_acquire) != 0) {
    return;
  }
  const std::uint64_t w0 = ticks();
  std::uint64_t parked = 0;
  unsigned spins = 0;
  while (q.load(std::memory_order_acquire) == 0) {
    if constexpr (kTimed) {
      if (sh.pause.load(std::memory_order_relaxed)) {
        parked += park(sh);
      }
    }
    if (++spins < 64) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  if constexpr (kTimed) {
    out.wait_ticks += ticks() - w0 - parked;
    out.pause_ticks += parked;
    ++out.stalls;
  }
}

/// Charges one timed backend call to its step's call site.
KMBENCH_STEP_INLINE void charge_site(const PassContext& c, std::uint32_t site, std::uint64_t dt) noexcept {
  if (c.site_time != nullptr) {
    c.site_time[2 * site] += dt;
    ++c.site_time[2 * site + 1];
  }
}

/// Records one timed allocator or DMA interval as latency of its step's kind.
KMBENCH_STEP_INLINE void record_latency(ThreadOutcome& out, const Step& st, std::uint64_t dt,
                                        std::uint64_t floor) noexcept {
  out.latency[static_cast<int>(st.kind)].record(dt > floor ? dt - floor : 0);
}

/// A failed allocation step, by kind (alloc, page, DMA) and by whether it could wait.
[[gnu::noinline]] inline void count_failure(const Step& st, ThreadOutcome& out) {
  const bool noblock = (st.flags & ops::kOpNoblock) != 0;
  ++(noblock ? out.noblock_failures : out.failed_allocs);
  const std::uint8_t kind = st.kind == ops::OpKind::page_alloc ? 1 : st.kind == ops::OpKind::dma_alloc ? 2 : 0;
  ++out.failures[kind][noblock ? 1 : 0];
  out.failure_ticks.emplace_back(ticks(), kind);
}

/// A blocking allocation that found no memory, as a kernel's does: direct
/// reclaim (allocators/direct_reclaim.h: trim, then drain, the call tried
/// again after each, and a backoff after passes that gave nothing back). A
/// noblock or nowait allocation never waits for reclaim. Each pass is timed
/// apart (in the timed pass); the whole stays in the allocation's own time.
template <bool kTimed, class B, class Retry>
[[gnu::noinline]] void* allocate_after_reclaim(Counting<B>& b, const Step& st, ThreadOutcome& out, Retry retry) {
  if constexpr ((B::kFeatures & kFeatureReclaim) == 0) {
    return nullptr;  // nothing cached to give back
  } else {
    if ((st.flags & ops::kOpNoblock) != 0) return nullptr;
    bool skipped = false;
    void* p = reclaim_and_retry(
        out.reclaim_backoff, [&](ReclaimLevel level) { return b.reclaim(level); }, retry,
        [&](const ReclaimPass& pass) {
          if constexpr (kTimed) {
            out.reclaim_latency.record(ticks() - pass.began);
            ++out.reclaim_calls;
            out.reclaimed_bytes += pass.bytes;
            out.rescued += pass.block != nullptr ? 1 : 0;
          }
        },
        &skipped);
    out.reclaim_skipped += kTimed && skipped ? 1 : 0;
    return p;
  }
}

/// What the timed pass counts of an allocation: failures, the node its memory
/// is on, and the flags the backend honoured or not.
template <class B>
KMBENCH_STEP_INLINE void count_allocation(const Step& st, const void* p, const PassContext& c, ThreadOutcome& out) {
  if (p == nullptr) [[unlikely]] {
    count_failure(st, out);
  } else if (c.locality) {
    const NodeId mem = c.machine->node_of(p);
    if (mem >= 0 && static_cast<unsigned>(mem) < kLocalityNodes) out.bytes_on[static_cast<unsigned>(mem)] += st.size();
    if (mem == out.node) {
      out.local_bytes += st.size();
      ++out.local_allocs;
    } else {
      out.remote_bytes += st.size();
      ++out.remote_allocs;
    }
  }
  if ((st.ctl & kStepLow) != 0) [[unlikely]] {
    ++out.flags.low_requested;
    out.flags.low_unhonoured += kHasLow<B> ? 0 : 1;
  }
  if ((st.flags & ops::kOpContiguous) != 0) [[unlikely]] {
    ++out.flags.contiguous_requested;
    out.flags.contiguous_unhonoured += kPhysical<B> ? 0 : 1;
  }
  out.flags.zeroed += (st.flags & ops::kOpZero) != 0 ? 1 : 0;
}

/// Charges one timed call of dt ticks (the backend's, or a KPI call's) to
/// the allocator's time, its step kind's latency and its call site.
template <bool kTimed, bool kLatency>
KMBENCH_STEP_INLINE void charge_call(const Step& st, std::uint32_t site, std::uint64_t dt, const PassContext& c,
                                     ThreadOutcome& out) noexcept {
  if constexpr (kTimed && kLatency) {
    out.allocator_ticks += dt;
    ++out.allocator_ops;
    record_latency(out, st, dt, c.floor_ticks);
    charge_site(c, site, dt);
  }
}

/// The writes to a block just allocated (touch_block), timed apart from the
/// call that ended at t1.
template <bool kTimed, bool kLatency>
KMBENCH_STEP_INLINE void touch_new_block(void* p, const Step& written, std::uint64_t t1, const PassContext& c,
                                         ThreadOutcome& out) noexcept {
  if (p != nullptr && (c.touch != Touch::none || (written.flags & ops::kOpZero) != 0)) {
    touch_block(p, written, c.touch);
    if constexpr (kLatency && kTimed) {
      out.touch_ticks += interval_end() - t1;
      ++out.touches;
    }
  }
}

/// An alloc, page_alloc or dma_alloc step: the backend's call (timed), the
/// touch (timed apart), the counting wrapper's bookkeeping (untimed).
template <bool kTimed, bool kLatency, class B>
KMBENCH_STEP_INLINE void allocation_step(Counting<B>& b, const Step& st, std::uint32_t site, HeldBlock& held,
                                         const PassContext& c, ThreadOutcome& out) {
  const std::uint64_t t0 = begin_interval<kLatency>();
  void* p = allocate_step(b.inner(), st);
  if (p == nullptr && c.pressure) [[unlikely]] {
    p = allocate_after_reclaim<kTimed>(b, st, out, [&] { return allocate_step(b.inner(), st); });
  }
  const std::uint64_t t1 = end_interval<kLatency>();
  held.block = p;
  touch_new_block<kTimed, kLatency>(p, st, t1, c, out);
  held.handed_out = b.count_alloc(p, st.size(), st.tag);
  if constexpr (kTimed) {
    charge_call<kTimed, kLatency>(st, site, t1 - t0, c, out);
    count_allocation<B>(st, p, c, out);
  }
}

/// An allocation step a KPI call made, replayed through that call (kpi_path.h):
/// the call is timed whole, the KPI's checks and bookkeeping with the
/// backend's call, as the driver paid them. A block of the KPI's page
/// families lies in the run's machine, not in the backend: the counting
/// wrapper leaves it out (HeldBlock::kNotBackend).
template <bool kTimed, bool kLatency, class B>
KMBENCH_STEP_INLINE void kpi_allocation_step(Counting<B>& b, const Step& st, std::uint32_t site, HeldBlock& held,
                                             const PassContext& c, ThreadOutcome& out) {
  const std::uint64_t t0 = begin_interval<kLatency>();
  void* p = kpi_allocate(st, *c.kpi_tags);  // a call that may wait reclaims inside the KPI, as a driver's does
  const std::uint64_t t1 = end_interval<kLatency>();
  held.block = p;
  Step written = st;
  written.flags &= static_cast<std::uint8_t>(~ops::kOpZero);  // the KPI zeroed what it was asked to
  touch_new_block<kTimed, kLatency>(p, written, t1, c, out);
  held.handed_out = kpi_from_pages(st) ? HeldBlock::kNotBackend : b.count_alloc(p, st.size(), st.tag);
  if constexpr (kTimed) {
    charge_call<kTimed, kLatency>(st, site, t1 - t0, c, out);
    if (p == nullptr) [[unlikely]] {
      count_failure(st, out);
    }
    ++out.kpi_calls;
  }
}

/// Before a block is freed: a transfer still in flight on it completes.
template <bool kTimed, bool kLatency>
KMBENCH_STEP_INLINE void complete_transfer(const Step& st, const PassContext& c, ThreadOutcome& out) {
  DmaHandle* dma = c.dma;
  if (dma != nullptr && dma[st.object].command != nullptr) [[unlikely]] {
    const std::uint64_t d0 = begin_interval<kLatency>();
    dma_complete(dma[st.object]);
    if constexpr (kTimed && kLatency) {
      out.dma_ticks += interval_end() - d0;
      ++out.dma_steps;
    }
  }
}

/// A free step's first part: the transfer in flight completes, the block
/// leaves the replay's hands and is counted by the node of its memory.
/// nullptr: the block's allocation had failed, nothing to free.
template <bool kTimed, bool kLatency>
KMBENCH_STEP_INLINE void* take_block(const Step& st, HeldBlock& held, const PassContext& c, ThreadOutcome& out) {
  complete_transfer<kTimed, kLatency>(st, c, out);
  void* p = held.block;
  held.block = nullptr;
  if constexpr (kTimed) {
    out.skipped_frees += p == nullptr ? 1 : 0;
    if (p != nullptr && c.locality) {
      ++out.frees;
      out.remote_frees += c.machine->node_of(p) != out.node ? 1 : 0;
    }
  }
  return p;
}

/// A free, page_free or dma_free step; a buffer still mapped for DMA
/// completes its transfer first. A block whose allocation failed is skipped.
template <bool kTimed, bool kLatency, class B>
KMBENCH_STEP_INLINE void release_step(Counting<B>& b, const Step& st, std::uint32_t site, HeldBlock& held,
                                      const PassContext& c, ThreadOutcome& out) {
  void* p = take_block<kTimed, kLatency>(st, held, c, out);
  if (p == nullptr) [[unlikely]] {
    return;
  }
  b.count_free_handed(st.size(), held.handed_out, st.tag);
  const std::uint64_t t0 = begin_interval<kLatency>();
  free_step(b.inner(), p, st);
  charge_call<kTimed, kLatency>(st, site, end_interval<kLatency>() - t0, c, out);
}

/// A free step of a block a KPI call made: the free of its family (kpi_path.h), timed whole.
template <bool kTimed, bool kLatency, class B>
KMBENCH_STEP_INLINE void kpi_release_step(Counting<B>& b, const Step& st, std::uint32_t site, HeldBlock& held,
                                          const PassContext& c, ThreadOutcome& out) {
  void* p = take_block<kTimed, kLatency>(st, held, c, out);
  if (p == nullptr) [[unlikely]] {
    return;
  }
  if (held.handed_out != HeldBlock::kNotBackend) b.count_free_handed(st.size(), held.handed_out, st.tag);
  const std::uint64_t t0 = begin_interval<kLatency>();
  kpi_free(p, st, *c.kpi_tags);
  charge_call<kTimed, kLatency>(st, site, end_interval<kLatency>() - t0, c, out);
  if constexpr (kTimed) ++out.kpi_calls;
}

/// The free step of a joined realloc: a transfer in flight completes, and
/// the block waits for the next step, which reallocates it.
template <bool kTimed, bool kLatency>
KMBENCH_STEP_INLINE void hold_for_realloc(const Step& st, HeldBlock& held, ReallocStash& stash, const PassContext& c,
                                          ThreadOutcome& out) {
  const std::uint64_t handed_out = held.handed_out;
  void* p = take_block<kTimed, kLatency>(st, held, c, out);
  stash = {p, handed_out, st.size(), st.tag};
}

/// The allocation step of a joined realloc: the block the step before held is
/// reallocated, timed as one backend call (the backend's own realloc, or
/// allocate, copy and free) and apart from the kinds' latency. A realloc
/// that fails leaves the old block, which is freed as the trace freed it; the
/// new block counts as a failed allocation.
template <bool kTimed, bool kLatency, class B>
KMBENCH_STEP_INLINE void realloc_step(Counting<B>& b, const Step& st, std::uint32_t site, HeldBlock& held,
                                      ReallocStash& stash, const PassContext& c, ThreadOutcome& out) {
  void* old = stash.block;
  stash.block = nullptr;
  if (old == nullptr) [[unlikely]] {  // the old block's own allocation had failed
    allocation_step<kTimed, kLatency>(b, st, site, held, c, out);
    return;
  }
  const std::size_t align = std::size_t{1} << st.align_log2;
  const bool own = c.realloc == Realloc::backend && (B::kFeatures & kFeatureRealloc) != 0;
  const std::uint64_t t0 = begin_interval<kLatency>();
  void* p = own ? kmbench::reallocate(b.inner(), old, stash.size, st.size(), align, st.tag, st.node)
                : copy_reallocate(b.inner(), old, stash.size, st.size(), align, st.tag, st.node);
  const std::uint64_t t1 = end_interval<kLatency>();
  b.count_free_handed(stash.size, stash.handed_out, stash.tag);
  if (p == nullptr) [[unlikely]] {
    b.inner().free(old, stash.size);
  }
  held.block = p;
  touch_new_block<kTimed, kLatency>(p, st, t1, c, out);
  held.handed_out = b.count_alloc(p, st.size(), st.tag);
  if constexpr (kTimed) {
    if constexpr (kLatency) {
      out.allocator_ticks += t1 - t0;
      out.realloc_ticks += t1 - t0;
      ++out.allocator_ops;
      out.realloc_latency.record(t1 - t0 > c.floor_ticks ? t1 - t0 - c.floor_ticks : 0);
      charge_site(c, site, t1 - t0);
    }
    count_allocation<B>(st, p, c, out);
    ++out.reallocs.calls;
    out.reallocs.in_place += p == old ? 1 : 0;
    out.reallocs.failed += p == nullptr ? 1 : 0;
    out.reallocs.own += own ? 1 : 0;
  }
}

/// A dma_map or dma_unmap step: the transfer in flight on the buffer ends; a
/// map prepares a new one (through the KPI's IODMACommand).
template <bool kTimed, bool kLatency>
KMBENCH_STEP_INLINE void dma_step(const Step& st, void* block, const PassContext& c, ThreadOutcome& out) {
  DmaHandle* dma = c.dma;
  if (dma == nullptr) {
    return;
  }
  const std::uint64_t d0 = begin_interval<kLatency>();
  dma_complete(dma[st.object]);
  if (st.kind == ops::OpKind::dma_map && block != nullptr) {
    dma[st.object] = dma_prepare(block, st);
  }
  if constexpr (kTimed) {
    out.skipped_maps += st.kind == ops::OpKind::dma_map && block == nullptr ? 1 : 0;
    if constexpr (kLatency) {
      const std::uint64_t dt = interval_end() - d0;
      out.dma_ticks += dt;
      ++out.dma_steps;
      record_latency(out, st, dt, c.floor_ticks);
    }
    if (st.kind == ops::OpKind::dma_map && (st.ctl & kStepLow) != 0 && (st.flags & ops::kOpDma32) != 0) {
      ++out.flags.low_transfers;
      out.flags.unhonoured_bounces += dma[st.object].bounced ? 1 : 0;
    }
  }
}

#undef KMBENCH_STEP_INLINE

}  // namespace kmbench::replay
