#include "harness/env/machine_state.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

#include "base/units.h"

namespace kmbench {
namespace {
namespace fs = std::filesystem;

constexpr const char* kCpuDir = "sys/devices/system/cpu";

/// The file's text without trailing white space; nullopt when it cannot be read.
std::optional<std::string> read_text(const fs::path& path) {
  std::ifstream in(path);
  if (!in) {
    return std::nullopt;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    return std::nullopt;
  }
  text.erase(text.find_last_not_of(" \t\n") + 1);
  return text;
}

fs::path cpu_path(const std::string& root, int cpu, const std::string& rel) {
  return fs::path(root) / kCpuDir / ("cpu" + std::to_string(cpu)) / rel;
}

std::optional<long long> parse_int(std::string_view s) {
  long long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) {
    return std::nullopt;
  }
  return v;
}

/// The first "cpu MHz" line of /proc/cpuinfo (processor 0 on x86), as a number.
std::optional<double> cpuinfo_mhz(const std::string& root) {
  std::ifstream in(fs::path(root) / "proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu MHz", 0) == 0) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) {
        return std::nullopt;
      }
      try {
        return std::stod(line.substr(colon + 1));
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

Fact missing(std::string why) { return {nullptr, std::move(why)}; }

}  // namespace

std::vector<int> parse_cpu_list(std::string_view text) {
  std::vector<int> out;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view part = text.substr(0, comma);
    const auto dash = part.find('-');
    const auto lo = parse_int(part.substr(0, dash));
    const auto hi = dash == std::string_view::npos ? lo : parse_int(part.substr(dash + 1));
    if (!lo || !hi || *lo < 0 || *hi < *lo) {
      return {};
    }
    for (long long c = *lo; c <= *hi; ++c) {
      out.push_back(static_cast<int>(c));
    }
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
  }
  return out;
}

nlohmann::json bracketed_choice(std::string_view text) {
  const auto open = text.find('[');
  const auto close = text.find(']', open == std::string_view::npos ? 0 : open);
  if (open == std::string_view::npos || close == std::string_view::npos || close == open + 1) {
    return nullptr;
  }
  return std::string(text.substr(open + 1, close - open - 1));
}

nlohmann::json group_by_value(const std::map<int, std::string>& per_cpu, const std::vector<int>& cpus) {
  if (per_cpu.empty()) {
    return nullptr;
  }
  std::map<std::string, std::vector<int>> groups;
  for (const auto& [cpu, value] : per_cpu) {
    groups[value].push_back(cpu);
  }
  const bool every_cpu = std::all_of(cpus.begin(), cpus.end(), [&](int c) { return per_cpu.contains(c); });
  if (groups.size() == 1 && every_cpu) {
    return groups.begin()->first;
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [value, ids] : groups) {
    out[value] = ids;
  }
  return out;
}

std::vector<int> online_cpu_ids(const std::string& root) {
  if (const auto text = read_text(fs::path(root) / kCpuDir / "online")) {
    if (auto ids = parse_cpu_list(*text); !ids.empty()) {
      return ids;
    }
  }
  std::vector<int> ids;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(root) / kCpuDir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("cpu", 0) == 0) {
      if (const auto id = parse_int(std::string_view(name).substr(3))) {
        ids.push_back(static_cast<int>(*id));
      }
    }
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

Fact cpu_mhz(const std::string& root) {
  long long max_khz = 0;
  int read = 0;
  for (const int cpu : online_cpu_ids(root)) {
    const auto text = read_text(cpu_path(root, cpu, "cpufreq/cpuinfo_max_freq"));
    if (const auto khz = text ? parse_int(*text) : std::nullopt; khz && *khz > 0) {
      max_khz = std::max(max_khz, *khz);
      ++read;
    }
  }
  if (read > 0) {
    return {static_cast<double>(max_khz) / 1000.0,
            "cpufreq cpuinfo_max_freq, highest of " + std::to_string(read) + " CPU(s)"};
  }
  if (const auto mhz = cpuinfo_mhz(root)) {
    return {*mhz, "/proc/cpuinfo \"cpu MHz\" of the first processor (its clock when read; no cpufreq)"};
  }
  return missing("no cpufreq cpuinfo_max_freq and no \"cpu MHz\" in /proc/cpuinfo");
}

Fact cpu_governor(const std::string& root) {
  const auto cpus = online_cpu_ids(root);
  std::map<int, std::string> per_cpu;
  for (const int cpu : cpus) {
    if (auto g = read_text(cpu_path(root, cpu, "cpufreq/scaling_governor")); g && !g->empty()) {
      per_cpu[cpu] = *g;
    }
  }
  if (per_cpu.empty()) {
    return missing("no cpufreq scaling_governor (no cpufreq driver, as in many VMs)");
  }
  return {group_by_value(per_cpu, cpus), ""};
}

