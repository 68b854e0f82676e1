// Replay: runs an operation stream (a trace or a workload) through a backend
// and fills a plain Result record; writers (cell_json.h) only read it.
//
// The backend is chosen once per run (with_backend); the replay loop is
// instantiated per backend (replay_loop.h), walks pre-decoded steps
// (program.h) and indexes blocks by object id. One thread per recorded
// stream, or streams folded onto a requested count, each pinned to a CPU of
// the chosen node. Every backend but glibc draws from one simulated machine
// sized from the stream's demand and made resident before anything is timed
// (run_machine.h); warm-up passes run first, untimed, and the timed pass
// starts from the state they left. The timed pass's thread time is split
// into allocator, touch, DMA layer, cross-thread wait and harness.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "allocators/backend.h"
#include "harness/replay/pressure.h"
#include "harness/replay/pressure_spec.h"
#include "kmbench/kpi.h"
#include "ops/ops.h"
#include "ops/size_classes.h"
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
/// How a recorded realloc runs (program.h joins its free and allocation):
/// backend: the backend's own realloc where it has one (kFeatureRealloc), else
/// allocate, copy and free; copy: allocate, copy and free on every backend;
/// split: a free, then an unrelated allocation, nothing copied.
enum class Realloc { backend, copy, split };
/// What a KPI recording's allocations and frees go through: kpi, the KPI call
/// each was made by (kpi_path.h), on this backend lent to the KPI; backend,
/// the backend's own calls, as any trace's; automatic, kpi for a stream with
/// KPI calls, else backend.
enum class Via { automatic, backend, kpi };

/// The options' spellings (option_table.cpp holds them with the option table).
std::string_view name_of(Mode m);
std::string_view name_of(Touch t);
std::string_view name_of(Placement p);
std::string_view name_of(Realloc r);
std::string_view name_of(Via v);
std::string_view name_of(kpi::Mode m);
/// Names used in results for each ops::OpKind, in its order (a run's index
/// lists them for the charts).
inline constexpr std::string_view kLatencyNames[ops::kOpKinds] = {
    "alloc", "free", "page_alloc", "page_free", "dma_alloc", "dma_free", "dma_prepare", "dma_complete"};
inline std::string_view latency_name(ops::OpKind k) { return kLatencyNames[static_cast<int>(k)]; }

/// The footprint sampler's interval: sample_ms when it is set; otherwise about
/// 100 samples over a pass as long as the last warm-up pass (warm_pass_ns, 0
/// when none ran: 10 ms), between 1 and 10 ms. A sample stops every replay
/// thread (0.1-2 ms on a busy 2-CPU machine), so it is not taken more often.
std::chrono::microseconds sampling_interval(unsigned sample_ms, std::uint64_t warm_pass_ns);

/// Footprint samples by step count in a timed pass, besides those by time,
/// so that a short pass still has a timeline a reader can follow.
inline constexpr std::uint64_t kSamplesBySteps = 100;
/// Each replay thread samples every max(1, steps / kSamplesBySteps) of its own
/// steps, steps counting every thread's: about kSamplesBySteps over the pass.
std::uint64_t sampling_every_steps(std::uint64_t steps);

