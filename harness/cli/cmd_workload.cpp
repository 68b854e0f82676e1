#include <memory>

#include "base/errors.h"
#include "harness/cli/command.h"
#include "harness/cli/replay_options.h"
#include "harness/profile/profile.h"
#include "harness/trace/trace.h"
#include "workloads/workloads.h"

namespace kmbench::cli {

namespace {

/// `workload synth --profile P`: the profile's stream, replayed like any workload.
template <class Args>
void run_synth(const Args& args) {
  if (args.profile.empty()) throw UsageError("workload synth needs --profile PROFILE (from `kmbench trace profile`)");
  if (!args.params.empty()) throw UsageError("workload synth takes --profile, --scale and --seed, not --param");
  const profile::Profile p = profile::load(args.profile);
  ops::Trace trace = profile::synthesize(p, {args.scale, args.seed});
  if (!args.save.empty()) trace::save(trace, args.save);
  replay::Source source{"workload", "synth", {{"profile", args.profile}, {"scale", trace.header.metadata.at("param.scale")}},
                        args.seed, {}};
  run_replay(std::move(trace), args.flags, source);
}

}  // namespace

void add_workload_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("workload", "Generate a synthetic workload and replay it through a backend");
  struct Args {
    std::string name;
    std::vector<std::string> params;
    std::uint64_t seed = 1;
    std::string save;
    std::string profile;
    double scale = 1;
    ReplayFlags flags;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("name", args->name, "Workload (see `kmbench list`), or synth with --profile")->required();
  cmd->add_option("--param", args->params, "Workload parameter key=value (repeatable)");
  cmd->add_option("--seed", args->seed, "Random seed: the same seed gives the same stream")->capture_default_str();
  cmd->add_option("--save", args->save, "Also write the generated stream as a .kmt trace");
  auto* profile = cmd->add_option("--profile", args->profile,
                                  "synth: the profile (`kmbench trace profile`) whose statistics the stream has");
  cmd->add_option("--scale", args->scale, "synth: multiplies the profile's allocation count and rate")
      ->capture_default_str()
      ->needs(profile);
  add_replay_flags(cmd, args->flags);
  cmd->callback([args] {
    if (args->name == "synth") {
      run_synth(*args);
      return;
    }
    if (!args->profile.empty()) throw UsageError("--profile is for `kmbench workload synth`");
    const auto overrides = parse_key_values(args->params, "--param");
    const workloads::Params resolved = workloads::resolve_params(args->name, overrides);
    ops::Trace trace = workloads::generate(args->name, overrides, args->seed);
    if (!args->save.empty()) {
      trace::save(trace, args->save);
    }
    replay::Source source{"workload", args->name, resolved.values(), args->seed, {}};
    run_replay(std::move(trace), args->flags, source);
  });
}

}  // namespace kmbench::cli
