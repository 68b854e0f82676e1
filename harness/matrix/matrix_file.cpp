// Matrix files: TOML → checked cells. Every rejection names the file and line.
#include <hwloc.h>
#include <numa.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "allocators/any_backend.h"
#include "base/errors.h"
#include "base/units.h"
#include "harness/matrix/matrix.h"
#include "harness/profile/profile.h"
#include "harness/replay/option_table.h"
#include "harness/replay/pressure_spec.h"
#include "harness/trace/trace.h"
#include "workloads/workloads.h"

namespace kmbench::matrix {
namespace {

constexpr unsigned kMaxRepetitions = 1000;
/// Cells a matrix may have: a run of a hundred thousand cells takes days.
constexpr std::size_t kMaxCells = 100'000;

std::string scalar_text(const toml::node& n);

/// Settings a source inherits from the top level and may override.
struct Axes {
  std::vector<std::string> backends;
  std::vector<unsigned> threads{1};
  std::vector<std::string> placements{"local"};
  std::vector<std::string> topologies{"real"};
  std::string mode = "fast";
  unsigned repetitions = 5;
  double timeout_s = 60;
};

class Checker {
 public:
  Checker(const std::string& path, const Catalog& catalog) : path_(path), catalog_(catalog) {}

  [[noreturn]] void fail(const toml::source_region& at, const std::string& what) const {
    throw InputError(path_, at.begin.line, what);
  }
  [[noreturn]] void fail(const toml::node& at, const std::string& what) const {
    fail(at.source(), what);
  }

  void known_keys(const toml::table& table, const std::set<std::string>& keys,
                  const std::string& where) const {
    for (auto&& [key, value] : table) {
      if (!keys.count(std::string(key.str()))) {
        std::string list;
        for (const auto& k : keys) {
          list += (list.empty() ? "" : ", ") + k;
        }
        fail(key.source(), "unknown key '" + std::string(key.str()) + "' in " + where +
                               " (known: " + list + ")");
      }
    }
  }

  std::string string_of(const toml::node& n, const std::string& key) const {
    if (!n.is_string()) {
      fail(n, "'" + key + "' must be a string");
    }
    return std::string(*n.value<std::string_view>());
  }

  std::int64_t integer_of(const toml::node& n, const std::string& key, std::int64_t lo,
                          std::int64_t hi) const {
    if (!n.is_integer()) {
      fail(n, "'" + key + "' must be an integer");
    }
    const std::int64_t v = *n.value<std::int64_t>();
    if (v < lo || v > hi) {
      fail(n, "'" + key + "' = " + std::to_string(v) + " is impossible (allowed " +
                  std::to_string(lo) + ".." + std::to_string(hi) + ")");
    }
    return v;
  }

  double number_of(const toml::node& n, const std::string& key) const {
    if (!n.is_number()) {
      fail(n, "'" + key + "' must be a number");
    }
    return *n.value<double>();
  }

  /// A string or an array of strings.
  std::vector<std::pair<std::string, const toml::node*>> strings_of(const toml::node& n,
                                                                    const std::string& key) const {
    std::vector<std::pair<std::string, const toml::node*>> out;
    if (n.is_string()) {
      out.emplace_back(string_of(n, key), &n);
    } else if (const toml::array* a = n.as_array()) {
      for (const toml::node& e : *a) {
        out.emplace_back(string_of(e, key), &e);
      }
      if (out.empty()) {
        fail(n, "'" + key + "' is empty");
      }
    } else {
      fail(n, "'" + key + "' must be a string or an array of strings");
    }
    return out;
  }

