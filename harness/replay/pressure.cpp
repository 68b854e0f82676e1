#include "harness/replay/pressure.h"

#include <algorithm>

#include "allocators/physmem/physmem.h"
#include "base/errors.h"

namespace kmbench::replay {
namespace {

constexpr std::size_t kMaxSamples = 4096;

KswapdRecord kswapd_counters(const physmem::Machine& machine) {
  KswapdRecord k;
  for (const physmem::NodeStats& n : machine.stats().nodes) k += KswapdRecord::of(n);
  return k;
}

/// KswapdRecord's counters, for the member-by-member operators.
constexpr std::uint64_t KswapdRecord::* kKswapdCounters[] = {
    &KswapdRecord::wakeups,          &KswapdRecord::passes,         &KswapdRecord::reclaimed_bytes,
    &KswapdRecord::failed_runs,      &KswapdRecord::below_low_allocs, &KswapdRecord::reserve_allocs,
    &KswapdRecord::min_failures,     &KswapdRecord::direct_reclaims, &KswapdRecord::direct_reclaimed_bytes,
};
static_assert(sizeof(kKswapdCounters) / sizeof(kKswapdCounters[0]) * sizeof(std::uint64_t) == sizeof(KswapdRecord),
              "every counter of KswapdRecord is in kKswapdCounters");

}  // namespace

KswapdRecord KswapdRecord::of(const physmem::NodeStats& n) {
  KswapdRecord k;
  k.wakeups = n.kswapd_wakeups;
  k.passes = n.kswapd_passes;
  k.reclaimed_bytes = n.kswapd_reclaimed_pages << physmem::kPageShift;
  k.failed_runs = n.kswapd_failed_runs;
  k.below_low_allocs = n.below_low_allocs;
  k.reserve_allocs = n.reserve_allocs;
  k.min_failures = n.min_failures;
  k.direct_reclaims = n.direct_reclaims;
  k.direct_reclaimed_bytes = n.direct_reclaimed_pages << physmem::kPageShift;
  return k;
}

KswapdRecord& KswapdRecord::operator+=(const KswapdRecord& o) {
  for (auto m : kKswapdCounters) this->*m += o.*m;
  return *this;
}

KswapdRecord KswapdRecord::operator-(const KswapdRecord& o) const {
  KswapdRecord d;
  for (auto m : kKswapdCounters) d.*m = this->*m - o.*m;
  return d;
}

PressureController::PressureController(PressureSpec spec, physmem::Machine& machine,
                                       std::uint64_t peak_live_bytes,
                                       const std::atomic<std::uint64_t>& steps_done, Reclaim reclaim,
                                       std::chrono::microseconds tick)
    : spec_(std::move(spec)),
      reclaim_(std::move(reclaim)),
      machine_(machine),
      peak_live_bytes_(peak_live_bytes),
      steps_done_(steps_done),
      tick_(tick) {
  caps_.text = spec_.text;
  for (const PressureClause& c : spec_.clauses) {
    if (c.kind == PressureClause::Kind::cap) caps_.clauses.push_back(c);
  }
  const physmem::PageStats stats = machine_.stats();
  for (const PressureClause& c : spec_.clauses) {
    if (c.node != kAnyNode && static_cast<std::size_t>(c.node) >= stats.nodes.size()) {
      const std::size_t n = stats.nodes.size();
      throw UsageError("--pressure: clause '" + c.text + "' names node " + std::to_string(c.node) +
                       ", but the machine has " + std::to_string(n) +
                       (n == 1 ? " node (0)" : " nodes (0 to " + std::to_string(n - 1) + ")") + " (docs/pressure.md)");
    }
  }
  for (const physmem::NodeStats& n : stats.nodes) {
    PressureNode node;
    node.node = n.node;
    node.ram_bytes = n.total_pages << physmem::kPageShift;
    node.min_available_bytes = node.ram_bytes;
    record_.nodes.push_back(node);
    target_.push_back(node.ram_bytes);
  }
}

PressureController::~PressureController() {
  stop();
  for (const PressureNode& n : record_.nodes) machine_.balloon_deflate(n.node, machine_.balloon_pages(n.node));
}

void PressureController::hold_caps() {
  for (std::size_t k = 0; k < record_.nodes.size(); ++k) {
    const PressureNode& n = record_.nodes[k];
    resize_balloon(k, available_bytes(caps_, n.node, n.ram_bytes, peak_live_bytes_, {}));
  }
}

void PressureController::start() {
  kswapd_before_ = kswapd_counters(machine_);
  // Registered now, not with the caps: kswapd's calls claim a CPU slot, and by
  // the timed pass every replay thread holds its own.
  if (reclaim_) shrinker_ = machine_.register_shrinker([this](ReclaimLevel level) { return shrink(level); });
  start_ = std::chrono::steady_clock::now();
  apply({});
  thread_ = std::thread([this] { loop(); });
}

std::size_t PressureController::shrink(ReclaimLevel level) {
  if (!physmem::current_is_kswapd()) return reclaim_(level);  // direct reclaim: the allocation's time, counted there
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t bytes = reclaim_(level);
  const auto took = std::chrono::steady_clock::now() - t0;
  // Only kswapd writes these, and stop() reads them after unregistering, which waits for it.
  ++record_.background_reclaims;
  record_.background_reclaimed_bytes += bytes;
  record_.background_reclaim_ns.push_back(
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()));
  return bytes;
}

