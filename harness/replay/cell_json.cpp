#include "harness/replay/cell_json.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>

#include "allocators/errors.h"
#include "harness/env/environment.h"

namespace kmbench::replay {
namespace {

nlohmann::json latency_json(const LatencySummary& l) {
  nlohmann::json hist = nlohmann::json::array();
  for (const auto& [bound, count] : l.histogram) hist.push_back({bound, count});
  return {{"count", l.count}, {"p50_ns", l.p50_ns},   {"p90_ns", l.p90_ns}, {"p99_ns", l.p99_ns},
          {"p999_ns", l.p999_ns}, {"max_ns", l.max_ns}, {"histogram", hist}};
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

}  // namespace

nlohmann::json cell_json(const Result& r, const Source& source) {
  nlohmann::json j;
  j["schema"] = "kmbench.cell/1";
  j["backend"] = r.backend;
  nlohmann::json src = {{"kind", source.kind}, {"name", source.name}, {"params", nlohmann::json::object()}};
  for (const auto& [k, v] : source.params) src["params"][k] = v;
  src["seed"] = source.seed ? nlohmann::json(*source.seed) : nlohmann::json(nullptr);
  if (!source.counters.empty()) src["counters"] = source.counters;
  j["source"] = src;
  j["mode"] = std::string(name_of(r.options.mode));
  j["speed"] = r.options.speed;
  j["threads"] = r.threads;
  j["cpus"] = r.cpus;
  j["node"] = r.options.node;
  j["placement"] = std::string(name_of(r.options.placement));
  j["touch"] = std::string(name_of(r.options.touch));
  j["topology"] = {{"kind", r.topology_kind}, {"description", r.topology_description},
                   {"nodes", r.topology_nodes}};
  j["events"] = r.events;
  j["duration_ns"] = r.duration_ns;
  j["ops_per_sec"] = r.ops_per_sec;
  nlohmann::json lat = nlohmann::json::object();
  for (int k = 0; k < ops::kOpKinds; ++k) {
    lat[std::string(latency_name(static_cast<ops::OpKind>(k)))] = latency_json(r.latency[k]);
  }
  j["latency"] = lat;
  j["latency_recorder"] = {{"enabled", r.options.latency},
                           {"ns_per_record", r.recorder.ns_per_record},
                           {"timer_floor_ns", r.recorder.timer_floor_ns},
                           {"overhead_fraction", r.recorder_overhead_fraction},
                           {"note", "every operation timed with rdtsc into a log histogram (8 buckets "
                                    "per power of two); percentiles are bucket upper bounds; an "
                                    "allocation's time includes touching it"}};
  nlohmann::json timeline = nlohmann::json::array();
  for (const FootprintSample& f : r.timeline) {
    timeline.push_back({{"t_ns", f.t_ns}, {"mapped_bytes", f.mapped_bytes},
                        {"resident_bytes", f.resident_bytes}, {"live_bytes", f.live_bytes},
                        {"rss_bytes", f.rss_bytes}});
  }
  j["footprint"] = {{"peak_footprint_bytes", r.peak_footprint_bytes},
                    {"peak_live_bytes", r.peak_live_bytes},
                    {"fragmentation", r.fragmentation},
                    {"source", r.footprint_source},
                    {"timeline", timeline}};
  j["final_live_blocks"] = r.final_live_blocks;
  j["final_live_bytes"] = r.final_live_bytes;
  j["noblock_failures"] = r.noblock_failures;
  j["failed_allocs"] = r.failed_allocs;
  j["dependency_wait_ns"] = r.dependency_wait_ns;
  j["dependency"] = {{"checks", r.dependency_checks}, {"stalls", r.dependency_stalls},
                     {"wait_ns", r.dependency_wait_ns}};
  j["dma"] = {{"transfers", r.dma.transfers},
              {"bytes", r.dma.transfer_bytes},
              {"segments", r.dma.segments},
              {"segments_per_transfer", r.dma.segments_per_transfer()},
              {"bounce_bytes", r.dma.bounce_bytes},
              {"bounce_copies", r.dma.bounce_copies},
              {"iommu_mappings", r.dma.iommu_mappings},
              {"note", r.dma_note}};
  j["numa"] = {{"measured", r.numa_measured}, {"note", r.numa_note}};
  nlohmann::json tags = nlohmann::json::array();
  for (const TagResult& t : r.tags) {
    tags.push_back({{"name", t.name}, {"peak_live_bytes", t.peak_live_bytes}, {"live_bytes", t.live_bytes},
                    {"live_blocks", t.live_blocks}, {"allocs", t.allocs}, {"frees", t.frees}});
  }
  j["tags"] = tags;
  j["accounting_check"] = {{"drained", r.drained}, {"ok", r.accounting_ok}, {"detail", r.accounting_detail}};
  j["dropped_operations"] = r.dropped;
  nlohmann::json metrics = nlohmann::json::object();
  for (const Metric& m : r.metrics) metrics[m.name] = m.value;
  j["metrics"] = metrics;
  j["environment"] = environment_json();
  return j;
}

void write_json_atomic(const nlohmann::json& json, const std::string& path) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw RunError("cannot write " + tmp + ": " + std::strerror(errno));
    }
    out << json.dump(1) << "\n";
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw RunError("cannot write " + tmp + ": " + std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw RunError("cannot rename " + tmp + " to " + path + ": " + why);
  }
}