  void apply(const toml::table& t, Axes& axes) const {
    if (const toml::node* n = t.get("backends")) {
      axes.backends.clear();
      for (auto& [name, at] : strings_of(*n, "backends")) {
        if (std::find(catalog_.backends.begin(), catalog_.backends.end(), name) ==
            catalog_.backends.end()) {
          std::string list;
          for (const auto& b : catalog_.backends) {
            list += (list.empty() ? "" : ", ") + b;
          }
          fail(*at, "unknown backend '" + name + "' (known: " + list + ")");
        }
        axes.backends.push_back(name);
      }
    }
    if (const toml::node* n = t.get("threads")) {
      axes.threads.clear();
      auto add = [&](const toml::node& e) {
        const unsigned threads = static_cast<unsigned>(std::stoul(option_value(e, "threads")));
        if (threads == 0) {
          fail(e, "'threads' = 0 gives no cell a thread count: list counts of 1 or more");
        }
        axes.threads.push_back(threads);
      };
      if (n->is_integer()) {
        add(*n);
      } else if (const toml::array* a = n->as_array(); a && !a->empty()) {
        for (const toml::node& e : *a) add(e);
      } else {
        fail(*n, "'threads' must be a positive integer or a non-empty array of them");
      }
    }
    if (const toml::node* n = t.get("topology")) {
      axes.topologies.clear();
      for (auto& [spec, at] : strings_of(*n, "topology")) {
        try {
          topology_nodes(spec, catalog_);
        } catch (const UsageError& e) {
          fail(*at, e.what());
        }
        axes.topologies.push_back(spec);
      }
    }
    if (const toml::node* n = t.get("placements")) {
      axes.placements.clear();
      for (auto& [p, at] : strings_of(*n, "placements")) {
        axes.placements.push_back(option_value(*at, "placement"));
      }
    }
    if (const toml::node* n = t.get("mode")) {
      axes.mode = option_value(*n, "mode");
    }
    if (const toml::node* n = t.get("repetitions")) {
      axes.repetitions = static_cast<unsigned>(integer_of(*n, "repetitions", 1, kMaxRepetitions));
    }
    if (const toml::node* n = t.get("timeout_s")) {
      axes.timeout_s = number_of(*n, "timeout_s");
      if (!(axes.timeout_s > 0 && axes.timeout_s <= 86400)) {
        fail(*n, "'timeout_s' must be within (0, 86400]");
      }
    }
  }

  /// Each topology the entry runs on (loaded once) has the nodes the entry
  /// asks for: two for a placement other than local (refused at the entry),
  /// and every node its replay names, `node` or a pressure clause's node=N
  /// (refused at `replay`).
  void check_nodes(const Axes& axes, const std::vector<std::pair<std::string, std::string>>& options,
                   const toml::node& entry, const toml::node* replay) const {
    std::vector<std::pair<long, std::string>> named;  // node, what names it
    for (const auto& [flag, value] : options) {
      if (flag == "--node" && value != "-1") named.emplace_back(std::stol(value), "'node = " + value + "'");
      if (flag != "--pressure") continue;
      for (const replay::PressureClause& c : replay::parse_pressure(value).clauses) {
        if (c.node != kAnyNode) named.emplace_back(c.node, "pressure clause '" + c.text + "'");
      }
    }
    for (const auto& topo : axes.topologies) {
      const unsigned nodes = topology_nodes(topo, catalog_);
      for (const auto& p : axes.placements) {
        if (p != "local" && nodes < 2) {
          fail(entry, "placement '" + p + "' needs two NUMA nodes, topology '" + topo + "' has " +
                          std::to_string(nodes) +
                          " (run it on a multi-node machine, or simulate two nodes with a synthetic topology)");
        }
      }
      for (const auto& [node, what] : named) {
        if (node >= static_cast<long>(nodes)) {
          fail(*replay, what + " names node " + std::to_string(node) + ", but topology '" + topo + "' has " +
                            std::to_string(nodes) +
                            (nodes == 1 ? " node (0)" : " nodes (0 to " + std::to_string(nodes - 1) + ")"));
        }
      }
    }
  }

