// The import options every command that reads a capture shares (`trace
// import`, `info`, `dump`, `profile`, `diff`).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "harness/trace/trace.h"

namespace kmbench::cli {

struct ImportArgs {
  std::string format = "auto";
  std::string site, task, kinds = "all";
  double from = -1, to = -1;
  bool strict = false;
  bool skip_bad_lines = false;
  bool no_symbols = false;
  unsigned threads = 0;
};

void add_import_options(CLI::App* cmd, ImportArgs& a);

/// The options as the importer takes them; throws UsageError on a bad value.
trace::ImportOptions to_options(const ImportArgs& a);

}  // namespace kmbench::cli
