// Watermarks and reclaim: each zone's min/low/high marks, the shrinkers cache
// owners register, the background reclaimer (kswapd) and direct reclaim.
//
// One kswapd thread serves every node, where Linux runs one per node: Linux's
// runs on its node's CPUs and reclaims that node's LRU lists, while here the
// shrinkers are the backends' reclaim, which is not per node. Threads per node
// would run the same shrinkers at once for nothing; the one thread balances
// each woken node in turn. It lives while a shrinker is registered, so that
// the CPU slot its shrinkers' calls claim goes back when the replay ends.
#include <algorithm>
#include <cmath>
#include <string>

#include "allocators/physmem/physmem.h"
#include "base/errors.h"

namespace kmbench::physmem {
namespace {

// MAX_RECLAIM_RETRIES: after so many runs that freed nothing, kswapd leaves a
// node alone until an allocation finds memory above low there again.
constexpr std::uint32_t kMaxFruitlessRuns = 16;
// DEF_PRIORITY + 1: the passes of one run (balance_pgdat's priority loop).
constexpr unsigned kMaxPassesPerRun = 13;

thread_local bool t_kswapd = false;
thread_local bool t_in_reclaim = false;  // PF_MEMALLOC: a shrinker's allocations do not reclaim again

/// Marks the calling thread as reclaiming for its lifetime.
struct ReclaimScope {
  ReclaimScope() noexcept { t_in_reclaim = true; }
  ~ReclaimScope() { t_in_reclaim = false; }
  ReclaimScope(const ReclaimScope&) = delete;
  ReclaimScope& operator=(const ReclaimScope&) = delete;
};

}  // namespace

bool current_is_kswapd() noexcept { return t_kswapd; }

// ---- watermarks -------------------------------------------------------------------

std::uint64_t default_min_free_kbytes(std::uint64_t lowmem_pages) noexcept {
  const std::uint64_t kib = lowmem_pages * (kPageSize >> 10);
  auto root = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(kib * 16)));
  while (root * root > kib * 16) {  // int_sqrt: the floor, whichever way the double rounded
    --root;
  }
  while ((root + 1) * (root + 1) <= kib * 16) {
    ++root;
  }
  return std::clamp<std::uint64_t>(root, 128, 262144);
}

ZoneWatermarks zone_watermarks(std::uint64_t zone_pages, std::uint64_t lowmem_pages,
                               std::uint64_t min_free_kbytes, std::uint32_t scale_factor) noexcept {
  if (lowmem_pages == 0) {
    return {};
  }
  const std::uint64_t pages_min = min_free_kbytes >> (kPageShift - 10);
  ZoneWatermarks w;
  // In 128 bits: exact whatever min_free_kbytes a user gives.
  w.min = static_cast<std::uint64_t>(static_cast<unsigned __int128>(pages_min) * zone_pages / lowmem_pages);
  const std::uint64_t gap = std::max(w.min / 4, zone_pages * scale_factor / 10000);
  w.low = w.min + gap;
  w.high = w.low + gap;
  return w;
}

void Machine::apply_watermark_params(std::uint64_t min_free_kbytes, std::uint32_t scale_factor) {
  if (scale_factor == 0) {
    scale_factor = kDefaultWatermarkScaleFactor;
  }
  if (scale_factor > kMaxWatermarkScaleFactor) {
    throw UsageError("watermark_scale_factor " + std::to_string(scale_factor) + " is outside [1, " +
                     std::to_string(kMaxWatermarkScaleFactor) + "] (in 1/10000 of a zone)");
  }
  std::uint64_t lowmem = 0;
  for (const Node& n : mem_) {
    for (const auto& z : n.zones) {
      lowmem += z->managed;
    }
  }
  if (min_free_kbytes == 0) {
    min_free_kbytes = default_min_free_kbytes(lowmem);
  } else if (min_free_kbytes >= lowmem * (kPageSize >> 10)) {
    throw UsageError("min_free_kbytes " + std::to_string(min_free_kbytes) + " is not below the machine's " +
                     std::to_string(lowmem * (kPageSize >> 10)) + " KiB of memory");
  }
  std::vector<ZoneWatermarks> marks;
  for (std::size_t k = 0; k < mem_.size(); ++k) {
    for (const auto& z : mem_[k].zones) {
      const ZoneWatermarks w = zone_watermarks(z->managed, lowmem, min_free_kbytes, scale_factor);
      if (w.high >= z->managed) {
        throw UsageError("min_free_kbytes " + std::to_string(min_free_kbytes) + " with watermark_scale_factor " +
                         std::to_string(scale_factor) + " leaves node " + std::to_string(k) + "'s " +
                         zone_name(z->kind) + " zone no page above its high mark (" + std::to_string(w.high) +
                         " of " + std::to_string(z->managed) + " pages)");
      }
      marks.push_back(w);
    }
  }
  std::size_t i = 0;
  for (Node& n : mem_) {
    for (auto& z : n.zones) {
      const ZoneWatermarks& w = marks[i++];
      std::lock_guard<std::mutex> hold(z->lock);
      z->wmark = {w.min, w.low, w.high};
    }
  }
  min_free_kbytes_ = min_free_kbytes;
  watermark_scale_factor_ = scale_factor;
}

