#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "base/errors.h"
#include "base/process.h"
#include "harness/cli/command.h"
#include "harness/env/build_info.h"
#include "harness/matrix/matrix.h"
#include "results/results.h"

extern char** environ;

namespace kmbench::cli {
namespace fs = std::filesystem;
namespace {

std::string default_matrix() {
  return std::string(KMBENCH_SOURCE_DIR) + "/harness/matrix/matrices/default.toml";
}

std::string default_run_dir(const std::string& matrix_name) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  return std::string(KMBENCH_SOURCE_DIR) + "/results/runs/" + stamp + "-" + matrix_name;
}

/// Runs one of plots/*.py with Debian's Python; its exit status decides ours.
void run_python(const std::string& script, const std::vector<std::string>& args) {
  const std::string path = std::string(KMBENCH_SOURCE_DIR) + "/plots/" + script;
  std::vector<std::string> all = {KMBENCH_PYTHON, path};
  all.insert(all.end(), args.begin(), args.end());
  const base::ChildExit e = base::run_child(all);
  if (e.exited_ok()) {
    return;
  }
  if (WIFEXITED(e.status) && WEXITSTATUS(e.status) == kExitBadInput) {
    throw UsageError(script + " rejected its input (see above)");
  }
  throw RunError(script + " failed (see above)");
}

// --margin, shared by plot and compare (plots/stats.py reads it).
void add_margin_option(CLI::App* cmd, double& margin) {
  cmd->add_option("--margin", margin, "Equivalence margin in percent: smaller differences count as the same "
                                      "(default 3)")
      ->check(CLI::Range(0.0, 99.0));
}

// `kmbench plot`: charts and report.html through plots/report.py.
void add_plot_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("plot", "Charts (PNG, SVG) and a self-contained HTML report of a run");
  auto run = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto earlier = std::make_shared<std::string>();
  auto baseline = std::make_shared<std::string>();
  auto margin = std::make_shared<double>(3.0);
  cmd->add_option("run", *run, "Run directory")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("-o,--out", *out, "Output directory (default: RUN_DIR/report)");
  cmd->add_option("--compare", *earlier, "Also compare with this earlier run (verdicts in the report)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--baseline", *baseline,
                  "Backend the leaderboards and verdicts compare every other with (default: system)");
  add_margin_option(cmd, *margin);
  cmd->callback([run, out, earlier, baseline, margin] {
    std::vector<std::string> args = {*run, "-o", out->empty() ? *run + "/report" : *out, "--margin",
                                     std::to_string(*margin)};
    if (!earlier->empty()) {
      args.insert(args.end(), {"--compare", *earlier});
    }
    if (!baseline->empty()) {
      args.insert(args.end(), {"--baseline", *baseline});
    }
    run_python("report.py", args);
  });
}

// `kmbench compare`: two runs judged together through plots/compare.py.
void add_compare_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare", "Compare two runs: per metric, the ratio B/A with a 95% confidence interval and "
                 "a Mann-Whitney U test over repetitions, judged together (Benjamini-Hochberg, "
                 "equivalence margin)");
  auto a = std::make_shared<std::string>();
  auto b = std::make_shared<std::string>();
  auto alpha = std::make_shared<double>(0.05);
  auto margin = std::make_shared<double>(3.0);
  auto json = std::make_shared<std::string>();
  cmd->add_option("run_a", *a, "Baseline run directory")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("run_b", *b, "Candidate run directory")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--alpha", *alpha, "Significance level (default 0.05)")->check(CLI::Range(1e-6, 0.5));
  add_margin_option(cmd, *margin);
  cmd->add_option("--json", *json, "Also write the comparison as JSON");
  cmd->callback([a, b, alpha, margin, json] {
    std::vector<std::string> args = {*a, *b, "--alpha", std::to_string(*alpha), "--margin",
                                     std::to_string(*margin)};
    if (!json->empty()) {
      args.insert(args.end(), {"--json", *json});
    }
    run_python("compare.py", args);
  });
}

}  // namespace

