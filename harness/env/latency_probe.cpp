#include "harness/env/latency_probe.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <new>
#include <sstream>
#include <vector>

#include "base/clock.h"
#include "base/units.h"

namespace kmbench {
namespace {

constexpr std::uint64_t kLine = 64;
constexpr std::uint64_t kHugePage = 2u << 20;
constexpr std::uint64_t kMiB = 1u << 20;

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

/// Sizes in sysfs read "48K", "1024K", "32768K".
std::uint64_t parse_sysfs_size(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
  return base::parse_bytes(s).value_or(0);
}

std::uint64_t sysconf_bytes(int name) {
  const long v = ::sysconf(name);
  return v > 0 ? static_cast<std::uint64_t>(v) : 0;
}

/// A buffer on 2 MiB boundaries, advised for transparent huge pages.
class HugeBuffer {
 public:
  explicit HugeBuffer(std::uint64_t bytes) : bytes_((bytes + kHugePage - 1) / kHugePage * kHugePage) {
    map_bytes_ = bytes_ + kHugePage;
    void* m = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    map_ = static_cast<char*>(m);
    const auto a = reinterpret_cast<std::uintptr_t>(map_);
    base_ = reinterpret_cast<char*>((a + kHugePage - 1) / kHugePage * kHugePage);
    ::madvise(base_, bytes_, MADV_HUGEPAGE);
  }
  ~HugeBuffer() { ::munmap(map_, map_bytes_); }
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;
  char* data() const { return base_; }

  /// The share of the buffer that /proc/self/smaps says is on huge pages.
  double huge_fraction() const {
    std::ifstream in("/proc/self/smaps");
    std::string line;
    const auto want = reinterpret_cast<std::uintptr_t>(base_);
    bool inside = false;
    while (std::getline(in, line)) {
      std::uintptr_t lo = 0, hi = 0;
      if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2 && line.find(':') > 12) {
        inside = lo <= want && want < hi;
      } else if (inside && line.rfind("AnonHugePages:", 0) == 0) {
        const double kb = std::strtod(line.c_str() + 14, nullptr);
        return std::min(1.0, kb * 1024.0 / static_cast<double>(bytes_));
      }
    }
    return 0;
  }

 private:
  std::uint64_t bytes_, map_bytes_;
  char* map_ = nullptr;
  char* base_ = nullptr;
};

/// splitmix64: the probe's order only needs to defeat the prefetchers.
struct Rng {
  std::uint64_t s = 0x9e3779b97f4a7c15ull;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint32_t below(std::uint32_t n) {
    return static_cast<std::uint32_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
};

/// Links the buffer's lines into one random cycle (Sattolo's shuffle): line
/// k holds the address of the line after it. Returns the first line.
void* link_cycle(char* buf, std::uint64_t bytes) {
  const auto n = static_cast<std::uint32_t>(std::max<std::uint64_t>(2, bytes / kLine));
  std::vector<std::uint32_t> next(n);
  for (std::uint32_t i = 0; i < n; ++i) next[i] = i;
  Rng rng;
  for (std::uint32_t i = n - 1; i > 0; --i) std::swap(next[i], next[rng.below(i)]);
  for (std::uint32_t i = 0; i < n; ++i) {
    *reinterpret_cast<void**>(buf + std::uint64_t{i} * kLine) = buf + std::uint64_t{next[i]} * kLine;
  }
  return buf;
}

/// n dependent loads (n a multiple of 8): each address is the value the last load read.
[[gnu::noinline]] void* chase(void* p, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; i += 8) {
    p = *static_cast<void**>(p);
    p = *static_cast<void**>(p);
    p = *static_cast<void**>(p);
    p = *static_cast<void**>(p);
    p = *static_cast<void**>(p);
    p = *static_cast<void**>(p);
    p = *static_cast<void**>(p);
    p = *static_cast<void**>(p);
  }
  return p;
}

void* volatile g_sink;

/// Context switches of the calling thread so far.
long switches() {
  rusage u{};
  ::getrusage(RUSAGE_THREAD, &u);
  return u.ru_nvcsw + u.ru_nivcsw;
}

/// One level: links its buffer, runs one untimed pass, then timed passes
/// until settings.passes of them ran without a context switch (another
/// process's time and its evictions are not a load's latency), or 8× as
/// many ran; the median of the clean ones (of all, if none was clean).
void measure_level(LevelLatency& level, std::uint64_t loads, unsigned passes, double ns_per_tick) {
  HugeBuffer buf(level.buffer_bytes);
  void* p = link_cycle(buf.data(), level.buffer_bytes);
  level.huge_page_fraction = buf.huge_fraction();
  loads = std::max<std::uint64_t>(8, loads / 8 * 8);
  passes = std::max(1u, passes);
  p = chase(p, loads);
  std::vector<double> clean, all;
  while (clean.size() < passes && all.size() < 8 * passes) {
    const long s0 = switches();
    const std::uint64_t t0 = base::interval_begin();
    p = chase(p, loads);
    const std::uint64_t t1 = base::interval_end();
    const double ns = static_cast<double>(t1 - t0) * ns_per_tick / static_cast<double>(loads);
    all.push_back(ns);
    if (switches() == s0) clean.push_back(ns);
  }
  g_sink = p;
  std::vector<double>& ns = clean.empty() ? all : clean;
  std::sort(ns.begin(), ns.end());
  level.ns = ns[ns.size() / 2];
  level.min_ns = ns.front();
  level.max_ns = ns.back();
  level.clean_passes = static_cast<unsigned>(clean.size());
  level.passes_run = static_cast<unsigned>(all.size());
}

nlohmann::json by_level(const LatencyReference& r, auto field) {
  return {{"l1", field(r.l1)}, {"l2", field(r.l2)}, {"llc", field(r.llc)}, {"dram", field(r.dram)}};
}

}  // namespace