void Machine::set_watermark_params(std::uint64_t min_free_kbytes, std::uint32_t scale_factor) {
  apply_watermark_params(min_free_kbytes, scale_factor);
}

void Machine::set_zone_watermarks(NodeId node, ZoneKind zone, ZoneWatermarks marks) {
  if (node < 0 || static_cast<unsigned>(node) >= node_count_) {
    throw UsageError("watermarks: no node " + std::to_string(node) + " (the machine has " +
                     std::to_string(node_count_) + ")");
  }
  for (auto& z : mem_[static_cast<std::size_t>(node)].zones) {
    if (z->kind != zone) {
      continue;
    }
    if (marks.min > marks.low || marks.low > marks.high || marks.high > z->managed) {
      throw UsageError("watermarks of node " + std::to_string(node) + "'s " + zone_name(zone) +
                       " zone: need min <= low <= high <= " + std::to_string(z->managed) + " pages (got " +
                       std::to_string(marks.min) + ", " + std::to_string(marks.low) + ", " +
                       std::to_string(marks.high) + ")");
    }
    std::lock_guard<std::mutex> hold(z->lock);
    z->wmark = {marks.min, marks.low, marks.high};
    return;
  }
  throw UsageError("watermarks: node " + std::to_string(node) + " has no " + zone_name(zone) + " zone");
}

// ---- shrinkers ----------------------------------------------------------------------

std::uint64_t Machine::register_shrinker(Shrinker shrinker) {
  std::lock_guard<std::mutex> registry(registry_lock_);
  std::uint64_t id = 0;
  {
    std::unique_lock<std::shared_mutex> hold(shrinker_lock_);
    id = next_shrinker_++;
    shrinkers_.emplace_back(id, std::move(shrinker));
  }
  if (!kswapd_.joinable()) {
    {
      std::lock_guard<std::mutex> hold(kswapd_lock_);
      kswapd_work_ = false;
      kswapd_stop_ = false;
    }
    for (unsigned k = 0; k < node_count_; ++k) {
      reclaim_[k].pending.store(false, std::memory_order_relaxed);
    }
    try {
      kswapd_ = std::thread([this] { kswapd_main(); });
    } catch (...) {
      std::unique_lock<std::shared_mutex> hold(shrinker_lock_);
      shrinkers_.pop_back();
      throw;
    }
  }
  shrinker_count_.fetch_add(1, std::memory_order_release);
  return id;
}

void Machine::unregister_shrinker(std::uint64_t id) noexcept {
  std::lock_guard<std::mutex> registry(registry_lock_);
  bool last = false;
  {
    // Exclusive: waits for every running pass (kswapd's, direct reclaim's) to let go of it.
    std::unique_lock<std::shared_mutex> hold(shrinker_lock_);
    const auto it = std::find_if(shrinkers_.begin(), shrinkers_.end(), [&](const auto& s) { return s.first == id; });
    if (it == shrinkers_.end()) {
      return;
    }
    shrinkers_.erase(it);
    shrinker_count_.fetch_sub(1, std::memory_order_relaxed);
    last = shrinkers_.empty();
  }
  if (last) {
    stop_kswapd();
  }
}

void Machine::stop_kswapd() noexcept {
  if (!kswapd_.joinable()) {
    return;
  }
  {
    std::lock_guard<std::mutex> hold(kswapd_lock_);
    kswapd_stop_ = true;
  }
  kswapd_wake_.notify_one();
  kswapd_.join();
}

