// usb32: a device that can address only 32 bits. Each transfer gets an URB
// and a buffer: either 32-bit DMA memory (the driver asked for it) or
// ordinary memory mapped for the device, where every page above 4 GiB must
// be bounced. Completions run on the host controller's interrupt CPU.
#include <functional>
#include <queue>

#include "workloads/builder.h"

namespace kmbench::workloads {
namespace {

ops::Trace generate_usb32(const Params& p, std::uint64_t seed) {
  const unsigned streams = stream_count(p, "streams");
  const std::uint64_t transfers = p.u64("transfers");
  const auto [lo, hi] = size_range(p, "min", "max");
  const double dma32_buffers = p.real("dma32_buffers");
  const std::uint64_t inflight_max = p.u64("inflight", 1);
  const double gap_ns = 1e9 / p.real("rate", 1);
  const double service_ns = p.real("service_us") * 1e3;
  const unsigned irq = static_cast<unsigned>(p.u64("irq_stream") % streams);

  if (p.check_only()) return {};

  Rng rng(seed);
  Builder b("usb32", streams);
  const std::uint32_t urb_tag = b.str("usb_urb"), low_tag = b.str("usb_dma32_buffer"),
                      buf_tag = b.str("usb_buffer"), site = b.str("usb_submit_urb");

  using Completions = std::priority_queue<double, std::vector<double>, std::greater<>>;
  std::vector<Completions> inflight(streams);
  std::vector<double> now(streams, 1000.0);
  for (std::uint64_t i = 0; i < transfers; ++i) {
    const unsigned s = static_cast<unsigned>(i % streams);
    double t = now[s] += rng.exponential(gap_ns);
    while (!inflight[s].empty() && inflight[s].top() <= t) inflight[s].pop();
    if (inflight[s].size() >= inflight_max) {
      t = now[s] = inflight[s].top() + 100;
      inflight[s].pop();
    }
    const std::uint64_t size = rng.log_uniform(lo, hi);
    const bool low = rng.chance(dma32_buffers);
    const std::uint8_t dir = rng.chance(0.5) ? ops::kOpDirIn : ops::kOpDirOut;
    const std::uint32_t urb = b.object(), buf = b.object();
    const OpArgs urb_args{ops::kOpNoblock, urb_tag, site};
    const OpArgs buf_args{static_cast<std::uint8_t>(low ? ops::kOpDma32 : 0), low ? low_tag : buf_tag, site};
    const OpArgs map_args{static_cast<std::uint8_t>(ops::kOpDma32 | dir), low ? low_tag : buf_tag, site};
    b.op(s, t, OpKind::alloc, urb, 192, urb_args);
    b.op(s, t + 20, low ? OpKind::dma_alloc : OpKind::alloc, buf, size, buf_args);
    b.op(s, t + 40, OpKind::dma_map, buf, size, map_args);
    const double done = t + 100 + rng.exponential(service_ns) + static_cast<double>(size) * 2.5;  // ~400 MB/s
    inflight[s].push(done);
    b.op(irq, done, OpKind::dma_unmap, buf, size, map_args);
    b.op(irq, done + 10, low ? OpKind::dma_free : OpKind::free, buf, size, buf_args);
    b.op(irq, done + 20, OpKind::free, urb, 192, urb_args);
  }
  return b.finish();
}

}  // namespace

WorkloadInfo usb32_workload() {
  return {"usb32",
          "USB device limited to 32-bit DMA addresses: transfers whose buffers must lie below 4 GiB (bounce pressure)",
          {{"streams", "2", "CPU streams submitting transfers"},
           {"transfers", "20000", "transfers (all streams)"},
           {"min", "512", "smallest transfer"},
           {"max", "64k", "largest transfer"},
           {"dma32_buffers", "0.5", "fraction of buffers allocated as 32-bit DMA memory (others: ordinary memory, mapped for a 32-bit device)"},
           {"inflight", "8", "transfers in flight per stream"},
           {"rate", "8000", "transfers per second per stream"},
           {"service_us", "125", "mean transfer time (one microframe)"},
           {"irq_stream", "0", "stream that handles completions (host controller interrupt CPU)"}},
          generate_usb32};
}

}  // namespace kmbench::workloads
