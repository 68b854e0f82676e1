// nic: a multi-queue network card. Each queue's interrupt runs on its own CPU
// (stream): per burst it completes RX buffers (unmap), wraps them in packet
// metadata, refills the ring (allocate + map, GFP_ATOMIC), and the packets
// are consumed and freed later, often on another CPU (RPS, the receiving
// application). TX: a CPU allocates and maps a buffer; the queue's completion
// unmaps and frees it, possibly on another CPU.
//
// With completion=workloop the driver takes its completions as an IOKit
// driver does through IODMAEventSource: every RX and TX completion (the
// unmap, the packet's metadata, the refill, the TX buffer's free) runs on one
// work-loop thread, an extra stream after the queues' own.
#include "workloads/builder.h"

namespace kmbench::workloads {
namespace {

constexpr std::string_view kCompletions = "irq|workloop";

ops::Trace generate_nic(const Params& p, std::uint64_t seed) {
  const unsigned queues = stream_count(p, "queues");
  const std::uint64_t packets = p.u64("packets");
  const double tx_ratio = p.real("tx_ratio");
  const std::uint64_t ring = p.u64("ring", 1);
  const auto jumbo_queues = static_cast<unsigned>(p.real("jumbo") * queues + 0.5);
  const std::uint64_t burst = p.u64("burst", 1);
  const double pps = p.real("pps", 1);
  const double remote = p.real("remote_free");
  const double consume_ns = p.real("consume_us") * 1e3;
  const std::uint64_t skb = p.bytes("skb");
  const bool workloop = p.choice("completion", kCompletions) == "workloop";

  if (p.check_only()) return {};

  Rng rng(seed);
  Builder b("nic", queues + (workloop ? 1 : 0));
  const unsigned loop = queues;  // the work loop's stream (completion=workloop)
  auto completion_of = [&](unsigned q) { return workloop ? loop : q; };
  const std::uint32_t rx_tag = b.str("rx_buffer"), tx_tag = b.str("tx_buffer"), skb_tag = b.str("skbuff_head_cache");
  const std::uint32_t rx_site = b.str("nic_rx_refill"), tx_site = b.str("nic_xmit"), skb_site = b.str("build_skb");
  const OpArgs rx_alloc{ops::kOpNoblock, rx_tag, rx_site}, rx_map{ops::kOpDirIn, rx_tag, rx_site};
  const OpArgs tx_alloc{0, tx_tag, tx_site}, tx_map{ops::kOpDirOut, tx_tag, tx_site};
  const OpArgs skb_alloc{ops::kOpNoblock | ops::kOpCache, skb_tag, skb_site};
  const OpArgs skb_free{ops::kOpCache, skb_tag, skb_site};

  auto other = [&](unsigned q) {
    return queues == 1 ? q : static_cast<unsigned>((q + 1 + rng.below(queues - 1)) % queues);
  };
  struct Posted {
    std::uint32_t object;
  };
  std::vector<std::vector<Posted>> rings(queues);
  std::vector<std::uint64_t> buffer(queues);
  for (unsigned q = 0; q < queues; ++q) {
    buffer[q] = q < jumbo_queues ? 9216 : 2048;
    for (std::uint64_t i = 0; i < ring; ++i) {
      const std::uint32_t o = b.object();
      b.op(q, 0, OpKind::alloc, o, buffer[q], rx_alloc);
      b.op(q, 0, OpKind::dma_map, o, buffer[q], rx_map);
      rings[q].push_back({o});
    }
  }

  // Bursts arrive on each queue at the same mean rate; per burst, RX then TX.
  const double burst_gap_ns = 1e9 * static_cast<double>(burst) * queues / pps;
  std::vector<double> now(queues, 1000.0);
  std::vector<std::size_t> head(queues, 0);
  std::uint64_t received = 0;
  double tx_credit = 0;
  double end = 0;
  while (received < packets) {
    for (unsigned q = 0; q < queues && received < packets; ++q) {
      double t = now[q] += rng.exponential(burst_gap_ns);
      const std::uint64_t n = std::min(burst, packets - received);
      for (std::uint64_t i = 0; i < n; ++i, t += 50) {
        Posted& slot = rings[q][head[q]];
        head[q] = (head[q] + 1) % ring;
        const std::uint32_t data = slot.object;
        const std::uint32_t meta = b.object();
        const unsigned rx = completion_of(q);
        b.op(rx, t, OpKind::dma_unmap, data, buffer[q], rx_map);
        b.op(rx, t + 10, OpKind::alloc, meta, skb, skb_alloc);
        const unsigned consumer = rng.chance(remote) ? other(q) : q;
        const double freed = t + 20 + rng.exponential(consume_ns);
        b.op(consumer, freed, OpKind::free, meta, skb, skb_free);
        b.op(consumer, freed + 5, OpKind::free, data, buffer[q], rx_alloc);
        const std::uint32_t fresh = b.object();
        b.op(rx, t + 30, OpKind::alloc, fresh, buffer[q], rx_alloc);
        b.op(rx, t + 40, OpKind::dma_map, fresh, buffer[q], rx_map);
        slot.object = fresh;
        end = std::max(end, freed + 5);
      }
      received += n;
      tx_credit += tx_ratio * static_cast<double>(n);
      for (; tx_credit >= 1; tx_credit -= 1, t += 60) {
        const std::uint64_t size = rng.chance(0.2) ? 9216 : 2048;
        const std::uint32_t data = b.object(), meta = b.object();
        b.op(q, t, OpKind::alloc, meta, skb, skb_alloc);
        b.op(q, t + 10, OpKind::alloc, data, size, tx_alloc);
        b.op(q, t + 20, OpKind::dma_map, data, size, tx_map);
        const unsigned interrupt = rng.chance(remote) ? other(q) : q;
        const unsigned completer = workloop ? loop : interrupt;
        const double done = t + 2000 + rng.exponential(10000);
        b.op(completer, done, OpKind::dma_unmap, data, size, tx_map);
        b.op(completer, done + 10, OpKind::free, data, size, tx_alloc);
        b.op(completer, done + 20, OpKind::free, meta, skb, skb_free);
        end = std::max(end, done + 20);
      }
      now[q] = t;
      end = std::max(end, t);
    }
  }
  // Interface down: unmap and free the posted RX buffers.
  for (unsigned q = 0; q < queues; ++q) {
    for (const Posted& slot : rings[q]) {
      b.op(completion_of(q), end + 1000, OpKind::dma_unmap, slot.object, buffer[q], rx_map);
      b.op(completion_of(q), end + 1010, OpKind::free, slot.object, buffer[q], rx_alloc);
    }
  }
  return b.finish();
}

}  // namespace

WorkloadInfo nic_workload() {
  return {"nic",
          "NIC RX ring refill and TX completion: 2 KiB/9 KiB buffers per queue per CPU, bursts, packets freed on another CPU",
          {{"queues", "2", "RX/TX queue pairs, one per CPU stream"},
           {"packets", "50000", "packets received (all queues)"},
           {"tx_ratio", "0.5", "packets sent per packet received"},
           {"ring", "256", "RX buffers posted per queue"},
           {"jumbo", "0.5", "fraction of queues with 9 KiB buffers (others 2 KiB)"},
           {"burst", "32", "packets per interrupt (NAPI budget)"},
           {"pps", "1000000", "packets per second, all queues"},
           {"remote_free", "0.5", "fraction of packets freed on another CPU"},
           {"consume_us", "20", "mean time from receive to free"},
           {"skb", "256", "per-packet metadata object (sk_buff) bytes"},
           {"completion", "irq",
            "irq: completions on the queue's CPU; workloop: all on one work-loop thread (an extra stream), "
            "as a driver's IODMAEventSource delivers them",
            kCompletions}},
          generate_nic};
}

}  // namespace kmbench::workloads
