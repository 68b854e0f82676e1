// What the kernel says about the machine when a run starts: CPU clock, cache
// hierarchy, load, frequency governor, SMT, transparent huge pages, boot
// command line. Every reader takes the root that /proc and /sys hang from ("/"
// on a real machine, a fixture directory in tests) and reads nothing else, so
// a value is what this machine said or null with the reason, never a default.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace kmbench {

/// One fact about the machine.
/// post: value is null exactly when it could not be read; note then says why,
/// otherwise (when not empty) where the value came from.
struct Fact {
  nlohmann::json value;
  std::string note;
};

/// "0-3,8,10-11" → {0, 1, 2, 3, 8, 10, 11}; empty for text that is not a CPU list.
std::vector<int> parse_cpu_list(std::string_view text);

/// The selected word of a sysfs choice file: "always [madvise] never" → "madvise";
/// null when no word is in brackets.
nlohmann::json bracketed_choice(std::string_view text);

/// Per-CPU values grouped: the value itself when every CPU of `cpus` has the
/// same one, else {"value": [cpus...], ...}; null when no CPU has a value.
nlohmann::json group_by_value(const std::map<int, std::string>& per_cpu, const std::vector<int>& cpus);

/// The online CPUs (sys/devices/system/cpu/online, else the cpuN folders there).
std::vector<int> online_cpu_ids(const std::string& root);

Fact cpu_mhz(const std::string& root);                // cpufreq cpuinfo_max_freq, else /proc/cpuinfo "cpu MHz"
Fact cpu_governor(const std::string& root);           // cpufreq scaling_governor, grouped by value
Fact cpu_caches(const std::string& root);             // cpu0/cache/index*: level, type, size, shared_cpu_list
Fact load_average(const std::string& root);           // /proc/loadavg: 1, 5 and 15 minutes
Fact smt_state(const std::string& root);              // {"active": bool, "control": "on"|"off"|...}
Fact transparent_hugepages(const std::string& root);  // {"enabled": ..., "defrag": ...}, the [selected] words
Fact kernel_cmdline(const std::string& root);         // /proc/cmdline

/// The facts above as machine keys (cpu_mhz, cpu_mhz_source, caches, load_avg,
/// cpu_governor, smt, transparent_hugepages, kernel_cmdline) plus "not_read":
/// {key: why} for each one that is null.
nlohmann::json machine_state(const std::string& root = "/");

}  // namespace kmbench