struct Options {
  Mode mode = Mode::fast;
  double speed = 1.0;          // paced: trace time / speed
  unsigned threads = 0;        // 0: one per stream
  unsigned warmup = 1;         // untimed passes (as fast as possible) before the timed one; 0: cold
  /// Warm-up passes at most while the backend still adapts (AdaptingBackend:
  /// a pass that changed its tuning is followed by another); at least `warmup`.
  unsigned settle = 8;
  NodeId node = kAnyNode;      // threads pinned to this node's CPUs; kAnyNode: the process's CPUs
  Placement placement = Placement::local;
  bool drain = false;          // free every live block at the end and check accounting
  Touch touch = Touch::first;
  Realloc realloc = Realloc::backend;
  Via via = Via::automatic;
  kpi::Mode kpi_mode = kpi::Mode::xnu;  // through the KPI: its checks as XNU makes them, or strict
  PressureSpec pressure;                // memory pressure over the timed pass (empty: none)
  bool latency = true;         // time each operation: latency and the time split
  bool pin = true;             // pin each thread to a CPU
  unsigned sample_ms = 0;      // footprint sampling interval; 0: auto (sampling_interval)
  bool iommu = false;          // DMA through a system IOMapper (simulated IOMMU)
  unsigned iommu_bits = 32;    // its I/O virtual address bits
  std::string topology = "real";      // the simulated machine's: real, synthetic:..., xml:...
  std::uint64_t node_bytes = 0;       // simulated RAM per node (0: sized from the stream's demand)
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

/// Where the timed pass's thread time went (sums over threads, in ns).
struct TimeSplit {
  bool measured = false;         // false: --no-latency (nothing but wall time and waits)
  double allocator_ns = 0;       // inside the backend's allocate and free, timer floor taken off
  double touch_ns = 0;           // writing blocks after allocation (--touch)
  double dma_ns = 0;             // the KPI DMA layer: prepare, segments, complete, bounce copies
  double wait_ns = 0;            // waiting for another thread's step on the same object
  double sampling_ns = 0;        // parked while the footprint sampler read the backend
  double pacing_ns = 0;          // paced: waiting for a step's time
  double idle_ns = 0;            // finished, waiting for the last thread
  double harness_ns = 0;         // the rest: the loop, accounting, timers, NUMA counting
  double thread_ns = 0;          // threads x duration
  std::uint64_t allocator_ops = 0;  // backend calls: allocation and free steps (a joined realloc is one)
  double allocator_ns_per_op = 0;
};

/// The simulated machine the run drew from.
struct MachineInfo {
  std::uint64_t node_bytes = 0;      // RAM per node
  std::uint64_t low_bytes = 0;       // of node 0's, below 4 GiB
  std::uint64_t ram_bytes = 0;       // all nodes
  std::string sizing;                // how node_bytes was chosen
  bool populated = false;
  double populate_seconds = 0;       // 0 when an earlier run of the process populated it
  std::uint64_t huge_page_bytes = 0; // anonymous memory in huge pages after populating
  bool reused = false;               // an earlier run's machine, large enough
  std::string memory_source;         // where this backend's memory came from
};

/// NUMA placement measured from the simulated physical address of each block.
struct NumaLocality {
  bool measured = false;
  std::uint64_t local_bytes = 0, remote_bytes = 0;  // handed out on / off the allocating thread's node
  std::uint64_t local_allocs = 0, remote_allocs = 0;
  std::uint64_t frees = 0, remote_frees = 0;        // freed by a thread of another node than the memory's
  std::vector<std::vector<std::uint64_t>> bytes;    // [thread node][memory node]
};

/// The stream's dma32, contiguous and zeroed flags, as the backend honoured them.
struct FlagCounts {
  std::uint64_t low_requested = 0, low_unhonoured = 0;            // dma32 allocations
  std::uint64_t contiguous_requested = 0, contiguous_unhonoured = 0;
  std::uint64_t zeroed = 0;                                        // zero-filled allocations
  std::uint64_t low_transfers = 0;       // 32-bit transfers over dma32-flagged blocks
  std::uint64_t unhonoured_bounces = 0;  // of which bounced because the block was not below 4 GiB
  std::string note;
};

/// One KPI family's allocations and frees in a timed pass through the KPI.
struct KpiFamilyCount {
  std::string family;  // as kpi::family_usage() names it
  std::uint64_t allocs = 0, frees = 0;
};

/// The timed pass's reallocs (the program's joined pairs).
struct ReallocCounts {
  std::uint64_t calls = 0;     // reallocs run as one call (Realloc::split: none)
  std::uint64_t in_place = 0;  // of which kept the block where it was
  std::uint64_t failed = 0;    // of which failed: the old block was freed, the new one counts as failed
  std::uint64_t own = 0;       // of which the backend's own realloc served (the rest: allocate, copy, free)
};

/// A timed pass under memory pressure (Options::pressure; pressure.h).
struct PressureResult {
  bool active = false;
  std::string spec;
  std::uint64_t peak_live_bytes = 0;  // the stream's, what cap=P% is a share of
  std::string note;                   // what the balloon reaches on this backend
  /// Failed allocations: [alloc, page, dma][blocking, noblock]; frees and maps of their blocks skipped.
  std::array<std::array<std::uint64_t, 2>, 3> failures{};
  std::uint64_t allocations = 0;  // allocation steps of the timed pass
  double failures_per_1000 = 0;   // all failures per 1000 allocation steps
  std::uint64_t skipped_frees = 0, skipped_maps = 0;
  std::uint64_t reclaim_calls = 0;      // the backend's reclaim, run by a blocking allocation that failed
  std::uint64_t reclaimed_bytes = 0;    // what those calls gave back to the machine
  std::uint64_t rescued = 0;            // allocations that failed, then succeeded after a reclaim
  std::uint64_t reclaim_skipped = 0;    // failures that skipped reclaim: the thread's last gave nothing back
  LatencySummary reclaim_latency;
  std::uint64_t kpi_reclaims = 0, kpi_rescued = 0;  // through the KPI: the reclaim passes its calls ran
  /// After each lift of the pressure (the memory left rose), how long allocations kept failing:
  /// the last failure before the next squeeze (or the pass's end), from the lift; 0 when none failed.
  std::vector<std::uint64_t> recovery_ns;
  /// Failures by kind over the pass, in kFailureBins equal spans of it.
  static constexpr std::size_t kFailureBins = 50;
  std::array<std::array<std::uint64_t, kFailureBins>, 3> failures_over_time{};
  PressureRecord record;
};

/// Requested against handed-out bytes over one size class of the requests
/// (ops/size_classes.h), every allocation of the program counted once.
struct SizeClassUse {
  std::uint64_t allocs = 0, requested_bytes = 0, handed_out_bytes = 0;
};

/// A call site of the trace: its allocations, where they were freed, the
/// bytes this backend hands out for them, and the backend's time on them.
struct SiteResult {
  std::string name;
  std::uint64_t allocs = 0, bytes = 0, frees = 0, cross_cpu_frees = 0, handed_out_bytes = 0;
  // The timed pass (with latency): the backend's calls for the site's steps
  // (allocations, frees) and their time, the timer's floor taken off.
  std::uint64_t timed_ops = 0;
  double allocator_ns = 0;
};

struct Result {
  std::string backend;
  Options options;
  unsigned threads = 0;
  std::vector<int> cpus;  // CPU each thread was pinned to (-1: not pinned)
  std::string topology_kind, topology_description;
  unsigned topology_nodes = 1;
  std::string figure;     // "steady state: N warm-up passes" or "cold: no warm-up"
  unsigned warmup_passes = 0;  // run: options.warmup, or more while the backend adapted
  bool settled = true;         // the last warm-up pass left the backend's tuning as it found it

