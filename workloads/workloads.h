// Synthetic workloads: generators that emit the same operation stream as a
// replayed trace (ops/ops.h), so a workload replays, saves and
// compares exactly like a capture. Same parameters and seed, same stream.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ops/ops.h"

namespace kmbench::workloads {

/// One documented parameter and its default.
struct ParamSpec {
  std::string_view key;
  std::string_view default_value;
  std::string_view doc;
  std::string_view choices = {};  // '|'-separated words the value must be one of; empty: a number
};

/// A workload's parameters, defaults filled in; typed getters throw UsageError naming the key.
class Params {
 public:
  Params(std::string_view workload, std::map<std::string, std::string> values, bool check_only = false)
      : workload_(workload), values_(std::move(values)), check_only_(check_only) {}
  std::uint64_t u64(std::string_view key) const;
  double real(std::string_view key) const;
  /// A byte count: digits with an optional k/m/g suffix (powers of 1024).
  std::uint64_t bytes(std::string_view key) const;
  /// The same, refused below `least` (a count of queues, a ring's size, a
  /// rate): a value a generator cannot use is an error, not quietly raised.
  std::uint64_t u64(std::string_view key, std::uint64_t least) const;
  double real(std::string_view key, double least) const;
  std::uint64_t bytes(std::string_view key, std::uint64_t least) const;
  /// A UsageError naming this workload and parameter `key` (as given) with `what` is wrong.
  [[noreturn]] void refuse(std::string_view key, const std::string& what) const;
  /// One of `allowed` (a '|'-separated list), as given.
  std::string choice(std::string_view key, std::string_view allowed) const;
  const std::map<std::string, std::string>& values() const { return values_; }
  /// A generator given these parameters reads (so checks) every one and returns an empty trace.
  bool check_only() const { return check_only_; }

 private:
  const std::string& raw(std::string_view key) const;
  std::string workload_;
  std::map<std::string, std::string> values_;
  bool check_only_ = false;
};

struct WorkloadInfo {
  std::string_view name;
  std::string_view summary;
  std::vector<ParamSpec> params;
  /// Reads every parameter before it generates anything: with params.check_only(),
  /// it returns an empty trace there (resolve_params checks the values so).
  ops::Trace (*generate)(const Params& params, std::uint64_t seed);
};

/// Every workload, in `kmbench list` order.
const std::vector<WorkloadInfo>& all_workloads();

/// The workload of that name, or nullptr.
const WorkloadInfo* find_workload(std::string_view name);

/// Defaults overridden by `overrides`, each value checked as the generator
/// checks it (its ranges: queues, a ring's size, min below max). Throws
/// UsageError naming an unknown workload or key, or the value at fault.
Params resolve_params(std::string_view workload, const std::map<std::string, std::string>& overrides);

/// Generates the named workload. The trace's header records the workload,
/// every parameter and the seed (metadata "param.<key>", "seed").
ops::Trace generate(std::string_view workload, const std::map<std::string, std::string>& overrides,
                    std::uint64_t seed);

}  // namespace kmbench::workloads
