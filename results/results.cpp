#include "results/results.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "base/errors.h"
#include "base/file_io.h"
#include "base/json_nesting.h"

namespace kmbench::results {
namespace fs = std::filesystem;

void write_atomic(const std::string& path, const std::string& text) { base::write_file_atomic(path, text); }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw InputError(path, "cannot read");
  }
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw InputError(path, "cannot read");
  // A run's files nest a few levels; far deeper would overflow the parser's stack.
  constexpr std::size_t kMaxNesting = 64;
  if (const auto at = base::json_nested_beyond(text, kMaxNesting)) {
    throw InputError(
        path, "byte " + std::to_string(*at) + ": JSON nested more than " + std::to_string(kMaxNesting) + " deep");
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(path, "byte " + std::to_string(e.byte) + ": not valid JSON");
  } catch (const nlohmann::json::exception& e) {  // a number beyond a double
    throw InputError(path, std::string("not valid JSON: ") + e.what());
  }
}

std::string cells_dir(const std::string& run_dir) { return (fs::path(run_dir) / "cells").string(); }
std::string cell_path(const std::string& run_dir, const std::string& id) {
  return (fs::path(cells_dir(run_dir)) / (id + ".json")).string();
}
bool holds_cell_files(const std::string& run_dir) {
  std::error_code ec;
  const fs::path cells = cells_dir(run_dir);
  if (!fs::is_directory(cells, ec)) return false;
  return fs::directory_iterator(cells, ec) != fs::directory_iterator();
}
std::string index_path(const std::string& run_dir) {
  return (fs::path(run_dir) / "index.json").string();
}

std::vector<nlohmann::json> load_cells(const std::string& run_dir) {
  std::vector<nlohmann::json> out;
  if (!fs::is_directory(cells_dir(run_dir))) {
    return out;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(cells_dir(run_dir))) {
    if (e.path().extension() == ".json") {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    nlohmann::json j = read_json(f.string());
    check_cell_file(j, f.string());
    out.push_back(std::move(j));
  }
  return out;
}

void check_cell_agrees(const nlohmann::json& j, const std::string& path, const nlohmann::json& entry,
                       const std::string& index) {
  const auto agree = [&](const std::string& field, const nlohmann::json& mine, const nlohmann::json& theirs,
                         const std::string& key) {
    if (mine != theirs) {
      throw InputError(
          path, field + ": is " + mine.dump() + ", but its entry in " + index + " has " + key + " " + theirs.dump());
    }
  };
  const nlohmann::json& cell = j.at("cell");  // there: check_cell_file came first
  for (const char* key : {"id", "group", "backend", "label", "source_kind", "threads", "placement", "topology", "mode",
                          "repetition", "sweep", "base_label"}) {
    if (cell.contains(key) && entry.contains(key)) agree(std::string("cell.") + key, cell[key], entry[key], key);
  }
  agree("status", j.at("status"), entry.value("status", nlohmann::json()), "status");
}

void check_cell_file(const nlohmann::json& j, const std::string& path, const std::string& id) {
  const auto bad = [&](const std::string& field, const std::string& what) {
    throw InputError(path, field + ": " + what);
  };
  if (!j.is_object() || j.value("schema", nlohmann::json()) != kCellFileSchema) {
    throw InputError(path, std::string("not a ") + kCellFileSchema + " cell file");
  }
  const auto object = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_object()) bad(key, "is not an object");
    return j[key];
  };
  const nlohmann::json& cell = object("cell");
  object("run");
  if (!cell.value("id", nlohmann::json()).is_string()) bad("cell.id", "is not a string");
  if (!id.empty() && cell["id"] != id) bad("cell.id", "is " + cell["id"].dump() + ", not this file's cell " + id);
  for (const char* key : {"label", "backend", "placement", "topology", "mode", "source", "source_kind"}) {
    if (cell.contains(key) && !cell[key].is_string()) bad(std::string("cell.") + key, "is not a string");
  }
  for (const char* key : {"threads", "repetition"}) {
    if (cell.contains(key) && !cell[key].is_number_unsigned()) bad(std::string("cell.") + key, "is not a count");
  }
  if (cell.contains("params")) {
    const nlohmann::json& params = cell["params"];
    if (!params.is_array()) bad("cell.params", "is not a list");
    for (std::size_t i = 0; i < params.size(); ++i) {
      const nlohmann::json& kv = params[i];
      if (!kv.is_array() || kv.size() != 2 || !kv[0].is_string() || !kv[1].is_string()) {
        bad("cell.params[" + std::to_string(i) + "]", "is not a [key, value] pair of strings");
      }
    }
  }
  const nlohmann::json status = j.value("status", nlohmann::json());
  if (status != "ok" && status != "failed") bad("status", "is not ok or failed");
  const nlohmann::json failure = j.value("failure", nlohmann::json());
  if (!failure.is_null() && !failure.is_string()) bad("failure", "is not a string or null");
  for (const char* key : {"wall_s", "cpu_s"}) {
    if (j.contains(key) && !j[key].is_number()) bad(key, "is not a number");
  }
  if (status == "ok") {
    if (!j.contains("result")) bad("result", "is missing from an ok cell");
    const std::string why = check_cell_result(j["result"]);
    if (!why.empty()) bad("result", why);
  }
}

