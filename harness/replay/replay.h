// Replay: runs an operation stream (a trace or a workload) through a backend
// and fills a plain Result record; writers (cell_json.h) only read it.
//
// The backend is chosen once per run (with_backend); the replay loop is
// instantiated per backend, walks pre-decoded steps (program.h) and indexes
// blocks by object id. One thread per recorded stream, or streams folded onto
// a requested count, each pinned to a CPU of the chosen node.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "allocators/backend.h"
#include "harness/ops/ops.h"
#include "harness/replay/dma_path.h"
#include "harness/replay/footprint.h"
#include "harness/replay/latency.h"
#include "harness/replay/program.h"

namespace kmbench::replay {

enum class Mode { fast, paced };
/// What is written after an allocation so lazily committed memory is paid for:
/// none; first (first byte of objects, every page of page and DMA buffers); pages (every page of every block).
enum class Touch { none, first, pages };
/// Where memory is asked for relative to the threads' node.
enum class Placement { local, remote, interleaved };

std::string_view name_of(Mode m);
std::string_view name_of(Touch t);
std::string_view name_of(Placement p);
/// Names used in results for each ops::OpKind ("alloc", "free", "page_alloc", ..., "dma_prepare", "dma_complete").
std::string_view latency_name(ops::OpKind k);

struct Options {
  Mode mode = Mode::fast;
  double speed = 1.0;          // paced: trace time / speed
  unsigned threads = 0;        // 0: one per stream
  NodeId node = kAnyNode;      // threads pinned to this node's CPUs; kAnyNode: the process's CPUs
  Placement placement = Placement::local;
  bool drain = false;          // free every live block at the end and check accounting
  Touch touch = Touch::first;
  bool latency = true;         // record per-operation latency
  bool pin = true;             // pin each thread to a CPU
  unsigned sample_ms = 10;     // footprint sampling interval
  bool iommu = false;          // DMA through a system IOMapper (simulated IOMMU)
  unsigned iommu_bits = 32;    // its I/O virtual address bits
  std::map<std::string, std::string> backend_params;
};

struct LatencySummary {
  std::uint64_t count = 0;
  double p50_ns = 0, p90_ns = 0, p99_ns = 0, p999_ns = 0, max_ns = 0;
  std::vector<std::pair<double, std::uint64_t>> histogram;  // [upper bound ns, count], non-empty buckets
};

struct TagResult {
  std::string name;
  std::uint64_t allocs = 0, frees = 0;
  std::int64_t live_blocks = 0, live_bytes = 0, peak_live_bytes = 0;
};

struct Result {
  std::string backend;
  Options options;
  unsigned threads = 0;
  std::vector<int> cpus;  // CPU each thread was pinned to (-1: not pinned)
  std::string topology_kind, topology_description;
  unsigned topology_nodes = 1;

  std::uint64_t events = 0;
  std::uint64_t duration_ns = 0;
  double ops_per_sec = 0;
  std::array<LatencySummary, ops::kOpKinds> latency{};
  RecorderCost recorder;
  double recorder_overhead_fraction = 0;  // recorder time / replay thread time

  std::uint64_t peak_footprint_bytes = 0;
  std::int64_t peak_live_bytes = 0;
  double fragmentation = 0;       // peak footprint / peak live bytes
  std::string footprint_source;   // "backend mapped bytes" or "process RSS"
  std::vector<FootprintSample> timeline;

  std::int64_t final_live_blocks = 0;
  std::int64_t final_live_bytes = 0;
  std::uint64_t noblock_failures = 0;
  std::uint64_t failed_allocs = 0;  // blocking allocations that returned null
  std::uint64_t dependency_checks = 0;  // steps ordered after another thread's
  std::uint64_t dependency_stalls = 0;  // of which had to wait
  std::uint64_t dependency_wait_ns = 0;
  std::uint64_t paced_max_lag_ns = 0;   // paced: latest start behind schedule
  double paced_mean_lag_ns = 0;

  kpi::DmaStats dma;  // the KPI DMA layer's counters over the run
  std::string dma_note;
  bool numa_measured = false;
  std::string numa_note;
  std::vector<TagResult> tags;
  bool drained = false;
  bool accounting_ok = false;
  std::string accounting_detail;
  std::map<std::string, std::uint64_t> dropped;  // operations the program could not order
  std::vector<Metric> metrics;                   // replay.* and backend.*
};

/// Runs program through the named in-process backend.
/// Throws UsageError for an unknown backend, one that runs in a worker
/// executable, a node not in the topology or bad options.
Result run(const Program& program, std::string_view backend, const Options& options);

/// build_program(trace, threads or the stream count) then run.
Result run(const ops::Trace& trace, std::string_view backend, const Options& options);

}  // namespace kmbench::replay
