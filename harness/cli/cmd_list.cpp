#include <unistd.h>

#include <iomanip>
#include <iostream>

#include "allocators/registry.h"
#include "harness/cli/command.h"
#include "harness/worker/worker.h"

namespace kmbench::cli {

void add_list_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("list", "List backends and workloads, one line each");
  cmd->callback([] {
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
  });
}

}  // namespace kmbench::cli
