#include <memory>

#include "harness/cli/command.h"
#include "harness/cli/replay_options.h"
#include "harness/trace/trace.h"

namespace kmbench::cli {

void add_replay_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("replay", "Replay a trace (.kmt, or any capture `kmbench trace import` reads) "
                                           "through a backend");
  struct Args {
    std::string file;
    ReplayFlags flags;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("file", args->file, "Trace file")->required();
  add_replay_flags(cmd, args->flags);
  cmd->callback([args] {
    ops::Trace trace = trace::import_file(args->file);
    replay::Source source{"trace", args->file, {}, std::nullopt, {}};
    for (const auto& [key, value] : trace.header.metadata) {
      if (key.rfind("param.", 0) == 0) source.params[key.substr(6)] = value;
    }
    if (auto it = trace.header.metadata.find("seed");
        it != trace.header.metadata.end() && trace.header.metadata.count("workload") != 0) {
      source.seed = std::stoull(it->second);
    }
    run_replay(std::move(trace), args->flags, source);
  });
}

}  // namespace kmbench::cli
