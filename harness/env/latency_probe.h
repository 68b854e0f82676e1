// The machine's load-to-use latency for L1, L2, the last-level cache and
// DRAM, by a dependent pointer chase: reference lines for the latency charts,
// so that an allocator's ns per call can be read against what one cache miss
// costs on the machine that measured it.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace kmbench {

/// The data caches as the system reports them (0: not reported).
struct CacheSizes {
  std::uint64_t l1d = 0, l2 = 0, llc = 0;
  unsigned llc_level = 0;
  std::string source;  // "sysfs" (cpu0/cache/index*), "sysconf" (glibc, from cpuid) or "none"
};

/// cpu0's data and unified caches from /sys/devices/system/cpu/cpu0/cache, else from sysconf.
CacheSizes read_cache_sizes();

struct LatencyProbeSettings {
  unsigned passes = 31;                        // clean timed passes per level; the median is kept
  std::uint64_t loads_per_pass = 1u << 14;     // L1, L2, LLC: well under a scheduler's time slice
  std::uint64_t dram_loads_per_pass = 1u << 12;
  std::uint64_t dram_bytes = 0;                // 0: 256 MiB (at least 16× the LLC buffer)
};

/// One level's buffer and what a load in it costs.
struct LevelLatency {
  std::uint64_t buffer_bytes = 0;
  double ns = 0;                  // median over the passes, ns per load
  double min_ns = 0, max_ns = 0;  // over the passes
  double huge_page_fraction = 0;  // of the buffer, backed by transparent huge pages
  unsigned clean_passes = 0;      // timed passes without a context switch (the median's)
  unsigned passes_run = 0;        // timed passes run in all
};

struct LatencyReference {
  LevelLatency l1, l2, llc, dram;
  CacheSizes caches;
  LatencyProbeSettings settings;
  double ns_per_tick = 0;
  double probe_s = 0;  // wall time of the whole probe, buffers included
};

/// Buffer sizes for each level from the cache sizes: half of L1d; half of L2
/// (at least 4× the L1 buffer); half of the LLC, at most 16 MiB (at least 4×
/// the L2 buffer); DRAM: settings.dram_bytes or 256 MiB, at least 16× the LLC buffer.
/// pre: none. Unreported sizes fall back to 32 KiB, 512 KiB, 8 MiB.
void size_buffers(const CacheSizes& caches, const LatencyProbeSettings& settings, LatencyReference& out);

/// Runs the chase on every level (well under a second with the default settings on an idle machine).
LatencyReference probe_latency(const LatencyProbeSettings& settings = {});

/// {"l1_ns", "l2_ns", "llc_ns", "dram_ns", "buffer_bytes": {...}, "cache_bytes": {...}, "method", ...}
nlohmann::json latency_reference_json(const LatencyReference& r);

/// probe_latency() with the default settings as JSON; {"error": ...} if it failed.
nlohmann::json measure_latency_reference();

}  // namespace kmbench
