// `kmbench env latency`: the machine's cache and DRAM load latency, as
// `kmbench run` records it in a run's index.json (latency_reference).
#include <cstdio>
#include <iostream>
#include <memory>

#include "base/errors.h"
#include "base/proc.h"
#include "base/units.h"
#include "harness/cli/command.h"
#include "harness/env/latency_probe.h"

namespace kmbench::cli {
namespace {

struct LatencyArgs {
  bool json = false;
  unsigned passes = LatencyProbeSettings{}.passes;
  std::uint64_t loads = LatencyProbeSettings{}.loads_per_pass;
  std::uint64_t dram_loads = LatencyProbeSettings{}.dram_loads_per_pass;
  std::string dram_bytes;
};

void print_table(const LatencyReference& r) {
  std::printf("caches (%s): L1d %llu KiB, L2 %llu KiB, LLC (L%u) %llu KiB\n", r.caches.source.c_str(),
              static_cast<unsigned long long>(r.caches.l1d >> 10), static_cast<unsigned long long>(r.caches.l2 >> 10),
              r.caches.llc_level, static_cast<unsigned long long>(r.caches.llc >> 10));
  std::printf("%-6s %12s %10s %20s %6s\n", "level", "buffer", "ns/load", "passes min-max", "huge");
  const std::pair<const char*, const LevelLatency*> rows[] = {
      {"L1", &r.l1}, {"L2", &r.l2}, {"LLC", &r.llc}, {"DRAM", &r.dram}};
  for (const auto& [name, l] : rows) {
    std::printf("%-6s %8llu KiB %10.2f %9.2f-%-10.2f %5.0f%%\n", name,
                static_cast<unsigned long long>(l->buffer_bytes >> 10), l->ns, l->min_ns, l->max_ns,
                100 * l->huge_page_fraction);
  }
  std::printf("%u passes, %.2f s\n", r.settings.passes, r.probe_s);
}

}  // namespace

void add_env_command(CLI::App& app) {
  auto* env = app.add_subcommand("env", "Measure the machine kmbench runs on");
  env->require_subcommand(1);
  auto* cmd = env->add_subcommand("latency", "Load-to-use latency of L1, L2, the last-level cache and DRAM "
                                             "(a dependent pointer chase; what `kmbench run` records)");
  auto a = std::make_shared<LatencyArgs>();
  cmd->add_flag("--json", a->json, "Print the JSON object a run's index.json holds as latency_reference");
  // Ranges checked on the text: CLI11 reads "-1" into an unsigned count as 2^64 - 1 (a pass that never ends).
  const CLI::Range loads(1.0, 1e10);
  cmd->add_option("--passes", a->passes, "Timed passes per level (the median is reported)")->capture_default_str();
  cmd->add_option("--loads", a->loads, "Loads per pass in the caches")->capture_default_str()->check(loads);
  cmd->add_option("--dram-loads", a->dram_loads, "Loads per pass in DRAM")->capture_default_str()->check(loads);
  cmd->add_option("--dram-bytes", a->dram_bytes, "The DRAM buffer (default 256m, at least 16x the LLC buffer)");
  cmd->callback([a] {
    LatencyProbeSettings s;
    s.passes = a->passes;
    s.loads_per_pass = a->loads;
    s.dram_loads_per_pass = a->dram_loads;
    if (!a->dram_bytes.empty()) {
      const auto b = base::parse_bytes(a->dram_bytes);
      if (!b || *b == 0) throw UsageError("--dram-bytes '" + a->dram_bytes + "' is not a byte count such as 256m");
      const std::uint64_t available = base::available_memory_bytes();
      if (available != 0 && *b > available / 2) {
        throw UsageError("--dram-bytes '" + a->dram_bytes + "' is more than half the memory available (" +
                         std::to_string(available >> 20) + " MiB)");
      }
      s.dram_bytes = *b;
    }
    if (s.passes == 0 || s.loads_per_pass == 0 || s.dram_loads_per_pass == 0) {
      throw UsageError("--passes, --loads and --dram-loads must be at least 1");
    }
    const LatencyReference r = probe_latency(s);
    if (a->json) {
      std::cout << latency_reference_json(r).dump(2) << "\n";
    } else {
      print_table(r);
    }
  });
}

}  // namespace kmbench::cli
