#include "harness/cli/replay_options.h"

#include <iostream>
#include <memory>

#include "base/errors.h"

namespace kmbench::cli {

void add_replay_flags(CLI::App* cmd, ReplayFlags& f) {
  cmd->add_option("--backend", f.backend, "Backend to replay through (see `kmbench list`)")->required();
  cmd->add_option("--mode", f.mode, "fast: as fast as possible; paced: honour the stream's inter-arrival times")
      ->capture_default_str();
  cmd->add_option("--speed", f.speed, "Paced mode: trace time divided by this factor")->capture_default_str();
  cmd->add_option("--threads", f.threads, "Replay threads (0: one per stream; streams fold onto threads)")
      ->capture_default_str();
  cmd->add_option("--warmup", f.warmup,
                  "Untimed passes over the stream before the timed one, each starting from the "
                  "allocator state the last left (0: the cold figure)")
      ->capture_default_str();
  cmd->add_option("--memory", f.memory,
                  "Simulated RAM per node, e.g. 4g (default: sized from the stream's peak demand)")
      ->transform(CLI::AsSizeValue(false));
  cmd->add_option("--node", f.node, "Pin threads to this NUMA node's CPUs (-1: the process's CPUs)")
      ->capture_default_str();
  cmd->add_option("--placement", f.placement, "Memory relative to --node: local, remote or interleaved")
      ->capture_default_str();
  cmd->add_option("--topology", f.topology,
                  "real, synthetic:<hwloc synthetic string> (e.g. \"synthetic:pack:2 [numa] pu:1\") "
                  "or xml:<lstopo export>: the simulated machine the backends' pages come from")
      ->capture_default_str();
  cmd->add_flag("--drain", f.drain, "Free every live block at the end and check that accounting reads zero");
  cmd->add_option("--touch", f.touch,
                  "After each allocation write: none; first (first byte, every page of page/DMA buffers); "
                  "pages (every page)")
      ->capture_default_str();
  cmd->add_flag("--no-latency", f.no_latency, "Do not time each operation");
  cmd->add_option("--sample-ms", f.sample_ms, "Footprint sampling interval in ms (0: about 100 samples over the timed pass, from the warm-up pass's duration, 1-10 ms; 10 ms without warm-up)")->capture_default_str();
  cmd->add_option("--iommu", f.iommu,
                  "DMA maps go through a simulated IOMMU (the KPI's system IOMapper) with this many "
                  "I/O address bits, 20..36 (0: no IOMMU)")
      ->capture_default_str();
  cmd->add_option("--backend-param", f.backend_params, "Backend parameter key=value (repeatable)");
  cmd->add_option("--json", f.json, "Write the result (kmbench.cell/2 JSON) to this file");
}

std::map<std::string, std::string> parse_key_values(const std::vector<std::string>& items,
                                                    const std::string& option) {
  std::map<std::string, std::string> out;
  for (const std::string& item : items) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw UsageError(option + " '" + item + "' is not key=value");
    }
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return out;
}

void run_replay(const ops::Trace& trace, const ReplayFlags& f, replay::Source source) {
  replay::Options o;
  if (f.mode == "fast") {
    o.mode = replay::Mode::fast;
  } else if (f.mode == "paced") {
    o.mode = replay::Mode::paced;
  } else {
    throw UsageError("--mode '" + f.mode + "' is not fast or paced");
  }
  if (f.placement == "local") {
    o.placement = replay::Placement::local;
  } else if (f.placement == "remote") {
    o.placement = replay::Placement::remote;
  } else if (f.placement == "interleaved") {
    o.placement = replay::Placement::interleaved;
  } else {
    throw UsageError("--placement '" + f.placement + "' is not local, remote or interleaved");
  }
  if (f.touch == "none") {
    o.touch = replay::Touch::none;
  } else if (f.touch == "first") {
    o.touch = replay::Touch::first;
  } else if (f.touch == "pages") {
    o.touch = replay::Touch::pages;
  } else {
    throw UsageError("--touch '" + f.touch + "' is not none, first or pages");
  }
  if (f.threads > 256) {
    throw UsageError("--threads " + std::to_string(f.threads) + " is above 256");
  }
  o.speed = f.speed;
  o.threads = f.threads;
  o.warmup = f.warmup;
  o.node_bytes = f.memory;
  o.topology = f.topology;
  o.node = f.node;
  o.drain = f.drain;
  o.latency = !f.no_latency;
  o.sample_ms = f.sample_ms;
  if (f.iommu != 0 && (f.iommu < 20 || f.iommu > 36)) {
    throw UsageError("--iommu " + std::to_string(f.iommu) + " is not 0 or 20..36 address bits");
  }
  o.iommu = f.iommu != 0;
  if (o.iommu) o.iommu_bits = f.iommu;
  o.backend_params = parse_key_values(f.backend_params, "--backend-param");
  source.counters = trace.counters;
  const replay::Result r = replay::run(trace, f.backend, o);
  replay::print_summary(std::cout, r, source);
  if (!f.json.empty()) {
    replay::write_json_atomic(replay::cell_json(r, source), f.json);
    std::cout << "  result          " << f.json << "\n";
  }
  if (o.drain && !r.accounting_ok) {
    throw RunError("accounting after --drain does not read zero: " + r.accounting_detail);
  }
}

}  // namespace kmbench::cli
