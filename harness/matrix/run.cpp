// Running a matrix: one process per cell, a time limit each, results written
// atomically so a killed run loses at most the cell in flight.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "allocators/any_backend.h"
#include "base/errors.h"
#include "base/process.h"
#include "harness/env/build_info.h"
#include "harness/env/environment.h"
#include "harness/env/latency_probe.h"
#include "harness/matrix/matrix.h"
#include "harness/matrix/trace_cache.h"
#include "harness/replay/replay.h"
#include "results/results.h"

extern char** environ;

namespace kmbench::matrix {
namespace fs = std::filesystem;
namespace {

std::atomic<int> g_interrupted{0};

extern "C" void on_interrupt(int sig) { g_interrupted.store(sig); }

constexpr std::size_t kStderrKept = 64 * 1024;

std::string tail_of_file(const std::string& path, std::size_t max) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return {};
  }
  std::stringstream buf;
  buf << in.rdbuf();
  std::string s = buf.str();
  return s.size() > max ? "[... " + std::to_string(s.size() - max) + " bytes cut]\n" + s.substr(s.size() - max)
                        : s;
}

std::string run_capture(const std::string& command) {
  std::string out;
  if (FILE* f = ::popen(command.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, f) != nullptr) {
      out += buf;
    }
    ::pclose(f);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
    out.pop_back();
  }
  return out;
}

nlohmann::json git_info() {
  const std::string dir = KMBENCH_SOURCE_DIR;
  const std::string sha = run_capture("git -C '" + dir + "' rev-parse HEAD 2>/dev/null");
  if (sha.empty()) {
    return {{"sha", "unknown"}, {"dirty", nullptr}, {"note", "source tree is not a git checkout"}};
  }
  const std::string status = run_capture("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null");
  return {{"sha", sha}, {"dirty", !status.empty()}};
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string duration_text(double s) {
  if (!(s >= 0) || std::isinf(s)) {
    return "?";
  }
  const long total = std::lround(s);
  std::ostringstream out;
  if (total >= 3600) {
    out << total / 3600 << "h" << (total % 3600) / 60 << "m";
  } else if (total >= 60) {
    out << total / 60 << "m" << total % 60 << "s";
  } else {
    out << total << "s";
  }
  return out.str();
}

std::string signal_text(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return std::to_string(sig) + (abbrev ? std::string(" (SIG") + abbrev + ")" : std::string());
}

/// Cells done, failures and time left: a bar on a terminal, one line per cell otherwise.
class Progress {
 public:
  Progress(std::size_t total, bool tty) : total_(total), tty_(tty) {}

  void cell_done(const Cell& c, const CellOutcome& o, bool skipped) {
    ++done_;
    if (!skipped) {
      ++ran_;
      spent_s_ += o.wall_s;
      if (!o.ok) {
        ++failed_;
      }
    }
    const double mean = ran_ ? spent_s_ / static_cast<double>(ran_) : 0;
    const double left = mean * static_cast<double>(total_ - done_);
    if (tty_) {
      const int width = 30;
      const int filled = total_ ? static_cast<int>(width * done_ / total_) : width;
      std::cerr << "\r\033[K[" << std::string(filled, '#') << std::string(width - filled, '-') << "] "
                << done_ << "/" << total_ << " cells, " << failed_ << " failed, "
                << (ran_ ? duration_text(left) : "?") << " left  " << c.label << " " << c.backend
                << " t" << c.threads << (done_ == total_ ? "\n" : "") << std::flush;
      if (!skipped && !o.ok) {
        std::cerr << "\r\033[K  failed " << c.id << ": " << o.failure << "\n";
      }
    } else {
      std::cerr << "[" << done_ << "/" << total_ << "] "
                << (skipped ? "skip" : o.ok ? "ok  " : "FAIL") << " " << c.id;
      if (!skipped) {
        std::cerr << " (" << std::fixed << std::setprecision(2) << o.wall_s << " s)";
        std::cerr.unsetf(std::ios::fixed);
      }
      if (!skipped && !o.ok) {
        std::cerr << ": " << o.failure;
      }
      std::cerr << "; " << failed_ << " failed, " << (ran_ ? duration_text(left) : "?") << " left\n";
    }
  }

 private:
  std::size_t total_, done_ = 0, ran_ = 0, failed_ = 0;
  double spent_s_ = 0;
  bool tty_;
};

}  // namespace

