// The benchmark matrix: a TOML file expanded into cells, each run in a
// process of its own (`kmbench run`), in a seeded, interleaved order.
//
// A matrix file names backends × sources (workloads or traces, with per-source
// parameters) × thread counts × NUMA placements × topologies × repetitions.
// Everything is checked before anything runs; an error names the file and line.
// The file format is documented in harness/matrix/matrices/default.toml.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "allocators/params.h"

namespace kmbench::matrix {

/// What a matrix may name: checked against this before anything runs.
struct Catalog {
  struct Workload {
    std::string name;
    std::vector<std::string> params;  // accepted parameter keys; empty: the workload takes none
  };
  std::vector<std::string> backends;
  /// Each backend's parameter table: backend_params values are checked against
  /// it before anything runs. A backend without an entry is not checked here.
  std::map<std::string, std::span<const ParamSpec>> backend_params;
  std::vector<Workload> workloads;
  unsigned real_nodes = 1;  // NUMA nodes of this machine ("real" topology)
};

/// The catalog of this build: the registry's backends, the workloads, this machine's nodes.
Catalog default_catalog();

/// NUMA nodes of a topology spec ("real", "synthetic:<hwloc string>", "xml:<path>").
/// Throws UsageError when the spec cannot be loaded.
unsigned topology_nodes(const std::string& spec, const Catalog& catalog);

/// One process to run: everything that decides what it measures.
struct Cell {
  std::string id;        // unique, file-name safe: "nic.slab.t2.local.real.r3"
  std::string group;     // the id without the repetition: repetitions of one group are compared
  std::string backend;
  std::string source_kind;  // "workload" | "trace" | "profile"
  std::string source;       // workload name, trace path or profile path
  std::string label;        // the source's unique label in the matrix ("nic", "nic@magazine=16")
  /// A sweep's point: the swept keys (workload or backend parameters) and this
  /// cell's values, in file order; empty outside a sweep. base_label is then
  /// the entry's own label, shared by every point.
  std::vector<std::pair<std::string, std::string>> sweep;
  std::string base_label;
  std::vector<std::pair<std::string, std::string>> params;  // workload parameters, in file order
  std::vector<std::pair<std::string, std::string>> options;  // replay flags ("--drain", ""), ("--touch", "pages")
  std::vector<std::pair<std::string, std::string>> backend_params;
  unsigned threads = 1;
  std::string placement = "local";  // local | remote | interleaved
  std::string topology = "real";
  std::string mode = "fast";  // fast | paced
  unsigned repetition = 0;
  double timeout_s = 60;
  unsigned line = 0;  // line of the source's entry in the matrix file
};

nlohmann::json cell_json(const Cell& cell);
Cell cell_from_json(const nlohmann::json& j);

/// A parsed, checked matrix.
struct Matrix {
  std::string path;
  std::string text;  // the file's contents, kept in every result
  std::string hash;  // text_hash(text): shards of one matrix agree on it
  std::string name;
  std::uint64_t seed = 0;
  std::vector<Cell> cells;  // file order
};

/// Parses and checks a matrix. Throws InputError naming path and line.
Matrix parse_matrix(std::string_view text, const std::string& path, const Catalog& catalog);
Matrix load_matrix(const std::string& path, const Catalog& catalog);

/// The run order: each repetition's cells shuffled (seeded), repetitions in
/// turn, so drift over time touches every backend alike.
std::vector<Cell> run_order(const std::vector<Cell>& cells, std::uint64_t seed);

/// Cells of shard k of n (1 ≤ k ≤ n): every n-th cell of the run order.
std::vector<Cell> shard_of(const std::vector<Cell>& ordered, unsigned k, unsigned n);

/// "K/N" → {K, N}; throws UsageError.
std::pair<unsigned, unsigned> parse_shard(const std::string& text);

/// FNV-1a 64 of bytes in hex: identifies a matrix file across shards.
std::string text_hash(std::string_view bytes);

/// How one cell ended.
struct CellOutcome {
  bool ok = false;
  std::string failure;    // "exit status 3", "killed by signal 11 (SIGSEGV)", "timeout after 60 s", ...
  std::string stderr_text;  // the last 64 KiB of the cell's stderr
  double wall_s = 0;
  double cpu_s = 0;       // user + system CPU of the cell's process
  nlohmann::json result;  // the cell's kmbench.cell/2 object when ok
};

/// The argv that runs one cell: `EXE workload|replay ... --json OUT`.
std::vector<std::string> cell_command(const Cell& cell, const std::string& exe,
                                      const std::string& json_out);

/// Runs one cell in its own process group with the cell's time limit; stderr
/// goes to stderr_path. Never throws for the cell's own failures.
CellOutcome run_cell(const Cell& cell, const std::string& exe, const std::string& json_out,
                     const std::string& stderr_path);

/// The executable that serves a backend: a worker next to this one, or this one.
std::string executable_for(const std::string& backend);

/// Options of `kmbench run`.
struct RunOptions {
  std::string run_dir;
  bool resume = false;
  bool retry_failed = false;
  unsigned shard_k = 1, shard_n = 1;
  std::string cell_exe;  // non-empty: run every cell with this program (tests, custom builds)
  bool progress_tty = false;
};

struct RunSummary {
  std::size_t cells = 0, ran = 0, skipped = 0, failed = 0;
};

/// Runs (one shard of) a matrix into options.run_dir; writes cells, index and exports.
RunSummary run_matrix(const Matrix& matrix, const RunOptions& options);

}  // namespace kmbench::matrix
