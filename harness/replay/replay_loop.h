// The replay loop, instantiated per backend: replay threads that live for
// the whole run and take commands from the coordinating thread (a warm-up
// pass, the timed pass, freeing what a pass left, flushing their caches), so
// that every pass starts from the allocator state the last one left, on the
// same threads and CPU slots, as a long-running kernel's would.
//
// In the timed pass every step is timed in parts: the backend's own call
// (Counting's bookkeeping runs outside it), the touch, the DMA layer, the
// wait for another thread. The footprint sampler stops the threads at a step
// boundary (a safepoint) for each sample, so that a sample's footprint and
// live bytes describe one instant.
#pragma once

#include <kmbench/kpi.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "allocators/counting.h"
#include "allocators/physmem/physmem.h"
#include "base/errors.h"
#include "base/spin_lock.h"
#include "harness/replay/dma_path.h"
#include "harness/replay/footprint.h"
#include "harness/replay/handed_out.h"
#include "harness/replay/latency.h"
#include "harness/replay/program.h"
#include "harness/replay/replay.h"
#include "harness/replay/replay_state.h"
#include "harness/replay/replay_steps.h"

namespace kmbench::replay {

/// One pass over a thread's steps. kTimed: the timed pass (latency, split and
/// counts when kLatency; pacing when kPaced); else a warm-up, as fast as possible.
/// `handoffs` gives the steps that wait or publish their handoffs, in order.
/// `sites`, when it has a column, runs beside `steps`: the timed pass with
/// latency charges each step's allocator time to its call site.
template <bool kTimed, bool kLatency, bool kPaced, class B>
void run_pass(Counting<B>& b, const std::vector<Step>& steps, const std::uint32_t* handoffs,
              SiteCursor sites, Shared& sh, ThreadOutcome& out) {
  HeldBlock* blocks = sh.blocks.get();
  const bool by_site = kTimed && kLatency && sites.at != nullptr;
  const PassContext c{sh.handoffs.get(),
                      sh.dma.get(),
                      sh.machine,
                      sh.floor_ticks,
                      sh.touch,
                      sh.realloc,
                      sh.kpi_tags,
                      kTimed && kPhysical<B> && sh.machine != nullptr,
                      sh.pressure,
                      by_site ? out.site_time.data() : nullptr};
  const std::uint8_t joined = sh.realloc == Realloc::split ? 0 : kStepReallocFrom | kStepReallocTo;
  ReallocStash stash;
  const Clock::time_point start = sh.start;
  std::uint64_t countdown = sh.sample_every_steps;  // 0: wraps, never reaches 0 again
  if constexpr (kTimed) {
    out.start_tick = ticks();
    out.pause_ticks += enter(sh);
  }
  for (const Step& st : steps) {
    std::uint32_t site = 0;
    if (by_site) {
      site = sites.next();
      asm volatile("" : "+r"(site));  // loaded here, before the step's timed intervals, not inside one
    }
    if constexpr (kTimed) {
      if (sh.pause.load(std::memory_order_relaxed)) [[unlikely]] {
        out.pause_ticks += park(sh);
      }
    }
    if constexpr (kPaced) {
      pace(st, sh, start, out);
    }
    if ((st.ctl & kStepWait) != 0) [[unlikely]] {
      wait_for_handoff<kTimed>(c.handoffs[*handoffs++], sh, out);
    }
    HeldBlock& held = blocks[st.object];
    switch (st.kind) {
      case ops::OpKind::alloc:
      case ops::OpKind::page_alloc:
      case ops::OpKind::dma_alloc:
        if ((st.ctl & joined) != 0) [[unlikely]] {
          realloc_step<kTimed, kLatency>(b, st, site, held, stash, c, out);
        } else if (st.call != ops::Call::none) [[unlikely]] {
          kpi_allocation_step<kTimed, kLatency>(b, st, site, held, c, out);
        } else {
          allocation_step<kTimed, kLatency>(b, st, site, held, c, out);
        }
        if constexpr (kTimed) out.pause_ticks += maybe_sample_at_peak(b, sh);
        break;
      case ops::OpKind::free:
      case ops::OpKind::page_free:
      case ops::OpKind::dma_free:
        if ((st.ctl & joined) != 0) [[unlikely]] {
          hold_for_realloc<kTimed, kLatency>(st, held, stash, c, out);
        } else if (st.call != ops::Call::none) [[unlikely]] {
          kpi_release_step<kTimed, kLatency>(b, st, site, held, c, out);
        } else {
          release_step<kTimed, kLatency>(b, st, site, held, c, out);
        }
        break;
      case ops::OpKind::dma_map:
      case ops::OpKind::dma_unmap:
        dma_step<kTimed, kLatency>(st, held.block, c, out);
        break;
    }
    if ((st.ctl & kStepPublish) != 0) [[unlikely]] {
      c.handoffs[*handoffs++].store(1, std::memory_order_release);
    }
    if constexpr (kTimed) {
      if (--countdown == 0) [[unlikely]] {
        countdown = sh.sample_every_steps;
        sh.steps_done.fetch_add(sh.sample_every_steps, std::memory_order_relaxed);
        out.pause_ticks += sample_at_step(sh);
      }
    }
  }
  if constexpr (kTimed) {
    leave(sh);
    out.end_tick = ticks();
  }
  out.end = Clock::now();
}

/// Frees (and unmaps) what the program leaves behind on this thread.
template <class B>
void free_leftovers(Counting<B>& b, const std::vector<Leftover>& leftovers, Shared& sh) {
  for (const Leftover& l : leftovers) {
    if (sh.dma && sh.dma[l.object].command != nullptr) {
      dma_complete(sh.dma[l.object]);
    }
    HeldBlock& held = sh.blocks[l.object];
    if (held.block != nullptr) {
      Step st;
      st.set_size(l.size());
      st.tag = l.tag;
      st.ctl = l.low ? kStepLow : 0;
      st.call = l.call;
      if (held.handed_out != HeldBlock::kNotBackend) b.count_free_handed(l.size(), held.handed_out, l.tag);
      if (st.call != ops::Call::none) {
        kpi_free(held.block, st, *sh.kpi_tags);
      } else {
        free_step(b.inner(), held.block, st);
      }
      held.block = nullptr;
    }
  }
}

/// A backend with caches the calling thread can empty into the shared
/// structures (tcaches, mimalloc's delayed frees, slab's CPU layer).
template <class B>
concept FlushingBackend = requires(B& b) { b.flush_thread_caches(); };

/// A backend that never reuses memory (bump): once a pass's blocks are all
/// freed it starts over, so every pass draws from the same prefaulted prefix.
template <class B>
concept RewindingBackend = requires(B& b) { b.rewind(); };

/// A replay thread: pins itself, then runs what the coordinator asks until exit.
template <class B>
void replay_thread(Counting<B>& b, const Program& prog, unsigned t, Shared& sh, ThreadOutcome& out,
                   int cpu, const Options& opt) {
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  }
  if (sh.machine != nullptr) {
    out.node = sh.machine->local_node();  // on a synthetic topology, claims this thread's CPU slot
  }
  const std::vector<Step>& steps = prog.threads[t];
  const std::uint32_t* handoffs = prog.handoffs[t].data();
  const SiteCursor sites{prog.step_sites.empty() ? nullptr : prog.step_sites[t].data(), prog.wide_sites()};
  if (sites.at != nullptr) out.site_time.assign(2 * prog.sites.size(), 0);
  std::uint32_t seen = 0;
  for (;;) {
    sh.generation.wait(seen, std::memory_order_acquire);
    seen = sh.generation.load(std::memory_order_acquire);
    const Command cmd = sh.command;
    if (cmd == Command::warm || cmd == Command::timed) {
      sh.ready.fetch_add(1, std::memory_order_acq_rel);
      while (!sh.go.load(std::memory_order_acquire)) {
        cpu_relax();
      }
    }
    switch (cmd) {
      case Command::warm:
        run_pass<false, false, false>(b, steps, handoffs, SiteCursor{}, sh, out);
        break;
      case Command::timed:
        if (opt.latency) {
          opt.mode == Mode::paced ? run_pass<true, true, true>(b, steps, handoffs, sites, sh, out)
                                  : run_pass<true, true, false>(b, steps, handoffs, sites, sh, out);
        } else {
          opt.mode == Mode::paced ? run_pass<true, false, true>(b, steps, handoffs, SiteCursor{}, sh, out)
                                  : run_pass<true, false, false>(b, steps, handoffs, SiteCursor{}, sh, out);
        }
        break;
      case Command::leftovers:
        free_leftovers(b, prog.leftovers[t], sh);
        break;
      case Command::flush:
        if constexpr (FlushingBackend<B>) {
          b.inner().flush_thread_caches();
        }
        break;
      case Command::none:
      case Command::exit:
        break;
    }
    sh.done.fetch_add(1, std::memory_order_acq_rel);
    sh.done.notify_all();
    if (cmd == Command::exit) {
      return;
    }
  }
}