std::string check_cell_result(const nlohmann::json& r) {
  if (!r.is_object()) {
    return "the cell's JSON is not an object";
  }
  if (r.value("schema", "") != kCellResultSchema) {
    return std::string("the cell's JSON has schema '") + r.value("schema", "") + "', expected " +
           kCellResultSchema;
  }
  for (const char* key : {"backend", "events", "duration_ns", "ops_per_sec", "latency", "footprint"}) {
    if (!r.contains(key)) {
      return std::string("the cell's JSON lacks '") + key + "'";
    }
  }
  if (!r["events"].is_number() || !r["ops_per_sec"].is_number() || !r["duration_ns"].is_number()) {
    return "the cell's events, duration_ns or ops_per_sec is not a number";
  }
  return {};
}

namespace {

std::string bench_name(const nlohmann::json& c) {
  const std::string topo = c.value("topology", "real");
  std::string t = topo == "real" ? "real" : topo;
  std::replace(t.begin(), t.end(), ' ', '_');
  return c.value("label", "") + "/" + c.value("backend", "") + "/threads:" +
         std::to_string(c.value("threads", 0u)) + "/" + c.value("placement", "") + "/" + t + "/" +
         c.value("mode", "");
}

double number_at(const nlohmann::json& j, const nlohmann::json::json_pointer& p) {
  if (!j.contains(p)) {
    return NAN;
  }
  const auto& v = j.at(p);
  return v.is_number() ? v.get<double>() : NAN;
}

/// Columns of cells.csv: name and where in the cell file the value lives.
struct Column {
  const char* name;
  const char* pointer;
};
constexpr Column kColumns[] = {
    {"events", "/result/events"},
    {"duration_ns", "/result/duration_ns"},
    {"ops_per_sec", "/result/ops_per_sec"},
    {"allocator_ns_per_op", "/result/allocator_ns_per_op"},
    {"time_allocator_ns", "/result/time/allocator_ns"},
    {"time_touch_ns", "/result/time/touch_ns"},
    {"time_dma_ns", "/result/time/dma_ns"},
    {"time_wait_ns", "/result/time/wait_ns"},
    {"time_harness_ns", "/result/time/harness_ns"},
    {"time_thread_ns", "/result/time/thread_ns"},
    {"minor_faults_per_op", "/result/faults/minor_per_op"},
    {"alloc_p50_ns", "/result/latency/alloc/p50_ns"},
    {"alloc_p99_ns", "/result/latency/alloc/p99_ns"},
    {"alloc_p999_ns", "/result/latency/alloc/p999_ns"},
    {"alloc_max_ns", "/result/latency/alloc/max_ns"},
    {"free_p50_ns", "/result/latency/free/p50_ns"},
    {"free_p99_ns", "/result/latency/free/p99_ns"},
    {"page_alloc_p99_ns", "/result/latency/page_alloc/p99_ns"},
    {"dma_prepare_p99_ns", "/result/latency/dma_prepare/p99_ns"},
    {"peak_footprint_bytes", "/result/footprint/peak_footprint_bytes"},
    {"peak_live_bytes", "/result/footprint/peak_live_bytes"},
    {"fragmentation", "/result/footprint/fragmentation"},
    {"peak_sampled_footprint_bytes", "/result/footprint/peak_sampled_footprint_bytes"},
    {"final_live_blocks", "/result/final_live_blocks"},
    {"noblock_failures", "/result/noblock_failures"},
    {"dependency_wait_ns", "/result/dependency_wait_ns"},
    {"dma_transfers", "/result/dma/transfers"},
    {"dma_segments_per_transfer", "/result/dma/segments_per_transfer"},
    {"dma_bounce_bytes", "/result/dma/bounce_bytes"},
    {"dma_iommu_mappings", "/result/dma/iommu_mappings"},
    {"wall_s", "/wall_s"},
    {"cpu_s", "/cpu_s"},
};

std::string csv_field(std::string s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) {
    return s;
  }
  std::string out = "\"";
  for (char c : s) {
    out += c;
    if (c == '"') {
      out += '"';
    }
  }
  return out + "\"";
}

