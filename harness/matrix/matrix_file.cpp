// Matrix files: TOML → checked cells. Every rejection names the file and line.
#include <hwloc.h>
#include <numa.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "allocators/registry.h"
#include "base/errors.h"
#include "harness/matrix/matrix.h"
#include "workloads/workloads.h"

namespace kmbench::matrix {
namespace {

constexpr unsigned kMaxThreads = 1024;
constexpr unsigned kMaxRepetitions = 1000;
const std::set<std::string> kPlacements = {"local", "remote", "interleaved"};
const std::set<std::string> kModes = {"fast", "paced"};

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
      if (n->is_integer()) {
        axes.threads.push_back(static_cast<unsigned>(integer_of(*n, "threads", 1, kMaxThreads)));
      } else if (const toml::array* a = n->as_array(); a && !a->empty()) {
        for (const toml::node& e : *a) {
          axes.threads.push_back(static_cast<unsigned>(integer_of(e, "threads", 1, kMaxThreads)));
        }
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
        if (!kPlacements.count(p)) {
          fail(*at, "unknown placement '" + p + "' (known: local, remote, interleaved)");
        }
        axes.placements.push_back(p);
      }
    }
    if (const toml::node* n = t.get("mode")) {
      axes.mode = string_of(*n, "mode");
      if (!kModes.count(axes.mode)) {
        fail(*n, "unknown mode '" + axes.mode + "' (known: fast, paced)");
      }
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

  /// Placements other than local need two nodes in the topology.
  void check_placements(const Axes& axes, const toml::node& at) const {
    for (const auto& topo : axes.topologies) {
      const unsigned nodes = topology_nodes(topo, catalog_);
      for (const auto& p : axes.placements) {
        if (p != "local" && nodes < 2) {
          fail(at, "placement '" + p + "' needs two NUMA nodes, topology '" + topo + "' has " +
                       std::to_string(nodes) +
                       " (run it on a multi-node machine, or simulate two nodes with a synthetic topology)");
        }
      }
    }
  }

  /// [[...]].replay = { drain = true, touch = "pages", speed = 2.0, sample_ms = 5, node = 0, latency = false,
  ///                     warmup = 1 }
  std::vector<std::pair<std::string, std::string>> replay_options(const toml::node& n) const {
    const toml::table* t = n.as_table();
    if (t == nullptr) {
      fail(n, "'replay' must be a table");
    }
    known_keys(*t, {"drain", "touch", "speed", "sample_ms", "node", "latency", "warmup"}, "'replay'");
    std::vector<std::pair<std::string, std::string>> out;
    auto flag = [&](const char* key, const char* option, bool when) {
      if (const toml::node* v = t->get(key)) {
        if (!v->is_boolean()) {
          fail(*v, std::string("'") + key + "' must be true or false");
        }
        if (*v->value<bool>() == when) {
          out.emplace_back(option, "");
        }
      }
    };
    flag("drain", "--drain", true);
    flag("latency", "--no-latency", false);
    if (const toml::node* v = t->get("touch")) {
      const std::string touch = string_of(*v, "touch");
      if (touch != "none" && touch != "first" && touch != "pages") {
        fail(*v, "'touch' must be none, first or pages");
      }
      out.emplace_back("--touch", touch);
    }
    for (const char* key : {"speed", "sample_ms"}) {
      if (const toml::node* v = t->get(key)) {
        const double x = number_of(*v, key);
        if (!(x > 0 && x < 1e9)) {
          fail(*v, std::string("'") + key + "' must be positive");
        }
        out.emplace_back(std::string("--") + (std::string(key) == "speed" ? "speed" : "sample-ms"),
                         scalar_text(*v));
      }
    }
    if (const toml::node* v = t->get("node")) {
      out.emplace_back("--node", std::to_string(integer_of(*v, "node", -1, 1023)));
    }
    if (const toml::node* v = t->get("warmup")) {
      out.emplace_back("--warmup", std::to_string(integer_of(*v, "warmup", 0, 100)));
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
                    "repetitions", "timeout_s", "workload", "trace"},
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

  std::set<std::string> labels;
  const std::set<std::string> entry_keys = {"name", "path", "label", "params", "replay", "backend_params",
                                            "backends", "threads", "placements", "topology", "mode",
                                            "repetitions", "timeout_s"};
  auto add_entries = [&](const char* kind) {
    const toml::node* list = root.get(kind);
    if (list == nullptr) {
      return;
    }
    const toml::array* arr = list->as_array();
    if (arr == nullptr) {
      check.fail(*list, std::string("'") + kind + "' must be an array of tables ([[" + kind + "]])");
    }
    for (const toml::node& entry_node : *arr) {
      const toml::table* entry = entry_node.as_table();
      if (entry == nullptr) {
        check.fail(entry_node, std::string("each [[") + kind + "]] must be a table");
      }
      const std::string where = std::string("[[") + kind + "]]";
      check.known_keys(*entry, entry_keys, where);
      const bool is_workload = std::string(kind) == "workload";
      const char* name_key = is_workload ? "name" : "path";
      const toml::node* name_node = entry->get(name_key);
      if (name_node == nullptr) {
        check.fail(entry_node, where + " needs '" + name_key + "'");
      }
      if (entry->get(is_workload ? "path" : "name") != nullptr) {
        check.fail(entry_node, where + " takes '" + name_key + "', not '" +
                                   (is_workload ? "path" : "name") + "'");
      }
      std::string source = check.string_of(*name_node, name_key);
      std::string label = source;
      const Catalog::Workload* workload = nullptr;
      if (is_workload) {
        for (const auto& w : catalog.workloads) {
          if (w.name == source) {
            workload = &w;
          }
        }
        if (workload == nullptr) {
          std::string list;
          for (const auto& w : catalog.workloads) {
            list += (list.empty() ? "" : ", ") + w.name;
          }
          check.fail(*name_node, "unknown workload '" + source + "' (known: " +
                                     (list.empty() ? "none in this build" : list) + ")");
        }
      } else {
        std::filesystem::path p(source);
        if (p.is_relative()) {
          p = std::filesystem::absolute(std::filesystem::path(path).parent_path() / p);
        }
        if (!std::filesystem::is_regular_file(p)) {
          check.fail(*name_node, "trace file '" + p.string() + "' does not exist");
        }
        source = p.lexically_normal().string();
        label = std::filesystem::path(source).stem().string();
      }
      if (const toml::node* n = entry->get("label")) {
        label = check.string_of(*n, "label");
      }
      if (label.empty() || !labels.insert(label).second) {
        check.fail(entry_node, "label '" + label +
                                   "' is empty or used twice: give each entry a distinct 'label'");
      }
      std::vector<std::pair<std::string, std::string>> params;
      if (const toml::node* n = entry->get("params")) {
        const toml::table* pt = n->as_table();
        if (pt == nullptr) {
          check.fail(*n, "'params' must be a table");
        }
        for (auto&& [key, value] : *pt) {
          const std::string k(key.str());
          if (workload != nullptr &&
              std::find(workload->params.begin(), workload->params.end(), k) ==
                  workload->params.end()) {
            std::string list;
            for (const auto& p : workload->params) {
              list += (list.empty() ? "" : ", ") + p;
            }
            check.fail(key.source(), "workload '" + source + "' has no parameter '" + k +
                                         "' (known: " + (list.empty() ? "none" : list) + ")");
          }
          if (!value.is_value()) {
            check.fail(value, "parameter '" + k + "' must be a string, number or boolean");
          }
          params.emplace_back(k, scalar_text(value));
        }
      }
      std::vector<std::pair<std::string, std::string>> options;
      if (const toml::node* n = entry->get("replay")) {
        options = check.replay_options(*n);
      }
      std::vector<std::pair<std::string, std::string>> backend_params;
      if (const toml::node* n = entry->get("backend_params")) {
        const toml::table* bt = n->as_table();
        if (bt == nullptr) {
          check.fail(*n, "'backend_params' must be a table");
        }
        for (auto&& [key, value] : *bt) {
          if (!value.is_value()) {
            check.fail(value, "backend parameter '" + std::string(key.str()) + "' must be a scalar");
          }
          backend_params.emplace_back(std::string(key.str()), scalar_text(value));
        }
      }
      Axes axes = top;
      check.apply(*entry, axes);
      if (axes.backends.empty()) {
        check.fail(entry_node, where + " has no backends: set 'backends' at the top or here");
      }
      check.check_placements(axes, entry_node);
      const unsigned line = entry_node.source().begin.line;
      for (unsigned rep = 0; rep < axes.repetitions; ++rep) {
        for (const auto& topo : axes.topologies) {
          for (const auto& placement : axes.placements) {
            for (unsigned threads : axes.threads) {
              for (const auto& backend : axes.backends) {
                Cell c;
                c.backend = backend;
                c.source_kind = kind;
                c.source = source;
                c.label = label;
                c.params = params;
                c.options = options;
                c.backend_params = backend_params;
                c.threads = threads;
                c.placement = placement;
                c.topology = topo;
                c.mode = axes.mode;
                c.repetition = rep;
                c.timeout_s = axes.timeout_s;
                c.line = line;
                c.group = safe_id(label) + "." + safe_id(backend) + ".t" + std::to_string(threads) +
                          "." + placement + "." + topology_id(topo) + "." + axes.mode;
                c.id = c.group + ".r" + std::to_string(rep);
                m.cells.push_back(std::move(c));
              }
            }
          }
        }
      }
    }
  };
  add_entries("workload");
  add_entries("trace");
  if (m.cells.empty()) {
    throw InputError(path, 1, "the matrix has no [[workload]] or [[trace]] entries");
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
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw InputError(path, "cannot read the matrix file");
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_matrix(buf.str(), path, catalog);
}

nlohmann::json cell_json(const Cell& c) {
  auto pairs = [](const std::vector<std::pair<std::string, std::string>>& v) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [k, x] : v) {
      out.push_back({k, x});
    }
    return out;
  };
  const nlohmann::json params = pairs(c.params);
  return {{"id", c.id},           {"group", c.group},         {"backend", c.backend},
          {"source_kind", c.source_kind}, {"source", c.source}, {"label", c.label},
          {"params", params},     {"options", pairs(c.options)},
          {"backend_params", pairs(c.backend_params)}, {"threads", c.threads},     {"placement", c.placement},
          {"topology", c.topology}, {"mode", c.mode},         {"repetition", c.repetition},
          {"timeout_s", c.timeout_s}, {"line", c.line}};
}

Cell cell_from_json(const nlohmann::json& j) {
  Cell c;
  c.id = j.at("id");
  c.group = j.at("group");
  c.backend = j.at("backend");
  c.source_kind = j.at("source_kind");
  c.source = j.at("source");
  c.label = j.at("label");
  for (const auto& p : j.at("params")) {
    c.params.emplace_back(p.at(0), p.at(1));
  }
  for (const auto& p : j.value("options", nlohmann::json::array())) {
    c.options.emplace_back(p.at(0), p.at(1));
  }
  for (const auto& p : j.value("backend_params", nlohmann::json::array())) {
    c.backend_params.emplace_back(p.at(0), p.at(1));
  }
  c.threads = j.at("threads");
  c.placement = j.at("placement");
  c.topology = j.at("topology");
  c.mode = j.at("mode");
  c.repetition = j.at("repetition");
  c.timeout_s = j.at("timeout_s");
  c.line = j.value("line", 0u);
  return c;
}

std::vector<Cell> run_order(const std::vector<Cell>& cells, std::uint64_t seed) {
  // splitmix64: the same order from the same seed on every platform.
  std::uint64_t state = seed;
  auto next = [&state] {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  unsigned reps = 0;
  for (const Cell& c : cells) {
    reps = std::max(reps, c.repetition + 1);
  }
  std::vector<Cell> out;
  for (unsigned rep = 0; rep < reps; ++rep) {
    std::vector<Cell> block;
    for (const Cell& c : cells) {
      if (c.repetition == rep) {
        block.push_back(c);
      }
    }
    for (std::size_t i = block.size(); i > 1; --i) {
      std::swap(block[i - 1], block[next() % i]);
    }
    out.insert(out.end(), block.begin(), block.end());
  }
  return out;
}

std::vector<Cell> shard_of(const std::vector<Cell>& ordered, unsigned k, unsigned n) {
  std::vector<Cell> out;
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    if (i % n == k - 1) {
      out.push_back(ordered[i]);
    }
  }
  return out;
}

std::pair<unsigned, unsigned> parse_shard(const std::string& text) {
  unsigned k = 0, n = 0;
  char slash = 0, extra = 0;
  std::istringstream in(text);
  if (!(in >> k >> slash >> n) || slash != '/' || (in >> extra) || n == 0 || k == 0 || k > n) {
    throw UsageError("--shard '" + text + "' must be K/N with 1 <= K <= N (e.g. 2/4)");
  }
  return {k, n};
}

}  // namespace kmbench::matrix