/// The coordinator's side: runs a command on every replay thread and waits for
/// all. For a pass, `started` runs once every thread is ready, just before go.
template <class F>
void issue(Shared& sh, Command cmd, F&& started) {
  sh.command = cmd;
  sh.done.store(0, std::memory_order_relaxed);
  sh.ready.store(0, std::memory_order_relaxed);
  sh.go.store(false, std::memory_order_relaxed);
  sh.generation.fetch_add(1, std::memory_order_acq_rel);
  sh.generation.notify_all();
  if (cmd == Command::warm || cmd == Command::timed) {
    while (sh.ready.load(std::memory_order_acquire) < sh.threads) {
      std::this_thread::yield();
    }
    started();
    sh.go.store(true, std::memory_order_release);
  }
  for (unsigned d = sh.done.load(std::memory_order_acquire); d < sh.threads;
       d = sh.done.load(std::memory_order_acquire)) {
    sh.done.wait(d, std::memory_order_acquire);
  }
}
inline void issue(Shared& sh, Command cmd) {
  issue(sh, cmd, [] {});
}

// ---- a run --------------------------------------------------------------------

/// A sum of timed intervals less the timer's own share (its mean floor per
/// interval, TimerFloor), in ticks; never below 0.
inline double sub_floor(std::uint64_t ticks_sum, std::uint64_t intervals, double floor) noexcept {
  return std::max(0.0, static_cast<double>(ticks_sum) - static_cast<double>(intervals) * floor);
}