std::string number_text(double v) {
  if (std::isnan(v)) {
    return "";
  }
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}

}  // namespace

nlohmann::json gbench_context(const nlohmann::json& index) {
  const nlohmann::json env = index.value("environment", nlohmann::json::object());
  const nlohmann::json machine = env.value("machine", nlohmann::json::object());
  auto recorded = [](const nlohmann::json& obj, const char* key) {
    return obj.is_object() && obj.contains(key) ? obj[key] : nlohmann::json(nullptr);
  };
  // Google Benchmark's meaning: scaling is enabled unless every governor is "performance".
  nlohmann::json scaling = nullptr;
  if (const auto gov = recorded(machine, "cpu_governor"); gov.is_string()) {
    scaling = gov != "performance";
  } else if (gov.is_object()) {
    scaling = gov.size() != 1 || !gov.contains("performance");
  }
  nlohmann::json caches = nullptr;
  if (const auto recorded_caches = recorded(machine, "caches"); recorded_caches.is_array()) {
    caches = nlohmann::json::array();
    for (const auto& c : recorded_caches) {
      caches.push_back({{"type", recorded(c, "type")}, {"level", recorded(c, "level")},
                        {"size", recorded(c, "size_bytes")}, {"num_sharing", recorded(c, "num_sharing")}});
    }
  }
  nlohmann::json build_type = recorded(recorded(env, "build"), "type");
  if (build_type.is_string()) {
    std::string t = build_type;
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char ch) { return std::tolower(ch); });
    build_type = t;
  }
  return {
      {"date", index.value("created_utc", "")},
      {"host_name", machine.value("hostname", "")},
      {"executable", "kmbench run " + index["matrix"].value("path", "")},
      {"num_cpus", recorded(machine, "online_cpus")},
      {"mhz_per_cpu", recorded(machine, "cpu_mhz")},
      {"cpu_scaling_enabled", scaling},
      {"caches", caches},
      {"load_avg", recorded(machine, "load_avg")},
      {"library_build_type", build_type},
      {"kmbench_run_id", index.value("run_id", "")},
      {"kmbench_matrix_hash", index["matrix"].value("hash", "")},
      {"kmbench_cpu_model", machine.value("cpu_model", "")},
  };
}