std::vector<std::string> cell_command(const Cell& c, const std::string& exe, const std::string& json_out) {
  std::vector<std::string> argv = {exe};
  if (c.source_kind == "profile") {
    argv.insert(argv.end(), {"workload", "synth", "--profile", c.source});
  } else {
    argv.insert(argv.end(), {c.source_kind == "trace" ? "replay" : "workload", c.source});
  }
  argv.insert(argv.end(), {"--backend", c.backend, "--threads", std::to_string(c.threads), "--placement", c.placement,
                           "--mode", c.mode});
  if (c.topology != "real") {
    argv.insert(argv.end(), {"--topology", c.topology});
  }
  const bool has_node = std::any_of(c.options.begin(), c.options.end(),
                                    [](const auto& o) { return o.first == "--node"; });
  if (c.placement != "local" && !has_node) {
    argv.insert(argv.end(), {"--node", "0"});  // remote/interleaved are relative to the threads' node
  }
  for (const auto& [k, v] : c.params) {
    if (k == "seed" && c.source_kind != "trace") {
      argv.insert(argv.end(), {"--seed", v});
    } else if (k == "scale" && c.source_kind == "profile") {
      argv.insert(argv.end(), {"--scale", v});
    } else {
      argv.insert(argv.end(), {"--param", k + "=" + v});
    }
  }
  for (const auto& [option, v] : c.options) {
    argv.push_back(option);
    if (!v.empty()) {
      argv.push_back(v);
    }
  }
  for (const auto& [k, v] : c.backend_params) {
    argv.insert(argv.end(), {"--backend-param", k + "=" + v});
  }
  argv.insert(argv.end(), {"--json", json_out});
  return argv;
}

std::string executable_for(const std::string& backend) {
  const std::string self = base::self_exe();
  const BackendInfo* info = find_backend(backend);
  if (info == nullptr || info->executable.empty()) {
    return self;
  }
  if (fs::path(info->executable).is_absolute()) {
    return info->executable;
  }
  return (fs::path(self).parent_path() / info->executable).string();
}

CellOutcome run_cell(const Cell& cell, const std::string& exe, const std::string& json_out,
                     const std::string& stderr_path) {
  CellOutcome out;
  const std::vector<std::string> args = cell_command(cell, exe, json_out);
  std::error_code ec;
  fs::remove(json_out, ec);

  base::SpawnOptions spawn;
  spawn.stdin_path = spawn.stdout_path = "/dev/null";
  spawn.stderr_path = stderr_path;
  spawn.own_process_group = true;
  base::ChildExit e;
  try {
    e = base::run_child(args, spawn, std::chrono::duration<double>(cell.timeout_s),
                        [] { return g_interrupted.load() != 0; });
  } catch (const RunError& err) {
    out.failure = err.what();
    return out;
  }
  out.wall_s = e.wall_s;
  out.cpu_s = static_cast<double>(e.usage.ru_utime.tv_sec + e.usage.ru_stime.tv_sec) +
              static_cast<double>(e.usage.ru_utime.tv_usec + e.usage.ru_stime.tv_usec) * 1e-6;
  out.stderr_text = tail_of_file(stderr_path, kStderrKept);

  if (e.stopped) {
    out.failure = "interrupted";
  } else if (!e.exited_ok()) {
    out.failure = e.describe(cell.timeout_s);
  } else if (!fs::exists(json_out)) {
    out.failure = "exited 0 without writing " + json_out;
  } else {
    try {
      out.result = results::read_json(json_out);
      const std::string problem = results::check_cell_result(out.result);
      if (!problem.empty()) {
        out.failure = problem;
      } else if (out.result["backend"] != cell.backend) {
        out.failure = "the cell's JSON names backend '" + out.result["backend"].get<std::string>() +
                      "', expected '" + cell.backend + "'";
      } else {
        out.ok = true;
      }
    } catch (const InputError& e) {
      out.failure = e.what();
    }
  }
  fs::remove(json_out, ec);
  if (!out.ok) {
    out.result = nullptr;
  }
  return out;
}