void print_summary(std::ostream& out, const Result& r, const Source& source) {
  out << source.kind << " " << source.name << " on " << r.backend << ": " << r.events << " events, "
      << r.threads << " thread" << (r.threads == 1 ? "" : "s") << ", " << name_of(r.options.mode)
      << " mode\n";
  out << std::fixed << std::setprecision(3) << "  duration        " << static_cast<double>(r.duration_ns) / 1e6
      << " ms, " << std::setprecision(0) << r.ops_per_sec << " ops/s\n";
  out << "  latency (ns)    " << std::left << std::setw(13) << "kind" << std::right << std::setw(10)
      << "count" << std::setw(9) << "p50" << std::setw(9) << "p90" << std::setw(9) << "p99"
      << std::setw(10) << "p99.9" << std::setw(11) << "max" << "\n";
  for (int k = 0; k < ops::kOpKinds; ++k) {
    const LatencySummary& l = r.latency[k];
    if (l.count == 0) continue;
    out << "                  " << std::left << std::setw(13) << latency_name(static_cast<ops::OpKind>(k))
        << std::right << std::setw(10) << l.count << std::setw(9) << l.p50_ns << std::setw(9) << l.p90_ns
        << std::setw(9) << l.p99_ns << std::setw(10) << l.p999_ns << std::setw(11) << l.max_ns << "\n";
  }
  if (r.options.latency) {
    out << std::setprecision(1) << "  recorder        " << r.recorder.ns_per_record << " ns/op, timer floor "
        << r.recorder.timer_floor_ns << " ns, " << std::setprecision(2) << 100 * r.recorder_overhead_fraction
        << "% of thread time\n";
  }
  out << "  footprint       peak " << human_bytes(static_cast<double>(r.peak_footprint_bytes)) << " ("
      << r.footprint_source << "), peak live " << human_bytes(static_cast<double>(r.peak_live_bytes))
      << std::setprecision(2) << ", fragmentation " << r.fragmentation << "\n";
  out << "  live at end     " << r.final_live_blocks << " blocks, "
      << human_bytes(static_cast<double>(r.final_live_bytes)) << "\n";
  out << "  failures        " << r.noblock_failures << " noblock, " << r.failed_allocs << " blocking\n";
  out << "  dependencies    " << r.dependency_checks << " cross-thread, " << r.dependency_stalls
      << " waited, " << std::setprecision(3) << static_cast<double>(r.dependency_wait_ns) / 1e6 << " ms\n";
  if (r.dma.transfers > 0) {
    out << "  dma             " << r.dma.transfers << " transfers, " << r.dma.segments << " segments, "
        << human_bytes(static_cast<double>(r.dma.bounce_bytes)) << " bounced (" << r.dma_note << ")\n";
  }
  for (const auto& [why, count] : r.dropped) {
    out << "  dropped         " << count << " " << why << "\n";
  }
  out << "  accounting      " << (r.accounting_ok ? "ok" : "MISMATCH") << ": " << r.accounting_detail << "\n";
  out << "  numa            " << r.numa_note << "\n";
}

}  // namespace kmbench::replay
