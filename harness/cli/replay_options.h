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

/// What the command line gave: the replay options by their table key
/// (harness/replay/option_table.h), as typed; checked once, by run_replay.
struct ReplayFlags {
  std::string backend;
  std::map<std::string, std::string> options;
  std::vector<std::string> backend_params;
  std::string json;
};

/// Adds the shared options to cmd, one per entry of the option table; flags
/// must outlive the parse.
void add_replay_flags(CLI::App* cmd, ReplayFlags& flags);

/// "k=v" items into a map. Throws UsageError naming the option and the malformed item.
std::map<std::string, std::string> parse_key_values(const std::vector<std::string>& items,
                                                    const std::string& option);

/// Checks the flags, replays, prints the summary and writes --json. The trace
/// is let go once the replay program is built from it.
void run_replay(ops::Trace trace, const ReplayFlags& flags, replay::Source source);

}  // namespace kmbench::cli
