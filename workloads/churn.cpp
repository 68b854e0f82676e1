// churn: random sizes allocated and freed at random, with the live set rising
// to `live` and falling to an eighth of it phase by phase, so freed memory
// must be reused for other sizes (fragmentation).
#include "workloads/builder.h"

namespace kmbench::workloads {
namespace {

ops::Trace generate_churn(const Params& p, std::uint64_t seed) {
  const unsigned streams = stream_count(p, "streams");
  const std::uint64_t total = p.u64("ops");
  const std::uint64_t high = p.u64("live", 8);
  const std::uint64_t phases = p.u64("phases", 1);
  const std::uint64_t small_max = p.bytes("small_max", 16);
  const std::uint64_t large_max = p.bytes("large_max", 1024);
  const double large = p.real("large_fraction");
  const double pages = p.real("page_fraction");
  const double cross = p.real("cross");
  const double op_ns = op_time_ns(p);

  if (p.check_only()) return {};

  Rng rng(seed);
  Builder b("churn", streams);
  const std::uint32_t small_tag = b.str("churn_small"), large_tag = b.str("churn_large"),
                      page_tag = b.str("churn_pages"), site = b.str("churn");
  struct Live {
    std::uint32_t object;
    std::uint64_t size;
    unsigned owner;
    std::uint8_t kind;  // 0 small, 1 large, 2 pages
  };
  std::vector<Live> live;
  const std::uint64_t per_phase = std::max<std::uint64_t>(1, total / phases);
  auto free_one = [&](unsigned s, double t) {
    const std::size_t k = rng.below(live.size());
    const Live v = live[k];
    live[k] = live.back();
    live.pop_back();
    const unsigned by = streams > 1 && rng.chance(cross) ? static_cast<unsigned>(rng.below(streams)) : v.owner;
    const std::uint32_t tag = v.kind == 0 ? small_tag : v.kind == 1 ? large_tag : page_tag;
    b.op(by, t, v.kind == 2 ? OpKind::page_free : OpKind::free, v.object, v.size, {0, tag, site});
  };
  for (std::uint64_t i = 0; i < total; ++i) {
    const unsigned s = static_cast<unsigned>(i % streams);
    const double t = static_cast<double>(i / streams) * op_ns;
    const std::uint64_t target = (i / per_phase) % 2 == 0 ? high : high / 8;
    const bool grow = live.size() < target ? rng.chance(0.8) : rng.chance(0.2);
    if (live.empty() || grow) {
      Live v{b.object(), 0, s, 0};
      const double u = rng.unit();
      if (u < pages) {
        v.kind = 2;
        v.size = rng.between(1, 16) * kPage;
      } else if (u < pages + large) {
        v.kind = 1;
        v.size = rng.log_uniform(1024, large_max);
      } else {
        v.size = rng.log_uniform(8, small_max);
      }
      const std::uint32_t tag = v.kind == 0 ? small_tag : v.kind == 1 ? large_tag : page_tag;
      b.op(s, t, v.kind == 2 ? OpKind::page_alloc : OpKind::alloc, v.object, v.size, {0, tag, site});
      live.push_back(v);
    } else {
      free_one(s, t);
    }
  }
  const double end = static_cast<double>(total / streams + 1) * op_ns;
  while (!live.empty()) free_one(static_cast<unsigned>(rng.below(streams)), end);
  return b.finish();
}

}  // namespace

WorkloadInfo churn_workload() {
  return {"churn",
          "random-size churn: mixed small/large/page blocks, live set oscillating between phases (fragmentation)",
          {{"streams", "1", "CPU streams"},
           {"ops", "200000", "operations (all streams)"},
           {"live", "10000", "live blocks at the high phase"},
           {"phases", "8", "high/low phases of the live set"},
           {"small_max", "1024", "largest small block"},
           {"large_max", "64k", "largest large block"},
           {"large_fraction", "0.05", "fraction of large blocks (1 KiB to large_max)"},
           {"page_fraction", "0.01", "fraction of page allocations (1-16 pages)"},
           {"cross", "0.2", "fraction of frees done by another stream"},
           {"op_ns", "100", "time per operation"}},
          generate_churn};
}

}  // namespace kmbench::workloads
