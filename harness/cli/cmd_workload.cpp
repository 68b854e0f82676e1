#include <memory>
#include <optional>

#include "base/errors.h"
#include "base/file_io.h"
#include "base/units.h"
#include "harness/cli/command.h"
#include "harness/cli/replay_options.h"
#include "harness/profile/profile.h"
#include "harness/trace/trace.h"
#include "workloads/workloads.h"

namespace kmbench::cli {

namespace {

/// Replays a generated stream; with --save, also writes it as a .kmt. The
/// file is written before the replay (which lets the stream go) but appears
/// under its name only once the replay has run, or failed at run time (a
/// stream that crashed a backend is worth keeping): bad usage or input
/// leaves an existing file as it was.
void replay_and_save(ops::Trace trace, const std::string& save, const ReplayFlags& flags, replay::Source source) {
  std::optional<base::AtomicFile> saved;
  if (!save.empty()) {
    saved.emplace(save);
    saved->write(trace::encode(trace));
  }
  try {
    run_replay(std::move(trace), flags, std::move(source));
  } catch (const RunError&) {
    if (saved) saved->commit();
    throw;
  }
  if (saved) saved->commit();
}

/// `workload synth --profile P`: the profile's stream, replayed like any workload.
template <class Args>
void run_synth(const Args& args) {
  if (args.profile.empty()) throw UsageError("workload synth needs --profile PROFILE (from `kmbench trace profile`)");
  if (!args.params.empty()) throw UsageError("workload synth takes --profile, --scale and --seed, not --param");
  if (!args.save.empty()) base::refuse_output_over_input(args.save, args.profile);
  const profile::Profile p = profile::load(args.profile);
  ops::Trace trace = profile::synthesize(p, {args.scale, args.seed});
  replay::Source source{"workload", "synth", {{"profile", args.profile}, {"scale", trace.header.metadata.at("param.scale")}},
                        args.seed, {}};
  replay_and_save(std::move(trace), args.save, args.flags, std::move(source));
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
  cmd->add_option("--seed", args->seed, "Random seed: the same seed gives the same stream")
      ->capture_default_str()
      ->check(CLI::Validator(  // digits only: CLI11 reads "-1" into an unsigned seed as 2^64 - 1
          [](const std::string& v) {
            return base::parse_count(v) ? std::string() : "'" + v + "' is not a whole number from 0 to 2^64 - 1";
          },
          "UINT"));
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
    replay::Source source{"workload", args->name, resolved.values(), args->seed, {}};
    replay_and_save(std::move(trace), args->save, args->flags, std::move(source));
  });
}

}  // namespace kmbench::cli
