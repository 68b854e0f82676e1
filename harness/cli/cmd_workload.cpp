#include <memory>

#include "base/errors.h"
#include "harness/cli/command.h"
#include "harness/cli/replay_options.h"
#include "harness/trace/trace.h"
#include "workloads/workloads.h"

namespace kmbench::cli {

void add_workload_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("workload", "Generate a synthetic workload and replay it through a backend");
  struct Args {
    std::string name;
    std::vector<std::string> params;
    std::uint64_t seed = 1;
    std::string save;
    ReplayFlags flags;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("name", args->name, "Workload (see `kmbench list`)")->required();
  cmd->add_option("--param", args->params, "Workload parameter key=value (repeatable)");
  cmd->add_option("--seed", args->seed, "Random seed: the same seed gives the same stream")->capture_default_str();
  cmd->add_option("--save", args->save, "Also write the generated stream as a .kmt trace");
  add_replay_flags(cmd, args->flags);
  cmd->callback([args] {
    const auto overrides = parse_key_values(args->params, "--param");
    const workloads::Params resolved = workloads::resolve_params(args->name, overrides);
    const ops::Trace trace = workloads::generate(args->name, overrides, args->seed);
    if (!args->save.empty()) {
      trace::save(trace, args->save);
    }
    replay::Source source{"workload", args->name, resolved.values(), args->seed, {}};
    run_replay(trace, args->flags, source);
  });
}

}  // namespace kmbench::cli
