#include "harness/replay/replay.h"

#include <numa.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "allocators/physmem/physmem.h"
#include "allocators/registry.h"
#include "base/errors.h"
#include "harness/replay/option_table.h"
#include "harness/replay/replay_loop.h"
#include "harness/replay/run_machine.h"

namespace kmbench::replay {
namespace {


/// CPUs the replay threads may run on: the node's, or the process's affinity.
std::vector<int> cpus_for(NodeId node, const physmem::Machine& m) {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof(set), &set);
  const unsigned nodes = m.node_count();
  if (node != kAnyNode && (node < 0 || static_cast<unsigned>(node) >= nodes)) {
    throw UsageError("node " + std::to_string(node) + " is not in this machine's topology (" +
                     std::to_string(nodes) + " node" + (nodes == 1 ? "" : "s") + ")");
  }
  // A synthetic node has no CPUs of its own: threads run on the process's CPUs.
  if (node == kAnyNode || m.synthetic() || numa_available() < 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
    return cpus;
  }
  for (unsigned c : m.node(node).cpus) {
    if (c < CPU_SETSIZE && CPU_ISSET(c, &set)) cpus.push_back(static_cast<int>(c));
  }
  if (cpus.empty()) {
    throw UsageError("node " + std::to_string(node) + " has no CPU this process may run on");
  }
  return cpus;
}

/// Memory node each step asks for, from the placement and the threads' node.
void place_steps(Program& prog, const Options& o, unsigned nodes) {
  for (auto& steps : prog.threads) {
    for (Step& s : steps) {
      NodeId n = kAnyNode;
      if (o.node == kAnyNode) {
        n = s.node >= 0 && static_cast<unsigned>(s.node) < nodes ? s.node : kAnyNode;
      } else if (o.placement == Placement::local) {
        n = o.node;
      } else if (o.placement == Placement::remote) {
        n = static_cast<NodeId>((static_cast<unsigned>(o.node) + 1) % nodes);
      } else {
        n = static_cast<NodeId>(s.object % nodes);
      }
      s.node = static_cast<std::int8_t>(n);
    }
  }
}

}  // namespace


std::chrono::microseconds sampling_interval(unsigned sample_ms, std::uint64_t warm_pass_ns) {
  constexpr std::uint64_t kMinUs = 1000, kMaxUs = 10'000, kSamplesPerPass = 100;
  if (sample_ms > 0) return std::chrono::microseconds(std::uint64_t{sample_ms} * 1000);
  if (warm_pass_ns == 0) return std::chrono::microseconds(kMaxUs);
  return std::chrono::microseconds(std::clamp<std::uint64_t>(warm_pass_ns / 1000 / kSamplesPerPass, kMinUs, kMaxUs));
}

std::uint64_t sampling_every_steps(std::uint64_t steps) {
  return std::max<std::uint64_t>(1, steps / kSamplesBySteps);
}

TimerFloor timer_floor_of(std::vector<std::uint64_t>& ticks) {
  std::sort(ticks.begin(), ticks.end());
  TimerFloor f;
  f.median = ticks[ticks.size() / 2];
  const std::uint64_t cut = 4 * std::max<std::uint64_t>(f.median, 1);
  double sum = 0;
  std::size_t n = 0;
  for (const std::uint64_t t : ticks) {
    if (t > cut) break;
    const std::uint64_t gap = n > 0 ? t - ticks[n - 1] : 0;  // to the reading before, in sorted order
    if (gap > 0 && (f.step == 0 || gap < f.step)) f.step = gap;
    sum += static_cast<double>(t);
    ++n;
  }
  f.mean = n > 0 ? sum / static_cast<double>(n) : static_cast<double>(f.median);
  return f;
}

RecorderCost measure_recorder_cost() {
  constexpr int kRounds = 200000;
  LatencyHistogram h;
  std::vector<std::uint64_t> floor(kRounds), end_floor(kRounds);
  const std::uint64_t begin = ticks();
  for (int i = 0; i < kRounds; ++i) {
    const std::uint64_t t0 = interval_begin();
    const std::uint64_t t1 = interval_end();
    h.record(t1 - t0);
  }
  const std::uint64_t spent = ticks() - begin;
  // The floors: each interval started after a pause of its own length, so
  // that the starts fall anywhere between two of the counter's steps, as a
  // run's calls do (back to back, they can keep one phase of the steps).
  std::uint32_t seed = 1;
  const auto pause = [&seed] {
    seed = seed * 1664525u + 1013904223u;
    for (std::uint32_t n = seed >> 26; n > 0; --n) asm volatile("");
  };
  for (int i = 0; i < kRounds; ++i) {
    pause();
    const std::uint64_t t0 = interval_begin();
    const std::uint64_t t1 = interval_end();
    floor[static_cast<std::size_t>(i)] = t1 - t0;
  }
  for (int i = 0; i < kRounds; ++i) {
    pause();
    const std::uint64_t t0 = interval_end();
    end_floor[static_cast<std::size_t>(i)] = interval_end() - t0;
  }
  RecorderCost c;
  c.ns_per_record = static_cast<double>(spent) * ns_per_tick() / kRounds;
  c.floor = timer_floor_of(floor);
  c.end_floor = timer_floor_of(end_floor);
  c.timer_floor_ns = c.floor.mean * ns_per_tick();
  c.timer_resolution_ns = static_cast<double>(c.floor.step) * ns_per_tick();
  return c;
}