/// Everything a run needs before its backend exists, and its result.
struct RunSetup {
  Program program;           // steps placed on nodes
  physmem::Machine* machine = nullptr;
  std::vector<int> cpus;
  BackendConfig config;      // the run's machine, CPU slots, parameters, demand
  std::uint64_t stream_peak_live = 0;  // bytes asked for and not yet freed, at most, in stream order
  Result result;
};

/// Checks the options, sizes and populates the run's machine (for the
/// stream's blocks when machine_backed, else for the DMA layer only), places
/// the steps. Throws UsageError as run() does.
RunSetup prepare_run(const Program& program, std::string_view backend, const Options& options,
                     bool machine_backed);
/// Adds the replay.* metrics.
void finish_run(RunSetup& s);
/// Percentiles of a histogram whose unit is ns_per_unit nanoseconds.
LatencySummary summarize(const LatencyHistogram& h, double ns_per_unit);

// The parts of a run that do not depend on the backend's type (run_outcome.cpp).

/// Sizes the shared block and handoff tables and copies the pass settings.
void init_shared(Shared& sh, const RunSetup& s);
/// Merges what the threads measured into s.result: events, duration, latency,
/// the time split, NUMA locality, flag counts, paced lag.
void merge_outcomes(const std::vector<ThreadOutcome>& outcomes, const Shared& sh, RunSetup& s,
                    std::uint32_t features);
