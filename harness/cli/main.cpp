// kmbench: benchmark and research suite for kernel-style memory allocators.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "base/errors.h"
#include "harness/cli/command.h"
#include "harness/worker/worker.h"

namespace {

constexpr const char* kFooter = R"(Exit status:
  0  success
  1  the run failed (a backend crashed, a cell failed, a worker could not start)
  2  bad usage or bad input (unknown option or backend, malformed file)
Each subcommand has its own --help.)";

bool has_subcommand(CLI::App& app, const std::string& name) {
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == name) {
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kmbench;
  CLI::App app{"kmbench — benchmark and research suite for kernel-style memory allocators", "kmbench"};
  app.footer(kFooter);
  app.require_subcommand(1);
  cli::add_version_command(app);
  cli::add_list_command(app);
  cli::add_trace_command(app);
  cli::add_workload_command(app);
  cli::add_matrix_commands(app);
  cli::add_replay_command(app);
  cli::add_env_command(app);

  // Name an unknown command plainly (CLI11 would only say one is required).
  if (argc > 1 && argv[1][0] != '-' && !has_subcommand(app, argv[1])) {
    std::cerr << "kmbench: unknown command '" << argv[1] << "'\n\n" << app.help();
    return cli::kExitBadInput;
  }
  try {
    // A backend served by a worker executable: run the whole command there.
    worker::exec_worker_for_backend_option(argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message and usage
    return cli::kExitBadInput;
  } catch (const UsageError& e) {
    std::cerr << "kmbench: " << e.what() << "\n";
    return cli::kExitBadInput;
  } catch (const InputError& e) {
    std::cerr << "kmbench: " << e.what() << "\n";
    return cli::kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << "kmbench: " << e.what() << "\n";
    return cli::kExitRunFailed;
  }
  // What a command printed must have arrived: on a full disk the output is
  // lost, and the command has failed, not succeeded.
  std::cout.flush();
  if (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::cerr << "kmbench: a write to standard output failed: what it printed is incomplete\n";
    return cli::kExitRunFailed;
  }
  return cli::kExitOk;
}
