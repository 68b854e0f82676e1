// Trace profiles (docs/profile-format.md): the statistics of a capture that an
// allocator's behaviour depends on, without the capture. A profile holds no
// pointer value, task name, pid, absolute time or file path, and call sites
// only as salted hashes unless asked to keep them; it is built from a trace
// (build), written and read as JSON (to_json, from_json), turned back into an
// operation stream (synthesize) and compared with another (distance).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ops/ops.h"

namespace kmbench::profile {

/// The schema version this build writes. It also reads version 1, which had
/// no CPU runs (cpu_stay, free_cpu_stay).
inline constexpr int kVersion = 2;
inline constexpr std::string_view kFormat = "kmbench-profile";

inline constexpr std::size_t kExactValues = 16;   // most frequent sizes kept exactly, per class
inline constexpr std::size_t kTimeBuckets = 64;   // resolution of the arrival-rate curve
inline constexpr std::size_t kLiveSetPoints = 101;  // live-set curve: at 0%, 1%, ... 100% of the duration

/// A distribution of non-negative integers: the most frequent values exactly
/// (when asked for), the rest in log bins of four per power of two.
struct Distribution {
  struct Bin {
    std::uint64_t lo = 0, hi = 0, count = 0;  // values in [lo, hi]
  };
  std::vector<std::pair<std::uint64_t, std::uint64_t>> exact;  // (value, count), most frequent first
  std::vector<Bin> tail;                                       // ascending, disjoint

