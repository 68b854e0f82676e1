#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "base/errors.h"
#include "base/units.h"
#include "workloads/builder.h"
#include "workloads/workloads.h"

namespace kmbench::workloads {

const std::vector<WorkloadInfo>& all_workloads() {
  // Each workload's parameters are declared beside its generator.
  static const std::vector<WorkloadInfo> list = {
      nic_workload(),
      nvme_workload(),
      usb32_workload(),
      gpu_workload(),
      larson_workload(),
      xmalloc_workload(),
      churn_workload(),
      osmalloc_workload(),
  };
  return list;
}

const WorkloadInfo* find_workload(std::string_view name) {
  for (const WorkloadInfo& w : all_workloads()) {
    if (w.name == name) return &w;
  }
  return nullptr;
}

Params resolve_params(std::string_view workload, const std::map<std::string, std::string>& overrides) {
  const WorkloadInfo* w = find_workload(workload);
  if (w == nullptr) {
    std::string known;
    for (const WorkloadInfo& x : all_workloads()) known += (known.empty() ? "" : ", ") + std::string(x.name);
    throw UsageError("unknown workload '" + std::string(workload) + "' (known: " + known + ")");
  }
  std::map<std::string, std::string> values;
  for (const ParamSpec& p : w->params) values[std::string(p.key)] = std::string(p.default_value);
  for (const auto& [key, value] : overrides) {
    if (values.find(key) == values.end()) {
      std::string known;
      for (const ParamSpec& p : w->params) known += (known.empty() ? "" : ", ") + std::string(p.key);
      throw UsageError("workload " + std::string(workload) + " has no parameter '" + key + "' (parameters: " +
                       known + ")");
    }
    values[key] = value;
  }
  Params params(workload, values);
  for (const ParamSpec& p : w->params) {
    if (p.choices.empty()) {
      params.real(p.key);  // every other value must at least be a number
    } else {
      params.choice(p.key, p.choices);
    }
  }
  w->generate(Params(workload, values, /*check_only=*/true), 0);  // its ranges, before any stream is made
  return params;
}

ops::Trace generate(std::string_view workload, const std::map<std::string, std::string>& overrides,
                    std::uint64_t seed) {
  const Params params = resolve_params(workload, overrides);
  ops::Trace trace = find_workload(workload)->generate(params, seed);
  for (const auto& [key, value] : params.values()) trace.header.metadata["param." + key] = value;
  trace.header.metadata["workload"] = std::string(workload);
  trace.header.metadata["seed"] = std::to_string(seed);
  return trace;
}

const std::string& Params::raw(std::string_view key) const {
  auto it = values_.find(std::string(key));
  if (it == values_.end()) {
    throw UsageError("workload " + workload_ + " has no parameter '" + std::string(key) + "'");
  }
  return it->second;
}

double Params::real(std::string_view key) const {
  const std::string& text = raw(key);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  std::string rest = end;
  const bool suffix = rest.size() == 1 && std::string_view("kmgtKMGT").find(rest[0]) != std::string_view::npos;
  if (end == text.c_str() || errno != 0 || !(rest.empty() || suffix) || !std::isfinite(v) || v < 0) {
    throw UsageError("workload " + workload_ + ": parameter " + std::string(key) + "='" + text +
                     "' is not a non-negative number");
  }
  return rest.empty() ? v : static_cast<double>(bytes(key));
}

std::uint64_t Params::u64(std::string_view key) const {
  const double v = real(key);
  if (!(v < 0x1p64) || v != std::floor(v)) {  // 1e30 has no 64-bit integer: tested before the conversion
    throw UsageError("workload " + workload_ + ": parameter " + std::string(key) + "='" + raw(key) +
                     "' is not a whole number");
  }
  return static_cast<std::uint64_t>(v);
}

void Params::refuse(std::string_view key, const std::string& what) const {
  throw UsageError("workload " + workload_ + ": parameter " + std::string(key) + "='" + raw(key) + "' " + what);
}

std::uint64_t Params::u64(std::string_view key, std::uint64_t least) const {
  const std::uint64_t v = u64(key);
  if (v < least) refuse(key, "is below " + std::to_string(least));
  return v;
}

double Params::real(std::string_view key, double least) const {
  const double v = real(key);
  if (v < least) {
    std::ostringstream at_least;
    at_least << least;
    refuse(key, "is below " + at_least.str());
  }
  return v;
}

std::uint64_t Params::bytes(std::string_view key, std::uint64_t least) const {
  const std::uint64_t v = bytes(key);
  if (v < least) refuse(key, "is below " + std::to_string(least) + " bytes");
  return v;
}

std::uint64_t Params::bytes(std::string_view key) const {
  const std::string& text = raw(key);
  const std::optional<std::uint64_t> v = base::parse_bytes(text);
  if (!v) {
    throw UsageError("workload " + workload_ + ": parameter " + std::string(key) + "='" + text +
                     "' is not a byte count (digits with an optional k, m, g or t)");
  }
  return *v;
}

std::string Params::choice(std::string_view key, std::string_view allowed) const {
  const std::string& text = raw(key);
  std::string_view rest = allowed;
  while (!rest.empty()) {
    const std::size_t bar = rest.find('|');
    if (rest.substr(0, bar) == text) {
      return text;
    }
    rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
  }
  std::string list(allowed);
  std::replace(list.begin(), list.end(), '|', ',');
  throw UsageError("workload " + workload_ + ": parameter " + std::string(key) + "='" + text + "' is not one of " +
                   list);
}

}  // namespace kmbench::workloads
