// nvme: submission/completion queue pairs, one per CPU. Each I/O gets a
// command context, a page-aligned I/O buffer (an IOBufferMemoryDescriptor)
// prepared for DMA (an IODMACommand), and for more than two pages a PRP list
// page per 511 entries. The queue depth bounds I/Os in flight; completion
// unmaps and frees everything, usually on the submitting CPU.
#include <functional>
#include <queue>

#include "workloads/builder.h"

namespace kmbench::workloads {
namespace {

ops::Trace generate_nvme(const Params& p, std::uint64_t seed) {
  const unsigned queues = stream_count(p, "queues");
  const std::uint64_t depth = p.u64("depth", 1);
  const std::uint64_t ios = p.u64("ios");
  const auto [min_io, max_io] = size_range(p, "min_io", "max_io", kPage);
  const double read_ratio = p.real("read_ratio");
  const double gap_ns = 1e9 * queues / p.real("iops", 1);
  const double service_ns = p.real("service_us") * 1e3;
  const double remote = p.real("remote_complete");

  if (p.check_only()) return {};

  Rng rng(seed);
  Builder b("nvme", queues);
  const std::uint32_t ring_tag = b.str("nvme_queue"), io_tag = b.str("nvme_io_buffer"),
                      prp_tag = b.str("nvme_prp_list"), iod_tag = b.str("nvme_iod");
  const std::uint32_t site = b.str("nvme_queue_rq");
  const OpArgs ring_args{ops::kOpContiguous | ops::kOpZero, ring_tag, site};
  const OpArgs iod_args{ops::kOpCache | ops::kOpNoblock, iod_tag, site};
  const OpArgs prp_args{ops::kOpNoblock, prp_tag, site};
  const OpArgs prp_map{ops::kOpDirOut, prp_tag, site};

  struct Ring {
    std::uint32_t sq, cq;
  };
  std::vector<Ring> rings(queues);
  for (unsigned q = 0; q < queues; ++q) {
    rings[q] = {b.object(), b.object()};
    b.op(q, 0, OpKind::dma_alloc, rings[q].sq, depth * 64, ring_args);
    b.op(q, 0, OpKind::dma_map, rings[q].sq, depth * 64, {ops::kOpDirOut, ring_tag, site});
    b.op(q, 0, OpKind::dma_alloc, rings[q].cq, depth * 16, ring_args);
    b.op(q, 0, OpKind::dma_map, rings[q].cq, depth * 16, {ops::kOpDirIn, ring_tag, site});
  }

  using Completions = std::priority_queue<double, std::vector<double>, std::greater<>>;
  std::vector<Completions> inflight(queues);
  std::vector<double> now(queues, 1000.0);
  double end = 0;
  for (std::uint64_t i = 0; i < ios; ++i) {
    const unsigned q = static_cast<unsigned>(i % queues);
    double t = now[q] += rng.exponential(gap_ns);
    while (!inflight[q].empty() && inflight[q].top() <= t) inflight[q].pop();
    if (inflight[q].size() >= depth) {  // queue full: submit when the earliest I/O completes
      t = now[q] = inflight[q].top() + 100;
      inflight[q].pop();
    }
    // Sizes: powers of two, log-uniform, or any page multiple (30%).
    std::uint64_t size = rng.log_uniform(min_io, max_io);
    size = rng.chance(0.3) ? (size + kPage - 1) / kPage * kPage : std::uint64_t{1} << (63 - __builtin_clzll(size));
    size = std::clamp(size, min_io, max_io);
    const bool read = rng.chance(read_ratio);
    const std::uint8_t dir = read ? ops::kOpDirIn : ops::kOpDirOut;
    const std::uint64_t pages = (size + kPage - 1) / kPage;
    const std::uint64_t prp_pages = pages > 2 ? (pages - 1 + 510) / 511 : 0;

    const std::uint32_t iod = b.object(), buf = b.object();
    b.op(q, t, OpKind::alloc, iod, 128 + 8 * std::min<std::uint64_t>(pages, 64), iod_args);
    b.op(q, t + 20, OpKind::dma_alloc, buf, size, {ops::kOpNoblock, io_tag, site});
    b.op(q, t + 40, OpKind::dma_map, buf, size, {dir, io_tag, site});
    std::vector<std::uint32_t> prps;
    for (std::uint64_t k = 0; k < prp_pages; ++k) {
      const std::uint32_t prp = b.object();
      prps.push_back(prp);
      b.op(q, t + 60, OpKind::page_alloc, prp, kPage, prp_args);
      b.op(q, t + 70, OpKind::dma_map, prp, kPage, prp_map);
    }
    const double done = t + 100 + rng.exponential(service_ns) + static_cast<double>(size) / 3.0;  // ~3 GB/s
    inflight[q].push(done);
    const unsigned c = queues > 1 && rng.chance(remote) ? static_cast<unsigned>((q + 1) % queues) : q;
    for (std::uint32_t prp : prps) {
      b.op(c, done, OpKind::dma_unmap, prp, kPage, prp_map);
      b.op(c, done + 5, OpKind::page_free, prp, kPage, prp_args);
    }
    b.op(c, done + 10, OpKind::dma_unmap, buf, size, {dir, io_tag, site});
    b.op(c, done + 20, OpKind::dma_free, buf, size, {0, io_tag, site});
    b.op(c, done + 30, OpKind::free, iod, 128 + 8 * std::min<std::uint64_t>(pages, 64), iod_args);
    end = std::max(end, done + 30);
  }
  for (unsigned q = 0; q < queues; ++q) {
    b.op(q, end + 1000, OpKind::dma_unmap, rings[q].sq, depth * 64, {ops::kOpDirOut, ring_tag, site});
    b.op(q, end + 1010, OpKind::dma_free, rings[q].sq, depth * 64, ring_args);
    b.op(q, end + 1020, OpKind::dma_unmap, rings[q].cq, depth * 16, {ops::kOpDirIn, ring_tag, site});
    b.op(q, end + 1030, OpKind::dma_free, rings[q].cq, depth * 16, ring_args);
  }
  return b.finish();
}

}  // namespace

WorkloadInfo nvme_workload() {
  return {"nvme",
          "NVMe SQ/CQ pairs: 4 KiB-1 MiB I/O buffers with PRP lists, one DMA command per I/O, queue depth",
          {{"queues", "2", "submission/completion queue pairs, one per CPU stream"},
           {"depth", "32", "queue depth (I/Os in flight per queue)"},
           {"ios", "20000", "I/Os (all queues)"},
           {"min_io", "4k", "smallest I/O"},
           {"max_io", "1m", "largest I/O"},
           {"read_ratio", "0.7", "fraction of reads (device to memory)"},
           {"iops", "200000", "offered I/Os per second, all queues"},
           {"service_us", "80", "mean device time per I/O"},
           {"remote_complete", "0", "fraction of completions handled on another CPU"}},
          generate_nvme};
}

}  // namespace kmbench::workloads