void PressureController::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (shrinker_ != 0) {
    machine_.unregister_shrinker(shrinker_);
    shrinker_ = 0;
  }
  record_.kswapd = kswapd_counters(machine_) - kswapd_before_;
  const physmem::PageStats stats = machine_.stats();
  for (PressureNode& n : record_.nodes) {
    const physmem::NodeStats& s = stats.nodes[static_cast<std::size_t>(n.node)];
    for (unsigned order = 0; order <= physmem::kMaxOrder; ++order) n.unusable_index.push_back(s.unusable_index(order));
    machine_.balloon_deflate(n.node, machine_.balloon_pages(n.node));
  }
}

void PressureController::loop() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, tick_, [this] { return stop_; })) {
    const auto now = std::chrono::steady_clock::now();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - start_);
    apply({static_cast<std::uint64_t>(ns.count()), steps_done_.load(std::memory_order_relaxed)});
  }
}

std::uint64_t PressureController::resize_balloon(std::size_t k, std::uint64_t available) {
  const PressureNode& n = record_.nodes[k];
  const std::uint64_t want = (n.ram_bytes - std::min(available, n.ram_bytes)) >> physmem::kPageShift;
  const std::uint64_t have = machine_.balloon_pages(n.node);
  if (have < want) {
    machine_.balloon_inflate(n.node, want - have);
  } else if (have > want) {
    machine_.balloon_deflate(n.node, have - want);
  }
  return machine_.balloon_pages(n.node);
}

void PressureController::apply(PassPoint now) {
  ++record_.ticks;
  bool changed = record_.timeline.empty();
  PressureSample sample{now.ns, now.ops, 0, 0};
  for (std::size_t k = 0; k < record_.nodes.size(); ++k) {
    PressureNode& n = record_.nodes[k];
    const std::uint64_t available = available_bytes(spec_, n.node, n.ram_bytes, peak_live_bytes_, now);
    if (available != target_[k]) {
      (available > target_[k] ? record_.lifts_ns : record_.squeezes_ns).push_back(now.ns);
      target_[k] = available;
      changed = true;
    }
    n.min_available_bytes = std::min(n.min_available_bytes, available);
    const std::uint64_t before = machine_.balloon_pages(n.node);
    const std::uint64_t held = resize_balloon(k, available) << physmem::kPageShift;
    changed |= held != before << physmem::kPageShift;
    const std::uint64_t wanted = n.ram_bytes - std::min(available, n.ram_bytes);
    n.balloon_peak_bytes = std::max(n.balloon_peak_bytes, held);
    n.max_shortfall_bytes = std::max(n.max_shortfall_bytes, wanted > held ? wanted - held : 0);
    sample.available_bytes += available;
    sample.balloon_bytes += held;
  }
  if (changed) {
    if (record_.timeline.size() == kMaxSamples) {  // keep every other sample, the first among them
      std::size_t kept = 0;
      for (std::size_t i = 0; i < record_.timeline.size(); i += 2) record_.timeline[kept++] = record_.timeline[i];
      record_.timeline.resize(kept);
    }
    record_.timeline.push_back(sample);
  }
}

}  // namespace kmbench::replay