std::size_t Machine::run_shrinkers() noexcept {
  ReclaimScope reclaiming;
  std::shared_lock<std::shared_mutex> hold(shrinker_lock_);
  std::size_t bytes = 0;
  for (auto& [id, shrink] : shrinkers_) {
    // As the replay's own reclaim does: the light pass first, everything when it gave nothing.
    std::size_t got = shrink(ReclaimLevel::trim);
    if (got == 0) {
      got = shrink(ReclaimLevel::drain);
    }
    bytes += got;
  }
  return bytes;
}

std::size_t Machine::direct_reclaim(NodeId node) noexcept {
  if (t_in_reclaim || shrinker_count_.load(std::memory_order_acquire) == 0) {
    return 0;
  }
  const std::size_t bytes = run_shrinkers();
  drain_local(false);  // what the shrinkers freed on this thread sits in its page lists
  NodeReclaim& r = reclaim_[static_cast<std::size_t>(node)];
  r.direct.fetch_add(1, std::memory_order_relaxed);
  r.direct_pages.fetch_add(bytes >> kPageShift, std::memory_order_relaxed);
  return bytes;
}

// ---- kswapd ---------------------------------------------------------------------------

void Machine::wake_kswapd(NodeId node) noexcept {
  if (shrinker_count_.load(std::memory_order_acquire) == 0) {
    return;  // nothing to reclaim with, and no thread
  }
  NodeReclaim& r = reclaim_[static_cast<std::size_t>(node)];
  if (r.fruitless.load(std::memory_order_relaxed) >= kMaxFruitlessRuns ||
      r.pending.exchange(true, std::memory_order_acq_rel)) {
    return;  // a hopeless node, or kswapd is on it already (Linux: waitqueue_active)
  }
  r.wakeups.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> hold(kswapd_lock_);
    kswapd_work_ = true;
  }
  kswapd_wake_.notify_one();
}

bool Machine::node_balanced(NodeId node) const noexcept {
  for (const auto& z : mem_[static_cast<std::size_t>(node)].zones) {
    std::lock_guard<std::mutex> hold(z->lock);
    if (z->free_pages < z->wmark[2]) {
      return false;
    }
  }
  return true;
}

bool Machine::kswapd_balance(NodeId node) noexcept {
  NodeReclaim& r = reclaim_[static_cast<std::size_t>(node)];
  std::size_t freed = 0;
  bool balanced = node_balanced(node);
  for (unsigned pass = 0; pass < kMaxPassesPerRun && !balanced; ++pass) {
    r.passes.fetch_add(1, std::memory_order_relaxed);
    const std::size_t bytes = run_shrinkers();
    // Pages the shrinkers freed on this thread sit in its own page lists: to the buddy with them.
    drain_local(false);
    r.reclaimed_pages.fetch_add(bytes >> kPageShift, std::memory_order_relaxed);
    freed += bytes;
    balanced = node_balanced(node);
    if (bytes == 0) {
      break;  // a pass that frees nothing: another would not either
    }
  }
  return balanced || freed != 0;
}

void Machine::kswapd_main() noexcept {
  t_kswapd = true;
  std::unique_lock<std::mutex> hold(kswapd_lock_);
  for (;;) {
    kswapd_wake_.wait(hold, [this] { return kswapd_work_ || kswapd_stop_; });
    if (kswapd_stop_) {
      return;
    }
    kswapd_work_ = false;
    hold.unlock();
    for (unsigned k = 0; k < node_count_; ++k) {
      NodeReclaim& r = reclaim_[k];
      if (!r.pending.load(std::memory_order_acquire)) {
        continue;
      }
      const bool helped = kswapd_balance(static_cast<NodeId>(k));
      if (helped) {
        r.fruitless.store(0, std::memory_order_relaxed);
      } else {
        r.fruitless.fetch_add(1, std::memory_order_relaxed);
      }
      // The run is over before it is counted: whoever sees the count may wake kswapd again.
      r.pending.store(false, std::memory_order_release);
      if (!helped) {
        r.failed_runs.fetch_add(1, std::memory_order_release);
      }
    }
    hold.lock();
  }
}

}  // namespace kmbench::physmem
