// A run directory and its files (schemas: results/README.md).
//
//   RUN_DIR/index.json       kmbench.run/1: environment, matrix, seed, order, every cell's status
//   RUN_DIR/cells/ID.json    kmbench.run-cell/1: one cell (its kmbench.cell/2 result, or why it failed)
//   RUN_DIR/cells/ID.stderr  the cell's stderr, when it wrote any
//   RUN_DIR/benchmark.json   Google Benchmark JSON (for compare.py), successful cells only
//   RUN_DIR/cells.csv        one row per cell, empty fields where a cell has no value
//
// Writers only read plain JSON; they never run anything.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kmbench::results {

inline constexpr const char* kRunSchema = "kmbench.run/1";
inline constexpr const char* kCellFileSchema = "kmbench.run-cell/1";
inline constexpr const char* kCellResultSchema = "kmbench.cell/2";

/// Writes text to path through a temporary file and rename: readers see the old file or the new.
/// Throws RunError.
void write_atomic(const std::string& path, const std::string& text);

/// Parses a JSON file. Throws InputError naming the file (and the byte on a syntax error).
nlohmann::json read_json(const std::string& path);

std::string cells_dir(const std::string& run_dir);
std::string cell_path(const std::string& run_dir, const std::string& cell_id);
std::string index_path(const std::string& run_dir);
/// Whether the run directory's cells/ holds any file (a run's results, with or without its index).
bool holds_cell_files(const std::string& run_dir);

/// Every cell file of a run, sorted by cell id. Throws InputError on a malformed file.
std::vector<nlohmann::json> load_cells(const std::string& run_dir);

/// Checks a cell file's object (read from `path`) as far as the exports,
/// merge and resume read it: its schema, the cell's identity and the types of
/// its fields, and an ok cell's result (check_cell_result). `id`, when not
/// empty, is the cell id the file must hold. Throws InputError naming the
/// file and the field.
void check_cell_file(const nlohmann::json& cell_file, const std::string& path, const std::string& id = "");

/// Checks that a cell file (read from `path`, checked by check_cell_file) says
/// what its entry in the index file `index` says of the cell, in every field
/// both hold, and of its status: the index sorts a cell into its group, the
/// file gives its figures. Throws InputError naming the file, the field and
/// both values.
void check_cell_agrees(const nlohmann::json& cell_file, const std::string& path, const nlohmann::json& entry,
                       const std::string& index);

/// Checks a run's index.json object (read from `path`) as merge and resume
/// read it. Throws InputError naming the file and the field.
void check_index(const nlohmann::json& index, const std::string& path);

/// Checks a cell's kmbench.cell/2 object: "" when usable, else what is wrong.
std::string check_cell_result(const nlohmann::json& result);

/// Google Benchmark's "context" from the index's recorded environment (never from
/// this machine): num_cpus, mhz_per_cpu, cpu_scaling_enabled, caches, load_avg and
/// library_build_type are null where the environment has no value for them.
nlohmann::json gbench_context(const nlohmann::json& index);

/// Google Benchmark's JSON schema: one "iteration" entry per successful cell,
/// named LABEL/BACKEND/threads:T/PLACEMENT/TOPOLOGY/MODE so repetitions line up.
nlohmann::json gbench_export(const nlohmann::json& index, const std::vector<nlohmann::json>& cells);

/// One row per cell; failed cells keep their identity and failure, with empty metrics.
std::string csv_export(const std::vector<nlohmann::json>& cells);

/// Writes benchmark.json and cells.csv from the run's index and cell files.
void write_exports(const std::string& run_dir);

/// Joins shard run directories of one matrix into out_dir (cells copied, a new
/// index and exports). Throws InputError when the shards are of different matrices or seeds.
void merge_runs(const std::vector<std::string>& inputs, const std::string& out_dir);

}  // namespace kmbench::results
