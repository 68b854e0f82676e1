// Captures a matrix replays, imported once per run: every [[trace]] whose
// path is not a .kmt (compressed or plain ftrace text, trace.dat, DTrace
// output) becomes RUN_DIR/traces/HASH.kmt, HASH the FNV-1a 64 (text_hash) of
// the capture's bytes, and the cells replay that file. results/README.md
// describes the cache.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/matrix/matrix.h"
#include "ops/ops.h"

namespace kmbench::matrix {

/// Whether a cell replays a capture the runner imports (a trace whose path is not a .kmt).
bool replays_capture(const Cell& cell);

/// The imports of one run directory.
class CaptureCache {
 public:
  /// Hashes every capture the cells replay and imports those run_dir/traces lacks (or
  /// holds damaged). Writes nothing. A capture that cannot be read or imported
  /// throws InputError naming the matrix file, the entry's line and the capture.
  CaptureCache(const std::string& matrix_path, const std::vector<Cell>& cells, const std::string& run_dir);

  /// Writes the imports the cache lacked (atomically, one .kmt each).
  void write();

  /// What a cell replays: its capture's cached .kmt, or its own source.
  std::string source_for(const Cell& cell) const;

  /// The index's "traces": one object per [[trace]] entry of a capture.
  nlohmann::json index_json() const;

  /// Throws UsageError when a capture of an earlier run in this directory
  /// (its index's "traces") has other bytes now: its cells would mix two captures.
  void check_unchanged(const nlohmann::json& old_traces) const;

 private:
  struct Capture {
    std::string hash;     // text_hash of the file's bytes
    std::string kmt;      // relative to the run directory
    bool reused = false;  // found in the cache, valid
    nlohmann::json info;  // `kmbench trace info --json` of the imported trace
    std::unique_ptr<ops::Trace> pending;  // imported, not yet written
  };
  struct Entry {
    std::string label, path;
    unsigned line = 0;
  };

  std::string run_dir_;
  std::vector<Entry> entries_;              // file order
  std::map<std::string, Capture> by_path_;  // capture path → its import
};

}  // namespace kmbench::matrix
