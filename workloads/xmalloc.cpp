// xmalloc: producer/consumer, after Lever and Boreham's xmalloc-test. A
// producer allocates blocks in batches and hands each batch to the next
// stream, which frees it; every free is remote.
#include "workloads/builder.h"

namespace kmbench::workloads {
namespace {

ops::Trace generate_xmalloc(const Params& p, std::uint64_t seed) {
  const unsigned threads = stream_count(p, "threads");
  const std::uint64_t items = p.u64("items");
  const auto [lo, hi] = size_range(p, "min", "max");
  const std::uint64_t batch = p.u64("batch", 1);
  const double delay_ns = p.real("delay_us") * 1e3;
  const double op_ns = op_time_ns(p);

  if (p.check_only()) return {};

  Rng rng(seed);
  Builder b("xmalloc", threads);
  const OpArgs args{0, b.str("xmalloc_item"), b.str("xmalloc_producer")};
  // Producers: even streams (and the last one when the count is odd).
  std::vector<unsigned> producers;
  for (unsigned t = 0; t < threads; t += 2) producers.push_back(t);
  std::vector<double> now(threads, 0);
  std::uint64_t made = 0;
  while (made < items) {
    for (unsigned prod : producers) {
      if (made >= items) break;
      const unsigned cons = (prod + 1) % threads;
      const std::uint64_t n = std::min(batch, items - made);
      double t = now[prod];
      std::vector<std::pair<std::uint32_t, std::uint64_t>> handed;
      for (std::uint64_t i = 0; i < n; ++i, t += op_ns) {
        const std::uint32_t o = b.object();
        const std::uint64_t size = rng.log_uniform(lo, hi);
        b.op(prod, t, OpKind::alloc, o, size, args);
        handed.emplace_back(o, size);
      }
      now[prod] = t;
      double f = std::max(now[cons], t + rng.exponential(delay_ns));
      for (const auto& [o, size] : handed) {
        b.op(cons, f, OpKind::free, o, size, args);
        f += op_ns / 2;
      }
      now[cons] = f;
      made += n;
    }
  }
  return b.finish();
}

}  // namespace

WorkloadInfo xmalloc_workload() {
  return {"xmalloc",
          "xmalloc-like producer/consumer: producers allocate batches that consumers on other CPUs free",
          {{"threads", "2", "streams; even streams produce, the next stream consumes"},
           {"items", "200000", "blocks produced (all producers)"},
           {"min", "16", "smallest block"},
           {"max", "1024", "largest block"},
           {"batch", "64", "blocks handed over at once"},
           {"delay_us", "5", "mean hand-over delay"},
           {"op_ns", "50", "time per allocation"}},
          generate_xmalloc};
}

}  // namespace kmbench::workloads