void add_matrix_commands(CLI::App& app) {
  {
    auto* cmd = app.add_subcommand(
        "run", "Run a benchmark matrix: every cell in its own process, results into RUN_DIR");
    struct Args {
      std::string matrix, out, shard = "1/1", cell_exe;
      bool resume = false, retry_failed = false, list = false;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("matrix", a->matrix, "Matrix file (TOML); default: harness/matrix/matrices/default.toml");
    cmd->add_option("-o,--out", a->out, "Run directory (default: results/runs/<date-time>-<matrix name>)");
    cmd->add_flag("--resume", a->resume, "Continue a run in RUN_DIR: skip cells already written");
    cmd->add_flag("--retry-failed", a->retry_failed, "With --resume: run failed cells again");
    cmd->add_option("--shard", a->shard, "Run shard K of N (1 <= K <= N) of the matrix's run order");
    cmd->add_option("--cell-exe", a->cell_exe,
                    "Run every cell with this program instead of kmbench or its worker executables");
    cmd->add_flag("--list", a->list, "Print the cells in run order (of this shard) and run nothing");
    cmd->footer(
        "Exit status: 0 every cell succeeded; 1 a cell failed (the run went on, see index.json);\n"
        "2 the matrix file or an option is wrong (nothing ran).");
    cmd->callback([a] {
      const std::string path = a->matrix.empty() ? default_matrix() : a->matrix;
      const auto [k, n] = matrix::parse_shard(a->shard);
      const matrix::Matrix m = matrix::load_matrix(path, matrix::default_catalog());
      if (a->list) {
        for (const auto& c : matrix::shard_of(matrix::run_order(m.cells, m.seed), k, n)) {
          std::cout << c.id << "\n";
        }
        return;
      }
      if (a->retry_failed && !a->resume) {
        throw UsageError("--retry-failed needs --resume");
      }
      matrix::RunOptions opt;
      opt.run_dir = a->out.empty() ? default_run_dir(m.name) : a->out;
      opt.resume = a->resume;
      opt.retry_failed = a->retry_failed;
      opt.shard_k = k;
      opt.shard_n = n;
      opt.cell_exe = a->cell_exe;
      opt.progress_tty = isatty(STDERR_FILENO) != 0;
      std::cerr << "kmbench run: " << m.cells.size() << " cells in " << path << " (seed " << m.seed
                << ", shard " << k << "/" << n << ") into " << opt.run_dir << "\n";
      const matrix::RunSummary s = matrix::run_matrix(m, opt);
      std::cout << "run: " << opt.run_dir << "\n"
                << "cells: " << s.cells << " (" << s.ran << " ran, " << s.skipped << " skipped), "
                << s.failed << " failed\n";
      if (s.failed > 0) {
        throw RunError(std::to_string(s.failed) + " cell(s) failed; their stderr is in " +
                       opt.run_dir + "/cells (index.json lists them)");
      }
    });
  }
  {
    auto* cmd = app.add_subcommand("merge", "Join shard run directories of one matrix into one run");
    auto inputs = std::make_shared<std::vector<std::string>>();
    auto out = std::make_shared<std::string>();
    cmd->add_option("runs", *inputs, "Shard run directories")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("-o,--out", *out, "The merged run directory")->required();
    cmd->callback([inputs, out] {
      if (fs::exists(*out) && !fs::is_directory(*out)) throw UsageError("-o " + *out + ": is not a directory");
      if (fs::exists(results::index_path(*out)) || results::holds_cell_files(*out)) {
        throw UsageError(*out + " already holds a run (or its cell files)");
      }
      results::merge_runs(*inputs, *out);
      const auto index = results::read_json(results::index_path(*out));
      std::cout << "merged " << inputs->size() << " run(s) into " << *out << ": "
                << index["summary"].dump() << "\n";
    });
  }
  add_plot_command(app);
  add_compare_command(app);
}

}  // namespace kmbench::cli
