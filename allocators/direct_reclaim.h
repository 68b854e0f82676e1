// Direct reclaim, as a kernel's allocator runs it for a request that may
// wait and found no memory: the backend gives back what it caches (trim,
// then drain) and the request is tried again after each pass; then it fails.
// When both passes gave nothing back, the thread's next failures skip
// reclaim for kReclaimBackoffNs, as a kernel stops retrying reclaim that
// makes no progress; without that, a backend whose reclaim returns nothing
// would pay its whole reclaim again on every failure. The replay's blocking
// allocations (harness/replay/replay_steps.h) and the KPI's calls that may
// wait (kpi/src/runtime.cpp) both run it. A request that may not wait
// (noblock, nowait) never comes here.
#pragma once

#include <cstdint>

#include "allocators/backend.h"
#include "base/clock.h"

namespace kmbench {

inline constexpr double kReclaimBackoffNs = 1e6;

/// A thread's backoff: the tick until which its failures skip reclaim.
struct ReclaimBackoff {
  std::uint64_t until = 0;
};

/// One pass, as the caller is told of it: what the backend gave back, what
/// the retry returned and when the pass began (base::ticks()).
struct ReclaimPass {
  std::size_t bytes;
  void* block;
  std::uint64_t began;
};

/// Runs the passes: `reclaim(level)` returns the bytes the backend gave back,
/// `retry()` the block or nullptr, `seen(pass)` is told of each pass. Returns
/// the block, or nullptr; `skipped` (when given) says whether the backoff
/// skipped reclaim.
template <class Reclaim, class Retry, class Seen>
void* reclaim_and_retry(ReclaimBackoff& backoff, Reclaim&& reclaim, Retry&& retry, Seen&& seen,
                        bool* skipped = nullptr) {
  if (skipped != nullptr) *skipped = false;
  if (base::ticks() < backoff.until) {
    if (skipped != nullptr) *skipped = true;
    return nullptr;
  }
  std::size_t given = 0;
  for (const ReclaimLevel level : {ReclaimLevel::trim, ReclaimLevel::drain}) {
    const std::uint64_t began = base::ticks();
    const std::size_t bytes = reclaim(level);
    given += bytes;
    void* p = retry();
    seen(ReclaimPass{bytes, p, began});
    if (p != nullptr) return p;
  }
  if (given == 0) backoff.until = base::ticks() + static_cast<std::uint64_t>(kReclaimBackoffNs / base::ns_per_tick());
  return nullptr;
}

}  // namespace kmbench
