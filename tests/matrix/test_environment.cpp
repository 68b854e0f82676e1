// The recorded environment: the kernel's state read from fixture /proc and /sys
// trees, null (with the reason) where a file is missing, and the Google
// Benchmark context taken from what was recorded.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "harness/env/environment.h"
#include "harness/env/machine_state.h"
#include "results/results.h"

namespace kmbench {
namespace {
namespace fs = std::filesystem;

/// A fixture root that /proc and /sys hang from, removed when the test ends.
class FixtureRoot {
 public:
  explicit FixtureRoot(const std::string& name) : root_(fs::temp_directory_path() / ("kmbench_env_" + name)) {
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~FixtureRoot() { fs::remove_all(root_); }
  void file(const std::string& rel, const std::string& text) const {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel) << text;
  }
  std::string str() const { return root_.string(); }

 private:
  fs::path root_;
};

/// A two-CPU machine with cpufreq, two caches, SMT and THP, as Linux shows it.
void write_full_machine(const FixtureRoot& r, const std::string& gov0, const std::string& gov1) {
  r.file("sys/devices/system/cpu/online", "0-1\n");
  r.file("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "3500000\n");
  r.file("sys/devices/system/cpu/cpu1/cpufreq/cpuinfo_max_freq", "3000000\n");
  r.file("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", gov0 + "\n");
  r.file("sys/devices/system/cpu/cpu1/cpufreq/scaling_governor", gov1 + "\n");
  const std::string c0 = "sys/devices/system/cpu/cpu0/cache/";
  r.file(c0 + "index0/level", "1\n");
  r.file(c0 + "index0/type", "Data\n");
  r.file(c0 + "index0/size", "48K\n");
  r.file(c0 + "index0/shared_cpu_list", "0-1\n");
  r.file(c0 + "index2/level", "2\n");
  r.file(c0 + "index2/type", "Unified\n");
  r.file(c0 + "index2/size", "1280K\n");
  r.file(c0 + "index2/shared_cpu_list", "0\n");
  r.file("proc/loadavg", "0.25 1.50 2.75 3/100 2870\n");
  r.file("proc/cpuinfo", "processor\t: 0\ncpu MHz\t\t: 2096.006\n");
  r.file("sys/devices/system/cpu/smt/active", "1\n");
  r.file("sys/devices/system/cpu/smt/control", "on\n");
  r.file("sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n");
  r.file("sys/kernel/mm/transparent_hugepage/defrag", "always defer defer+madvise [madvise] never\n");
  r.file("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 isolcpus=1\n");
}

TEST(MachineState, CpuListsParse) {
  EXPECT_EQ(parse_cpu_list("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_cpu_list("5"), (std::vector<int>{5}));
  EXPECT_TRUE(parse_cpu_list("").empty());
  EXPECT_TRUE(parse_cpu_list("3-1").empty());
  EXPECT_TRUE(parse_cpu_list("a").empty());
}

TEST(MachineState, ThpTakesTheBracketedWord) {
  EXPECT_EQ(bracketed_choice("always [madvise] never"), "madvise");
  EXPECT_EQ(bracketed_choice("[always] madvise never"), "always");
  EXPECT_EQ(bracketed_choice("always defer defer+madvise madvise [never]"), "never");
  EXPECT_TRUE(bracketed_choice("always madvise never").is_null());
  EXPECT_TRUE(bracketed_choice("[]").is_null());
}

TEST(MachineState, GovernorsGroupByValue) {
  EXPECT_EQ(group_by_value({{0, "performance"}, {1, "performance"}}, {0, 1}), "performance");
  EXPECT_EQ(group_by_value({{0, "performance"}, {1, "powersave"}, {2, "performance"}}, {0, 1, 2}),
            nlohmann::json({{"performance", {0, 2}}, {"powersave", {1}}}));
  // One value, but not every CPU has it: say which CPUs do.
  EXPECT_EQ(group_by_value({{1, "schedutil"}}, {0, 1}), nlohmann::json({{"schedutil", {1}}}));
  EXPECT_TRUE(group_by_value({}, {0, 1}).is_null());

  FixtureRoot r("governor");
  write_full_machine(r, "performance", "powersave");
  EXPECT_EQ(cpu_governor(r.str()).value, nlohmann::json({{"performance", {0}}, {"powersave", {1}}}));
  write_full_machine(r, "performance", "performance");
  EXPECT_EQ(cpu_governor(r.str()).value, "performance");
}

TEST(MachineState, FixtureMachineIsReadAsWritten) {
  FixtureRoot r("full");
  write_full_machine(r, "schedutil", "schedutil");
  const nlohmann::json m = machine_state(r.str());
  EXPECT_DOUBLE_EQ(m["cpu_mhz"].get<double>(), 3500.0);  // the highest cpuinfo_max_freq, not /proc/cpuinfo
  EXPECT_NE(m["cpu_mhz_source"].get<std::string>().find("cpuinfo_max_freq"), std::string::npos);
  ASSERT_EQ(m["caches"].size(), 2u);
  EXPECT_EQ(m["caches"][0], nlohmann::json({{"level", 1}, {"type", "Data"}, {"size_bytes", 48 * 1024},
                                            {"shared_cpu_list", "0-1"}, {"num_sharing", 2}}));
  EXPECT_EQ(m["caches"][1]["size_bytes"], 1280 * 1024);
  EXPECT_EQ(m["caches"][1]["num_sharing"], 1);
  EXPECT_EQ(m["load_avg"], nlohmann::json({0.25, 1.50, 2.75}));
  EXPECT_EQ(m["cpu_governor"], "schedutil");
  EXPECT_EQ(m["smt"], nlohmann::json({{"active", true}, {"control", "on"}}));
  EXPECT_EQ(m["transparent_hugepages"], nlohmann::json({{"enabled", "madvise"}, {"defrag", "madvise"}}));
  EXPECT_EQ(m["kernel_cmdline"], "BOOT_IMAGE=/vmlinuz root=/dev/sda1 isolcpus=1");
  EXPECT_TRUE(m["not_read"].empty()) << m["not_read"];
}

TEST(MachineState, WithoutCpufreqTheClockComesFromCpuinfo) {
  FixtureRoot r("vm");
  r.file("sys/devices/system/cpu/online", "0-1\n");
  r.file("proc/cpuinfo", "processor\t: 0\nmodel name\t: X\ncpu MHz\t\t: 2096.006\n\nprocessor\t: 1\ncpu MHz : 1.0\n");
  const Fact mhz = cpu_mhz(r.str());
  EXPECT_DOUBLE_EQ(mhz.value.get<double>(), 2096.006);
  EXPECT_NE(mhz.note.find("/proc/cpuinfo"), std::string::npos);
  const Fact gov = cpu_governor(r.str());
  EXPECT_TRUE(gov.value.is_null());
  EXPECT_NE(gov.note.find("no cpufreq"), std::string::npos);
}

TEST(MachineState, MissingFilesGiveNullAndSayWhy) {
  FixtureRoot r("empty");
  const nlohmann::json m = machine_state(r.str());
  for (const char* key : {"cpu_mhz", "caches", "load_avg", "cpu_governor", "smt", "transparent_hugepages",
                          "kernel_cmdline"}) {
    EXPECT_TRUE(m[key].is_null()) << key << ": " << m[key];
    ASSERT_TRUE(m["not_read"].contains(key)) << key;
    EXPECT_FALSE(m["not_read"][key].get<std::string>().empty()) << key;
  }
  EXPECT_TRUE(m["cpu_mhz_source"].is_null());
  // One THP file of two: the other is null, the fact is still there.
  r.file("sys/kernel/mm/transparent_hugepage/enabled", "[always] madvise never\n");
  EXPECT_EQ(transparent_hugepages(r.str()).value, nlohmann::json({{"enabled", "always"}, {"defrag", nullptr}}));
  r.file("proc/loadavg", "garbage\n");
  EXPECT_TRUE(load_average(r.str()).value.is_null());
}

nlohmann::json index_with(const nlohmann::json& env) {
  return {{"matrix", {{"path", "m.toml"}, {"hash", "h"}}}, {"run_id", "r"}, {"environment", env}};
}

TEST(GbenchContext, IsTheRecordedFixtureEnvironment) {
  FixtureRoot r("context");
  write_full_machine(r, "performance", "powersave");
  nlohmann::json machine = machine_state(r.str());
  machine["online_cpus"] = 2;
  const auto ctx = results::gbench_context(index_with({{"machine", machine}, {"build", {{"type", "RelWithDebInfo"}}}}));
  EXPECT_EQ(ctx["num_cpus"], 2);
  EXPECT_DOUBLE_EQ(ctx["mhz_per_cpu"].get<double>(), 3500.0);
  EXPECT_EQ(ctx["cpu_scaling_enabled"], true);  // powersave on cpu1
  EXPECT_EQ(ctx["load_avg"], nlohmann::json({0.25, 1.50, 2.75}));
  EXPECT_EQ(ctx["caches"], nlohmann::json({{{"type", "Data"}, {"level", 1}, {"size", 48 * 1024}, {"num_sharing", 2}},
                                           {{"type", "Unified"}, {"level", 2}, {"size", 1280 * 1024},
                                            {"num_sharing", 1}}}));
  EXPECT_EQ(ctx["library_build_type"], "relwithdebinfo");
  write_full_machine(r, "performance", "performance");
  machine = machine_state(r.str());
  EXPECT_EQ(results::gbench_context(index_with({{"machine", machine}}))["cpu_scaling_enabled"], false);
}

TEST(GbenchContext, IsThisMachinesRecordedEnvironment) {
  const nlohmann::json env = environment_json();
  const nlohmann::json& m = env["machine"];
  const auto ctx = results::gbench_context(index_with(env));
  EXPECT_EQ(ctx["num_cpus"], m["online_cpus"]);
  EXPECT_EQ(ctx["mhz_per_cpu"], m["cpu_mhz"]);
  EXPECT_EQ(ctx["load_avg"], m["load_avg"]);
  EXPECT_EQ(ctx["caches"].is_null(), m["caches"].is_null());
  if (m["caches"].is_array()) {
    ASSERT_EQ(ctx["caches"].size(), m["caches"].size());
    for (std::size_t i = 0; i < m["caches"].size(); ++i) {
      EXPECT_EQ(ctx["caches"][i]["size"], m["caches"][i]["size_bytes"]);
      EXPECT_EQ(ctx["caches"][i]["level"], m["caches"][i]["level"]);
    }
  }
  EXPECT_EQ(ctx["cpu_scaling_enabled"].is_null(), m["cpu_governor"].is_null());
  EXPECT_TRUE(ctx["library_build_type"].is_string());
}

}  // namespace
}  // namespace kmbench
