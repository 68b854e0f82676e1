// Options shared by `kmbench replay` and `kmbench workload`, and running a
// replay from them: summary on stdout, the kmbench.cell/2 JSON to --json.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ops/ops.h"
#include "harness/replay/cell_json.h"
#include "harness/replay/replay.h"

namespace kmbench::cli {

struct ReplayFlags {
  std::string backend;
  std::string mode = "fast";
  double speed = 1.0;
  unsigned threads = 0;
  unsigned warmup = 1;
  std::uint64_t memory = 0;
  int node = -1;
  std::string placement = "local";
  std::string topology = "real";
  bool drain = false;
  std::string touch = "first";
  bool no_latency = false;
  unsigned sample_ms = 0;
  unsigned iommu = 0;
  std::vector<std::string> backend_params;
  std::string json;
};

/// Adds the shared options to cmd; flags must outlive the parse.
void add_replay_flags(CLI::App* cmd, ReplayFlags& flags);

/// "k=v" items into a map. Throws UsageError naming the option and the malformed item.
std::map<std::string, std::string> parse_key_values(const std::vector<std::string>& items,
                                                    const std::string& option);

/// Checks the flags, replays, prints the summary and writes --json.
void run_replay(const ops::Trace& trace, const ReplayFlags& flags, replay::Source source);

}  // namespace kmbench::cli
