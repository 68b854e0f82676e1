#include <iomanip>
#include <iostream>
#include <memory>
#include <set>

#include "allocators/any_backend.h"
#include "harness/cli/command.h"
#include "harness/env/environment.h"
#include "harness/worker/worker.h"

namespace kmbench::cli {
namespace {

/// Each worker executable's own report (`<worker> version --json --this-process`),
/// by executable name; {"error": ...} for a worker that did not answer.
nlohmann::json ask_workers() {
  std::set<std::string> executables;
  for (const BackendInfo& b : all_backends()) {
    if (!b.executable.empty()) {
      executables.insert(b.executable);
    }
  }
  nlohmann::json out = nlohmann::json::object();
  for (const std::string& exe : executables) {
    const std::string path = worker::self_directory() + "/" + exe;
    const auto text = worker::run_and_capture(path, {"version", "--json", "--this-process"});
    nlohmann::json report = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    if (!text || report.is_discarded()) {
      out[exe] = {{"error", "no answer from " + path}};
    } else {
      out[exe] = std::move(report);
    }
  }
  return out;
}

}  // namespace

void add_version_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print kmbench's version and the exact versions of "
                                            "its libraries, the compiler and the kernel");
  auto json = std::make_shared<bool>(false);
  auto here_only = std::make_shared<bool>(false);
  auto backend = std::make_shared<std::string>();
  cmd->add_flag("--json", *json, "Print one JSON object (versions, machine, process malloc)");
  cmd->add_flag("--this-process", *here_only,
                "Only this executable's versions (do not ask the worker executables)");
  cmd->add_option("--backend", *backend,
                  "Report from the process that serves this backend (its malloc, its versions)");
  cmd->callback([json, here_only, backend] {
    if (!backend->empty() && find_backend(*backend) == nullptr) {
      open_backend(*backend);  // throws the UsageError that lists the known backends
    }
    nlohmann::json env = environment_json();
    if (!backend->empty()) {
      env["backend"] = *backend;
    }
    const bool ask = !*here_only && backend->empty();
    if (ask) {
      env["workers"] = ask_workers();
    }
    if (*json) {
      std::cout << env.dump(2) << "\n";
      return;
    }
    auto row = [](const std::string& what, const std::string& value, const std::string& note) {
      std::cout << std::left << std::setw(18) << what << value;
      if (!note.empty()) {
        std::cout << "  (" << note << ")";
      }
      std::cout << "\n";
    };
    for (const VersionEntry& e : versions()) {
      row(e.component, e.version, e.note);
    }
    row("process malloc", process_malloc_owner(), "in " + executable_name());
    if (!backend->empty()) {
      row("backend", *backend, "served by " + executable_name());
    }
    if (!ask) {
      return;
    }
    for (const auto& [exe, report] : env["workers"].items()) {
      if (report.contains("error")) {
        row(exe, "unavailable", report["error"].get<std::string>());
        continue;
      }
      for (const char* lib : {"jemalloc", "mimalloc"}) {
        const auto& v = report["versions"][lib];
        if (v["note"].get<std::string>().rfind("runtime", 0) == 0) {
          row(lib, v["version"].get<std::string>(), "runtime, in " + exe);
        }
      }
      row(exe, "process malloc " + report["process_malloc"].get<std::string>(), "");
    }
  });
}

}  // namespace kmbench::cli
