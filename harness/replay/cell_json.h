// A cell's result as JSON ("kmbench.cell/2", results/README.md), and the summary a
// person reads on stdout. Both only read a replay::Result.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "harness/replay/replay.h"

namespace kmbench::replay {

/// What was replayed: a trace file or a workload with its parameters.
struct Source {
  std::string kind;  // "trace" or "workload"
  std::string name;  // trace path or workload name
  std::map<std::string, std::string> params;
  std::optional<std::uint64_t> seed;
  std::map<std::string, std::uint64_t> counters;  // what the trace's importer counted
};

nlohmann::json cell_json(const Result& r, const Source& source);

/// Writes json to path via a temporary file and rename. Throws RunError on failure.
void write_json_atomic(const nlohmann::json& json, const std::string& path);

void print_summary(std::ostream& out, const Result& r, const Source& source);

}  // namespace kmbench::replay
