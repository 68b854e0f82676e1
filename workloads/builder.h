// What every generator shares: a seeded random source whose sequence does not
// depend on the standard library, and a builder that collects operations per
// stream in any order and sorts each stream by time at the end.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "ops/ops.h"
#include "workloads/workloads.h"

namespace kmbench::workloads {

/// xoshiro256** seeded by splitmix64: the same numbers on every platform.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (auto& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, n); 0 when n == 0.
  std::uint64_t below(std::uint64_t n) noexcept {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  /// Uniform in [lo, hi].
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) noexcept { return lo + below(hi - lo + 1); }
  double unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) noexcept { return unit() < p; }
  /// Exponentially distributed with this mean.
  double exponential(double mean) noexcept { return -mean * std::log1p(-unit()); }
  /// Log-uniform in [lo, hi]: as many sizes in each power of two.
  std::uint64_t log_uniform(std::uint64_t lo, std::uint64_t hi) noexcept {
    const double a = std::log(static_cast<double>(lo)), b = std::log(static_cast<double>(hi));
    const auto v = static_cast<std::uint64_t>(std::exp(a + (b - a) * unit()));
    return std::clamp(v, lo, hi);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

/// An operation's attributes besides kind, object and size.
struct OpArgs {
  std::uint8_t flags = 0;
  std::uint32_t tag = 0;   // string index
  std::uint32_t site = 0;  // string index
  std::uint8_t align_log2 = 0;
  std::int8_t node = -1;
};

/// Collects a workload's operations; finish() makes the Trace.
class Builder {
 public:
  Builder(std::string_view workload, unsigned streams) : workload_(workload) {
    trace_.streams.resize(std::max(1u, streams));
    for (unsigned s = 0; s < trace_.streams.size(); ++s) trace_.streams[s].cpu = s;
  }
  unsigned streams() const { return static_cast<unsigned>(trace_.streams.size()); }

  std::uint32_t object() { return trace_.object_count++; }

  /// Index of s in the trace's string table.
  std::uint32_t str(const std::string& s) {
    auto [it, inserted] = strings_.try_emplace(s, static_cast<std::uint32_t>(trace_.strings.size()));
    if (inserted) trace_.strings.push_back(s);
    return it->second;
  }

  void op(unsigned stream, double time_ns, ops::OpKind kind, std::uint32_t object, std::uint64_t size,
          OpArgs a = {}) {
    ops::Op o;
    o.time_ns = time_ns < 0 ? 0 : static_cast<std::uint64_t>(time_ns);
    o.size = size;
    o.object = object;
    o.site = a.site;
    o.tag = a.tag;
    o.kind = kind;
    o.align_log2 = a.align_log2;
    o.node = a.node;
    o.flags = a.flags;
    trace_.streams[stream % trace_.streams.size()].ops.push_back(o);
  }

  /// Sorts each stream by time (stable: equal times keep the order they were added in).
  ops::Trace finish() {
    std::uint64_t end = 0;
    for (auto& s : trace_.streams) {
      std::stable_sort(s.ops.begin(), s.ops.end(),
                       [](const ops::Op& a, const ops::Op& b) { return a.time_ns < b.time_ns; });
      if (!s.ops.empty()) end = std::max(end, s.ops.back().time_ns);
    }
    trace_.header.source = "workload:" + workload_;
    trace_.header.capture_tool = "kmbench workload";
    trace_.header.cpu_count = static_cast<std::uint32_t>(trace_.streams.size());
    trace_.header.metadata["duration_ns"] = std::to_string(end);
    return std::move(trace_);
  }

 private:
  std::string workload_;
  ops::Trace trace_;
  std::unordered_map<std::string, std::uint32_t> strings_;
};

inline constexpr std::uint64_t kPage = 4096;

using ops::OpKind;

/// The most CPU streams a workload may have: a stream per CPU slot and then some.
inline constexpr std::uint64_t kMaxStreams = 4096;

/// A count of CPU streams (queues, threads): 1 to kMaxStreams.
inline unsigned stream_count(const Params& p, std::string_view key) {
  const std::uint64_t n = p.u64(key, 1);
  if (n > kMaxStreams) p.refuse(key, "is above " + std::to_string(kMaxStreams) + " streams");
  return static_cast<unsigned>(n);
}

/// Block sizes from two byte parameters: lo at least `floor`, hi at least lo.
struct SizeRange {
  std::uint64_t lo;
  std::uint64_t hi;
};
inline SizeRange size_range(const Params& p, std::string_view min_key, std::string_view max_key,
                            std::uint64_t floor = 1) {
  const std::uint64_t lo = p.bytes(min_key, floor), hi = p.bytes(max_key);
  if (hi < lo) p.refuse(max_key, "is below " + std::string(min_key) + " (" + std::to_string(lo) + " bytes)");
  return {lo, hi};
}

/// The `op_ns` parameter, time per operation: at least 1 ns.
inline double op_time_ns(const Params& p) { return p.real("op_ns", 1); }

// The workloads, one file each: name, summary, parameters and generator.
WorkloadInfo nic_workload();
WorkloadInfo nvme_workload();
WorkloadInfo usb32_workload();
WorkloadInfo gpu_workload();
WorkloadInfo larson_workload();
WorkloadInfo xmalloc_workload();
WorkloadInfo churn_workload();
WorkloadInfo osmalloc_workload();

}  // namespace kmbench::workloads
