#include <iomanip>
#include <iostream>
#include <memory>

#include "harness/cli/command.h"
#include "harness/env/environment.h"

namespace kmbench::cli {

void add_version_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print kmbench's version and the exact versions of "
                                            "its libraries, the compiler and the kernel");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print one JSON object (versions, machine, process malloc)");
  cmd->callback([json] {
    if (*json) {
      std::cout << environment_json().dump(2) << "\n";
      return;
    }
    for (const VersionEntry& e : versions()) {
      std::cout << std::left << std::setw(18) << e.component << e.version;
      if (!e.note.empty()) {
        std::cout << "  (" << e.note << ")";
      }
      std::cout << "\n";
    }
    std::cout << std::left << std::setw(18) << "process malloc" << process_malloc_owner() << "\n";
  });
}

}  // namespace kmbench::cli
