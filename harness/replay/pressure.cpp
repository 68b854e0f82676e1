#include "harness/replay/pressure.h"

#include <algorithm>

#include "allocators/physmem/physmem.h"

namespace kmbench::replay {
namespace {

constexpr std::size_t kMaxSamples = 4096;
constexpr std::chrono::milliseconds kReclaimEvery{4};

}  // namespace

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
  start_ = std::chrono::steady_clock::now();
  apply({});
  thread_ = std::thread([this] { loop(); });
}

void PressureController::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
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
    reclaim_if_short(now);
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
  short_ = false;
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
    short_ |= held + physmem::kPageSize <= wanted;
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

void PressureController::reclaim_if_short(std::chrono::steady_clock::time_point now) {
  if (!short_ || !reclaim_ || now - last_reclaim_ < kReclaimEvery) return;
  last_reclaim_ = now;
  std::size_t bytes = reclaim_(ReclaimLevel::trim);
  if (bytes == 0) bytes = reclaim_(ReclaimLevel::drain);
  const auto took = std::chrono::steady_clock::now() - now;
  ++record_.background_reclaims;
  record_.background_reclaimed_bytes += bytes;
  record_.background_reclaim_ns.push_back(
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()));
}

}  // namespace kmbench::replay