  /// A value for a replay option, checked by the option table (one message
  /// per mistake, here with this file and line).
  std::string option_value(const toml::node& n, std::string_view key) const {
    const replay::OptionSpec& spec = *replay::option_by_key(key);
    if (!n.is_value()) {
      std::string what = "'";
      what.append(key).append("' must be ").append(replay::what_it_takes(spec));
      fail(n, what);
    }
    try {
      return replay::check_option(spec, scalar_text(n), key);
    } catch (const UsageError& e) {
      fail(n, e.what());
    }
  }

  /// [[...]].replay = { drain = true, touch = "pages", warmup = 1, ... }: any
  /// replay option that is not a matrix axis, as the command line's flags.
  std::vector<std::pair<std::string, std::string>> replay_options(const toml::node& n) const {
    const toml::table* t = n.as_table();
    if (t == nullptr) {
      fail(n, "'replay' must be a table");
    }
    std::set<std::string> keys;
    for (const replay::OptionSpec& spec : replay::option_table()) {
      if (spec.per_entry) keys.emplace(spec.key);
    }
    known_keys(*t, keys, "'replay'");
    std::vector<std::pair<std::string, std::string>> out;
    for (const replay::OptionSpec& spec : replay::option_table()) {
      const toml::node* v = spec.per_entry ? t->get(spec.key) : nullptr;
      if (v == nullptr) continue;
      const std::string value = option_value(*v, spec.key);
      if (spec.type != replay::OptionType::flag) {
        out.emplace_back(std::string(spec.flag), value);
      } else if ((value == "true") != spec.negated) {
        out.emplace_back(std::string(spec.flag), "");
      }
    }
    return out;
  }

  const std::string& path() const { return path_; }
  const Catalog& catalog() const { return catalog_; }

 private:
  std::string path_;
  const Catalog& catalog_;
};

std::string scalar_text(const toml::node& n) {
  if (n.is_string()) {
    return std::string(*n.value<std::string_view>());
  }
  if (n.is_boolean()) {
    return *n.value<bool>() ? "true" : "false";
  }
  std::ostringstream out;
  if (n.is_integer()) {
    out << *n.value<std::int64_t>();
  } else {
    out << *n.value<double>();
  }
  return out.str();
}

std::string safe_id(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      c = '-';
    }
  }
  return s;
}

std::string topology_id(const std::string& spec) {
  if (spec == "real") {
    return "real";
  }
  return "topo" + text_hash(spec).substr(0, 6);
}

/// One key of `params` or `backend_params`: a value, or a list of them (a
/// sweep), each with its node for error lines.
struct Setting {
  std::string key;
  std::vector<std::string> values;
  std::vector<const toml::node*> nodes;
};

using Pairs = std::vector<std::pair<std::string, std::string>>;

/// The settings' values at one point of their sweep: point[i] indexes settings[i].values.
Pairs values_at(const std::vector<Setting>& settings, const std::vector<std::size_t>& point, std::size_t from,
                Pairs* swept) {
  Pairs out;
  for (std::size_t i = 0; i < settings.size(); ++i) {
    const Setting& s = settings[i];
    out.emplace_back(s.key, s.values[point[from + i]]);
    if (swept != nullptr && s.values.size() > 1) swept->emplace_back(s.key, s.values[point[from + i]]);
  }
  return out;
}

/// A [[workload]], [[trace]] or [[profile]] entry: its source, label, parameters and
/// axes, expanded into one cell per sweep point, repetition, topology,
/// placement, thread count and backend.
class EntryReader {
 public:
  EntryReader(const Checker& check, const Catalog& catalog, const std::string& path)
      : check_(check), catalog_(catalog), path_(path) {}

