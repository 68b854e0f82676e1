// How `kmbench` subcommands plug into the command line.
//
// Each subcommand lives in its own file and adds itself to the app; its
// callback throws UsageError/InputError (exit 2) or RunError (exit 1) on
// failure and returns normally on success (exit 0).
#pragma once

#include <CLI/CLI.hpp>

namespace kmbench::cli {

/// Exit codes, documented in `kmbench --help`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRunFailed = 1;
inline constexpr int kExitBadInput = 2;

void add_version_command(CLI::App& app);
void add_list_command(CLI::App& app);
void add_trace_command(CLI::App& app);
void add_profile_commands(CLI::App* trace_cmd);  // trace profile, trace diff
void add_workload_command(CLI::App& app);
void add_matrix_commands(CLI::App& app);  // run, merge, plot, compare
void add_replay_command(CLI::App& app);
void add_env_command(CLI::App& app);     // env latency

}  // namespace kmbench::cli
