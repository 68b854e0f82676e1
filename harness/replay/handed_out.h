// What a backend hands out for each request of a program, measured after the
// timed pass: one block per distinct request (size, alignment, below 4 GiB),
// asked for, sized by the backend's own usable_size (handed_out, backend.h)
// and given back. The timed pass is not touched.
#pragma once

#include <cstdint>
#include <vector>

#include "allocators/backend.h"
#include "harness/replay/requests.h"

namespace kmbench::replay {

/// Handed-out bytes per request, in the order of `requests`. A request the
/// backend refuses counts as its size and adds to `refused`.
/// pre: no other thread uses b (the replay threads have exited).
template <Backend B>
std::vector<std::uint64_t> measure_handed_out(B& b, const std::vector<Request>& requests, std::uint64_t& refused) {
  std::vector<std::uint64_t> out(requests.size(), 0);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const Request& q = requests[i];
    const std::size_t align = std::size_t{1} << q.align_log2;
    void* p = nullptr;
    bool low = false;
    if constexpr ((B::kFeatures & kFeatureLowMemory) != 0) {
      low = q.low;
      if (low) p = b.allocate_low(q.size, align, kNoTag, kAnyNode);
    }
    if (!low) p = b.allocate(q.size, align, kNoTag, kAnyNode);
    if (p == nullptr) {
      out[i] = q.size;
      ++refused;
      continue;
    }
    out[i] = handed_out(b, p, q.size);
    if constexpr ((B::kFeatures & kFeatureLowMemory) != 0) {
      if (low) {
        b.free_low(p, q.size);
        continue;
      }
    }
    b.free(p, q.size);
  }
  return out;
}

}  // namespace kmbench::replay