  void read(const std::string& kind, const toml::node& entry_node, const Axes& top, std::vector<Cell>& cells) {
    const toml::table* entry = entry_node.as_table();
    if (entry == nullptr) {
      check_.fail(entry_node, "each [[" + kind + "]] must be a table");
    }
    const std::string where = "[[" + kind + "]]";
    check_.known_keys(*entry,
                      {"name", "path", "label", "params", "replay", "backend_params", "backends", "threads",
                       "placements", "topology", "mode", "repetitions", "timeout_s"},
                      where);
    Cell proto;
    proto.source_kind = kind;
    const Catalog::Workload* workload = read_source(*entry, entry_node, where, proto);
    if (const toml::node* n = entry->get("label")) {
      proto.label = check_.string_of(*n, "label");
    }
    if (proto.label.empty() || !labels_.insert(proto.label).second) {
      check_.fail(entry_node, "label '" + proto.label + "' is empty or used twice: give each entry a distinct 'label'");
    }
    std::vector<Setting> params, backend_params;
    if (const toml::node* n = entry->get("params")) {
      params = read_settings(*n, "params");
      check_workload_keys(params, workload, proto.source);
      if (kind == "profile") check_profile_keys(params);
    }
    if (const toml::node* n = entry->get("replay")) {
      proto.options = check_.replay_options(*n);
    }
    if (const toml::node* n = entry->get("backend_params")) {
      backend_params = read_settings(*n, "backend_params");
    }
    Axes axes = top;
    check_.apply(*entry, axes);
    if (axes.backends.empty()) {
      check_.fail(entry_node, where + " has no backends: set 'backends' at the top or here");
    }
    check_backend_values(backend_params, axes.backends);
    check_.check_nodes(axes, proto.options, entry_node, entry->get("replay"));
    if (kind == "trace") {
      check_kmt(proto.source, *entry->get("path"));
    }
    proto.line = entry_node.source().begin.line;
    sweep(entry_node, proto, params, backend_params, axes, cells);
  }

 private:
  /// The workload's name or the trace's path (checked), and the default label.
  const Catalog::Workload* read_source(const toml::table& entry, const toml::node& at, const std::string& where,
                                       Cell& c) const {
    const bool is_workload = c.source_kind == "workload";
    const char* name_key = is_workload ? "name" : "path";
    const toml::node* name_node = entry.get(name_key);
    if (name_node == nullptr) {
      check_.fail(at, where + " needs '" + name_key + "'");
    }
    if (entry.get(is_workload ? "path" : "name") != nullptr) {
      check_.fail(at, where + " takes '" + name_key + "', not '" + (is_workload ? "path" : "name") + "'");
    }
    c.source = check_.string_of(*name_node, name_key);
    c.label = c.source;
    if (!is_workload) {
      std::filesystem::path p(c.source);
      if (p.is_relative()) {
        p = std::filesystem::absolute(std::filesystem::path(path_).parent_path() / p);
      }
      if (!std::filesystem::is_regular_file(p)) {
        check_.fail(*name_node, c.source_kind + " file '" + p.string() + "' " +
                                    (std::filesystem::exists(p) ? "is not a regular file" : "does not exist"));
      }
      c.source = p.lexically_normal().string();
      c.label = std::filesystem::path(c.source).stem().string();
      if (c.source_kind == "profile") {
        try {
          profile::load(c.source);  // a bad profile stops the matrix before anything runs
        } catch (const InputError& e) {
          check_.fail(*name_node, e.what());
        }
        const std::string stem = std::filesystem::path(c.label).stem().string();  // NAME.kprof.json -> NAME
        if (c.label.ends_with(".kprof")) c.label = stem;
      }
      return nullptr;
    }
    for (const auto& w : catalog_.workloads) {
      if (w.name == c.source) return &w;
    }
    check_.fail(*name_node, "unknown workload '" + c.source + "' (known: " +
                                (catalog_.workloads.empty() ? "none in this build" : names(catalog_.workloads)) + ")");
  }