LatencySummary summarize(const LatencyHistogram& h, double ns_per_unit) {
  LatencySummary s;
  s.count = h.count();
  if (s.count == 0) return s;
  s.p50_ns = static_cast<double>(h.quantile(0.5)) * ns_per_unit;
  s.p90_ns = static_cast<double>(h.quantile(0.9)) * ns_per_unit;
  s.p99_ns = static_cast<double>(h.quantile(0.99)) * ns_per_unit;
  s.p999_ns = static_cast<double>(h.quantile(0.999)) * ns_per_unit;
  s.max_ns = static_cast<double>(h.max()) * ns_per_unit;
  for (int i = 0; i < LatencyHistogram::kBuckets; ++i) {
    if (h.bucket_count(i) > 0) {
      s.histogram.emplace_back(static_cast<double>(LatencyHistogram::upper_bound(i)) * ns_per_unit,
                               h.bucket_count(i));
    }
  }
  return s;
}

namespace {

/// Whether the program's KPI calls run through the KPI (Via); when not, its
/// steps lose their calls, so that the loop never takes the KPI path.
/// Throws UsageError for kpi on a stream no KPI call made.
bool through_kpi(Program& p, Via via) {
  const bool kpi = via == Via::kpi || (via == Via::automatic && p.kpi_steps > 0);
  if (kpi && p.kpi_steps == 0) {
    throw UsageError("--via kpi: the stream has no KPI allocation (it was not recorded through the KPI: "
                     "KMBENCH_RECORD, kpi/README.md)");
  }
  if (!kpi) {
    for (auto& steps : p.threads) {
      for (Step& st : steps) st.call = ops::Call::none;
    }
    for (auto& leftovers : p.leftovers) {
      for (Leftover& l : leftovers) l.call = ops::Call::none;
    }
  }
  return kpi;
}

}  // namespace

RunSetup prepare_run(const Program& program, std::string_view backend, const Options& options,
                     bool machine_backed) {
  // Options built in code, not parsed: the same checks as the option table's.
  for (std::string_view key : {"speed", "warmup"}) {
    const OptionSpec& spec = *option_by_key(key);
    check_option(spec, spec.get(options), spec.flag);
  }
  RunSetup s;
  s.program = program;
  const bool via_kpi = through_kpi(s.program, options.via);
  const unsigned threads = static_cast<unsigned>(std::max<std::size_t>(program.threads.size(), 1));
  MemoryDemand demand = memory_demand(program);
  const std::uint64_t stream_peak_live = demand.peak_live_bytes;
  s.stream_peak_live = stream_peak_live;
  if (!machine_backed && !via_kpi) {
    // glibc and bump keep their blocks elsewhere: the machine holds what the
    // DMA layer takes from it (bounce buffers) and nothing else.
    demand.peak_live_bytes = demand.peak_page_bytes = demand.peak_low_bytes = 0;
  }
  MachinePlan plan = plan_machine(options.topology, demand, threads, options.node_bytes);
  if (!machine_backed && options.node_bytes == 0) {
    plan.sizing = "for DMA bounce buffers only (" + std::string(backend) +
                  "'s memory is not the machine's); " + plan.sizing;
  }
  physmem::PopulateStats populated;
  bool reused = false;
  physmem::Machine& m = run_machine(plan, populated, reused);
  s.machine = &m;
  const unsigned nodes = m.node_count();
  if (options.placement != Placement::local && options.node == kAnyNode) {
    throw UsageError("placement " + std::string(name_of(options.placement)) + " needs --node");
  }
  if (options.placement == Placement::remote && nodes < 2) {
    throw UsageError("placement remote needs at least two nodes; this machine has " +
                     std::to_string(nodes));
  }
  s.cpus = cpus_for(options.node, m);
  place_steps(s.program, options, nodes);

  Result& r = s.result;
  r.backend = std::string(backend);
  r.options = options;
  r.threads = static_cast<unsigned>(s.program.threads.size());
  r.topology_kind = m.synthetic() ? "synthetic" : "real";
  r.topology_description = m.topology_description() + ", " +
                           std::to_string(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))) + " CPUs";
  r.topology_nodes = nodes;
  r.warmup_passes = options.warmup;  // until the warm-up says how many it ran
  r.figure = warm_up_figure(r);
  r.dropped = s.program.dropped;
  r.via_kpi = via_kpi;
  if (via_kpi) {
    r.kpi_mode = std::string(name_of(options.kpi_mode));
    r.kpi_note = kpi_note(options.kpi_mode);
  }
  if (!options.pressure.empty()) {
    r.pressure.active = true;
    r.pressure.spec = options.pressure.text;
    r.pressure.peak_live_bytes = stream_peak_live;
    r.pressure.note = machine_backed
                          ? "the backend draws its memory from the machine the balloon takes from"
                          : std::string(backend) + "'s memory is not the machine's: the balloon reaches only "
                                                        "what the KPI and the DMA layer take from the machine";
  }
  if (options.latency) r.recorder = measure_recorder_cost();
  r.machine.node_bytes = m.node(0).sim_bytes;
  r.machine.low_bytes = plan.spec.low_bytes;
  r.machine.ram_bytes = m.ram_bytes();
  r.machine.sizing = plan.sizing;
  r.machine.populated = m.populated();
  r.machine.populate_seconds = populated.seconds;
  r.machine.huge_page_bytes = populated.huge_bytes;
  r.machine.reused = reused;

  s.config.machine = &m;
  s.config.cpus = std::max<unsigned>(r.threads, 1);
  s.config.params = options.backend_params;
  s.config.demand_bytes = s.program.alloc_bytes;
  return s;
}