  std::uint64_t total() const;
  bool empty() const { return exact.empty() && tail.empty(); }
};

/// A share of the events in one category (a CPU, a flag set, an order).
struct Share {
  std::int64_t key = 0;
  double share = 0;
};

/// How call sites appear in a profile.
enum class Sites { hashed, merged, clear };
const char* sites_name(Sites s);

/// The DMA transfers made over one class's objects.
struct Maps {
  std::uint64_t count = 0;         // dma_map operations
  Distribution per_object;         // maps per object (0 included)
  Distribution bytes;              // bytes per map
  Distribution lifetime_ns;        // map to its unmap (or the object's free)
  std::vector<Share> flag_mix;     // OpFlag sets of the maps (direction, dma32)
};

/// One allocation class: a call site (and cache) of one kind, or, merged, the
/// objects of one kind, size bin and lifetime bin.
struct Class {
  std::string id;                      // "s-<16 hex>", a site in clear, or "m-..." (merged)
  ops::OpKind kind = ops::OpKind::alloc;  // alloc, page_alloc or dma_alloc
  std::string cache;                   // the named cache (kOpCache), hashed like a site; "" for none
  std::uint64_t count = 0;             // allocations
  std::uint64_t censored = 0;          // of those, never freed in the capture
  Distribution sizes;                  // freed objects' sizes
  Distribution censored_sizes;         // never-freed objects' sizes (they differ: a class's long-lived
                                       // objects are often its small or large ones)
  Distribution lifetime_ops;           // freed objects: operations between allocation and free
  Distribution lifetime_ns;            // freed objects: nanoseconds between allocation and free
  Distribution interarrival_ns;        // between consecutive allocations of this class
  std::vector<std::uint64_t> arrivals;           // allocations per time bucket (kTimeBuckets)
  std::vector<std::uint64_t> censored_arrivals;  // of those, never freed
  /// Freed objects by the time buckets of their allocation and their free
  /// (from <= to): when a class's objects go depends on when they came (a
  /// file system's inodes all go at `rm`), which one lifetime distribution
  /// cannot say. Rows add up to arrivals - censored_arrivals.
  struct Flow {
    std::uint32_t from = 0, to = 0;
    std::uint64_t count = 0;
  };
  std::vector<Flow> departures;  // by (from, to)
  std::vector<Share> cpu_mix;          // recorded CPU of the allocations
  /// Allocations made on the CPU of the class's allocation before: a task
  /// stays on its CPU for a while, so a per-CPU cache sees its own frees come
  /// back. Version 1 had no such field; reading one, it is what independent
  /// draws from cpu_mix give.
  double cpu_stay = 0;
  double remote_free_fraction = 0;     // frees made on another CPU than the allocation's
  /// Frees made on the CPU of the class's free before (in the order of the
  /// frees): the task that frees (a pipe's reader) stays on its CPU too.
  /// Version 1: what the independent choice of remote frees gives.
  double free_cpu_stay = 0;
  std::vector<Share> flag_mix;         // OpFlag sets
  std::vector<Share> align_mix;        // align_log2
  std::vector<Share> node_mix;         // requested node (-1: any)
  Maps maps;
};

struct Profile {
  int version = kVersion;
  Sites sites = Sites::hashed;
  std::string source;              // "ftrace", "dtrace", "workload:nic", ...
  std::uint32_t page_size = 4096;
  std::uint32_t cpu_count = 1;
  std::uint32_t node_count = 1;
  std::uint64_t duration_ns = 0;   // first to last operation
  std::uint64_t ops = 0, allocs = 0, frees = 0, objects = 0;
  std::uint64_t peak_live_bytes = 0;
  Distribution interarrival_ns;    // between consecutive allocations, all classes
  std::vector<Share> cpu_mix;      // of all allocations
  double remote_free_fraction = 0;
  std::vector<Share> page_order_mix;  // page allocations by order
  std::vector<Share> flag_mix;        // all allocations by OpFlag set
  std::vector<std::uint64_t> live_set_bytes;  // kLiveSetPoints samples, evenly over the duration
  std::vector<Class> classes;         // most allocations first
};

/// How build() treats call sites.
struct BuildOptions {
  Sites sites = Sites::hashed;
  /// The hash key; empty: 16 random bytes from the kernel, so two profiles of
  /// one capture share no hash. Tests pass a fixed key.
  std::string salt;
};

/// The profile of a trace.
Profile build(const ops::Trace& trace, const BuildOptions& options = {});

/// The JSON text of a profile (docs/profile-format.md).
std::string to_json(const Profile& p);

/// Parses and checks a profile; throws InputError naming `name` and the JSON
/// path of the first bad field (a wrong version, a negative count, shares
/// that do not sum to 1, ...).
Profile from_json(std::string_view text, const std::string& name);

/// Reads a profile file (from_json of its bytes).
Profile load(const std::string& path);

/// What synthesize() makes from a profile.
struct SynthOptions {
  double scale = 1;       // multiplies the allocation count and rate (not lifetimes)
  std::uint64_t seed = 1;
};

/// The bytes synthesize() would hold at once: its operations and its object
/// table (for the error when a scale would not fit).
std::uint64_t synth_bytes(const Profile& p, double scale);

/// An operation stream with the profile's statistics: per class, allocations
/// along its arrival curve with its sizes, flags, CPUs and lifetimes; frees on
/// another CPU as often as recorded; DMA maps within their object's life.
/// Throws UsageError when the scale is not positive or the stream would not fit in memory.
ops::Trace synthesize(const Profile& p, const SynthOptions& options);

/// How far apart two loads are (`kmbench trace diff`).
struct Distance {
  double ks_size = 0;            // Kolmogorov–Smirnov distance of allocation sizes
  double ks_lifetime_ns = 0;     // of lifetimes in ns (freed objects)
  double ks_lifetime_ops = 0;    // of lifetimes in operations
  double ks_interarrival = 0;    // of inter-arrival gaps
  double peak_live_ratio = 0;    // B's peak live bytes over A's
  double allocs_ratio = 0;       // B's allocations over A's
  double class_overlap = 0;      // share of allocations in classes both have (min of the two shares, summed)
  bool classes_by_id = false;    // matched by id (sites comparable) or by kind and most frequent size
  std::uint64_t classes_a = 0, classes_b = 0, classes_shared = 0;
};
Distance distance(const Profile& a, const Profile& b);

}  // namespace kmbench::profile