namespace {

/// A run directory already holding an index may only be continued with
/// --resume, and only for the same matrix file, seed and shard. Returns that
/// index (null when there is none).
nlohmann::json check_resumable(const std::string& ipath, const Matrix& m, const RunOptions& opt,
                               const std::string& shard_text) {
  if (fs::exists(opt.run_dir) && !fs::is_directory(opt.run_dir)) {
    throw UsageError("-o " + opt.run_dir + ": is not a directory");
  }
  if (!fs::exists(ipath)) {
    if (!opt.resume && results::holds_cell_files(opt.run_dir)) {
      throw UsageError(opt.run_dir +
                       " holds cell files but no index.json: pass --resume to continue that run "
                       "(its cells are checked and kept), or choose another -o");
    }
    return nullptr;
  }
  const nlohmann::json old = results::read_json(ipath);
  if (!opt.resume) {
    throw UsageError(opt.run_dir + " already holds a run: pass --resume to continue it, or choose another -o");
  }
  results::check_index(old, ipath);
  const auto shards = old.value("shards", nlohmann::json::array());
  if (!shards.is_array() || (shards.size() == 1 && !shards[0].is_object())) {
    throw InputError(ipath, "shards: is not a list of {shard, cells}");
  }
  if (old["matrix"].value("hash", nlohmann::json()) != m.hash || old["seed"] != m.seed || shards.size() != 1 ||
      shards[0].value("shard", nlohmann::json()) != shard_text) {
    throw UsageError(opt.run_dir + " holds a run of another matrix file, seed or shard: cannot resume it");
  }
  return old;
}

nlohmann::json index_entry(const Cell& c, const std::string& status, double wall_s, const std::string& failure) {
  nlohmann::json sweep = nlohmann::json::array();
  for (const auto& [k, v] : c.sweep) sweep.push_back({k, v});
  return nlohmann::json{{"id", c.id},           {"group", c.group},       {"status", status},
                        {"sweep", sweep},       {"base_label", c.base_label},
                        {"file", "cells/" + c.id + ".json"},              {"backend", c.backend},
                        {"label", c.label},     {"source_kind", c.source_kind},
                        {"threads", c.threads}, {"placement", c.placement},
                        {"topology", c.topology}, {"mode", c.mode},       {"repetition", c.repetition},
                        {"wall_s", wall_s},     {"failure", failure.empty() ? nlohmann::json(nullptr)
                                                                            : nlohmann::json(failure)}};
}

/// SIGINT and SIGTERM set g_interrupted while it lives; the handlers before come back after.
class InterruptGuard {
 public:
  InterruptGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    g_interrupted.store(0);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

/// One shard of a matrix run: its index (rewritten after every cell, so that
/// an interrupted run can resume), and the cells it still has to run.
class MatrixRun {
 public:
  MatrixRun(const Matrix& m, const RunOptions& opt)
      : m_(m), opt_(opt), ordered_(run_order(m.cells, m.seed)), mine_(shard_of(ordered_, opt.shard_k, opt.shard_n)),
        shard_text_(std::to_string(opt.shard_k) + "/" + std::to_string(opt.shard_n)),
        ipath_(results::index_path(opt.run_dir)) {}