CacheSizes read_cache_sizes() {
  CacheSizes c;
  for (int i = 0; i < 16; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    const std::string type = read_line(dir + "type");
    if (type.empty()) continue;
    if (type != "Data" && type != "Unified") continue;
    const int level = std::atoi(read_line(dir + "level").c_str());
    const std::uint64_t size = parse_sysfs_size(read_line(dir + "size"));
    c.source = "sysfs";
    if (level == 1) c.l1d = size;
    if (level == 2) c.l2 = size;
    if (level >= 2 && static_cast<unsigned>(level) >= c.llc_level) {
      c.llc = size;
      c.llc_level = static_cast<unsigned>(level);
    }
  }
  if (!c.source.empty()) return c;
  c.l1d = sysconf_bytes(_SC_LEVEL1_DCACHE_SIZE);
  c.l2 = sysconf_bytes(_SC_LEVEL2_CACHE_SIZE);
  for (auto [level, name] : {std::pair{2u, _SC_LEVEL2_CACHE_SIZE}, {3u, _SC_LEVEL3_CACHE_SIZE},
                             {4u, _SC_LEVEL4_CACHE_SIZE}}) {
    if (const std::uint64_t s = sysconf_bytes(name); s > 0) {
      c.llc = s;
      c.llc_level = level;
    }
  }
  c.source = c.l1d || c.l2 || c.llc ? "sysconf" : "none";
  return c;
}

void size_buffers(const CacheSizes& caches, const LatencyProbeSettings& settings, LatencyReference& out) {
  const std::uint64_t l1d = caches.l1d ? caches.l1d : 32 * 1024;
  const std::uint64_t l2 = caches.l2 ? caches.l2 : 512 * 1024;
  const std::uint64_t llc = caches.llc ? caches.llc : 8 * kMiB;
  out.l1.buffer_bytes = l1d / 2;
  out.l2.buffer_bytes = std::max(l2 / 2, 4 * out.l1.buffer_bytes);
  out.llc.buffer_bytes = std::max(std::min(llc / 2, 16 * kMiB), 4 * out.l2.buffer_bytes);
  out.dram.buffer_bytes =
      std::max(settings.dram_bytes ? settings.dram_bytes : 256 * kMiB, 16 * out.llc.buffer_bytes);
}

LatencyReference probe_latency(const LatencyProbeSettings& settings) {
  const auto w0 = std::chrono::steady_clock::now();
  LatencyReference r;
  r.settings = settings;
  r.caches = read_cache_sizes();
  r.ns_per_tick = base::ns_per_tick();
  size_buffers(r.caches, settings, r);
  measure_level(r.l1, settings.loads_per_pass, settings.passes, r.ns_per_tick);
  measure_level(r.l2, settings.loads_per_pass, settings.passes, r.ns_per_tick);
  measure_level(r.llc, settings.loads_per_pass, settings.passes, r.ns_per_tick);
  measure_level(r.dram, settings.dram_loads_per_pass, settings.passes, r.ns_per_tick);
  r.probe_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  return r;
}

nlohmann::json latency_reference_json(const LatencyReference& r) {
  std::ostringstream method;
  method << "dependent pointer chase: one random cycle (Sattolo) over the 64-byte lines of a buffer per level, "
            "each line holding the next one's address; ns per load is the median of "
         << r.settings.passes
         << " timed passes (rdtsc at its measured rate) after one untimed pass, counting only passes in which "
            "the thread was not switched out (clean_passes; of all passes_run when none was). Buffers are 2 MiB aligned and "
            "advised for transparent huge pages (huge_page_fraction: how much was granted); where not granted, "
            "the LLC and DRAM figures include TLB misses. The LLC buffer is at most 16 MiB, since a core may "
            "reach only its own slice of a large LLC (a VM may report the package's total)";
  return {
      {"l1_ns", r.l1.ns},
      {"l2_ns", r.l2.ns},
      {"llc_ns", r.llc.ns},
      {"dram_ns", r.dram.ns},
      {"buffer_bytes", by_level(r, [](const LevelLatency& l) { return l.buffer_bytes; })},
      {"range_ns", by_level(r, [](const LevelLatency& l) { return nlohmann::json::array({l.min_ns, l.max_ns}); })},
      {"clean_passes", by_level(r, [](const LevelLatency& l) { return l.clean_passes; })},
      {"passes_run", by_level(r, [](const LevelLatency& l) { return l.passes_run; })},
      {"huge_page_fraction", by_level(r, [](const LevelLatency& l) { return l.huge_page_fraction; })},
      {"cache_bytes", {{"l1d", r.caches.l1d}, {"l2", r.caches.l2}, {"llc", r.caches.llc},
                       {"llc_level", r.caches.llc_level}, {"source", r.caches.source}}},
      {"passes", r.settings.passes},
      {"loads_per_pass", {{"caches", r.settings.loads_per_pass}, {"dram", r.settings.dram_loads_per_pass}}},
      {"ns_per_tick", r.ns_per_tick},
      {"probe_s", r.probe_s},
      {"method", method.str()},
  };
}

nlohmann::json measure_latency_reference() {
  try {
    return latency_reference_json(probe_latency());
  } catch (const std::exception& e) {
    return {{"error", std::string("latency probe failed: ") + e.what()}};
  }
}

}  // namespace kmbench