nlohmann::json gbench_export(const nlohmann::json& index, const std::vector<nlohmann::json>& cells) {
  const nlohmann::json context = gbench_context(index);
  std::set<std::string> names;
  std::map<std::string, unsigned> reps;
  for (const auto& c : cells) {
    if (c["status"] == "ok") {
      names.insert(bench_name(c["cell"]));
      reps[bench_name(c["cell"])]++;
    }
  }
  std::map<std::string, unsigned> family;
  for (const auto& n : names) {
    family.emplace(n, static_cast<unsigned>(family.size()));
  }
  nlohmann::json benchmarks = nlohmann::json::array();
  for (const auto& c : cells) {
    if (c["status"] != "ok") {
      continue;  // a failed cell has no time: it is absent, never zero
    }
    const auto& cell = c["cell"];
    const auto& r = c["result"];
    const std::string name = bench_name(cell);
    const double events = std::max(1.0, r.value("events", 0.0));
    nlohmann::json b = {
        {"name", name},
        {"family_index", family[name]},
        {"per_family_instance_index", 0},
        {"run_name", name},
        {"run_type", "iteration"},
        {"repetitions", reps[name]},
        {"repetition_index", cell.value("repetition", 0u)},
        {"threads", cell.value("threads", 1u)},
        {"iterations", static_cast<std::uint64_t>(events)},
        {"real_time", r.value("duration_ns", 0.0) / events},
        {"cpu_time", c.value("cpu_s", 0.0) * 1e9 / events},
        {"time_unit", "ns"},
        {"items_per_second", r.value("ops_per_sec", 0.0)},
    };
    for (const Column& col : kColumns) {
      const std::string p = col.pointer;
      if (p.rfind("/result/latency/", 0) == 0 || p.rfind("/result/footprint/", 0) == 0 ||
          p == "/result/allocator_ns_per_op") {
        const double v = number_at(c, nlohmann::json::json_pointer(p));
        if (!std::isnan(v)) {
          b[col.name] = v;
        }
      }
    }
    benchmarks.push_back(std::move(b));
  }
  return {{"context", context}, {"benchmarks", benchmarks}};
}

std::string csv_export(const std::vector<nlohmann::json>& cells) {
  std::ostringstream out;
  out << "run_id,cell_id,status,failure,backend,source_kind,source,label,params,threads,placement,"
         "topology,mode,repetition";
  for (const Column& col : kColumns) {
    out << ',' << col.name;
  }
  out << '\n';
  for (const auto& c : cells) {
    const auto& cell = c["cell"];
    std::string params;
    for (const auto& p : cell.value("params", nlohmann::json::array())) {
      params += (params.empty() ? "" : ";") + p.at(0).get<std::string>() + "=" +
                p.at(1).get<std::string>();
    }
    const nlohmann::json failure = c.value("failure", nlohmann::json());
    out << csv_field(c["run"].value("run_id", "")) << ',' << csv_field(cell.value("id", "")) << ','
        << csv_field(c.value("status", "")) << ',' << csv_field(failure.is_string() ? failure.get<std::string>() : "")
        << ',' << csv_field(cell.value("backend", "")) << ',' << csv_field(cell.value("source_kind", "")) << ','
        << csv_field(cell.value("source", "")) << ',' << csv_field(cell.value("label", "")) << ',' << csv_field(params)
        << ',' << cell.value("threads", 0u) << ',' << csv_field(cell.value("placement", "")) << ','
        << csv_field(cell.value("topology", "")) << ',' << csv_field(cell.value("mode", "")) << ','
        << cell.value("repetition", 0u);
    const bool ok = c.value("status", "") == "ok";
    for (const Column& col : kColumns) {
      const std::string p = col.pointer;
      const bool from_result = p.rfind("/result/", 0) == 0;
      out << ',' << (from_result && !ok ? "" : number_text(number_at(c, nlohmann::json::json_pointer(p))));
    }
    out << '\n';
  }
  return out.str();
}

void write_exports(const std::string& run_dir) {
  const nlohmann::json index = read_json(index_path(run_dir));
  const auto cells = load_cells(run_dir);
  write_atomic((fs::path(run_dir) / "benchmark.json").string(), gbench_export(index, cells).dump(2) + "\n");
  write_atomic((fs::path(run_dir) / "cells.csv").string(), csv_export(cells));
}

