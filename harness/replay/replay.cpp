#include "harness/replay/replay.h"

#include "allocators/physmem/physmem.h"

#include <numa.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "allocators/errors.h"
#include "allocators/registry.h"

namespace kmbench::replay {
namespace {

using Clock = std::chrono::steady_clock;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// What one replay thread measured; merged after the run.
struct alignas(64) ThreadOutcome {
  std::array<LatencyHistogram, ops::kOpKinds> latency;
  std::uint64_t noblock_failures = 0;
  std::uint64_t failed_allocs = 0;
  std::uint64_t stalls = 0;
  std::uint64_t wait_ticks = 0;
  std::uint64_t max_lag_ns = 0;
  double lag_sum_ns = 0;
  Clock::time_point end;
};

/// State every replay thread shares: blocks and sequence numbers by object id.
struct Shared {
  std::unique_ptr<void*[]> blocks;
  std::unique_ptr<std::atomic<std::uint32_t>[]> seq;
  std::unique_ptr<DmaHandle[]> dma;  // by object id; only when the program maps buffers for DMA
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  Clock::time_point start;
  double speed = 1;
  Touch touch = Touch::first;
};

inline void touch_block(void* p, const Step& s, Touch touch) noexcept {
  if (touch == Touch::none || s.size == 0) {
    return;
  }
  auto* bytes = static_cast<volatile unsigned char*>(p);
  if (touch == Touch::pages || s.kind != ops::OpKind::alloc) {
    for (std::uint64_t off = 0; off < s.size; off += kPageBytes) {
      bytes[off] = 1;
    }
  } else {
    bytes[0] = 1;
  }
}

template <bool kLatency, bool kPaced, class B>
void replay_thread(B& b, const std::vector<Step>& steps, Shared& sh, ThreadOutcome& out) {
  void** blocks = sh.blocks.get();
  std::atomic<std::uint32_t>* seq = sh.seq.get();
  DmaHandle* dma = sh.dma.get();
  const Touch touch = sh.touch;
  sh.ready.fetch_add(1, std::memory_order_acq_rel);
  while (!sh.go.load(std::memory_order_acquire)) {
    std::this_thread::yield();
  }
  const Clock::time_point start = sh.start;
  for (const Step& st : steps) {
    if constexpr (kPaced) {
      const auto target = start + std::chrono::nanoseconds(
                                      static_cast<std::int64_t>(static_cast<double>(st.time_ns) / sh.speed));
      auto now = Clock::now();
      if (target - now > std::chrono::microseconds(200)) {
        std::this_thread::sleep_for(target - now - std::chrono::microseconds(100));
        now = Clock::now();
      }
      while (now < target) {
        cpu_relax();
        now = Clock::now();
      }
      const auto lag = static_cast<std::uint64_t>((now - target).count());
      out.max_lag_ns = std::max(out.max_lag_ns, lag);
      out.lag_sum_ns += static_cast<double>(lag);
    }
    if ((st.ctl & kStepWait) != 0) [[unlikely]] {
      std::atomic<std::uint32_t>& q = seq[st.object];
      if (q.load(std::memory_order_acquire) < st.ordinal) {
        const std::uint64_t w0 = ticks();
        unsigned spins = 0;
        while (q.load(std::memory_order_acquire) < st.ordinal) {
          if (++spins < 64) {
            cpu_relax();
          } else {
            std::this_thread::yield();
          }
        }
        out.wait_ticks += ticks() - w0;
        ++out.stalls;
      }
    }
    const std::uint64_t t0 = kLatency ? ticks() : 0;
    void*& block = blocks[st.object];
    switch (st.kind) {
      case ops::OpKind::alloc:
      case ops::OpKind::page_alloc:
      case ops::OpKind::dma_alloc: {
        void* p = b.allocate(st.size, std::size_t{1} << st.align_log2, st.tag, st.node);
        block = p;
        if (p != nullptr) [[likely]] {
          touch_block(p, st, touch);
        } else if ((st.flags & ops::kOpNoblock) != 0) {
          ++out.noblock_failures;
        } else {
          ++out.failed_allocs;
        }
        break;
      }
      case ops::OpKind::free:
      case ops::OpKind::page_free:
      case ops::OpKind::dma_free:
        if (dma != nullptr && dma[st.object].command != nullptr) [[unlikely]] {
          dma_complete(dma[st.object]);  // freed while mapped: the transfer ends first
        }
        b.free(block, st.size, st.tag);
        block = nullptr;
        break;
      case ops::OpKind::dma_map:
        if (block != nullptr) {
          dma_complete(dma[st.object]);  // a buffer mapped again: the earlier transfer ends
          dma[st.object] = dma_prepare(block, st);
        }
        break;
      case ops::OpKind::dma_unmap:
        if (dma != nullptr) dma_complete(dma[st.object]);
        break;
    }
    if constexpr (kLatency) {
      out.latency[static_cast<int>(st.kind)].record(ticks() - t0);
    }
    if ((st.ctl & kStepPublish) != 0) [[unlikely]] {
      seq[st.object].store(st.ordinal + 1, std::memory_order_release);
    }
  }
  out.end = Clock::now();
}

struct Topology {
  unsigned nodes = 1;
  unsigned cpus = 1;
  bool synthetic = false;  // nodes are the simulated machine's, not the kernel's
  std::string description;
};

/// The run's topology: the process's simulated machine when it is synthetic
/// (its nodes exist only in the page layer), else the kernel's nodes.
Topology run_topology() {
  Topology t;
  t.cpus = static_cast<unsigned>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  const physmem::Machine& m = physmem::current_machine();
  if (m.synthetic()) {
    t.nodes = m.node_count();
    t.synthetic = true;
    t.description = m.topology_description();
    return t;
  }
  if (numa_available() >= 0) {
    t.nodes = static_cast<unsigned>(std::max(1, numa_num_configured_nodes()));
  }
  t.description = "real: " + std::to_string(t.nodes) + " node" + (t.nodes == 1 ? "" : "s") + ", " +
                  std::to_string(t.cpus) + " CPUs";
  return t;
}

/// CPUs the replay threads may run on: the node's, or the process's affinity.
std::vector<int> cpus_for(NodeId node, const Topology& topo) {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof(set), &set);
  if (node != kAnyNode && (node < 0 || static_cast<unsigned>(node) >= topo.nodes)) {
    throw UsageError("node " + std::to_string(node) + " is not in this machine's topology (" +
                     std::to_string(topo.nodes) + " node" + (topo.nodes == 1 ? "" : "s") + ")");
  }
  // A synthetic node has no CPUs of its own: threads run on the process's CPUs.
  if (node == kAnyNode || topo.synthetic || numa_available() < 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
    return cpus;
  }
  struct bitmask* mask = numa_allocate_cpumask();
  if (numa_node_to_cpus(node, mask) == 0) {
    for (unsigned c = 0; c < mask->size && c < CPU_SETSIZE; ++c) {
      if (numa_bitmask_isbitset(mask, c) && CPU_ISSET(c, &set)) cpus.push_back(static_cast<int>(c));
    }
  }
  numa_free_cpumask(mask);
  if (cpus.empty()) {
    throw UsageError("node " + std::to_string(node) + " has no CPU this process may run on");
  }
  return cpus;
}

/// Memory node each step asks for, from the placement and the threads' node.
void place_steps(Program& prog, const Options& o, const Topology& topo) {
  for (auto& steps : prog.threads) {
    for (Step& s : steps) {
      NodeId n = kAnyNode;
      if (o.node == kAnyNode) {
        n = s.node >= 0 && static_cast<unsigned>(s.node) < topo.nodes ? s.node : kAnyNode;
      } else if (o.placement == Placement::local) {
        n = o.node;
      } else if (o.placement == Placement::remote) {
        n = static_cast<NodeId>((static_cast<unsigned>(o.node) + 1) % topo.nodes);
      } else {
        n = static_cast<NodeId>(s.object % topo.nodes);
      }
      s.node = static_cast<std::int8_t>(n);
    }
  }
}

LatencySummary summarize(const LatencyHistogram& h, double ns_per_tick) {
  LatencySummary s;
  s.count = h.count();
  if (s.count == 0) return s;
  s.p50_ns = static_cast<double>(h.quantile(0.5)) * ns_per_tick;
  s.p90_ns = static_cast<double>(h.quantile(0.9)) * ns_per_tick;
  s.p99_ns = static_cast<double>(h.quantile(0.99)) * ns_per_tick;
  s.p999_ns = static_cast<double>(h.quantile(0.999)) * ns_per_tick;
  s.max_ns = static_cast<double>(h.max()) * ns_per_tick;
  for (int i = 0; i < LatencyHistogram::kBuckets; ++i) {
    if (h.bucket_count(i) > 0) {
      s.histogram.emplace_back(static_cast<double>(LatencyHistogram::upper_bound(i)) * ns_per_tick,
                               h.bucket_count(i));
    }
  }
  return s;
}

template <class B>
void run_on(B& b, const Program& prog, const Options& opt, const std::vector<int>& cpus,
            Result& r) {
  const unsigned n = static_cast<unsigned>(prog.threads.size());
  Shared sh;
  sh.blocks = std::make_unique<void*[]>(prog.object_count + 1);
  sh.seq = std::make_unique<std::atomic<std::uint32_t>[]>(prog.object_count + 1);
  sh.speed = opt.speed;
  sh.touch = opt.touch;
  if (prog.dma_maps > 0) sh.dma = std::make_unique<DmaHandle[]>(prog.object_count + 1);
  dma_begin(opt.iommu, opt.iommu_bits);
  std::vector<ThreadOutcome> outcomes(n);

  FootprintSampler sampler(
      [&b] {
        const CountingStats s = b.stats();
        FootprintSample f;
        f.mapped_bytes = s.backend.mapped_bytes;
        f.resident_bytes = s.backend.resident_bytes;
        f.live_bytes = s.live_bytes;
        f.rss_bytes = process_rss_bytes();
        return f;
      },
      std::chrono::milliseconds(opt.sample_ms));

  std::vector<std::thread> threads;
  threads.reserve(n);
  r.cpus.assign(n, -1);
  for (unsigned t = 0; t < n; ++t) {
    if (opt.pin && !cpus.empty()) r.cpus[t] = cpus[t % cpus.size()];
    threads.emplace_back([&, t] {
      if (r.cpus[t] >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(r.cpus[t], &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      }
      const bool paced = opt.mode == Mode::paced;
      if (opt.latency) {
        paced ? replay_thread<true, true>(b, prog.threads[t], sh, outcomes[t])
              : replay_thread<true, false>(b, prog.threads[t], sh, outcomes[t]);
      } else {
        paced ? replay_thread<false, true>(b, prog.threads[t], sh, outcomes[t])
              : replay_thread<false, false>(b, prog.threads[t], sh, outcomes[t]);
      }
    });
  }
  while (sh.ready.load(std::memory_order_acquire) < n) {
    std::this_thread::yield();
  }
  sampler.start();
  sh.start = Clock::now();
  sh.go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  Clock::time_point end = sh.start;
  for (const ThreadOutcome& o : outcomes) end = std::max(end, o.end);
  sampler.stop();
  for (std::uint32_t o = 0; sh.dma && o <= prog.object_count; ++o) dma_complete(sh.dma[o]);
  r.dma = dma_end();

  const double npt = ns_per_tick();
  r.events = prog.steps;
  r.duration_ns = static_cast<std::uint64_t>((end - sh.start).count());
  r.ops_per_sec = r.duration_ns > 0 ? static_cast<double>(r.events) * 1e9 / static_cast<double>(r.duration_ns) : 0;
  std::array<LatencyHistogram, ops::kOpKinds> merged{};
  double lag_sum = 0;
  for (const ThreadOutcome& o : outcomes) {
    for (int k = 0; k < ops::kOpKinds; ++k) merged[k].merge(o.latency[k]);
    r.noblock_failures += o.noblock_failures;
    r.failed_allocs += o.failed_allocs;
    r.dependency_stalls += o.stalls;
    r.dependency_wait_ns += static_cast<std::uint64_t>(static_cast<double>(o.wait_ticks) * npt);
    r.paced_max_lag_ns = std::max(r.paced_max_lag_ns, o.max_lag_ns);
    lag_sum += o.lag_sum_ns;
  }
  if (opt.mode == Mode::paced && r.events > 0) r.paced_mean_lag_ns = lag_sum / static_cast<double>(r.events);
  for (int k = 0; k < ops::kOpKinds; ++k) r.latency[k] = summarize(merged[k], npt);
  r.dependency_checks = prog.cross_thread_waits;
  r.dma_note = dma_note((B::kFeatures & kFeaturePhysical) != 0, opt.iommu, opt.iommu_bits);

  // Footprint: the backend's mapped bytes where it reports them, else RSS.
  const CountingStats before_drain = b.stats();
  r.timeline = sampler.timeline();
  bool use_mapped = false;
  for (const FootprintSample& f : r.timeline) use_mapped |= f.mapped_bytes > 0;
  r.footprint_source = use_mapped ? "backend mapped bytes" : "process RSS";
  for (const FootprintSample& f : r.timeline) {
    r.peak_footprint_bytes = std::max(r.peak_footprint_bytes, use_mapped ? f.mapped_bytes : f.rss_bytes);
  }
  r.peak_live_bytes = before_drain.peak_live_bytes;
  r.fragmentation = r.peak_live_bytes > 0 ? static_cast<double>(r.peak_footprint_bytes) /
                                                static_cast<double>(r.peak_live_bytes)
                                          : 0;
  r.final_live_blocks = before_drain.live_blocks;
  r.final_live_bytes = before_drain.live_bytes;

  // Blocks the replay still holds, with the size and tag of their allocation.
  std::vector<const Step*> last_alloc(prog.object_count, nullptr);
  for (const auto& steps : prog.threads) {
    for (const Step& s : steps) {
      if (is_alloc(s.kind) && (last_alloc[s.object] == nullptr || last_alloc[s.object]->ordinal < s.ordinal)) {
        last_alloc[s.object] = &s;
      }
    }
  }
  std::int64_t held = 0;
  for (std::uint32_t o = 0; o < prog.object_count; ++o) {
    if (sh.blocks[o] != nullptr) ++held;
  }
  auto release_held = [&] {
    for (std::uint32_t o = 0; o < prog.object_count; ++o) {
      if (sh.blocks[o] != nullptr) {
        b.free(sh.blocks[o], last_alloc[o]->size, last_alloc[o]->tag);
        sh.blocks[o] = nullptr;
      }
    }
  };
  if (opt.drain) {
    release_held();
  }
  const CountingStats fin = b.stats();
  r.drained = opt.drain;
  std::string detail;
  bool ok = true;
  if (opt.drain) {
    if (fin.live_blocks != 0 || fin.live_bytes != 0 || fin.live_handed_out_bytes != 0) {
      ok = false;
      detail += "backend accounting after drain: " + std::to_string(fin.live_blocks) + " blocks, " +
                std::to_string(fin.live_bytes) + " bytes live; ";
    }
    for (const TagStats& t : fin.tags) {
      if (t.live_blocks != 0 || t.live_bytes != 0) {
        ok = false;
        detail += "tag " + (t.tag < prog.tag_names.size() ? prog.tag_names[t.tag] : std::to_string(t.tag)) +
                  ": " + std::to_string(t.live_bytes) + " bytes live; ";
      }
    }
    if (ok) {
      detail = "drained " + std::to_string(held) + " live blocks; backend and " +
               std::to_string(fin.tags.size()) + " tags read zero live blocks and bytes";
    }
  } else {
    ok = fin.live_blocks == held;
    detail = "not drained: " + std::to_string(held) + " blocks held by the replay, " +
             std::to_string(fin.live_blocks) + " live in the backend's accounting";
  }
  r.accounting_ok = ok;
  r.accounting_detail = detail;
  for (const TagStats& t : fin.tags) {
    const std::string name = t.tag < prog.tag_names.size() ? prog.tag_names[t.tag] : std::to_string(t.tag);
    r.tags.push_back({name, t.allocs, t.frees, t.live_blocks, t.live_bytes, t.peak_live_bytes});
  }
  r.metrics = before_drain.backend.metrics;
  r.metrics.push_back({"backend.mapped_bytes", static_cast<double>(before_drain.backend.mapped_bytes)});
  r.metrics.push_back({"backend.resident_bytes", static_cast<double>(before_drain.backend.resident_bytes)});
  r.metrics.push_back({"backend.metadata_bytes", static_cast<double>(before_drain.backend.metadata_bytes)});
  r.metrics.push_back({"backend.requested_bytes", static_cast<double>(before_drain.requested_bytes)});
  r.metrics.push_back({"backend.handed_out_bytes", static_cast<double>(before_drain.handed_out_bytes)});
  // Not drained: the blocks still go back once everything is measured, since
  // the system backend's memory belongs to the process, not to the backend.
  release_held();
}

}  // namespace

std::string_view name_of(Mode m) { return m == Mode::fast ? "fast" : "paced"; }
std::string_view name_of(Touch t) {
  return t == Touch::none ? "none" : t == Touch::first ? "first" : "pages";
}
std::string_view name_of(Placement p) {
  return p == Placement::local ? "local" : p == Placement::remote ? "remote" : "interleaved";
}
std::string_view latency_name(ops::OpKind k) {
  static constexpr std::string_view kNames[ops::kOpKinds] = {
      "alloc", "free", "page_alloc", "page_free", "dma_alloc", "dma_free", "dma_prepare", "dma_complete"};
  return kNames[static_cast<int>(k)];
}

double ns_per_tick() {
  static const double value = [] {
    const auto c0 = Clock::now();
    const std::uint64_t t0 = ticks();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::uint64_t t1 = ticks();
    const auto c1 = Clock::now();
    const double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(c1 - c0).count());
    return t1 > t0 ? ns / static_cast<double>(t1 - t0) : 1.0;
  }();
  return value;
}