  /// Captures are imported (or found in the cache) before anything is written:
  /// a damaged one stops the run with the run directory as it was.
  RunSummary run() {
    const nlohmann::json old = check_resumable(ipath_, m_, opt_, shard_text_);
    captures_.emplace(m_.path, mine_, opt_.run_dir);
    if (old.is_object()) {
      captures_->check_unchanged(old.value("traces", nlohmann::json()));
    }
    fs::create_directories(results::cells_dir(opt_.run_dir));
    captures_->write();
    make_index();
    const std::vector<const Cell*> todo = plan();
    write_index();
    Progress progress(mine_.size(), opt_.progress_tty);
    for (const Cell& c : mine_) {
      const std::string status = entries_[c.id]["status"];
      if (status != "pending") {
        ++summary_.skipped;
        summary_.failed += status == "failed" ? 1 : 0;
        progress.cell_done(c, {}, true);
      }
    }
    {
      InterruptGuard guard;
      for (const Cell* c : todo) {
        const CellOutcome o = run_one(*c);
        if (g_interrupted.load() != 0) {
          break;  // the cell in flight is lost, the index still says pending
        }
        ++summary_.ran;
        summary_.failed += o.ok ? 0 : 1;
        progress.cell_done(*c, o, false);
      }
    }
    if (const int sig = g_interrupted.load(); sig != 0) {
      write_index();
      throw RunError("interrupted by signal " + signal_text(sig) + "; continue with --resume -o " + opt_.run_dir);
    }
    results::write_exports(opt_.run_dir);
    return summary_;
  }

 private:
  /// The index's fixed part: the matrix, the environment, the topologies
  /// used, the run order, and the catalogue's backend and op-kind order for the charts.
  void make_index() {
    env_ = environment_json();
    env_["git"] = git_info();
    const Catalog catalog = default_catalog();
    for (const Cell& c : m_.cells) {
      if (!topologies_.contains(c.topology)) {
        topologies_[c.topology] = {{"kind", c.topology == "real" ? "real" : "synthetic"},
                                   {"nodes", topology_nodes(c.topology, catalog)}};
      }
    }
    nlohmann::json order = nlohmann::json::array();
    for (const Cell& c : ordered_) {
      order.push_back(c.id);
    }
    nlohmann::json op_kinds = nlohmann::json::array();
    for (std::string_view k : replay::kLatencyNames) op_kinds.push_back(k);
    const std::string run_id = fs::path(fs::absolute(opt_.run_dir)).lexically_normal().filename().string();
    run_block_ = {
        {"run_id", run_id},
        {"matrix", {{"name", m_.name}, {"path", m_.path}, {"hash", m_.hash}, {"text", m_.text}}},
        {"seed", m_.seed},
        {"shard", shard_text_},
    };
    index_ = {
        {"schema", results::kRunSchema},
        {"run_id", run_id},
        {"created_utc", utc_now()},
        {"matrix", run_block_["matrix"]},
        {"seed", m_.seed},
        {"order", order},
        {"shards", nlohmann::json::array({{{"shard", shard_text_}, {"cells", mine_.size()}}})},
        {"environment", env_},
        {"latency_reference", measure_latency_reference()},
        {"topology", {{"real_nodes", catalog.real_nodes}, {"used", topologies_}}},
        {"backends", catalog.backends},
        {"op_kinds", op_kinds},
        {"cell_exe", opt_.cell_exe.empty() ? nlohmann::json(nullptr) : nlohmann::json(opt_.cell_exe)},
        {"traces", captures_->index_json()},
    };
    summary_.cells = mine_.size();
  }

