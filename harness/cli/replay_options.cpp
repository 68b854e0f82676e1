#include "harness/cli/replay_options.h"

#include <iostream>
#include <memory>

#include "base/errors.h"
#include "harness/replay/option_table.h"

namespace kmbench::cli {

namespace {

/// What --help shows an option takes: "{none,first,pages}", "INT", "SIZE".
std::string type_name(const replay::OptionSpec& spec) {
  switch (spec.type) {
    case replay::OptionType::choice: {
      std::string out = "{";
      for (std::string_view c : spec.choices) out.append(out.size() > 1 ? "," : "").append(c);
      return out + "}";
    }
    case replay::OptionType::integer:
      return "INT";
    case replay::OptionType::number:
      return "NUM";
    case replay::OptionType::bytes:
      return "SIZE";
    case replay::OptionType::flag:
    case replay::OptionType::text:
      break;
  }
  return "TEXT";
}

}  // namespace

void add_replay_flags(CLI::App* cmd, ReplayFlags& f) {
  cmd->add_option("--backend", f.backend, "Backend to replay through (see `kmbench list`)")->required();
  const replay::Options defaults;
  for (const replay::OptionSpec& spec : replay::option_table()) {
    const std::string flag(spec.flag), key(spec.key), help(spec.help);
    if (spec.type == replay::OptionType::flag) {
      const std::string value = spec.negated ? "false" : "true";
      cmd->add_flag_callback(flag, [&f, key, value] { f.options[key] = value; }, help);
      continue;
    }
    CLI::Option* o = cmd->add_option_function<std::string>(
        flag, [&f, key](const std::string& text) { f.options[key] = text; }, help);
    if (spec.get != nullptr) o->default_str(spec.get(defaults));
    o->type_name(type_name(spec));
  }
  cmd->add_option("--backend-param", f.backend_params, "Backend parameter key=value (repeatable)");
  cmd->add_option("--json", f.json, "Write the result (kmbench.cell/2 JSON) to this file");
}

std::map<std::string, std::string> parse_key_values(const std::vector<std::string>& items,
                                                    const std::string& option) {
  std::map<std::string, std::string> out;
  for (const std::string& item : items) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw UsageError(option + " '" + item + "' is not key=value");
    }
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return out;
}

void run_replay(ops::Trace trace, const ReplayFlags& f, replay::Source source) {
  replay::Options o;
  for (const auto& [key, text] : f.options) {
    const replay::OptionSpec& spec = *replay::option_by_key(key);
    replay::set_option(o, spec, text, spec.flag);
  }
  o.backend_params = parse_key_values(f.backend_params, "--backend-param");
  source.counters = trace.counters;
  // The program holds all the run needs: the trace goes before the run, so a
  // large capture is not held twice.
  const replay::Program program =
      replay::build_program(trace, replay::replay_threads(trace, o),
                            source.kind == "trace" ? source.name : source.name + " (the stream the workload made)");
  trace = ops::Trace{};
  const replay::Result r = replay::run(program, f.backend, o);
  replay::print_summary(std::cout, r, source);
  if (!f.json.empty()) {
    replay::write_json_atomic(replay::cell_json(r, source), f.json);
    std::cout << "  result          " << f.json << "\n";
  }
  if (o.drain && !r.accounting_ok) {
    throw RunError("accounting after --drain does not read zero: " + r.accounting_detail);
  }
}

}  // namespace kmbench::cli