Fact cpu_caches(const std::string& root) {
  const fs::path dir = fs::path(root) / kCpuDir / "cpu0/cache";
  std::vector<std::pair<long long, fs::path>> indices;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("index", 0) == 0) {
      if (const auto i = parse_int(std::string_view(name).substr(5))) {
        indices.emplace_back(*i, e.path());
      }
    }
  }
  if (indices.empty()) {
    return missing("no cpu0/cache/index* (the kernel shows no cache hierarchy here)");
  }
  std::sort(indices.begin(), indices.end());
  nlohmann::json caches = nlohmann::json::array();
  for (const auto& [i, path] : indices) {
    const auto level = read_text(path / "level");
    const auto type = read_text(path / "type");
    const auto size = read_text(path / "size");
    const auto shared = read_text(path / "shared_cpu_list");
    const auto bytes = size ? base::parse_bytes(*size) : std::nullopt;
    const auto lvl = level ? parse_int(*level) : std::nullopt;
    caches.push_back({{"level", lvl ? nlohmann::json(*lvl) : nlohmann::json(nullptr)},
                      {"type", type ? nlohmann::json(*type) : nlohmann::json(nullptr)},
                      {"size_bytes", bytes ? nlohmann::json(*bytes) : nlohmann::json(nullptr)},
                      {"shared_cpu_list", shared ? nlohmann::json(*shared) : nlohmann::json(nullptr)},
                      {"num_sharing", shared ? nlohmann::json(parse_cpu_list(*shared).size())
                                             : nlohmann::json(nullptr)}});
  }
  return {caches, "cpu0/cache/index*"};
}

Fact load_average(const std::string& root) {
  const auto text = read_text(fs::path(root) / "proc/loadavg");
  if (!text) {
    return missing("/proc/loadavg unreadable");
  }
  std::istringstream in(*text);
  double one = 0, five = 0, fifteen = 0;
  if (!(in >> one >> five >> fifteen)) {
    return missing("/proc/loadavg does not start with three numbers");
  }
  return {{one, five, fifteen}, "/proc/loadavg when the environment was recorded"};
}

Fact smt_state(const std::string& root) {
  const fs::path dir = fs::path(root) / kCpuDir / "smt";
  const auto active = read_text(dir / "active");
  const auto control = read_text(dir / "control");
  if (!active && !control) {
    return missing("no /sys/devices/system/cpu/smt (kernel without SMT control)");
  }
  nlohmann::json a = nullptr;
  if (active && (*active == "0" || *active == "1")) {
    a = *active == "1";
  }
  return {{{"active", a}, {"control", control ? nlohmann::json(*control) : nlohmann::json(nullptr)}}, ""};
}

Fact transparent_hugepages(const std::string& root) {
  const fs::path dir = fs::path(root) / "sys/kernel/mm/transparent_hugepage";
  const auto enabled = read_text(dir / "enabled");
  const auto defrag = read_text(dir / "defrag");
  if (!enabled && !defrag) {
    return missing("no /sys/kernel/mm/transparent_hugepage (kernel without THP)");
  }
  return {{{"enabled", enabled ? bracketed_choice(*enabled) : nlohmann::json(nullptr)},
           {"defrag", defrag ? bracketed_choice(*defrag) : nlohmann::json(nullptr)}},
          ""};
}

Fact kernel_cmdline(const std::string& root) {
  if (auto text = read_text(fs::path(root) / "proc/cmdline")) {
    return {*text, ""};
  }
  return missing("/proc/cmdline unreadable");
}

nlohmann::json machine_state(const std::string& root) {
  nlohmann::json out = nlohmann::json::object();
  nlohmann::json not_read = nlohmann::json::object();
  const std::pair<const char*, Fact> facts[] = {
      {"cpu_mhz", cpu_mhz(root)},
      {"caches", cpu_caches(root)},
      {"load_avg", load_average(root)},
      {"cpu_governor", cpu_governor(root)},
      {"smt", smt_state(root)},
      {"transparent_hugepages", transparent_hugepages(root)},
      {"kernel_cmdline", kernel_cmdline(root)},
  };
  for (const auto& [key, fact] : facts) {
    out[key] = fact.value;
    if (fact.value.is_null()) {
      not_read[key] = fact.note;
    }
  }
  out["cpu_mhz_source"] = out["cpu_mhz"].is_null() ? nlohmann::json(nullptr) : nlohmann::json(facts[0].second.note);
  out["not_read"] = not_read;
  return out;
}

}  // namespace kmbench
