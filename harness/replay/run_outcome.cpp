// What a run's replay threads and counters measured, turned into its Result:
// the parts of run_on that do not depend on the backend's type.
#include <algorithm>
#include <string>

#include "harness/replay/replay_loop.h"

namespace kmbench::replay {

void init_shared(Shared& sh, const RunSetup& s) {
  const Program& prog = s.program;
  const Options& opt = s.result.options;
  sh.objects = prog.object_count;
  sh.threads = static_cast<unsigned>(prog.threads.size());
  sh.blocks = std::make_unique<HeldBlock[]>(prog.object_count + 1);
  if (prog.cross_thread_waits > 0) {
    sh.handoffs = std::make_unique<std::atomic<std::uint32_t>[]>(prog.cross_thread_waits);
  }
  if (prog.dma_maps > 0) sh.dma = std::make_unique<DmaHandle[]>(prog.object_count + 1);
  sh.speed = opt.speed;
  sh.touch = opt.touch;
  sh.realloc = opt.realloc;
  sh.floor_ticks = s.result.recorder.floor.median;
  sh.floor_mean_ticks = s.result.recorder.floor.mean;
  sh.machine = s.machine->node_count() > 1 ? s.machine : nullptr;
  sh.pressure = !opt.pressure.empty();
}

namespace {

/// One thread's time split, in ns, added to the run's (floors taken off).
void add_time_split(TimeSplit& ts, const ThreadOutcome& o, const Shared& sh, double end_floor_ticks,
                    std::uint64_t end_tick, double npt, bool latency) {
  const double floor = sh.floor_mean_ticks;
  const double alloc = sub_floor(o.allocator_ticks, o.allocator_ops, floor) * npt;
  const double touch = sub_floor(o.touch_ticks, o.touches, end_floor_ticks) * npt;
  const double dma = sub_floor(o.dma_ticks, o.dma_steps, floor) * npt;
  const double wait = static_cast<double>(o.wait_ticks) * npt;
  const double pause = static_cast<double>(o.pause_ticks) * npt;
  const double pacing = static_cast<double>(o.pacing_ticks) * npt;
  const double span = static_cast<double>(o.end_tick - o.start_tick) * npt;
  if (latency) {
    ts.allocator_ns += alloc;
    ts.touch_ns += touch;
    ts.dma_ns += dma;
    ts.harness_ns += std::max(0.0, span - alloc - touch - dma - wait - pause - pacing);
  }
  ts.wait_ns += wait;
  ts.sampling_ns += pause;
  ts.pacing_ns += pacing;
  // Idle: started late (not yet running after go) or finished early.
  ts.idle_ns += static_cast<double>(end_tick - o.end_tick + (o.start_tick > sh.start_tick ? o.start_tick - sh.start_tick : 0)) * npt;
  ts.allocator_ops += o.allocator_ops;
}

void add_locality(NumaLocality& numa, const ThreadOutcome& o) {
  numa.local_bytes += o.local_bytes;
  numa.remote_bytes += o.remote_bytes;
  numa.local_allocs += o.local_allocs;
  numa.remote_allocs += o.remote_allocs;
  numa.frees += o.frees;
  numa.remote_frees += o.remote_frees;
  if (static_cast<unsigned>(o.node) < numa.bytes.size()) {
    for (unsigned m = 0; m < numa.bytes.size(); ++m) numa.bytes[o.node][m] += o.bytes_on[m];
  }
}

/// One thread's allocator time by call site, added to the run's sites.
void add_site_time(std::vector<SiteResult>& sites, const ThreadOutcome& o, double floor, double npt) {
  for (std::size_t i = 0; 2 * i < o.site_time.size(); ++i) {
    const std::uint64_t ticks = o.site_time[2 * i], calls = o.site_time[2 * i + 1];
    sites[i].timed_ops += calls;
    sites[i].allocator_ns += sub_floor(ticks, calls, floor) * npt;
  }
}

void add_flags(FlagCounts& to, const FlagCounts& f) {
  to.low_requested += f.low_requested;
  to.low_unhonoured += f.low_unhonoured;
  to.contiguous_requested += f.contiguous_requested;
  to.contiguous_unhonoured += f.contiguous_unhonoured;
  to.zeroed += f.zeroed;
  to.low_transfers += f.low_transfers;
  to.unhonoured_bounces += f.unhonoured_bounces;
}

}  // namespace

namespace {

/// What the threads counted under pressure, with the controller's record:
/// failures by kind and over time, reclaim, and the recovery after each lift.
void merge_pressure(PressureResult& p, const Program& program, const std::vector<ThreadOutcome>& outcomes,
                    std::uint64_t start_tick, std::uint64_t end_tick, double npt) {
  LatencyHistogram reclaim;
  std::vector<std::pair<std::uint64_t, std::uint8_t>> failures;  // (ns from the start, kind)
  for (const ThreadOutcome& o : outcomes) {
    for (std::size_t k = 0; k < 3; ++k) {
      for (std::size_t w = 0; w < 2; ++w) p.failures[k][w] += o.failures[k][w];
    }
    p.skipped_frees += o.skipped_frees;
    p.skipped_maps += o.skipped_maps;
    p.reclaim_calls += o.reclaim_calls;
    p.reclaimed_bytes += o.reclaimed_bytes;
    p.rescued += o.rescued;
    p.reclaim_skipped += o.reclaim_skipped;
    reclaim.merge(o.reclaim_latency);
    for (const auto& [tick, kind] : o.failure_ticks) {
      failures.emplace_back(static_cast<std::uint64_t>(static_cast<double>(tick - std::min(tick, start_tick)) * npt),
                            kind);
    }
  }
  for (const Request& q : program.requests) p.allocations += q.count;  // the pass runs every allocation step once
  std::uint64_t failed = 0;
  for (const auto& k : p.failures) failed += k[0] + k[1];
  p.failures_per_1000 = p.allocations > 0 ? 1000.0 * static_cast<double>(failed) / static_cast<double>(p.allocations) : 0;
  p.reclaim_latency = summarize(reclaim, npt);
  const double pass_ns = static_cast<double>(end_tick - std::min(end_tick, start_tick)) * npt;
  for (const auto& [ns, kind] : failures) {
    const auto bin = pass_ns > 0 ? static_cast<std::size_t>(static_cast<double>(ns) / pass_ns *
                                                            static_cast<double>(PressureResult::kFailureBins))
                                 : 0;
    ++p.failures_over_time[kind][std::min(bin, PressureResult::kFailureBins - 1)];
  }
  // Recovery: from each lift, to the last failure before the next squeeze.
  const std::vector<std::uint64_t>& lifts = p.record.lifts_ns;
  const std::vector<std::uint64_t>& squeezes = p.record.squeezes_ns;
  for (std::uint64_t lift : lifts) {
    const auto next = std::upper_bound(squeezes.begin(), squeezes.end(), lift);
    const std::uint64_t until = next == squeezes.end() ? ~std::uint64_t{0} : *next;
    std::uint64_t last = lift;
    for (const auto& f : failures) {
      if (f.first >= lift && f.first < until) last = std::max(last, f.first);
    }
    p.recovery_ns.push_back(last - lift);
  }
}

}  // namespace

void merge_outcomes(const std::vector<ThreadOutcome>& outcomes, const Shared& sh, RunSetup& s,
                    std::uint32_t features) {
  Result& r = s.result;
  const Options& opt = r.options;
  const double npt = ns_per_tick();
  Clock::time_point end = sh.start;
  std::uint64_t end_tick = 0;
  for (const ThreadOutcome& o : outcomes) {
    end = std::max(end, o.end);
    end_tick = std::max(end_tick, o.end_tick);
  }
  r.events = s.program.steps;
  r.duration_ns = static_cast<std::uint64_t>((end - sh.start).count());
  // Throughput leaves out the wall time the footprint sampler held every thread stopped: it is the
  // measurement's, not the replay's (time.sampling_ns keeps it).
  const std::uint64_t replaying_ns = r.duration_ns - std::min(r.duration_ns, r.sampling_stopped_ns);
  r.ops_per_sec = replaying_ns > 0 ? static_cast<double>(r.events) * 1e9 / static_cast<double>(replaying_ns) : 0;
  std::array<LatencyHistogram, ops::kOpKinds> merged{};
  LatencyHistogram lag, realloc_latency;
  double lag_sum = 0;
  TimeSplit& ts = r.time;
  ts.measured = opt.latency;
  const unsigned nodes = s.machine->node_count();
  r.numa.measured = sh.machine != nullptr && (features & kFeaturePhysical) != 0;
  if (r.numa.measured) {
    const unsigned kept = std::min(nodes, kLocalityNodes);
    r.numa.bytes.assign(kept, std::vector<std::uint64_t>(kept, 0));
  }
  r.sites.assign(s.program.sites.size(), SiteResult{});
  for (const ThreadOutcome& o : outcomes) {
    for (int k = 0; k < ops::kOpKinds; ++k) merged[k].merge(o.latency[k]);
    lag.merge(o.lag);
    r.noblock_failures += o.noblock_failures;
    r.failed_allocs += o.failed_allocs;
    r.dependency_stalls += o.stalls;
    r.paced_max_lag_ns = std::max(r.paced_max_lag_ns, o.max_lag_ns);
    lag_sum += o.lag_sum_ns;
    add_time_split(ts, o, sh, r.recorder.end_floor.mean, end_tick, npt, opt.latency);
    if (r.numa.measured) add_locality(r.numa, o);
    add_flags(r.flags, o.flags);
    r.reallocs.calls += o.reallocs.calls;
    r.reallocs.in_place += o.reallocs.in_place;
    r.reallocs.failed += o.reallocs.failed;
    r.reallocs.own += o.reallocs.own;
    realloc_latency.merge(o.realloc_latency);
    r.realloc_allocator_ns += sub_floor(o.realloc_ticks, o.reallocs.calls, sh.floor_mean_ticks) * npt;
    add_site_time(r.sites, o, sh.floor_mean_ticks, npt);
  }
  ts.thread_ns = static_cast<double>(r.duration_ns) * static_cast<double>(outcomes.size());
  ts.allocator_ns_per_op = ts.allocator_ops > 0 ? ts.allocator_ns / static_cast<double>(ts.allocator_ops) : 0;
  r.dependency_wait_ns = static_cast<std::uint64_t>(ts.wait_ns);
  r.dependency_checks = s.program.cross_thread_waits;
  r.program_bytes = program_bytes(s.program);
  const std::uint64_t by_object = sizeof(HeldBlock) + (sh.dma ? sizeof(DmaHandle) : 0);
  r.object_table_bytes = (std::uint64_t{s.program.object_count} + 1) * by_object +
                         s.program.cross_thread_waits * sizeof(std::uint32_t);  // the handoffs
  if (opt.mode == Mode::paced && r.events > 0) {
    r.paced_mean_lag_ns = lag_sum / static_cast<double>(r.events);
    r.paced_lag = summarize(lag, 1.0);
  }
  for (int k = 0; k < ops::kOpKinds; ++k) r.latency[k] = summarize(merged[k], npt);
  r.realloc_latency = summarize(realloc_latency, npt);
  r.numa_measured = r.numa.measured;
  merge_pressure(r.pressure, s.program, outcomes, sh.start_tick, end_tick, npt);
}

void describe_memory(Result& r, std::uint32_t features, const physmem::Machine& machine) {
  const bool low = (features & kFeatureLowMemory) != 0;
  const bool phys = (features & kFeaturePhysical) != 0;
  r.flags.note = std::string(low ? "dma32 blocks placed below 4 GiB" : "dma32 not honoured (no memory below 4 GiB): counted, and 32-bit transfers over such blocks bounce") +
                 "; " + (phys ? "every block physically contiguous (the machine's direct map)"
                              : "contiguous not honoured: process memory has scattered frames") +
                 "; zeroed blocks cleared right after the backend's call, for every backend alike (touch time)";
  r.dma_note = dma_note(phys, r.options.iommu, r.options.iommu_bits, r.via_kpi);
  r.machine.memory_source =
      phys ? "the simulated machine: resident before timing, no page faults"
           : std::string(r.backend) == "system"
                 ? "the process heap (glibc brk and thread heaps; M_MMAP_MAX 0 and M_TRIM_THRESHOLD -1 keep what it took): first touches fault"
                 : "memory of the backend's own, outside the simulated machine";
  const unsigned nodes = machine.node_count();
  r.numa_note = r.numa.measured
                    ? "measured from each block's simulated physical address (" +
                          std::string(machine.synthetic() ? "synthetic topology: nodes simulated" : "real topology: node ranges bound") + ")"
                : nodes == 1 ? (machine.synthetic() ? "synthetic topology with one node: no placement to measure"
                                                    : "real machine with one node: no placement to measure")
                             : "this backend's memory is not the simulated machine's: placement not measured";
}

void record_footprint(Result& r, const CountingStats& before_drain, bool use_rss) {
  for (const FootprintSample& f : r.timeline) {
    r.peak_sampled_footprint_bytes = std::max(r.peak_sampled_footprint_bytes, use_rss ? f.rss_bytes : f.mapped_bytes);
    r.peak_sampled_live_bytes = std::max(r.peak_sampled_live_bytes, f.live_bytes);
  }
  r.peak_live_bytes = before_drain.peak_live_bytes;
  // Samples are moments: with several replay threads the one taken at the
  // live peak can come a step after it (docs/REPLAY.md), when a free has
  // already given memory back. The backend's mapped bytes hold every live
  // block at every instant (Counting counts a block live after the backend
  // hands it out and no longer before it is given back), so at the live peak
  // it held at least the peak live bytes: a bound on its peak as sure as any
  // sample, where every sample of the run shows it holding its live bytes.
  // The process RSS need not hold blocks never touched, and is not bounded so.
  r.peak_footprint_bytes = r.peak_sampled_footprint_bytes;
  const auto live_peak = static_cast<std::uint64_t>(std::max<std::int64_t>(r.peak_live_bytes, 0));
  if (!use_rss && r.footprint_below_live == 0) r.peak_footprint_bytes = std::max(r.peak_footprint_bytes, live_peak);
  r.fragmentation = r.peak_sampled_live_bytes > 0 ? static_cast<double>(r.peak_sampled_footprint_bytes) /
                                                        static_cast<double>(r.peak_sampled_live_bytes)
                                                  : 0;
  r.final_live_blocks = before_drain.live_blocks;
  r.final_live_bytes = before_drain.live_bytes;
}

namespace {

std::string tag_name(TagId tag, const std::vector<std::string>& names) {
  return tag < names.size() ? names[tag] : std::to_string(tag);
}

}  // namespace

void check_accounting(Result& r, const CountingStats& fin, std::int64_t held, bool drained,
                      const std::vector<std::string>& tag_names) {
  const std::int64_t expect = drained ? 0 : held;
  r.drained = drained;
  r.backend_live_blocks = fin.backend.live_blocks;
  r.backend_live_bytes = fin.backend.live_bytes;
  std::string detail;
  if (fin.live_blocks != expect) {
    detail += "the counting wrapper has " + std::to_string(fin.live_blocks) + " live blocks, the replay holds " +
              std::to_string(expect) + "; ";
  }
  if (drained && (fin.live_bytes != 0 || fin.live_handed_out_bytes != 0)) {
    detail += "the counting wrapper has " + std::to_string(fin.live_bytes) + " bytes live after drain; ";
  }
  if (fin.backend.live_blocks >= 0 && fin.backend.live_blocks != expect) {
    detail += "the backend's own structures hold " + std::to_string(fin.backend.live_blocks) +
              " blocks, the replay " + std::to_string(expect) + "; ";
  }
  if (fin.backend.live_bytes >= 0 && fin.backend.live_bytes != fin.live_handed_out_bytes) {
    detail += "the backend's own structures hold " + std::to_string(fin.backend.live_bytes) +
              " bytes, the counting wrapper handed out " + std::to_string(fin.live_handed_out_bytes) + "; ";
  }
  if (drained) {
    for (const TagStats& t : fin.tags) {
      if (t.live_blocks != 0 || t.live_bytes != 0) {
        detail += "tag " + tag_name(t.tag, tag_names) + ": " + std::to_string(t.live_bytes) + " bytes live; ";
      }
    }
  }
  r.accounting_ok = detail.empty();
  if (r.accounting_ok) {
    detail = std::string(drained ? "drained " : "not drained: ") + std::to_string(held) +
             " blocks held at the end; the counting wrapper" +
             (fin.backend.live_blocks >= 0 ? " and the backend's own structures agree"
                                           : " agrees (the backend cannot count its blocks itself)") +
             (drained ? ", " + std::to_string(fin.tags.size()) + " tags read zero" : "");
  }
  r.accounting_detail = detail;
  for (const TagStats& t : fin.tags) {
    r.tags.push_back({tag_name(t.tag, tag_names), t.allocs, t.frees, t.live_blocks, t.live_bytes, t.peak_live_bytes});
  }
}

void record_metrics(Result& r, const CountingStats& before_drain) {
  r.metrics = before_drain.backend.metrics;
  r.metrics.push_back({"backend.mapped_bytes", static_cast<double>(before_drain.backend.mapped_bytes)});
  r.metrics.push_back({"backend.resident_bytes", static_cast<double>(before_drain.backend.resident_bytes)});
  r.metrics.push_back({"backend.metadata_bytes", static_cast<double>(before_drain.backend.metadata_bytes)});
  r.metrics.push_back({"backend.requested_bytes", static_cast<double>(before_drain.requested_bytes)});
  r.metrics.push_back({"backend.handed_out_bytes", static_cast<double>(before_drain.handed_out_bytes)});
}

void record_handed_out(Result& r, const Program& program, const std::vector<std::uint64_t>& handed) {
  r.handed_out_measured = true;
  r.size_classes = {};
  for (std::size_t i = 0; i < program.requests.size(); ++i) {
    const Request& q = program.requests[i];
    SizeClassUse& c = r.size_classes[static_cast<std::size_t>(ops::size_class(q.size, q.pages))];
    c.allocs += q.count;
    c.requested_bytes += q.size * q.count;
    c.handed_out_bytes += handed[i] * q.count;
  }
  r.sites.resize(program.sites.size());  // the timed pass's site times stay
  for (std::size_t i = 0; i < program.sites.size(); ++i) {
    const SiteUse& s = program.sites[i];
    SiteResult& x = r.sites[i];
    x.name = s.name;
    x.allocs = s.allocs;
    x.bytes = s.bytes;
    x.frees = s.frees;
    x.cross_cpu_frees = s.cross_cpu_frees;
    x.handed_out_bytes = 0;
    for (const auto& [q, n] : s.requests) x.handed_out_bytes += handed[q] * n;
  }
}

}  // namespace kmbench::replay