/// The notes a result carries on what the backend's memory is and honours.
void describe_memory(Result& r, std::uint32_t features, const physmem::Machine& machine);
/// Peak footprint, sampled live bytes and fragmentation, from r.timeline and
/// the counters before the drain.
void record_footprint(Result& r, const CountingStats& before_drain, bool use_rss);
/// The accounting check: the replay's held blocks, the counting wrapper and
/// the backend's own structures must agree. Also records the tags.
void check_accounting(Result& r, const CountingStats& fin, std::int64_t held, bool drained,
                      const std::vector<std::string>& tag_names);
/// The backend's metrics and the counting wrapper's byte totals.
void record_metrics(Result& r, const CountingStats& before_drain);

/// Starts one replay thread per program thread, pinned to the run's CPU slots.
template <class B>
std::vector<std::thread> start_replay_threads(Counting<B>& b, RunSetup& s, Shared& sh,
                                              std::vector<ThreadOutcome>& outcomes) {
  Result& r = s.result;
  const unsigned n = static_cast<unsigned>(s.program.threads.size());
  r.cpus.assign(n, -1);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (unsigned t = 0; t < n; ++t) {
    if (r.options.pin && !s.cpus.empty()) r.cpus[t] = s.cpus[t % s.cpus.size()];
    threads.emplace_back(
        [&b, &s, &sh, &outcomes, t] { replay_thread(b, s.program, t, sh, outcomes[t], s.result.cpus[t], s.result.options); });
  }
  return threads;
}

/// What an adapting backend changed of its tuning so far; 0 for the others.
template <class B>
std::uint64_t adaptations_of(const B& b) {
  if constexpr (AdaptingBackend<B>) {
    return b.adaptations();
  } else {
    return 0;
  }
}

/// The figure a run's warm-up makes of its timed pass.
std::string warm_up_figure(const Result& r);

/// Warm-up passes: the same stream, untimed; what each leaves is freed, the
/// allocator's state stays. options.warmup of them, and more while the
/// backend still adapts (a pass changed its tuning), up to options.settle in
/// all. Returns the last pass's duration (0: none).
template <class B>
std::uint64_t warm_up(Counting<B>& b, RunSetup& s, Shared& sh) {
  Result& r = s.result;
  const unsigned least = r.options.warmup;
  const unsigned most = std::max(least, r.options.settle);
  std::uint64_t pass_ns = 0;
  std::uint64_t seen = adaptations_of(b.inner());
  bool adapted = false;
  unsigned passes = 0;
  while (passes < least || (passes > 0 && adapted && passes < most)) {
    const auto w0 = Clock::now();
    issue(sh, Command::warm);
    pass_ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - w0).count());
    issue(sh, Command::leftovers);
    for (std::uint64_t h = 0; h < s.program.cross_thread_waits; ++h) {
      sh.handoffs[h].store(0, std::memory_order_relaxed);
    }
    if constexpr (RewindingBackend<B>) {
      if (b.stats().live_blocks == 0) b.inner().rewind();
    }
    ++passes;
    const std::uint64_t now = adaptations_of(b.inner());
    adapted = now != seen;
    seen = now;
  }
  r.warmup_passes = passes;
  r.settled = !adapted;
  r.figure = warm_up_figure(r);
  return pass_ns;
}

