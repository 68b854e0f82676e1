// Result files: atomic writes, exports that keep failed cells missing, merging shards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "base/errors.h"
#include "results/results.h"

namespace kmbench::results {
namespace {
namespace fs = std::filesystem;

nlohmann::json cell_file(const std::string& id, const std::string& group, bool ok, unsigned rep) {
  nlohmann::json result = nullptr;
  if (ok) {
    result = {{"schema", kCellResultSchema}, {"backend", "slab"}, {"events", 1000}, {"duration_ns", 2000},
              {"ops_per_sec", 5e8},
              {"latency", {{"alloc", {{"p50_ns", 10}, {"p99_ns", 40}}}}},
              {"footprint", {{"peak_footprint_bytes", 4096}, {"fragmentation", 1.5}}}};
  }
  return {{"schema", kCellFileSchema},
          {"run", {{"run_id", "r"}}},
          {"cell", {{"id", id}, {"group", group}, {"backend", "slab"}, {"label", "nic"}, {"threads", 2},
                    {"placement", "local"}, {"topology", "real"}, {"mode", "fast"}, {"repetition", rep},
                    {"source_kind", "workload"}, {"source", "nic"}, {"params", nlohmann::json::array()}}},
          {"status", ok ? "ok" : "failed"},
          {"failure", ok ? nlohmann::json(nullptr) : nlohmann::json("killed by signal 6 (SIGABRT)")},
          {"wall_s", 0.25},
          {"cpu_s", 0.5},
          {"result", result}};
}

TEST(Results, AtomicWriteReplacesWholeFile) {
  const auto dir = fs::temp_directory_path() / "kmbench_test_results_atomic";
  fs::create_directories(dir);
  const std::string p = (dir / "f.json").string();
  write_atomic(p, "first");
  write_atomic(p, "second");
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  EXPECT_EQ(s, "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}), 1);
  EXPECT_THROW(write_atomic((dir / "no" / "such" / "dir").string(), "x"), UsageError);  // the path is wrong
  fs::remove_all(dir);
}

TEST(Results, ReadJsonNamesTheFile) {
  const auto p = fs::temp_directory_path() / "kmbench_test_results_bad.json";
  std::ofstream(p) << "{\"a\": ";
  try {
    read_json(p.string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos);
  }
  fs::remove(p);
}

TEST(Results, CheckCellResultWantsContract3) {
  EXPECT_EQ(check_cell_result(cell_file("a", "g", true, 0)["result"]), "");
  EXPECT_NE(check_cell_result({{"schema", "other"}}), "");
  auto r = cell_file("a", "g", true, 0)["result"];
  r.erase("ops_per_sec");
  EXPECT_NE(check_cell_result(r).find("ops_per_sec"), std::string::npos);
}

TEST(Results, GbenchExportSkipsFailedCells) {
  const nlohmann::json index = {{"matrix", {{"path", "m.toml"}, {"hash", "h"}}}, {"run_id", "r"}};
  const std::vector<nlohmann::json> cells = {cell_file("g.r0", "g", true, 0), cell_file("g.r1", "g", false, 1),
                                             cell_file("g.r2", "g", true, 2)};
  const auto j = gbench_export(index, cells);
  ASSERT_EQ(j["benchmarks"].size(), 2u);
  const auto& b = j["benchmarks"][0];
  EXPECT_EQ(b["name"], "nic/slab/threads:2/local/real/fast");
  EXPECT_EQ(b["run_type"], "iteration");
  EXPECT_EQ(b["repetitions"], 2);
  EXPECT_DOUBLE_EQ(b["real_time"].get<double>(), 2.0);  // 2000 ns / 1000 events
  EXPECT_DOUBLE_EQ(b["cpu_time"].get<double>(), 0.5e9 / 1000);
  EXPECT_EQ(b["time_unit"], "ns");
  EXPECT_DOUBLE_EQ(b["items_per_second"].get<double>(), 5e8);
}

TEST(Results, GbenchContextWithNothingRecordedIsNullNotDefaults) {
  const nlohmann::json index = {{"matrix", {{"path", "m.toml"}}}, {"environment", nlohmann::json::object()}};
  const auto ctx = gbench_context(index);
  for (const char* key : {"num_cpus", "mhz_per_cpu", "cpu_scaling_enabled", "caches", "load_avg",
                          "library_build_type"}) {
    EXPECT_TRUE(ctx[key].is_null()) << key << ": " << ctx[key];
  }
  const auto no_env = gbench_export({{"matrix", {{"path", "m.toml"}}}}, {});
  EXPECT_TRUE(no_env["context"]["mhz_per_cpu"].is_null());
}

TEST(Results, CsvKeepsFailedCellsWithEmptyMetrics) {
  const std::string csv = csv_export({cell_file("g.r0", "g", true, 0), cell_file("g.r1", "g", false, 1)});
  std::istringstream in(csv);
  std::string header, ok, failed;
  std::getline(in, header);
  std::getline(in, ok);
  std::getline(in, failed);
  EXPECT_NE(header.find("ops_per_sec"), std::string::npos);
  EXPECT_NE(ok.find(",500000000,"), std::string::npos) << ok;
  EXPECT_NE(failed.find("killed by signal 6 (SIGABRT)"), std::string::npos);
  EXPECT_EQ(failed.find("500000000"), std::string::npos) << failed;
  EXPECT_NE(failed.find(",,,,"), std::string::npos) << failed;
}

TEST(Results, MergeRefusesOtherMatrices) {
  const auto root = fs::temp_directory_path() / "kmbench_test_results_merge";
  fs::remove_all(root);
  auto make = [&](const std::string& name, const std::string& hash, const std::string& id, bool ok, double l1_ns = 0,
                  const std::string& shard = "") {
    const std::string dir = (root / name).string();
    fs::create_directories(cells_dir(dir));
    write_atomic(cell_path(dir, id), cell_file(id, "g", ok, 0).dump());
    std::string k_of_n = shard.empty() ? name : shard;
    std::replace(k_of_n.begin(), k_of_n.end(), '-', '/');
    nlohmann::json index = {{"schema", kRunSchema},
                            {"run_id", name},
                            {"matrix", {{"hash", hash}, {"path", "m.toml"}}},
                            {"seed", 1},
                            {"order", {"g.r0", "g.r1"}},
                            {"shards", {{{"shard", k_of_n}}}},
                            {"cells", {{{"id", id}, {"group", "g"}, {"status", ok ? "ok" : "failed"}}}}};
    if (l1_ns > 0) index["latency_reference"] = {{"l1_ns", l1_ns}, {"dram_ns", 90.0}};
    write_atomic(index_path(dir), index.dump());
    return dir;
  };
  const std::string a = make("1-2", "h", "g.r0", true, 1.25), b = make("2-2", "h", "g.r1", false, 2.5);
  const std::string c = make("other", "h2", "g.r1", true, 0, "2/2");
  merge_runs({a, b}, (root / "merged").string());
  const auto merged = read_json(index_path((root / "merged").string()));
  EXPECT_EQ(merged["latency_reference"]["l1_ns"], 1.25);  // the shards' reference lines stay
  EXPECT_EQ(merged["summary"]["ok"], 1);
  EXPECT_EQ(merged["summary"]["failed"], 1);
  EXPECT_EQ(load_cells((root / "merged").string()).size(), 2u);
  EXPECT_TRUE(fs::exists(root / "merged" / "benchmark.json"));
  EXPECT_THROW(merge_runs({a, c}, (root / "merged2").string()), InputError);
  // Shards that do not add up to one run: one twice, or two split another way; a run given twice.
  const std::string again = make("again", "h", "g.r1", true, 0, "1/2");
  const std::string thirds = make("thirds", "h", "g.r1", true, 0, "2/3");
  const auto refusal = [&](const std::vector<std::string>& runs, const std::string& out) {
    try {
      merge_runs(runs, (root / out).string());
    } catch (const std::exception& e) {
      EXPECT_FALSE(fs::exists(root / out)) << "a refused merge wrote " << out;
      return std::string(e.what());
    }
    return std::string("merged");
  };
  EXPECT_EQ(refusal({a, again}, "m3"), index_path(again) + ": shard 1/2 is in " + a + " too: cannot merge");
  EXPECT_EQ(refusal({a, thirds}, "m4"),
            index_path(thirds) + ": shard 2/3 splits the run another way than shard 1/2 (" + a + "): cannot merge");
  EXPECT_EQ(refusal({a, a}, "m5"), "merge: " + a + " is given twice");
  fs::remove_all(root);
}

// A shard comes from another machine: what would make the merge read or
// write outside the directories, or stop with a library's message, is refused
// naming the file and the field, before anything is written.
TEST(Results, MergeRefusesADamagedShardNamingTheField) {
  const auto root = fs::temp_directory_path() / ("kmbench_test_results_damaged_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto shard = [&](const std::string& name, const std::function<void(nlohmann::json&)>& change,
                         const std::string& cell_id = "g.r0") {
    const std::string dir = (root / name).string();
    fs::create_directories(cells_dir(dir));
    write_atomic(cell_path(dir, "g.r0"), cell_file(cell_id, "g", true, 0).dump());
    nlohmann::json index = {{"schema", kRunSchema}, {"run_id", name}, {"matrix", {{"hash", "h"}}}, {"seed", 1},
                            {"order", {"g.r0"}}, {"cells", {{{"id", "g.r0"}, {"group", "g"}, {"status", "ok"}}}}};
    change(index);
    write_atomic(index_path(dir), index.dump());
    return dir;
  };
  const auto error_of = [&](const std::string& dir) {
    const std::string out = (root / ("out-" + fs::path(dir).filename().string())).string();
    try {
      merge_runs({dir}, out);
    } catch (const InputError& e) {
      EXPECT_FALSE(fs::exists(out)) << "a refused merge wrote " << out;
      return std::string(e.what());
    }
    return std::string("merged");
  };
  EXPECT_EQ(error_of(shard("fine", [](nlohmann::json&) {})), "merged");
  const std::string list = shard("list", [](nlohmann::json& i) { i = nlohmann::json::array({i}); });
  EXPECT_EQ(error_of(list), index_path(list) + ": not a kmbench.run/1 index");
  const std::string up = shard("up", [](nlohmann::json& i) { i["cells"][0]["id"] = "../../escaped"; });
  EXPECT_EQ(error_of(up), index_path(up) + ": cells[0].id: is not a cell id (a name without '/')");
  EXPECT_FALSE(fs::exists(root / "escaped.json"));
  const std::string status = shard("status", [](nlohmann::json& i) { i["cells"][0]["status"] = 3; });
  EXPECT_EQ(error_of(status), index_path(status) + ": cells[0].status: is not ok, failed or pending");
  const std::string order = shard("order", [](nlohmann::json& i) { i.erase("order"); });
  EXPECT_EQ(error_of(order), index_path(order) + ": order: is not a list");
  const std::string kmt = shard("kmt", [](nlohmann::json& i) {
    i["traces"] = {{{"label", "net"}, {"kmt", "../../net.kmt"}}};
  });
  EXPECT_EQ(error_of(kmt), index_path(kmt) + ": traces[0].kmt: is not a path inside the run directory");
  const std::string label = shard("label", [](nlohmann::json& i) { i["traces"] = {{{"label", 7}, {"kmt", "a.kmt"}}}; });
  EXPECT_EQ(error_of(label), index_path(label) + ": traces[0].label: is not a string");
  const std::string other = shard("other", [](nlohmann::json&) {}, "someone.else.r0");
  EXPECT_EQ(error_of(other), cell_path(other, "g.r0") + ": cell.id: is \"someone.else.r0\", not this file's cell g.r0");
  // A cell file must say what its entry says: the index groups the cell, the file gives its figures.
  const std::string backend = shard("backend", [](nlohmann::json& i) { i["cells"][0]["backend"] = "zones"; });
  EXPECT_EQ(error_of(backend), cell_path(backend, "g.r0") + ": cell.backend: is \"slab\", but its entry in " +
                                   index_path(backend) + " has backend \"zones\"");
  const std::string failed = shard("failed", [](nlohmann::json& i) { i["cells"][0]["status"] = "failed"; });
  EXPECT_EQ(error_of(failed), cell_path(failed, "g.r0") + ": status: is \"ok\", but its entry in " +
                                  index_path(failed) + " has status \"failed\"");
  // A damaged cell file is refused by its field before anything is written (merge read it with bare JSON errors).
  const auto damaged = [&](const std::string& name, const std::function<void(nlohmann::json&)>& change) {
    const std::string dir = shard(name, [](nlohmann::json&) {});
    nlohmann::json cell = cell_file("g.r0", "g", true, 0);
    change(cell);
    write_atomic(cell_path(dir, "g.r0"), cell.dump());
    return std::make_pair(dir, error_of(dir));
  };
  const auto [no_run, no_run_error] = damaged("norun", [](nlohmann::json& c) { c.erase("run"); });
  EXPECT_EQ(no_run_error, cell_path(no_run, "g.r0") + ": run: is not an object");
  const auto [params, params_error] = damaged("params", [](nlohmann::json& c) { c["cell"]["params"] = {{1, 2}}; });
  EXPECT_EQ(params_error, cell_path(params, "g.r0") + ": cell.params[0]: is not a [key, value] pair of strings");
  const auto [events, events_error] = damaged("events", [](nlohmann::json& c) { c["result"]["events"] = nullptr; });
  EXPECT_EQ(events_error,
            cell_path(events, "g.r0") + ": result: the cell's events, duration_ns or ops_per_sec is not a number");
  const auto [array_cell, array_error] = damaged("cell-list", [](nlohmann::json& c) { c = {1, 2}; });
  EXPECT_EQ(array_error, cell_path(array_cell, "g.r0") + ": not a kmbench.run-cell/1 cell file");
  const std::string huge = (root / "huge").string();
  fs::create_directories(huge);
  write_atomic(index_path(huge), "{\"schema\": \"kmbench.run/1\", \"seed\": 1e99999}");
  EXPECT_NE(error_of(huge).find(index_path(huge) + ": not valid JSON"), std::string::npos);
  fs::remove_all(root);
}

}  // namespace
}  // namespace kmbench::results
