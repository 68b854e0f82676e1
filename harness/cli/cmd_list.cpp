#include <unistd.h>

#include <iomanip>
#include <iostream>

#include "allocators/any_backend.h"
#include "base/errors.h"
#include "harness/cli/command.h"
#include "harness/worker/worker.h"
#include "workloads/workloads.h"

namespace kmbench::cli {
namespace {

void list_all() {
  std::cout << "backends:\n";
  for (const BackendInfo& b : all_backends()) {
    std::cout << "  " << std::left << std::setw(20) << b.name << b.summary;
    const std::string features = feature_names(b.features);
    if (!features.empty()) {
      std::cout << " [" << features << "]";
    }
    if (!b.executable.empty()) {
      const bool present = access(worker::worker_path(b).c_str(), X_OK) == 0;
      std::cout << " (runs in " << b.executable << (present ? "" : ", not built") << ")";
    }
    std::cout << "\n";
  }
  std::cout << "workloads:\n";
  for (const workloads::WorkloadInfo& w : workloads::all_workloads()) {
    std::cout << "  " << std::left << std::setw(20) << w.name << w.summary << "\n";
  }
  std::cout << "  " << std::left << std::setw(20) << "synth"
            << "a trace profile's statistics as a stream (--profile P [--scale X]; docs/profiles.md)\n";
}

/// The variant's own setting of a key ("classes=kalloc_type" → "kalloc_type"), or the table's default.
std::string default_of(const BackendInfo& b, const ParamSpec& p) {
  BackendConfig preset;
  apply_params(preset, b.preset);
  return preset.param(p.key, p.fallback);
}

/// `kmbench list --params BACKEND`: what backend_params (a matrix) and --backend-param take.
void list_params(const std::string& name) {
  const BackendInfo* b = find_backend(name);
  if (b == nullptr) {
    std::string known;
    for (const BackendInfo& x : all_backends()) known += (known.empty() ? "" : ", ") + x.name;
    throw UsageError("--params " + name + ": no such backend (known: " + known + ")");
  }
  if (b->params.empty()) {
    std::cout << b->name << " takes no parameters\n";
    return;
  }
  std::cout << b->name << " parameters (matrix: backend_params = { key = value }; a list sweeps them):\n";
  std::cout << "  " << std::left << std::setw(18) << "key" << std::setw(14) << "default" << std::setw(34)
            << "allowed" << "meaning\n";
  for (const ParamSpec& p : b->params) {
    std::cout << "  " << std::left << std::setw(18) << p.key << std::setw(14) << default_of(*b, p)
              << std::setw(34) << allowed_text(p) << p.meaning << "\n";
  }
}

}  // namespace

void add_list_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("list", "List backends and workloads, one line each");
  auto params = std::make_shared<std::string>();
  cmd->add_option("--params", *params,
                  "Print one backend's parameters instead: key, default, allowed values and meaning");
  cmd->callback([params] { params->empty() ? list_all() : list_params(*params); });
}

}  // namespace kmbench::cli