  /// A .kmt the entry replays is decoded whole, once per file (its ops dropped as
  /// they come): a truncated or damaged one stops the matrix before anything runs.
  void check_kmt(const std::string& source, const toml::node& at) {
    if (std::filesystem::path(source).extension() != ".kmt" || !kmt_checked_.insert(source).second) return;
    try {
      trace::load(source, [](const ops::Trace&, const trace::OpBatch&) {});
    } catch (const InputError& e) {
      check_.fail(at, e.what());
    }
  }

  /// A table of scalars or non-empty lists of distinct scalars.
  std::vector<Setting> read_settings(const toml::node& n, const std::string& what) const {
    const toml::table* t = n.as_table();
    if (t == nullptr) {
      check_.fail(n, "'" + what + "' must be a table");
    }
    std::vector<Setting> out;
    for (auto&& [key, value] : *t) {
      Setting s{std::string(key.str()), {}, {}};
      auto add = [&](const toml::node& v) {
        if (!v.is_value()) {
          check_.fail(v, what + " '" + s.key + "' must be a string, number or boolean, or a list of them");
        }
        const std::string text = scalar_text(v);
        if (std::find(s.values.begin(), s.values.end(), text) != s.values.end()) {
          check_.fail(v, what + " '" + s.key + "' lists " + text + " twice");
        }
        s.values.push_back(text);
        s.nodes.push_back(&v);
      };
      if (const toml::array* list = value.as_array()) {
        for (const toml::node& v : *list) add(v);
        if (s.values.empty()) check_.fail(value, what + " '" + s.key + "' is an empty list: give one value or more");
      } else {
        add(value);
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  void check_workload_keys(const std::vector<Setting>& params, const Catalog::Workload* workload,
                           const std::string& source) const {
    if (workload == nullptr) return;
    for (const Setting& s : params) {
      if (std::find(workload->params.begin(), workload->params.end(), s.key) == workload->params.end()) {
        check_.fail(*s.nodes.front(), "workload '" + source + "' has no parameter '" + s.key + "' (known: " +
                                          (workload->params.empty() ? "none" : join(workload->params)) + ")");
      }
    }
  }

  /// A [[profile]] takes the synthesis's scale (a positive number) and seed.
  void check_profile_keys(const std::vector<Setting>& params) const {
    for (const Setting& s : params) {
      if (s.key != "scale" && s.key != "seed") {
        check_.fail(*s.nodes.front(), "[[profile]] has no parameter '" + s.key + "' (known: scale, seed)");
      }
      for (std::size_t v = 0; v < s.values.size(); ++v) {
        char* end = nullptr;
        const double x = std::strtod(s.values[v].c_str(), &end);
        if (end == s.values[v].c_str() || *end != '\0' || !(x > 0)) {
          check_.fail(*s.nodes[v], "[[profile]] " + s.key + " must be a positive number, not '" + s.values[v] + "'");
        }
      }
    }
  }

  /// Every value of every backend parameter is valid for every backend of the entry.
  void check_backend_values(const std::vector<Setting>& settings, const std::vector<std::string>& backends) const {
    for (const std::string& b : backends) {
      const auto specs = catalog_.backend_params.find(b);
      if (specs == catalog_.backend_params.end()) continue;
      for (const Setting& s : settings) {
        for (std::size_t v = 0; v < s.values.size(); ++v) {
          if (auto why = setting_error(specs->second, s.key, s.values[v])) {
            check_.fail(*s.nodes[v], "backend_params for " + b + ": " + *why +
                                         " (kmbench list --params " + b + ")");
          }
        }
      }
    }
  }

  /// One group of cells per point of the sweep (every combination of the listed values); a point's
  /// label is the entry's with the swept values ("nic@magazine=16,cache=on").
  void sweep(const toml::node& entry_node, const Cell& proto, const std::vector<Setting>& params,
             const std::vector<Setting>& backend_params, const Axes& axes, std::vector<Cell>& cells) {
    std::vector<Setting> all = params;
    all.insert(all.end(), backend_params.begin(), backend_params.end());
    // Counted before any is made: lists of 40 values in six keys are 4 billion cells.
    double count = double(axes.repetitions) * double(axes.topologies.size()) * double(axes.placements.size()) *
                   double(axes.threads.size()) * double(axes.backends.size());
    for (const Setting& s : all) count *= double(s.values.size());
    if (count + double(cells.size()) > double(kMaxCells)) {
      const toml::node& at = all.empty() ? entry_node : *all.front().nodes.front();
      check_.fail(at, "the matrix would have " + std::to_string(static_cast<unsigned long long>(count) + cells.size()) +
                          " cells (the most is " + std::to_string(kMaxCells) + "): fewer sweep values or repetitions");
    }
    std::vector<std::size_t> point(all.size(), 0);
    while (true) {
      Cell c = proto;
      c.params = values_at(params, point, 0, &c.sweep);
      c.backend_params = values_at(backend_params, point, params.size(), &c.sweep);
      if (c.source_kind == "workload") {  // each point's values as `kmbench workload` reads them, before any cell runs
        const toml::node& at = all.empty() ? entry_node : *all.front().nodes.front();
        std::map<std::string, std::string> values(c.params.begin(), c.params.end());
        if (const auto seed = values.find("seed"); seed != values.end()) {  // the cell's --seed, not the workload's
          if (!base::parse_count(seed->second)) {
            check_.fail(at, "seed '" + seed->second + "' is not a whole number from 0 to 2^64 - 1");
          }
          values.erase(seed);
        }
        try {
          workloads::resolve_params(c.source, values);
        } catch (const UsageError& e) {
          check_.fail(at, e.what());
        }
      }
      if (!c.sweep.empty()) {
        c.base_label = proto.label;
        std::string at;
        for (const auto& [k, v] : c.sweep) at += (at.empty() ? "" : ",") + k + "=" + v;
        c.label = proto.label + "@" + at;
        if (!labels_.insert(c.label).second) {
          check_.fail(*all.front().nodes.front(), "sweep point label '" + c.label + "' is used twice");
        }
      }
      expand(c, axes, cells);
      std::size_t i = all.size();  // the next point: the last setting's values turn fastest
      while (i > 0 && ++point[i - 1] == all[i - 1].values.size()) point[--i] = 0;
      if (i == 0) break;
    }
  }

  static void expand(const Cell& proto, const Axes& axes, std::vector<Cell>& cells) {
    for (unsigned rep = 0; rep < axes.repetitions; ++rep) {
      for (const auto& topo : axes.topologies) {
        for (const auto& placement : axes.placements) {
          for (unsigned threads : axes.threads) {
            for (const auto& backend : axes.backends) {
              Cell c = proto;
              c.backend = backend;
              c.threads = threads;
              c.placement = placement;
              c.topology = topo;
              c.mode = axes.mode;
              c.repetition = rep;
              c.timeout_s = axes.timeout_s;
              c.group = safe_id(c.label) + "." + safe_id(backend) + ".t" + std::to_string(threads) + "." +
                        placement + "." + topology_id(topo) + "." + axes.mode;
              c.id = c.group + ".r" + std::to_string(rep);
              cells.push_back(std::move(c));
            }
          }
        }
      }
    }
  }

  static std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& x : items) out += (out.empty() ? "" : ", ") + x;
    return out;
  }
  static std::string names(const std::vector<Catalog::Workload>& workloads) {
    std::string out;
    for (const auto& w : workloads) out += (out.empty() ? "" : ", ") + w.name;
    return out;
  }

  const Checker& check_;
  const Catalog& catalog_;
  const std::string& path_;
  std::set<std::string> labels_;
  std::set<std::string> kmt_checked_;  // .kmt files decoded (check_kmt)
};

}  // namespace