/// The timed pass, its footprint sampled at safepoints (the backend's mapped
/// bytes, or the process RSS for a backend that cannot tell).
template <class B>
void timed_pass(Counting<B>& b, Result& r, Shared& sh, PressureController* pressure, std::uint64_t warm_pass_ns,
                bool use_rss, std::uint64_t steps, std::int64_t warm_peak_live) {
  std::uint64_t below_live = 0;
  double max_pause_ns = 0;
  std::uint64_t stopped_ns = 0;  // the pass wholly stopped: from the last thread's halt to the restart
  const std::chrono::microseconds interval = sampling_interval(r.options.sample_ms, warm_pass_ns);
  r.sample_interval_us = static_cast<std::uint64_t>(interval.count());
  FootprintSampler sampler(
      [&] {
        const auto p0 = Clock::now();
        // Inside the stop: what must describe one instant (the footprint, the
        // live bytes, and the RSS when it is the footprint); the process RSS
        // otherwise after the threads go on.
        FootprintSample f = at_safepoint(sh, [&] {
          const auto halted = Clock::now();
          const CountingFootprint cf = b.footprint();
          FootprintSample x;
          x.mapped_bytes = cf.backend.mapped_bytes;
          x.resident_bytes = cf.backend.resident_bytes;
          x.live_bytes = cf.live_bytes;
          if (use_rss) x.rss_bytes = process_rss_bytes();
          stopped_ns += static_cast<std::uint64_t>((Clock::now() - halted).count());
          return x;
        });
        if (!use_rss) f.rss_bytes = process_rss_bytes();
        max_pause_ns = std::max(max_pause_ns, std::chrono::duration<double, std::nano>(Clock::now() - p0).count());
        const std::uint64_t fp = use_rss ? f.rss_bytes : f.mapped_bytes;
        below_live += static_cast<std::int64_t>(fp) < f.live_bytes ? 1 : 0;
        return f;
      },
      interval);
  sh.sampler = &sampler;
  sh.sample_every_steps = sampling_every_steps(steps);
  r.sample_every_ops = sh.sample_every_steps;
  sh.peak_sample_at.store(first_peak_mark(warm_peak_live, sh.threads), std::memory_order_relaxed);
  sh.peak_samples.store(0, std::memory_order_relaxed);
  rusage before{}, after{};
  issue(sh, Command::timed, [&] {
    sampler.start();
    getrusage(RUSAGE_SELF, &before);
    sh.start = Clock::now();
    sh.start_tick = ticks();
    if (pressure) pressure->start();
  });
  getrusage(RUSAGE_SELF, &after);
  if (pressure) {
    pressure->stop();
    r.pressure.record = pressure->record();
  }
  sampler.stop();
  sh.sampler = nullptr;
  sh.peak_sample_at.store(INT64_MAX, std::memory_order_relaxed);
  r.peak_samples = sh.peak_samples.load(std::memory_order_relaxed);
  r.dma = kpi::dma_stats();
  r.minor_faults = static_cast<std::uint64_t>(after.ru_minflt - before.ru_minflt);
  r.major_faults = static_cast<std::uint64_t>(after.ru_majflt - before.ru_majflt);
  r.timeline = sampler.timeline();
  r.footprint_source = use_rss ? "process RSS" : "backend mapped bytes";
  r.footprint_below_live = below_live;
  r.sampling_max_pause_ns = max_pause_ns;
  r.sampling_stopped_ns = stopped_ns;
}

