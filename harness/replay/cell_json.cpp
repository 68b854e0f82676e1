#include "harness/replay/cell_json.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <iomanip>

#include "base/errors.h"
#include "base/file_io.h"
#include "harness/env/environment.h"

namespace kmbench::replay {
namespace {

nlohmann::json latency_json(const LatencySummary& l) {
  nlohmann::json hist = nlohmann::json::array();
  for (const auto& [bound, count] : l.histogram) hist.push_back({bound, count});
  return {{"count", l.count}, {"p50_ns", l.p50_ns},   {"p90_ns", l.p90_ns}, {"p99_ns", l.p99_ns},
          {"p999_ns", l.p999_ns}, {"max_ns", l.max_ns}, {"histogram", hist}};
}

nlohmann::json pressure_json(const PressureResult& p) {
  static constexpr const char* kKinds[] = {"alloc", "page", "dma"};
  nlohmann::json failures = nlohmann::json::object(), over_time = nlohmann::json::object();
  for (std::size_t k = 0; k < 3; ++k) {
    failures[kKinds[k]] = {{"blocking", p.failures[k][0]}, {"noblock", p.failures[k][1]}};
    over_time[kKinds[k]] = p.failures_over_time[k];
  }
  nlohmann::json nodes = nlohmann::json::array();
  for (const PressureNode& n : p.record.nodes) {
    nodes.push_back({{"node", n.node},
                     {"ram_bytes", n.ram_bytes},
                     {"min_available_bytes", n.min_available_bytes},
                     {"balloon_peak_bytes", n.balloon_peak_bytes},
                     {"max_shortfall_bytes", n.max_shortfall_bytes},
                     {"unusable_index", n.unusable_index}});
  }
  std::vector<std::uint64_t> background = p.record.background_reclaim_ns;
  std::sort(background.begin(), background.end());
  const auto at = [&](double q) {
    return background.empty() ? std::uint64_t{0}
                              : background[std::min(background.size() - 1,
                                                    static_cast<std::size_t>(q * static_cast<double>(background.size())))];
  };
  nlohmann::json timeline = nlohmann::json::array();
  for (const PressureSample& x : p.record.timeline) {
    timeline.push_back({x.t_ns, x.ops, x.available_bytes, x.balloon_bytes});
  }
  return {{"spec", p.spec},
          {"peak_live_bytes", p.peak_live_bytes},
          {"note", p.note},
          {"allocations", p.allocations},
          {"failures", failures},
          {"failures_per_1000", p.failures_per_1000},
          {"failures_over_time", {{"bins", PressureResult::kFailureBins}, {"by_kind", over_time}}},
          {"skipped_frees", p.skipped_frees},
          {"skipped_maps", p.skipped_maps},
          {"reclaim", {{"calls", p.reclaim_calls},
                       {"bytes", p.reclaimed_bytes},
                       {"rescued", p.rescued},
                       {"skipped", p.reclaim_skipped},
                       {"latency", latency_json(p.reclaim_latency)},
                       {"kpi_passes", p.kpi_reclaims},
                       {"kpi_rescued", p.kpi_rescued}}},
          {"background_reclaim", {{"calls", p.record.background_reclaims},
                                  {"bytes", p.record.background_reclaimed_bytes},
                                  {"p50_ns", at(0.5)},
                                  {"p99_ns", at(0.99)},
                                  {"max_ns", background.empty() ? 0 : background.back()}}},
          {"kswapd", {{"wakeups", p.record.kswapd.wakeups},
                      {"passes", p.record.kswapd.passes},
                      {"reclaimed_bytes", p.record.kswapd.reclaimed_bytes},
                      {"failed_runs", p.record.kswapd.failed_runs}}},
          {"watermarks", {{"below_low", p.record.kswapd.below_low_allocs},
                          {"reserve", p.record.kswapd.reserve_allocs},
                          {"min_failures", p.record.kswapd.min_failures},
                          {"direct_reclaims", p.record.kswapd.direct_reclaims},
                          {"direct_reclaimed_bytes", p.record.kswapd.direct_reclaimed_bytes}}},
          {"lifts_ns", p.record.lifts_ns},
          {"squeezes_ns", p.record.squeezes_ns},
          {"recovery_ns", p.recovery_ns},
          {"nodes", nodes},
          {"timeline_fields", {"t_ns", "ops", "available_bytes", "balloon_bytes"}},
          {"timeline", timeline}};
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

nlohmann::json source_json(const Source& source) {
  nlohmann::json src = {{"kind", source.kind}, {"name", source.name}, {"params", nlohmann::json::object()}};
  for (const auto& [k, v] : source.params) src["params"][k] = v;
  src["seed"] = source.seed ? nlohmann::json(*source.seed) : nlohmann::json(nullptr);
  if (!source.counters.empty()) src["counters"] = source.counters;
  return src;
}

nlohmann::json time_json(const TimeSplit& t) {
  auto measured = [&](double v) { return t.measured ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"measured", t.measured},
          {"allocator_ns", measured(t.allocator_ns)},
          {"touch_ns", measured(t.touch_ns)},
          {"dma_ns", measured(t.dma_ns)},
          {"wait_ns", t.wait_ns},
          {"sampling_ns", t.sampling_ns},
          {"pacing_ns", t.pacing_ns},
          {"idle_ns", t.idle_ns},
          {"harness_ns", measured(t.harness_ns)},
          {"thread_ns", t.thread_ns},
          {"allocator_ops", t.allocator_ops},
          {"note", "thread time of the timed pass, summed over threads; allocator: inside the "
                   "backend's own calls (its bookkeeping in the counting wrapper is harness), "
                   "with the timer floor taken off each interval"}};
}

nlohmann::json machine_json(const MachineInfo& m) {
  return {{"node_bytes", m.node_bytes},   {"low_bytes", m.low_bytes},
          {"ram_bytes", m.ram_bytes},     {"sizing", m.sizing},
          {"populated", m.populated},     {"populate_seconds", m.populate_seconds},
          {"huge_page_bytes", m.huge_page_bytes}, {"reused", m.reused},
          {"memory_source", m.memory_source}};
}

/// Latency by op kind, the recorder's cost, and for a paced run the lag.
void add_latency(nlohmann::json& j, const Result& r) {
  nlohmann::json lat = nlohmann::json::object();
  for (int k = 0; k < ops::kOpKinds; ++k) {
    lat[std::string(latency_name(static_cast<ops::OpKind>(k)))] = latency_json(r.latency[k]);
  }
  j["latency"] = lat;
  j["latency_recorder"] = {{"enabled", r.options.latency},
                           {"ns_per_record", r.recorder.ns_per_record},
                           {"timer_floor_ns", r.recorder.timer_floor_ns},
                           {"timer_resolution_ns", r.recorder.timer_resolution_ns},
                           {"overhead_fraction", r.recorder_overhead_fraction},
                           {"note",
                            "every operation timed with rdtsc into a log histogram (8 buckets "
                            "per power of two); percentiles are bucket upper bounds, of "
                            "intervals read in steps of timer_resolution_ns, each less the "
                            "timer floor's median; sums of intervals (the time split, ns per "
                            "op) less its mean (timer_floor_ns); an allocation's time is the "
                            "backend's call alone (touching is timed apart)"}};
  if (r.options.mode == Mode::paced) {
    j["paced"] = {{"lag", latency_json(r.paced_lag)},
                  {"max_lag_ns", r.paced_max_lag_ns},
                  {"mean_lag_ns", r.paced_mean_lag_ns}};
  }
}

nlohmann::json footprint_json(const Result& r) {
  nlohmann::json timeline = nlohmann::json::array();
  for (const FootprintSample& f : r.timeline) {
    timeline.push_back({{"t_ns", f.t_ns}, {"mapped_bytes", f.mapped_bytes},
                        {"resident_bytes", f.resident_bytes}, {"live_bytes", f.live_bytes},
                        {"rss_bytes", f.rss_bytes}});
  }
  return {{"peak_footprint_bytes", r.peak_footprint_bytes},
          {"peak_sampled_footprint_bytes", r.peak_sampled_footprint_bytes},
          {"peak_footprint_from_live", r.peak_footprint_from_live()},
          {"peak_live_bytes", r.peak_live_bytes},
          {"peak_sampled_live_bytes", r.peak_sampled_live_bytes},
          {"fragmentation", r.fragmentation},
          {"below_live_samples", r.footprint_below_live},
          {"max_sampling_pause_ns", r.sampling_max_pause_ns},
          {"sampling_stopped_ns", r.sampling_stopped_ns},
          {"sample_interval_us", r.sample_interval_us},
          {"sample_every_ops", r.sample_every_ops},
          {"peak_samples", r.peak_samples},
          {"source", r.footprint_source},
          {"timeline", timeline}};
}

/// The DMA layer's counters and the flags the backend honoured.
void add_dma(nlohmann::json& j, const Result& r) {
  j["dma"] = {{"transfers", r.dma.transfers},
              {"bytes", r.dma.transfer_bytes},
              {"segments", r.dma.segments},
              {"segments_per_transfer", r.dma.segments_per_transfer()},
              {"bounce_bytes", r.dma.bounce_bytes},
              {"bounce_copies", r.dma.bounce_copies},
              {"iommu_mappings", r.dma.iommu_mappings},
              {"note", r.dma_note}};
  j["flags"] = {{"dma32_requested", r.flags.low_requested},
                {"dma32_unhonoured", r.flags.low_unhonoured},
                {"contiguous_requested", r.flags.contiguous_requested},
                {"contiguous_unhonoured", r.flags.contiguous_unhonoured},
                {"zeroed", r.flags.zeroed},
                {"dma32_transfers", r.flags.low_transfers},
                {"dma32_unhonoured_bounces", r.flags.unhonoured_bounces},
                {"note", r.flags.note}};
  j["reallocs"] = {{"joined", r.reallocs.calls},
                   {"in_place", r.reallocs.in_place},
                   {"failed", r.reallocs.failed},
                   {"backend_own", r.reallocs.own},
                   {"allocator_ns", r.realloc_allocator_ns},
                   {"latency", latency_json(r.realloc_latency)},
                   {"mode", std::string(name_of(r.options.realloc))}};
  nlohmann::json families = nlohmann::json::object();
  for (const KpiFamilyCount& f : r.kpi_families) families[f.family] = {{"allocs", f.allocs}, {"frees", f.frees}};
  j["kpi"] = {{"via", r.via_kpi ? "kpi" : "backend"}, {"mode", r.kpi_mode}, {"families", families},
              {"note", r.kpi_note}};
  if (r.pressure.active) j["pressure"] = pressure_json(r.pressure);
}

nlohmann::json numa_json(const Result& r) {
  nlohmann::json numa = {{"measured", r.numa_measured}, {"note", r.numa_note}};
  if (r.numa.measured) {
    numa["local_bytes"] = r.numa.local_bytes;
    numa["remote_bytes"] = r.numa.remote_bytes;
    numa["local_allocs"] = r.numa.local_allocs;
    numa["remote_allocs"] = r.numa.remote_allocs;
    numa["frees"] = r.numa.frees;
    numa["remote_frees"] = r.numa.remote_frees;
    numa["bytes_by_thread_node_and_memory_node"] = r.numa.bytes;
  }
  return numa;
}

/// Tags, the accounting check, dropped operations and the backend's metrics.
void add_accounting(nlohmann::json& j, const Result& r) {
  nlohmann::json tags = nlohmann::json::array();
  for (const TagResult& tg : r.tags) {
    tags.push_back({{"name", tg.name}, {"peak_live_bytes", tg.peak_live_bytes}, {"live_bytes", tg.live_bytes},
                    {"live_blocks", tg.live_blocks}, {"allocs", tg.allocs}, {"frees", tg.frees}});
  }
  j["tags"] = tags;
  auto known = [](std::int64_t v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
  j["accounting_check"] = {{"drained", r.drained},
                           {"ok", r.accounting_ok},
                           {"detail", r.accounting_detail},
                           {"backend_live_blocks", known(r.backend_live_blocks)},
                           {"backend_live_bytes", known(r.backend_live_bytes)}};
  j["dropped_operations"] = r.dropped;
  nlohmann::json metrics = nlohmann::json::object();
  for (const Metric& m : r.metrics) metrics[m.name] = m.value;
  j["metrics"] = metrics;
}

nlohmann::json class_json(int c) {
  const std::uint64_t limit = ops::size_class_limit(c);
  return {{"class", ops::kSizeClassNames[static_cast<std::size_t>(c)]},
          {"max_bytes", limit ? nlohmann::json(limit) : nlohmann::json(nullptr)}};
}

/// Requested against handed-out bytes by size class; null when not measured.
nlohmann::json fragmentation_json(const Result& r) {
  if (!r.handed_out_measured) return nullptr;
  nlohmann::json classes = nlohmann::json::array();
  SizeClassUse total;
  for (int c = 0; c < ops::kSizeClasses; ++c) {
    const SizeClassUse& u = r.size_classes[static_cast<std::size_t>(c)];
    if (u.allocs == 0) continue;
    nlohmann::json x = class_json(c);
    x["allocs"] = u.allocs;
    x["requested_bytes"] = u.requested_bytes;
    x["handed_out_bytes"] = u.handed_out_bytes;
    classes.push_back(x);
    total.allocs += u.allocs;
    total.requested_bytes += u.requested_bytes;
    total.handed_out_bytes += u.handed_out_bytes;
  }
  return {{"classes", classes},
          {"total", {{"allocs", total.allocs}, {"requested_bytes", total.requested_bytes},
                     {"handed_out_bytes", total.handed_out_bytes}}},
          {"refused_requests", r.refused_requests},
          {"note", "after the timed pass: one block per distinct (size, alignment, below 4 GiB) request, "
                   "its usable size as the backend reports it, weighted by how often the stream asks for it; "
                   "classes by requested size, page and DMA allocations apart"}};
}

/// The capture's own slack (ftrace bytes_req/bytes_alloc), from its importer
/// counters; null when the source has none (workloads, older .kmt files).
nlohmann::json kernel_slack_json(const Source& source) {
  nlohmann::json classes = nlohmann::json::array();
  std::uint64_t total[3] = {0, 0, 0};
  bool recorded = false;
  for (int c = 0; c < ops::kPagesClass; ++c) {
    std::uint64_t v[3] = {0, 0, 0};
    for (std::size_t f = 0; f < 3; ++f) {
      const auto it = source.counters.find(ops::slab_slack_counter(c, ops::kSlackFields[f]));
      if (it == source.counters.end()) continue;
      recorded = true;
      v[f] = it->second;
      total[f] += it->second;
    }
    if (v[0] == 0) continue;
    nlohmann::json x = class_json(c);
    for (std::size_t f = 0; f < 3; ++f) x[std::string(ops::kSlackFields[f])] = v[f];
    classes.push_back(x);
  }
  if (!recorded) return nullptr;
  return {{"classes", classes},
          {"total", {{"allocs", total[0]}, {"bytes_req", total[1]}, {"bytes_alloc", total[2]}}},
          {"note", "the capture's kmalloc and kmem_cache_alloc events: bytes_req and bytes_alloc, by class "
                   "of bytes_req (what perf kmem stat calls fragmentation); page allocations are not counted"}};
}

/// The call sites of a trace: the top kTopSites by allocations and by bytes.
nlohmann::json call_sites_json(const Result& r) {
  if (r.sites.empty()) return nullptr;
  constexpr std::size_t kTopSites = 20;
  std::vector<std::size_t> by_count(r.sites.size()), by_bytes;
  std::uint64_t handed = 0;
  for (std::size_t i = 0; i < r.sites.size(); ++i) {
    by_count[i] = i;
    handed += r.sites[i].handed_out_bytes;
  }
  by_bytes = by_count;
  auto top = [&](std::vector<std::size_t>& v, std::uint64_t SiteResult::*key) {
    std::stable_sort(v.begin(), v.end(), [&](std::size_t a, std::size_t b) { return r.sites[a].*key > r.sites[b].*key; });
    if (v.size() > kTopSites) v.resize(kTopSites);
  };
  top(by_count, &SiteResult::allocs);
  top(by_bytes, &SiteResult::bytes);
  std::vector<std::size_t> shown = by_count;
  for (std::size_t i : by_bytes) {
    if (std::find(shown.begin(), shown.end(), i) == shown.end()) shown.push_back(i);
  }
  nlohmann::json sites = nlohmann::json::array();
  for (std::size_t i : shown) {
    const SiteResult& s = r.sites[i];
    if (s.allocs == 0) continue;
    const bool timed = r.time.measured && s.timed_ops > 0;
    sites.push_back({{"site", s.name}, {"allocs", s.allocs}, {"bytes", s.bytes}, {"frees", s.frees},
                     {"cross_cpu_frees", s.cross_cpu_frees},
                     {"cross_cpu_fraction", s.frees ? nlohmann::json(static_cast<double>(s.cross_cpu_frees) /
                                                                     static_cast<double>(s.frees))
                                                    : nlohmann::json(nullptr)},
                     {"handed_out_bytes", s.handed_out_bytes},
                     {"timed_ops", s.timed_ops},
                     {"allocator_ns_per_op", timed ? nlohmann::json(s.allocator_ns / static_cast<double>(s.timed_ops))
                                                   : nlohmann::json(nullptr)},
                     {"footprint_share", handed ? static_cast<double>(s.handed_out_bytes) / static_cast<double>(handed)
                                                : 0.0}});
  }
  return {{"sites_total", r.sites.size()},
          {"handed_out_bytes_total", handed},
          {"sites", sites},
          {"note", "the top 20 call sites by allocations and the top 20 by bytes requested; cross-CPU frees: "
                   "recorded on another CPU than the allocation; footprint share: this backend's handed-out "
                   "bytes for the site's allocations over all it hands out; allocator ns/op: the backend's calls for the "
                   "site's allocations and frees in the timed pass, mean, timer floor taken off (null without "
                   "--latency)"}};
}

}  // namespace

nlohmann::json cell_json(const Result& r, const Source& source) {
  nlohmann::json j;
  j["schema"] = "kmbench.cell/2";
  j["backend"] = r.backend;
  j["source"] = source_json(source);
  j["mode"] = std::string(name_of(r.options.mode));
  j["speed"] = r.options.speed;
  j["threads"] = r.threads;
  j["cpus"] = r.cpus;
  j["node"] = r.options.node;
  j["placement"] = std::string(name_of(r.options.placement));
  j["touch"] = std::string(name_of(r.options.touch));
  j["warmup"] = r.options.warmup;
  j["warmup_passes"] = r.warmup_passes;
  j["settled"] = r.settled;
  j["figure"] = r.figure;
  j["topology"] = {{"kind", r.topology_kind}, {"description", r.topology_description},
                   {"nodes", r.topology_nodes}};
  j["events"] = r.events;
  j["duration_ns"] = r.duration_ns;
  j["ops_per_sec"] = r.ops_per_sec;
  j["allocator_ns_per_op"] = r.time.measured ? nlohmann::json(r.time.allocator_ns_per_op) : nlohmann::json(nullptr);
  j["time"] = time_json(r.time);
  j["faults"] = {{"minor", r.minor_faults},
                 {"major", r.major_faults},
                 {"minor_per_op", r.events > 0 ? static_cast<double>(r.minor_faults) / static_cast<double>(r.events) : 0.0},
                 {"note", "getrusage over the timed pass, the whole process (sampler included)"}};
  j["machine"] = machine_json(r.machine);
  add_latency(j, r);
  j["footprint"] = footprint_json(r);
  j["final_live_blocks"] = r.final_live_blocks;
  j["final_live_bytes"] = r.final_live_bytes;
  j["noblock_failures"] = r.noblock_failures;
  j["failed_allocs"] = r.failed_allocs;
  j["dependency_wait_ns"] = r.dependency_wait_ns;
  j["dependency"] = {{"checks", r.dependency_checks}, {"stalls", r.dependency_stalls},
                     {"wait_ns", r.dependency_wait_ns}};
  const std::uint64_t replay_bytes = r.program_bytes + r.object_table_bytes;
  j["replay_memory"] = {
      {"program_bytes", r.program_bytes},
      {"object_table_bytes", r.object_table_bytes},
      {"bytes_per_op", r.events == 0 ? 0.0 : static_cast<double>(replay_bytes) / static_cast<double>(r.events)}};
  add_dma(j, r);
  j["numa"] = numa_json(r);
  add_accounting(j, r);
  j["internal_fragmentation"] = fragmentation_json(r);
  j["kernel_slack"] = source.kind == "trace" ? kernel_slack_json(source) : nlohmann::json(nullptr);
  j["call_sites"] = call_sites_json(r);
  j["environment"] = environment_json();
  return j;
}

void write_json_atomic(const nlohmann::json& json, const std::string& path) {
  base::write_file_atomic(path, json.dump(1) + "\n");
}

void print_summary(std::ostream& out, const Result& r, const Source& source) {
  out << source.kind << " " << source.name << " on " << r.backend << ": " << r.events << " events, "
      << r.threads << " thread" << (r.threads == 1 ? "" : "s") << ", " << name_of(r.options.mode)
      << " mode, " << r.figure << "\n";
  out << std::fixed << std::setprecision(3) << "  duration        " << static_cast<double>(r.duration_ns) / 1e6
      << " ms, " << std::setprecision(0) << r.ops_per_sec << " ops/s\n";
  const TimeSplit& t = r.time;
  if (t.measured) {
    out << std::setprecision(1) << "  allocator       " << t.allocator_ns_per_op << " ns per allocation or free ("
        << t.allocator_ops << " calls)\n";
    auto share = [&](double ns) { return t.thread_ns > 0 ? 100 * ns / t.thread_ns : 0.0; };
    out << "  thread time     allocator " << share(t.allocator_ns) << "%, touch " << share(t.touch_ns)
        << "%, dma " << share(t.dma_ns) << "%, wait " << share(t.wait_ns) << "%, harness "
        << share(t.harness_ns) << "%, sampling " << share(t.sampling_ns) << "%, idle " << share(t.idle_ns) << "%";
    if (r.options.mode == Mode::paced) out << ", pacing " << share(t.pacing_ns) << "%";
    out << "\n";
  }
  out << std::setprecision(4) << "  page faults     " << r.minor_faults << " minor ("
      << (r.events > 0 ? static_cast<double>(r.minor_faults) / static_cast<double>(r.events) : 0.0)
      << " per op), " << r.major_faults << " major\n";
  out << "  latency (ns)    " << std::left << std::setw(13) << "kind" << std::right << std::setw(10)
      << "count" << std::setw(9) << "p50" << std::setw(9) << "p90" << std::setw(9) << "p99"
      << std::setw(10) << "p99.9" << std::setw(11) << "max" << "\n";
  out << std::setprecision(0);
  for (int k = 0; k < ops::kOpKinds; ++k) {
    const LatencySummary& l = r.latency[k];
    if (l.count == 0) continue;
    out << "                  " << std::left << std::setw(13) << latency_name(static_cast<ops::OpKind>(k))
        << std::right << std::setw(10) << l.count << std::setw(9) << l.p50_ns << std::setw(9) << l.p90_ns
        << std::setw(9) << l.p99_ns << std::setw(10) << l.p999_ns << std::setw(11) << l.max_ns << "\n";
  }
  if (r.options.latency) {
    out << std::setprecision(1) << "  recorder        " << r.recorder.ns_per_record << " ns/op, timer floor "
        << r.recorder.timer_floor_ns << " ns (taken off), resolution " << r.recorder.timer_resolution_ns << " ns, "
        << std::setprecision(2) << 100 * r.recorder_overhead_fraction << "% of thread time\n";
  }
  if (r.options.mode == Mode::paced) {
    out << std::setprecision(0) << "  paced lag (ns)  p50 " << r.paced_lag.p50_ns << ", p99 " << r.paced_lag.p99_ns
        << ", max " << r.paced_max_lag_ns << "\n";
  }
  out << "  machine         " << human_bytes(static_cast<double>(r.machine.ram_bytes)) << " simulated RAM ("
      << r.machine.sizing << ")" << (r.machine.reused ? ", reused" : "") << std::setprecision(2)
      << (r.machine.populate_seconds > 0 ? ", populated in " + std::to_string(r.machine.populate_seconds) + " s" : "")
      << "\n";
  out << "  memory          " << r.machine.memory_source << "\n";
  out << "  footprint       peak " << human_bytes(static_cast<double>(r.peak_footprint_bytes)) << " ("
      << r.footprint_source
      << (r.peak_footprint_from_live()
              ? "; the peak live bytes, as no sample caught the live peak: the highest sample " +
                    human_bytes(static_cast<double>(r.peak_sampled_footprint_bytes))
              : "")
      << "), peak live " << human_bytes(static_cast<double>(r.peak_live_bytes)) << std::setprecision(2)
      << ", fragmentation " << r.fragmentation << " (" << r.timeline.size() << " samples)\n";
  out << "  live at end     " << r.final_live_blocks << " blocks, "
      << human_bytes(static_cast<double>(r.final_live_bytes)) << "\n";
  out << "  failures        " << r.noblock_failures << " noblock, " << r.failed_allocs << " blocking\n";
  out << "  replay memory   " << human_bytes(static_cast<double>(r.program_bytes + r.object_table_bytes))
      << std::setprecision(3) << " ("
      << (r.events == 0 ? 0.0
                        : static_cast<double>(r.program_bytes + r.object_table_bytes) / static_cast<double>(r.events))
      << " bytes an operation: program " << human_bytes(static_cast<double>(r.program_bytes)) << ", objects "
      << human_bytes(static_cast<double>(r.object_table_bytes)) << ")\n";
  out << "  dependencies    " << r.dependency_checks << " cross-thread, " << r.dependency_stalls
      << " waited, " << std::setprecision(3) << static_cast<double>(r.dependency_wait_ns) / 1e6 << " ms\n";
  if (r.dma.transfers > 0) {
    out << "  dma             " << r.dma.transfers << " transfers, " << r.dma.segments << " segments, "
        << human_bytes(static_cast<double>(r.dma.bounce_bytes)) << " bounced (" << r.dma_note << ")\n";
  }
  if (r.flags.low_requested + r.flags.contiguous_requested > 0) {
    out << "  flags           dma32 " << r.flags.low_requested << " (" << r.flags.low_unhonoured
        << " not honoured, " << r.flags.unhonoured_bounces << " transfers bounced for it), contiguous "
        << r.flags.contiguous_requested << " (" << r.flags.contiguous_unhonoured << " not honoured)\n";
  }
  if (r.via_kpi) {
    out << "  kpi             through the KPI (" << r.kpi_mode << " mode), allocations / frees:";
    for (const KpiFamilyCount& f : r.kpi_families) out << " " << f.family << " " << f.allocs << "/" << f.frees;
    out << "\n";
  }
  if (r.reallocs.calls > 0) {
    out << "  reallocs        " << r.reallocs.calls << " (" << r.reallocs.in_place << " in place, "
        << r.reallocs.failed << " failed; " << (r.reallocs.own > 0 ? "the backend's own realloc" : "allocate, copy, free")
        << "), p50 " << r.realloc_latency.p50_ns << " ns, p99 " << r.realloc_latency.p99_ns << " ns\n";
  }
  if (r.pressure.active) {
    const PressureResult& p = r.pressure;
    std::uint64_t held = 0;
    for (const PressureNode& n : p.record.nodes) held = std::max(held, n.balloon_peak_bytes);
    out << "  pressure        " << p.spec << ": balloon up to " << human_bytes(static_cast<double>(held))
        << std::setprecision(3) << ", " << p.failures_per_1000 << " failures per 1000 allocations (alloc "
        << p.failures[0][0] + p.failures[0][1] << ", page " << p.failures[1][0] + p.failures[1][1] << ", dma "
        << p.failures[2][0] + p.failures[2][1] << "), " << p.skipped_frees << " frees skipped\n";
    out << "  reclaim         " << p.reclaim_calls << " calls, " << human_bytes(static_cast<double>(p.reclaimed_bytes))
        << " given back, " << p.rescued << " allocations rescued; p50 " << p.reclaim_latency.p50_ns << " ns, p99 "
        << p.reclaim_latency.p99_ns << " ns, max " << p.reclaim_latency.max_ns << " ns; in the background "
        << p.record.background_reclaims << " calls, "
        << human_bytes(static_cast<double>(p.record.background_reclaimed_bytes)) << " given back (kswapd woken "
        << p.record.kswapd.wakeups << " times, " << p.record.kswapd.passes << " passes)\n";
  }
  for (const auto& [why, count] : r.dropped) {
    out << "  dropped         " << count << " " << why << "\n";
  }
  out << "  accounting      " << (r.accounting_ok ? "ok" : "MISMATCH") << ": " << r.accounting_detail << "\n";
  out << "  numa            " << r.numa_note;
  if (r.numa.measured) {
    const double all = static_cast<double>(r.numa.local_bytes + r.numa.remote_bytes);
    out << std::setprecision(1) << "; " << (all > 0 ? 100 * static_cast<double>(r.numa.local_bytes) / all : 0.0)
        << "% of bytes local, " << r.numa.remote_frees << " of " << r.numa.frees << " frees remote";
  }
  out << "\n";
}

}  // namespace kmbench::replay