/// The shards' imported captures, one entry per label, with their cached .kmt files copied.
static nlohmann::json merge_traces(const std::vector<std::string>& inputs, const std::string& out_dir) {
  nlohmann::json traces = nlohmann::json::array();
  std::set<std::string> labels;
  for (const auto& in : inputs) {
    for (const auto& t : read_json(index_path(in)).value("traces", nlohmann::json::array())) {
      if (!labels.insert(t.value("label", "")).second) {
        continue;
      }
      traces.push_back(t);
      const fs::path from = fs::path(in) / t.value("kmt", ""), to = fs::path(out_dir) / t.value("kmt", "");
      if (fs::is_regular_file(from) && !fs::exists(to)) {
        fs::create_directories(to.parent_path());
        fs::copy_file(from, to);
      }
    }
  }
  return traces;
}

/// A name that stays inside the directory it is joined to: not empty, no
/// "/", not "." or "..".
static bool plain_name(const nlohmann::json& v) {
  if (!v.is_string()) return false;
  const std::string& s = v.get_ref<const std::string&>();
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos;
}

/// What merge_runs reads of a shard's index, checked before anything is
/// copied: a shard written by hand or damaged is refused naming the field,
/// and no cell id or capture path of it leads outside the directories.
void check_index(const nlohmann::json& index, const std::string& path) {
  const auto bad = [&](const std::string& field, const std::string& what) {
    throw InputError(path, field + ": " + what);
  };
  if (!index.is_object() || index.value("schema", nlohmann::json()) != kRunSchema) {
    throw InputError(path, std::string("not a ") + kRunSchema + " index");
  }
  if (!index.contains("matrix") || !index["matrix"].is_object()) bad("matrix", "is not an object");
  if (!index.contains("seed")) bad("seed", "is missing");
  if (!index.contains("order") || !index["order"].is_array()) bad("order", "is not a list");
  for (std::size_t i = 0; i < index["order"].size(); ++i) {
    if (!index["order"][i].is_string()) bad("order[" + std::to_string(i) + "]", "is not a cell id");
  }
  if (!index.contains("cells") || !index["cells"].is_array()) bad("cells", "is not a list");
  for (std::size_t i = 0; i < index["cells"].size(); ++i) {
    const nlohmann::json& e = index["cells"][i];
    const std::string at = "cells[" + std::to_string(i) + "]";
    if (!e.is_object()) bad(at, "is not an object");
    if (!plain_name(e.value("id", nlohmann::json()))) bad(at + ".id", "is not a cell id (a name without '/')");
    const nlohmann::json status = e.value("status", nlohmann::json());
    if (status != "ok" && status != "failed" && status != "pending") {
      bad(at + ".status", "is not ok, failed or pending");
    }
  }
  const nlohmann::json traces = index.value("traces", nlohmann::json::array());
  if (!traces.is_array()) bad("traces", "is not a list");
  for (std::size_t i = 0; i < traces.size(); ++i) {
    if (!traces[i].is_object() || !traces[i].value("label", nlohmann::json()).is_string()) {
      bad("traces[" + std::to_string(i) + "].label", "is not a string");
    }
    const nlohmann::json kmt = traces[i].value("kmt", nlohmann::json());
    const fs::path p = kmt.is_string() ? fs::path(kmt.get<std::string>()) : fs::path();
    if (p.empty() || p.is_absolute() || std::find(p.begin(), p.end(), "..") != p.end()) {
      bad("traces[" + std::to_string(i) + "].kmt", "is not a path inside the run directory");
    }
  }
}