void finish_run(RunSetup& s) {
  Result& r = s.result;
  const Options& options = r.options;
  if (options.latency && r.duration_ns > 0 && r.threads > 0) {
    r.recorder_overhead_fraction = r.recorder.ns_per_record * static_cast<double>(r.events) /
                                   (static_cast<double>(r.duration_ns) * r.threads);
  }
  auto add = [&](std::string name, double v) { r.metrics.push_back({std::move(name), v}); };
  for (int k = 0; k < ops::kOpKinds; ++k) {
    const LatencySummary& l = r.latency[k];
    if (l.count == 0) continue;
    const std::string base = "replay.latency." + std::string(latency_name(static_cast<ops::OpKind>(k)));
    add(base + ".count", static_cast<double>(l.count));
    add(base + ".p50_ns", l.p50_ns);
    add(base + ".p90_ns", l.p90_ns);
    add(base + ".p99_ns", l.p99_ns);
    add(base + ".p999_ns", l.p999_ns);
    add(base + ".max_ns", l.max_ns);
  }
  add("replay.events", static_cast<double>(r.events));
  add("replay.ops_per_sec", r.ops_per_sec);
  add("replay.warmup_passes", r.warmup_passes);
  if (r.time.measured) {
    add("replay.allocator_ns_per_op", r.time.allocator_ns_per_op);
    add("replay.time.allocator_ns", r.time.allocator_ns);
    add("replay.time.touch_ns", r.time.touch_ns);
    add("replay.time.dma_ns", r.time.dma_ns);
    add("replay.time.harness_ns", r.time.harness_ns);
  }
  add("replay.time.wait_ns", r.time.wait_ns);
  add("replay.time.sampling_ns", r.time.sampling_ns);
  add("replay.time.idle_ns", r.time.idle_ns);
  add("replay.faults.minor", static_cast<double>(r.minor_faults));
  add("replay.faults.major", static_cast<double>(r.major_faults));
  add("replay.faults.minor_per_op",
      r.events > 0 ? static_cast<double>(r.minor_faults) / static_cast<double>(r.events) : 0);
  add("replay.dependency.checks", static_cast<double>(r.dependency_checks));
  add("replay.dependency.stalls", static_cast<double>(r.dependency_stalls));
  add("replay.dependency.wait_ns", static_cast<double>(r.dependency_wait_ns));
  add("replay.failed_allocs", static_cast<double>(r.failed_allocs));
  add("replay.noblock_failures", static_cast<double>(r.noblock_failures));
  add("replay.footprint.below_live_samples", static_cast<double>(r.footprint_below_live));
  add("replay.flags.low_unhonoured", static_cast<double>(r.flags.low_unhonoured));
  add("replay.flags.unhonoured_bounces", static_cast<double>(r.flags.unhonoured_bounces));
  if (r.reallocs.calls > 0) {
    add("replay.reallocs", static_cast<double>(r.reallocs.calls));
    add("replay.reallocs.in_place", static_cast<double>(r.reallocs.in_place));
    add("replay.reallocs.failed", static_cast<double>(r.reallocs.failed));
    add("replay.reallocs.allocator_ns", r.realloc_allocator_ns);
    add("replay.reallocs.p50_ns", r.realloc_latency.p50_ns);
    add("replay.reallocs.p99_ns", r.realloc_latency.p99_ns);
  }
  if (r.pressure.active) {
    const PressureResult& p = r.pressure;
    static constexpr const char* kKinds[] = {"alloc", "page", "dma"};
    for (std::size_t k = 0; k < 3; ++k) {
      add(std::string("replay.pressure.failures.") + kKinds[k] + ".blocking", static_cast<double>(p.failures[k][0]));
      add(std::string("replay.pressure.failures.") + kKinds[k] + ".noblock", static_cast<double>(p.failures[k][1]));
    }
    add("replay.pressure.failures_per_1000", p.failures_per_1000);
    add("replay.pressure.skipped_frees", static_cast<double>(p.skipped_frees));
    add("replay.pressure.reclaim.calls", static_cast<double>(p.reclaim_calls));
    add("replay.pressure.reclaim.bytes", static_cast<double>(p.reclaimed_bytes));
    add("replay.pressure.reclaim.p50_ns", p.reclaim_latency.p50_ns);
    add("replay.pressure.reclaim.p99_ns", p.reclaim_latency.p99_ns);
    add("replay.pressure.reclaim.max_ns", p.reclaim_latency.max_ns);
    if (!p.recovery_ns.empty()) {
      add("replay.pressure.recovery_max_ns",
          static_cast<double>(*std::max_element(p.recovery_ns.begin(), p.recovery_ns.end())));
    }
  }
  if (r.numa.measured) {
    add("replay.numa.local_bytes", static_cast<double>(r.numa.local_bytes));
    add("replay.numa.remote_bytes", static_cast<double>(r.numa.remote_bytes));
    add("replay.numa.remote_frees", static_cast<double>(r.numa.remote_frees));
  }
  if (options.latency) {
    add("replay.recorder.ns_per_record", r.recorder.ns_per_record);
    add("replay.recorder.timer_floor_ns", r.recorder.timer_floor_ns);
    add("replay.recorder.timer_resolution_ns", r.recorder.timer_resolution_ns);
    add("replay.recorder.overhead_fraction", r.recorder_overhead_fraction);
  }
  if (options.mode == Mode::paced) {
    add("replay.paced.max_lag_ns", static_cast<double>(r.paced_max_lag_ns));
    add("replay.paced.mean_lag_ns", r.paced_mean_lag_ns);
    add("replay.paced.p50_lag_ns", r.paced_lag.p50_ns);
    add("replay.paced.p99_lag_ns", r.paced_lag.p99_ns);
  }
  for (const auto& [why, count] : r.dropped) add("replay.dropped." + why, static_cast<double>(count));
  add("replay.dma.bytes", static_cast<double>(r.dma.transfer_bytes));
  add("physmem.ram_bytes", static_cast<double>(r.machine.ram_bytes));
  add("physmem.populate_seconds", r.machine.populate_seconds);
}

