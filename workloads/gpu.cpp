// gpu: large physically contiguous buffers (2-256 MiB, in 2 MiB granules)
// allocated and mapped for the device, beside smaller command buffers. When
// live bytes pass the budget, randomly chosen buffers are freed (by whichever
// CPU runs the driver's reclaim), leaving holes a contiguous allocator must
// work around.
#include "workloads/builder.h"

namespace kmbench::workloads {
namespace {

ops::Trace generate_gpu(const Params& p, std::uint64_t seed) {
  const unsigned streams = stream_count(p, "streams");
  const std::uint64_t buffers = p.u64("buffers");
  const auto [granule, max] = size_range(p, "min", "max", kPage);
  const std::uint64_t budget = p.bytes("budget", max);  // the largest buffer alone fits under it
  const double small_ratio = p.real("small_ratio");
  const double gap_ns = p.real("interval_us") * 1e3;

  if (p.check_only()) return {};

  Rng rng(seed);
  Builder b("gpu", streams);
  const std::uint32_t big_tag = b.str("gpu_vram_backing"), cmd_tag = b.str("gpu_command_buffer"),
                      site = b.str("gpu_bo_create");
  const OpArgs big{ops::kOpContiguous | ops::kOpZero, big_tag, site, 21};
  const OpArgs cmd{0, cmd_tag, site};

  struct Live {
    std::uint32_t object;
    std::uint64_t size;
    bool contiguous;
    double allocated;
  };
  std::vector<Live> live;
  std::uint64_t live_bytes = 0;
  std::vector<double> now(streams, 1000.0);
  double end = 0;
  auto release = [&](double t) {
    const std::size_t k = rng.below(live.size());
    const Live v = live[k];
    live[k] = live.back();
    live.pop_back();
    live_bytes -= v.size;
    const unsigned s = static_cast<unsigned>(rng.below(streams));
    const OpArgs& a = v.contiguous ? big : cmd;
    t = std::max({t, now[s], v.allocated + 200});
    const std::uint8_t dir = v.contiguous ? ops::kOpDirIn : ops::kOpDirOut;
    b.op(s, t, OpKind::dma_unmap, v.object, v.size, {dir, a.tag, site});
    b.op(s, t + 100, OpKind::dma_free, v.object, v.size, a);
    now[s] = t + 100;
  };
  double small_credit = 0;
  for (std::uint64_t i = 0; i < buffers; ++i) {
    const unsigned s = static_cast<unsigned>(i % streams);
    double t = now[s] += rng.exponential(gap_ns);
    const std::uint64_t size = rng.log_uniform(1, max / granule) * granule;
    while (!live.empty() && live_bytes + size > budget) release(t);
    t = now[s] = std::max(now[s], t);
    const std::uint32_t o = b.object();
    b.op(s, t, OpKind::dma_alloc, o, size, big);
    b.op(s, t + 100, OpKind::dma_map, o, size, {ops::kOpDirIn, big_tag, site});
    live.push_back({o, size, true, t});
    live_bytes += size;
    for (small_credit += small_ratio; small_credit >= 1; small_credit -= 1) {
      const std::uint64_t csize = rng.log_uniform(64 * 1024, 1024 * 1024) & ~(kPage - 1);
      while (!live.empty() && live_bytes + csize > budget) release(t);
      t = now[s] = std::max(now[s], t) + 200;
      const std::uint32_t c = b.object();
      b.op(s, t, OpKind::dma_alloc, c, csize, cmd);
      b.op(s, t + 50, OpKind::dma_map, c, csize, {ops::kOpDirOut, cmd_tag, site});
      live.push_back({c, csize, false, t});
      live_bytes += csize;
    }
    end = std::max(end, t + 200);
  }
  while (!live.empty()) release(end);
  return b.finish();
}

}  // namespace

WorkloadInfo gpu_workload() {
  return {"gpu",
          "GPU-style large physically contiguous buffers (2-256 MiB) under a memory budget, random frees: fragmentation",
          {{"streams", "2", "CPU streams allocating buffers"},
           {"buffers", "200", "large buffers allocated (all streams)"},
           {"min", "2m", "smallest buffer (and size granule)"},
           {"max", "256m", "largest buffer"},
           {"budget", "768m", "live bytes above which random buffers are freed"},
           {"small_ratio", "2", "command buffers (64 KiB-1 MiB) per large buffer"},
           {"interval_us", "500", "mean time between allocations per stream"}},
          generate_gpu};
}

}  // namespace kmbench::workloads