/// Replays s.program through b: warm-up passes, the timed pass, the accounting
/// check; fills s.result.
template <class B>
void run_on(Counting<B>& b, RunSetup& s) {
  const Options& opt = s.result.options;
  Result& r = s.result;
  Shared sh;
  init_shared(sh, s);
  // Through the KPI: b serves the KPI for the run (kpi_path.h); the tags go
  // first, then the loan ends, then its AnyBackend, which leaves b be.
  std::optional<KpiModeScope> kpi_mode;
  std::unique_ptr<AnyBackend> lent;
  std::optional<kpi::BackendLoan> loan;
  std::optional<KpiTags> tags;
  if (r.via_kpi) {
    kpi_mode.emplace(opt.kpi_mode);
    lent = std::make_unique<AnyBackend>(r.backend, B::kFeatures, &b, &kBorrowedOpsFor<B>);
    loan.emplace(*lent, s.machine);
    tags.emplace(s.program);
    sh.kpi_tags = &*tags;
  }
  std::vector<ThreadOutcome> outcomes(s.program.threads.size());
  std::vector<std::thread> threads = start_replay_threads(b, s, sh, outcomes);
  dma_begin(opt.iommu, opt.iommu_bits);

  // Under pressure the caps hold from the first warm-up pass on (pressure.h).
  std::optional<PressureController> pressure;
  if (sh.pressure) {
    PressureController::Reclaim reclaim;
    if constexpr ((B::kFeatures & kFeatureReclaim) != 0) reclaim = [&b](ReclaimLevel level) { return b.reclaim(level); };
    pressure.emplace(opt.pressure, *s.machine, r.pressure.peak_live_bytes, sh.steps_done, std::move(reclaim));
    pressure->hold_caps();
  }
  const std::uint64_t warm_pass_ns = warm_up(b, s, sh);
  // Where the timed pass first samples at its peak: the warm-up's, or cold, the stream's.
  const std::int64_t warm_peak_live =
      r.warmup_passes > 0 ? b.peak_live_bytes() : static_cast<std::int64_t>(s.stream_peak_live);
  b.reset_peaks();
  dma_reset_counters();
  const bool use_rss = (B::kFeatures & kFeaturePhysical) == 0 && b.stats().backend.mapped_bytes == 0;
  std::uint64_t steps = 0;
  for (const auto& t : s.program.threads) steps += t.size();
  const std::vector<KpiFamilyCount> kpi_before = r.via_kpi ? kpi_family_counts() : std::vector<KpiFamilyCount>{};
  const kpi::ReclaimStats kpi_reclaims = kpi::reclaim_stats();
  timed_pass(b, r, sh, pressure ? &*pressure : nullptr, warm_pass_ns, use_rss, steps, warm_peak_live);
  if (r.via_kpi) {
    r.kpi_families = kpi_family_delta(kpi_before, kpi_family_counts());
    r.pressure.kpi_reclaims = kpi::reclaim_stats().reclaims - kpi_reclaims.reclaims;
    r.pressure.kpi_rescued = kpi::reclaim_stats().rescued - kpi_reclaims.rescued;
  }
  merge_outcomes(outcomes, sh, s, B::kFeatures);
  describe_memory(r, B::kFeatures, *s.machine);
  const CountingStats before_drain = b.stats();
  record_footprint(r, before_drain, use_rss);

  // The accounting check, after each thread flushed its caches.
  std::int64_t held = 0;
  for (std::uint32_t o = 0; o < s.program.object_count; ++o) {
    const HeldBlock& h = sh.blocks[o];
    held += h.block != nullptr && h.handed_out != HeldBlock::kNotBackend ? 1 : 0;  // the backend's blocks
  }
  if (opt.drain) issue(sh, Command::leftovers);
  issue(sh, Command::flush);
  check_accounting(r, b.stats(), held, opt.drain, s.program.tag_names);
  record_metrics(r, before_drain);
  // Not drained: the blocks still go back once everything is measured, since
  // the system backend's memory belongs to the process, not to the backend.
  if (!opt.drain) issue(sh, Command::leftovers);
  dma_end();
  issue(sh, Command::exit);
  for (auto& th : threads) th.join();
  const std::vector<std::uint64_t> handed = measure_handed_out(b.inner(), s.program.requests, r.refused_requests);
  record_handed_out(r, s.program, handed);
}

/// run() for a backend type of the caller's (a test's), constructed here.
template <Backend B>
Result run_as(const Program& program, std::string_view name, const Options& options) {
  RunSetup s = prepare_run(program, name, options, (B::kFeatures & kFeaturePhysical) != 0);
  Counting<B> b(s.config);
  run_on(b, s);
  finish_run(s);
  return std::move(s.result);
}

}  // namespace kmbench::replay