RecorderCost measure_recorder_cost() {
  constexpr int kRounds = 200000;
  LatencyHistogram h;
  const std::uint64_t begin = ticks();
  for (int i = 0; i < kRounds; ++i) {
    const std::uint64_t t0 = ticks();
    h.record(ticks() - t0);
  }
  const std::uint64_t spent = ticks() - begin;
  RecorderCost c;
  c.ns_per_record = static_cast<double>(spent) * ns_per_tick() / kRounds;
  c.timer_floor_ns = static_cast<double>(h.quantile(0.5)) * ns_per_tick();
  return c;
}

Result run(const Program& program_in, std::string_view backend, const Options& options) {
  const BackendInfo* info = find_backend(backend);
  if (info == nullptr) {
    std::string known;
    for (const BackendInfo& b : all_backends()) known += (known.empty() ? "" : ", ") + b.name;
    throw UsageError("unknown backend '" + std::string(backend) + "' (known: " + known + ")");
  }
  if (!info->executable.empty()) {
    throw UsageError("backend '" + std::string(backend) + "' runs in its own executable (" +
                     info->executable + "); replaying through it from this process is not supported yet");
  }
  if (!(options.speed > 0)) {
    throw UsageError("--speed must be positive");
  }
  const Topology topo = run_topology();
  if (options.placement != Placement::local && options.node == kAnyNode) {
    throw UsageError("placement " + std::string(name_of(options.placement)) + " needs --node");
  }
  if (options.placement == Placement::remote && topo.nodes < 2) {
    throw UsageError("placement remote needs at least two nodes; this machine has " +
                     std::to_string(topo.nodes));
  }
  const std::vector<int> cpus = cpus_for(options.node, topo);
  Program program = program_in;
  place_steps(program, options, topo);

  Result r;
  r.backend = std::string(backend);
  r.options = options;
  r.threads = static_cast<unsigned>(program.threads.size());
  r.topology_kind = topo.synthetic ? "synthetic" : "real";
  r.topology_description = topo.description;
  r.topology_nodes = topo.nodes;
  r.numa_measured = false;
  r.numa_note = topo.synthetic ? physmem::current_machine().numa_note()
                : topo.nodes == 1
                    ? "real machine with one node: placement not measured"
                    : "placement requested but not verified (no page-location check in this build)";
  r.dropped = program.dropped;
  if (options.latency) r.recorder = measure_recorder_cost();

  BackendConfig config;
  config.cpus = std::max<unsigned>(r.threads, 1);
  config.params = options.backend_params;
  config.demand_bytes = program.alloc_bytes;
  const bool found = with_backend(backend, config, [&](auto& b) { run_on(b, program, options, cpus, r); });
  if (!found) {
    throw UsageError("backend '" + std::string(backend) + "' is not compiled into this executable");
  }
  if (options.latency && r.duration_ns > 0 && r.threads > 0) {
    r.recorder_overhead_fraction = r.recorder.ns_per_record * static_cast<double>(r.events) /
                                   (static_cast<double>(r.duration_ns) * r.threads);
  }

  auto add = [&](std::string name, double v) { r.metrics.push_back({std::move(name), v}); };
  for (int k = 0; k < ops::kOpKinds; ++k) {
    const LatencySummary& l = r.latency[k];
    if (l.count == 0) continue;
    const std::string base = "replay.latency." + std::string(latency_name(static_cast<ops::OpKind>(k)));
    add(base + ".count", static_cast<double>(l.count));
    add(base + ".p50_ns", l.p50_ns);
    add(base + ".p90_ns", l.p90_ns);
    add(base + ".p99_ns", l.p99_ns);
    add(base + ".p999_ns", l.p999_ns);
    add(base + ".max_ns", l.max_ns);
  }
  add("replay.events", static_cast<double>(r.events));
  add("replay.ops_per_sec", r.ops_per_sec);
  add("replay.dependency.checks", static_cast<double>(r.dependency_checks));
  add("replay.dependency.stalls", static_cast<double>(r.dependency_stalls));
  add("replay.dependency.wait_ns", static_cast<double>(r.dependency_wait_ns));
  add("replay.failed_allocs", static_cast<double>(r.failed_allocs));
  add("replay.noblock_failures", static_cast<double>(r.noblock_failures));
  if (options.latency) {
    add("replay.recorder.ns_per_record", r.recorder.ns_per_record);
    add("replay.recorder.timer_floor_ns", r.recorder.timer_floor_ns);
    add("replay.recorder.overhead_fraction", r.recorder_overhead_fraction);
  }
  if (options.mode == Mode::paced) {
    add("replay.paced.max_lag_ns", static_cast<double>(r.paced_max_lag_ns));
    add("replay.paced.mean_lag_ns", r.paced_mean_lag_ns);
  }
  for (const auto& [why, count] : r.dropped) add("replay.dropped." + why, static_cast<double>(count));
  add("replay.dma.bytes", static_cast<double>(r.dma.transfer_bytes));
  return r;
}

Result run(const ops::Trace& trace, std::string_view backend, const Options& options) {
  unsigned threads = options.threads;
  if (threads == 0) threads = static_cast<unsigned>(std::max<std::size_t>(trace.streams.size(), 1));
  return run(build_program(trace, threads), backend, options);
}

}  // namespace kmbench::replay