  std::uint64_t events = 0;
  std::uint64_t duration_ns = 0;
  double ops_per_sec = 0;
  TimeSplit time;
  std::uint64_t minor_faults = 0, major_faults = 0;  // during the timed pass (getrusage)
  std::array<LatencySummary, ops::kOpKinds> latency{};
  LatencySummary paced_lag;  // paced: how late steps started
  RecorderCost recorder;
  double recorder_overhead_fraction = 0;  // recorder time / replay thread time
  MachineInfo machine;

  /// The most memory the backend held: the highest sample, and never less than
  /// peak_live_bytes where the samples show the backend holds its live bytes
  /// (record_footprint).
  std::uint64_t peak_footprint_bytes = 0;
  std::uint64_t peak_sampled_footprint_bytes = 0;  // the highest sample alone
  /// Whether peak_live_bytes exceeded every sample and so is the peak footprint.
  bool peak_footprint_from_live() const { return peak_footprint_bytes > peak_sampled_footprint_bytes; }
  std::int64_t peak_live_bytes = 0;          // exact (Counting), over the timed pass
  std::int64_t peak_sampled_live_bytes = 0;  // over the samples
  double fragmentation = 0;                  // highest sampled footprint / highest sampled live bytes
  std::string footprint_source;   // "backend mapped bytes" or "process RSS"
  std::uint64_t footprint_below_live = 0;  // samples whose footprint was below their live bytes
  std::vector<FootprintSample> timeline;
  double sampling_max_pause_ns = 0;
  std::uint64_t sampling_stopped_ns = 0;  // wall time every replay thread stood stopped for a sample
  std::uint64_t sample_interval_us = 0;  // the interval the sampler started with
  std::uint64_t sample_every_ops = 0;    // each replay thread also samples every this many of its steps
  std::uint64_t peak_samples = 0;        // samples taken where the live bytes peaked (sample_at_peak)