Result run(const Program& program, std::string_view backend, const Options& options) {
  const BackendInfo* info = find_backend(backend);
  if (info == nullptr) {
    std::string known;
    for (const BackendInfo& b : all_backends()) known += (known.empty() ? "" : ", ") + b.name;
    throw UsageError("unknown backend '" + std::string(backend) + "' (known: " + known + ")");
  }
  if (!info->executable.empty()) {
    throw UsageError("backend '" + std::string(backend) + "' runs in its own executable (" +
                     info->executable + "); replaying through it from this process is not supported yet");
  }
  RunSetup s = prepare_run(program, backend, options, (info->features & kFeaturePhysical) != 0);
  const bool found = with_backend(backend, s.config, [&](auto& b) { run_on(b, s); });
  if (!found) {
    throw UsageError("backend '" + std::string(backend) + "' is not compiled into this executable");
  }
  finish_run(s);
  return std::move(s.result);
}

unsigned replay_threads(const ops::Trace& trace, const Options& options) {
  return options.threads != 0 ? options.threads : static_cast<unsigned>(std::max<std::size_t>(trace.streams.size(), 1));
}

Result run(const ops::Trace& trace, std::string_view backend, const Options& options) {
  return run(build_program(trace, replay_threads(trace, options)), backend, options);
}

std::string warm_up_figure(const Result& r) {
  const unsigned n = r.warmup_passes;
  if (n == 0) return "cold: no warm-up pass";
  std::string f = "steady state: " + std::to_string(n) + " untimed warm-up pass" + (n == 1 ? "" : "es") + " first";
  if (n > r.options.warmup) f += ", until the backend stopped adapting";
  if (!r.settled) f += "; the backend still adapted in the last";
  return f;
}

}  // namespace kmbench::replay