void merge_runs(const std::vector<std::string>& inputs, const std::string& out_dir) {
  if (inputs.empty()) {
    throw UsageError("merge needs at least one run directory");
  }
  nlohmann::json merged;
  std::map<std::string, nlohmann::json> entries;  // cell id → index entry
  std::map<std::string, std::string> from;        // cell id → source run dir
  nlohmann::json shards = nlohmann::json::array();
  std::map<std::string, std::string> shard_of;  // "K/N" → the run directory holding it
  std::set<fs::path> seen;
  for (const auto& in : inputs) {
    if (fs::absolute(in) == fs::absolute(out_dir)) {
      throw UsageError("merge: the output directory " + out_dir + " is also an input");
    }
    if (!seen.insert(fs::weakly_canonical(in)).second) throw UsageError("merge: " + in + " is given twice");
    const nlohmann::json index = read_json(index_path(in));
    check_index(index, index_path(in));
    if (merged.is_null()) {
      merged = index;
    } else if (index["matrix"].value("hash", nlohmann::json()) != merged["matrix"].value("hash", nlohmann::json()) ||
               index["seed"] != merged["seed"]) {
      throw InputError(index_path(in), "a run of another matrix file or seed than " +
                                           index_path(inputs.front()) + ": cannot merge");
    } else if (!merged.contains("latency_reference") && index.contains("latency_reference")) {
      merged["latency_reference"] = index["latency_reference"];  // the first shard's that has one
    }
    // Shards of one run split it N ways, each K once: two runs of K/N, or of K/N and K'/N', do not add up.
    for (const auto& s : index.value("shards", nlohmann::json::array())) {
      const nlohmann::json text = s.is_object() ? s.value("shard", nlohmann::json()) : nlohmann::json();
      const std::string k_of_n = text.is_string() ? text.get<std::string>() : "";
      const std::size_t slash = k_of_n.find('/');
      if (slash == std::string::npos) throw InputError(index_path(in), "shards: an entry without its shard K/N");
      const auto [it, fresh] = shard_of.emplace(k_of_n, in);
      if (!fresh) throw InputError(index_path(in), "shard " + k_of_n + " is in " + it->second + " too: cannot merge");
      const std::string n = k_of_n.substr(slash + 1), first = shard_of.begin()->first;
      if (first.substr(first.find('/') + 1) != n) {
        throw InputError(index_path(in), "shard " + k_of_n + " splits the run another way than shard " + first + " (" +
                                             shard_of.begin()->second + "): cannot merge");
      }
    }
    for (const auto& s : index.value("shards", nlohmann::json::array())) {
      shards.push_back(s);
    }
    for (const auto& e : index["cells"]) {
      const std::string id = e["id"];
      auto it = entries.find(id);
      const bool better = it == entries.end() || (it->second["status"] != "ok" && e["status"] == "ok") ||
                          (it->second["status"] == "pending" && e["status"] == "failed");
      if (better) {
        entries[id] = e;
        from[id] = in;
      }
    }
  }
  // Every cell file is read and checked before the merged run is begun.
  std::map<std::string, nlohmann::json> files;
  for (const auto& [id, e] : entries) {
    if (e["status"] == "pending") {
      continue;
    }
    const std::string src = cell_path(from[id], id);
    nlohmann::json cell = read_json(src);
    check_cell_file(cell, src, id);
    check_cell_agrees(cell, src, e, index_path(from[id]));
    files.emplace(id, std::move(cell));
  }
  fs::create_directories(cells_dir(out_dir));
  for (const auto& [id, cell] : files) {
    write_atomic(cell_path(out_dir, id), cell.dump(1) + "\n");
    const fs::path err = fs::path(cells_dir(from[id])) / (id + ".stderr");
    if (fs::exists(err)) {
      fs::copy_file(err, fs::path(cells_dir(out_dir)) / (id + ".stderr"),
                    fs::copy_options::overwrite_existing);
    }
  }
  nlohmann::json cells = nlohmann::json::array();
  std::size_t ok = 0, failed = 0, pending = 0;
  for (const auto& id : merged["order"]) {
    auto it = entries.find(id.get<std::string>());
    if (it == entries.end()) {
      continue;
    }
    cells.push_back(it->second);
    const std::string st = it->second["status"];
    (st == "ok" ? ok : st == "failed" ? failed : pending)++;
  }
  merged["cells"] = cells;
  merged["shards"] = shards;
  merged["traces"] = merge_traces(inputs, out_dir);
  merged["merged_from"] = inputs;
  merged["summary"] = {{"cells", cells.size()}, {"ok", ok}, {"failed", failed}, {"pending", pending},
                       {"matrix_cells", merged["order"].size()}};
  write_atomic(index_path(out_dir), merged.dump(1) + "\n");
  write_exports(out_dir);
}

}  // namespace kmbench::results