  std::int64_t final_live_blocks = 0;
  std::int64_t final_live_bytes = 0;
  std::uint64_t noblock_failures = 0;
  std::uint64_t failed_allocs = 0;  // blocking allocations that returned null
  /// The replay's own memory: the program, and the tables by object id the
  /// threads share (each object's block and DMA handle) and the handoffs between them.
  std::uint64_t program_bytes = 0, object_table_bytes = 0;
  std::uint64_t dependency_checks = 0;  // steps ordered after another thread's
  std::uint64_t dependency_stalls = 0;  // of which had to wait
  std::uint64_t dependency_wait_ns = 0;
  std::uint64_t paced_max_lag_ns = 0;   // paced: latest start behind schedule
  double paced_mean_lag_ns = 0;

  kpi::DmaStats dma;  // the KPI DMA layer's counters over the timed pass
  std::string dma_note;
  FlagCounts flags;
  ReallocCounts reallocs;
  PressureResult pressure;
  LatencySummary realloc_latency;  // each joined realloc's backend call (not in latency[alloc] or [free])
  double realloc_allocator_ns = 0; // their sum, timer floor taken off (part of time.allocator_ns)
  bool via_kpi = false;            // the KPI's calls ran (Via), in kpi_mode
  std::string kpi_mode, kpi_note;
  std::vector<KpiFamilyCount> kpi_families;  // the timed pass's calls by KPI family (via_kpi)
  bool numa_measured = false;
  std::string numa_note;
  NumaLocality numa;
  std::vector<TagResult> tags;
  bool drained = false;
  bool accounting_ok = false;
  std::string accounting_detail;
  std::int64_t backend_live_blocks = -1;  // the backend's own count at the check (-1: it cannot tell)
  std::int64_t backend_live_bytes = -1;
  std::map<std::string, std::uint64_t> dropped;  // operations the program could not order
  std::vector<Metric> metrics;                   // replay.* and backend.*

  // Measured after the timed pass (handed_out.h): one block per distinct request.
  bool handed_out_measured = false;
  std::array<SizeClassUse, ops::kSizeClasses> size_classes{};
  std::uint64_t refused_requests = 0;  // distinct requests the backend refused (counted as asked)
  std::vector<SiteResult> sites;       // empty when the stream names no call site
};

/// Fills r's size classes and sites from the program's requests and the
/// handed-out bytes of each (measure_handed_out).
void record_handed_out(Result& r, const Program& program, const std::vector<std::uint64_t>& handed);

/// The replay threads for a trace: options.threads, or one per stream.
unsigned replay_threads(const ops::Trace& trace, const Options& options);

/// Runs program through the named in-process backend.
/// Throws UsageError for an unknown backend, one that runs in a worker
/// executable, a node not in the topology, bad options or a demand the
/// machine cannot hold (saying how much was asked and how much there is).
Result run(const Program& program, std::string_view backend, const Options& options);

/// build_program(trace, threads or the stream count) then run.
Result run(const ops::Trace& trace, std::string_view backend, const Options& options);

}  // namespace kmbench::replay