  /// Every cell of the shard pending, except (with --resume) those whose
  /// file says ok, or failed unless --retry-failed; returns those to run.
  std::vector<const Cell*> plan() {
    std::vector<const Cell*> todo;
    for (const Cell& c : mine_) {
      entries_[c.id] = index_entry(c, "pending", 0, "");
      const std::string path = results::cell_path(opt_.run_dir, c.id);
      if (opt_.resume && fs::exists(path)) {
        try {
          const nlohmann::json old = results::read_json(path);
          results::check_cell_file(old, path, c.id);
          const std::string st = old["status"];
          if (st == "ok" || !opt_.retry_failed) {
            const nlohmann::json failure = old.value("failure", nlohmann::json());
            entries_[c.id] =
                index_entry(c, st, old.value("wall_s", 0.0), failure.is_string() ? failure.get<std::string>() : "");
            continue;
          }
        } catch (const InputError&) {
          // An unreadable cell file, or another cell's, is run again.
        }
      }
      todo.push_back(&c);
    }
    return todo;
  }

  void write_index() {
    nlohmann::json cells = nlohmann::json::array();
    std::size_t ok = 0, failed = 0, pending = 0;
    for (const Cell& c : mine_) {
      const auto& e = entries_.at(c.id);
      cells.push_back(e);
      const std::string st = e["status"];
      (st == "ok" ? ok : st == "failed" ? failed : pending)++;
    }
    index_["cells"] = cells;
    index_["summary"] = {{"cells", cells.size()}, {"ok", ok}, {"failed", failed}, {"pending", pending},
                         {"matrix_cells", ordered_.size()}};
    results::write_atomic(ipath_, index_.dump(1) + "\n");
  }

  /// Runs one cell in its own process and writes its file, then the index.
  /// Interrupted, it writes nothing: the cell stays pending.
  CellOutcome run_one(const Cell& c) {
    const std::string exe = opt_.cell_exe.empty() ? executable_for(c.backend) : opt_.cell_exe;
    const std::string json_out = results::cells_dir(opt_.run_dir) + "/" + c.id + ".result.tmp";
    const std::string err_path = results::cells_dir(opt_.run_dir) + "/" + c.id + ".stderr";
    const std::string started = utc_now();
    Cell replayed = c;  // a capture's cells replay its cached import
    replayed.source = captures_->source_for(c);
    CellOutcome o = run_cell(replayed, exe, json_out, err_path);
    if (g_interrupted.load() != 0) {
      return o;
    }
    std::error_code ec;
    if (o.stderr_text.empty()) {
      fs::remove(err_path, ec);
    }
    const nlohmann::json cell_file = {
        {"schema", results::kCellFileSchema},
        {"run", run_block_},
        {"cell", cell_json(c)},
        {"command", cell_command(replayed, exe, "OUT")},
        {"status", o.ok ? "ok" : "failed"},
        {"failure", o.ok ? nlohmann::json(nullptr) : nlohmann::json(o.failure)},
        {"stderr", o.ok ? nlohmann::json(nullptr) : nlohmann::json(o.stderr_text)},
        {"stderr_file", o.stderr_text.empty() ? nlohmann::json(nullptr)
                                              : nlohmann::json("cells/" + c.id + ".stderr")},
        {"started_utc", started},
        {"wall_s", o.wall_s},
        {"cpu_s", o.cpu_s},
        {"environment", env_},
        {"topology", topologies_[c.topology]},
        {"result", o.result},
    };
    results::write_atomic(results::cell_path(opt_.run_dir, c.id), cell_file.dump(1) + "\n");
    entries_[c.id] = index_entry(c, o.ok ? "ok" : "failed", o.wall_s, o.failure);
    write_index();
    return o;
  }

  const Matrix& m_;
  const RunOptions& opt_;
  const std::vector<Cell> ordered_;
  const std::vector<Cell> mine_;
  const std::string shard_text_;
  const std::string ipath_;
  nlohmann::json env_, topologies_ = nlohmann::json::object(), run_block_, index_;
  std::map<std::string, nlohmann::json> entries_;
  std::optional<CaptureCache> captures_;
  RunSummary summary_;
};

}  // namespace

RunSummary run_matrix(const Matrix& m, const RunOptions& opt) {
  return MatrixRun(m, opt).run();
}

}  // namespace kmbench::matrix