std::string text_hash(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h = (h ^ c) * 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

unsigned topology_nodes(const std::string& spec, const Catalog& catalog) {
  if (spec == "real") {
    return catalog.real_nodes;
  }
  const bool synthetic = spec.rfind("synthetic:", 0) == 0;
  const bool xml = spec.rfind("xml:", 0) == 0;
  if (!synthetic && !xml) {
    throw UsageError("topology '" + spec + "' must be \"real\", \"synthetic:<hwloc string>\" or \"xml:<path>\"");
  }
  const std::string arg = spec.substr(synthetic ? 10 : 4);
  hwloc_topology_t topo;
  hwloc_topology_init(&topo);
  const int set = synthetic ? hwloc_topology_set_synthetic(topo, arg.c_str())
                            : hwloc_topology_set_xml(topo, arg.c_str());
  if (set != 0 || hwloc_topology_load(topo) != 0) {
    hwloc_topology_destroy(topo);
    throw UsageError("topology '" + spec + "' cannot be loaded by hwloc");
  }
  const int nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  hwloc_topology_destroy(topo);
  return nodes > 0 ? static_cast<unsigned>(nodes) : 1;
}

Catalog default_catalog() {
  Catalog c;
  for (const BackendInfo& b : all_backends()) {
    c.backends.push_back(b.name);
    c.backend_params[b.name] = b.params;
  }
  for (const workloads::WorkloadInfo& w : workloads::all_workloads()) {
    Catalog::Workload entry{std::string(w.name), {"seed"}};
    for (const workloads::ParamSpec& p : w.params) {
      entry.params.emplace_back(p.key);
    }
    c.workloads.push_back(std::move(entry));
  }
  c.real_nodes = numa_available() < 0 ? 1 : static_cast<unsigned>(numa_max_node() + 1);
  return c;
}

Matrix parse_matrix(std::string_view text, const std::string& path, const Catalog& catalog) {
  Checker check(path, catalog);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw InputError(path, e.source().begin.line, std::string(e.description()));
  }
  check.known_keys(root,
                   {"name", "seed", "backends", "threads", "placements", "topology", "mode",
                    "repetitions", "timeout_s", "workload", "trace", "profile"},
                   "the matrix");
  Matrix m;
  m.path = path;
  m.text = std::string(text);
  m.hash = text_hash(text);
  m.name = std::filesystem::path(path).stem().string();
  if (const toml::node* n = root.get("name")) {
    m.name = check.string_of(*n, "name");
  }
  m.seed = 1;
  if (const toml::node* n = root.get("seed")) {
    m.seed = static_cast<std::uint64_t>(check.integer_of(*n, "seed", 0, INT64_MAX));
  }
  Axes top;
  check.apply(root, top);

  EntryReader reader(check, catalog, path);
  for (const char* kind : {"workload", "trace", "profile"}) {
    const toml::node* list = root.get(kind);
    if (list == nullptr) {
      continue;
    }
    const toml::array* arr = list->as_array();
    if (arr == nullptr) {
      check.fail(*list, std::string("'") + kind + "' must be an array of tables ([[" + kind + "]])");
    }
    for (const toml::node& entry_node : *arr) {
      reader.read(kind, entry_node, top, m.cells);
    }
  }
  if (m.cells.empty()) {
    throw InputError(path, 1, "the matrix has no [[workload]], [[trace]] or [[profile]] entries");
  }
  std::set<std::string> ids;
  for (const Cell& c : m.cells) {
    if (!ids.insert(c.id).second) {
      throw InputError(path, c.line, "two cells would be named '" + c.id +
                                         "': a backend, thread count or placement is listed twice");
    }
  }
  return m;
}

Matrix load_matrix(const std::string& path, const Catalog& catalog) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw InputError(path, "is a directory, not a matrix file (the run directory goes after -o)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw InputError(path, std::string("cannot read the matrix file: ") + std::strerror(errno));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    throw InputError(path, std::string("cannot read the matrix file: ") + std::strerror(errno));
  }
  return parse_matrix(buf.str(), path, catalog);
}

}  // namespace kmbench::matrix
