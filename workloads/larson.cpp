// larson: the server pattern of Larson and Krishnan's benchmark. Each thread
// owns an array of blocks and replaces a random one per round; at each epoch
// the arrays move on to the next thread (a worker exits, another inherits its
// connections), so blocks allocated by one thread are freed by another.
#include "workloads/builder.h"

namespace kmbench::workloads {
namespace {

ops::Trace generate_larson(const Params& p, std::uint64_t seed) {
  const unsigned threads = stream_count(p, "threads");
  const std::uint64_t rounds = p.u64("rounds");
  const std::uint64_t slots = p.u64("slots", 1);
  const auto [lo, hi] = size_range(p, "min", "max");
  const std::uint64_t epochs = p.u64("epochs", 1);
  const double op_ns = op_time_ns(p);

  if (p.check_only()) return {};

  Rng rng(seed);
  Builder b("larson", threads);
  const std::uint32_t tag = b.str("larson_block");
  const OpArgs args{0, tag, b.str("larson_server")};
  struct Block {
    std::uint32_t object;
    std::uint64_t size;
  };
  std::vector<std::vector<Block>> arrays(threads);
  for (unsigned t = 0; t < threads; ++t) {
    for (std::uint64_t i = 0; i < slots; ++i) {
      const Block blk{b.object(), rng.between(lo, hi)};
      b.op(t, static_cast<double>(i) * op_ns, OpKind::alloc, blk.object, blk.size, args);
      arrays[t].push_back(blk);
    }
  }
  double t0 = static_cast<double>(slots) * op_ns;
  const std::uint64_t per_epoch = (rounds + epochs - 1) / epochs;
  for (std::uint64_t e = 0; e < epochs; ++e) {
    const std::uint64_t n = std::min(per_epoch, rounds - std::min(rounds, e * per_epoch));
    for (unsigned t = 0; t < threads; ++t) {
      // Thread t works on array (t + e) % threads in this epoch.
      auto& arr = arrays[(t + e) % threads];
      for (std::uint64_t r = 0; r < n; ++r) {
        const double at = t0 + static_cast<double>(r) * op_ns;
        Block& blk = arr[rng.below(slots)];
        b.op(t, at, OpKind::free, blk.object, blk.size, args);
        blk = {b.object(), rng.between(lo, hi)};
        b.op(t, at + op_ns / 2, OpKind::alloc, blk.object, blk.size, args);
      }
    }
    t0 += static_cast<double>(n) * op_ns + 1000;
  }
  for (unsigned t = 0; t < threads; ++t) {
    double at = t0;
    for (const Block& blk : arrays[(t + epochs) % threads]) {
      b.op(t, at += op_ns, OpKind::free, blk.object, blk.size, args);
    }
  }
  return b.finish();
}

}  // namespace

WorkloadInfo larson_workload() {
  return {"larson",
          "larson-like server: threads replace random blocks in their slot arrays and hand the arrays on to the next thread",
          {{"threads", "2", "server threads (streams)"},
           {"rounds", "100000", "replacements per thread"},
           {"slots", "1000", "blocks per thread's array"},
           {"min", "16", "smallest block"},
           {"max", "512", "largest block"},
           {"epochs", "4", "array hand-offs per run"},
           {"op_ns", "100", "time per replacement"}},
          generate_larson};
}

}  // namespace kmbench::workloads
