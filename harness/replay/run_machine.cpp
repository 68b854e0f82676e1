#include "harness/replay/run_machine.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "base/errors.h"
#include "base/proc.h"

namespace kmbench::replay {
namespace {

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kDmaZone = 16 * kMiB;
constexpr std::uint64_t kLowLimit = 4096 * kMiB;
// Each thread may hold per-CPU caches and, in mimalloc, a 32 MiB segment per
// arena; jemalloc takes 16 MiB per refill and 2 MiB of metadata per arena.
constexpr std::uint64_t kPerThread = 48 * kMiB;
constexpr std::uint64_t kFixed = 64 * kMiB;
// Memory the system keeps for everything else while the machine is resident.
constexpr std::uint64_t kSystemReserve = 512 * kMiB;

std::uint64_t round_up(std::uint64_t v, std::uint64_t to) { return (v + to - 1) / to * to; }

std::string mib(std::uint64_t bytes) { return std::to_string((bytes + kMiB - 1) / kMiB) + " MiB"; }

struct Held {
  std::mutex mu;
  std::unique_ptr<physmem::Machine> machine;
  std::string topology;
  std::uint64_t node_bytes = 0, low_bytes = 0;
  std::vector<std::unique_ptr<physmem::Machine>> kept;  // used by mimalloc: never destroyed
};

Held& held() {
  static Held* h = new Held;  // outlives every static destructor that might still use a machine
  return *h;
}

}  // namespace

MachinePlan plan_machine(const std::string& topology, const MemoryDemand& d, unsigned threads,
                         std::uint64_t node_bytes) {
  MachinePlan plan;
  plan.spec = physmem::topology_from_string(topology);
  threads = std::max(threads, 1u);
  // Below 4 GiB: the DMA zone, twice what dma32 blocks and 32-bit bounce
  // buffers hold at once, and room for low-memory caches per thread.
  std::uint64_t low = kDmaZone + 2 * (d.peak_low_bytes + d.peak_bounce_bytes) +
                      kPerThread * (threads + 1);
  low = std::min(round_up(low, 32 * kMiB), kLowLimit);
  std::uint64_t normal = 0;
  if (node_bytes != 0) {
    if (node_bytes < low + 64 * kMiB) {
      throw UsageError("--memory " + mib(node_bytes) + " per node is below the " +
                       mib(low + 64 * kMiB) + " this stream needs below 4 GiB and above");
    }
    normal = node_bytes - low;
    plan.sizing = "--memory: " + mib(node_bytes) + " per node";
  } else {
    // Above 4 GiB: the busiest moment of the stream with room for size-class
    // rounding (twice the live bytes) or for buddy's power-of-two pages (and a
    // quarter more), whichever is larger, and the same per-thread room.
    normal = std::max(d.peak_page_bytes + d.peak_page_bytes / 4, 2 * d.peak_live_bytes) + kFixed +
             kPerThread * threads;
    normal = round_up(normal, 64 * kMiB);
    plan.sizing = "from the stream: peak live " + mib(d.peak_live_bytes) + ", as pages " +
                  mib(d.peak_page_bytes) + ", below 4 GiB " + mib(d.peak_low_bytes) +
                  " and bounce " + mib(d.peak_bounce_bytes) + "; " + std::to_string(threads) +
                  " thread" + (threads == 1 ? "" : "s");
  }
  plan.spec.node_bytes = round_up(low + normal, 4 * kMiB);
  plan.spec.low_bytes = low;
  return plan;
}

physmem::Machine& run_machine(const MachinePlan& plan, physmem::PopulateStats& populated,
                              bool& reused) {
  Held& h = held();
  std::lock_guard lock(h.mu);
  const std::string topology = plan.spec.kind == physmem::TopologySpec::Kind::real
                                   ? "real"
                                   : (plan.spec.kind == physmem::TopologySpec::Kind::synthetic
                                          ? "synthetic:"
                                          : "xml:") +
                                         plan.spec.text;
  reused = h.machine && h.topology == topology && h.node_bytes >= plan.spec.node_bytes &&
           h.low_bytes >= plan.spec.low_bytes;
  if (reused) {
    h.machine->drain_all_quiescent();
  } else {
    physmem::set_current_machine(nullptr);
    if (h.machine) {
      if (h.machine->kept_for_process()) {
        h.kept.push_back(std::move(h.machine));
      }
      h.machine.reset();
    }
    const std::uint64_t available = base::available_memory_bytes();
    auto too_large = [&](std::uint64_t ram, const std::string& nodes) {
      return UsageError("the simulated machine needs " + mib(ram) + " of resident memory (" +
                        nodes + " of " + mib(plan.spec.node_bytes) + "; " + plan.sizing +
                        "), but this system has " +
                        mib(available) + " available and keeps " + mib(kSystemReserve) +
                        " for itself: replay fewer nodes or threads, a shorter capture, or pass "
                        "--memory");
    };
    // One node too large is refused before anything is even reserved.
    if (available != 0 && plan.spec.node_bytes + kSystemReserve > available) {
      throw too_large(plan.spec.node_bytes, "at least one node");
    }
    auto machine = std::make_unique<physmem::Machine>(plan.spec);
    const std::uint64_t ram = machine->ram_bytes();
    if (available != 0 && ram + kSystemReserve > available) {
      const unsigned n = machine->node_count();
      throw too_large(ram, std::to_string(n) + " node" + (n == 1 ? "" : "s"));
    }
    h.machine = std::move(machine);
    h.topology = topology;
    h.node_bytes = plan.spec.node_bytes;
    h.low_bytes = plan.spec.low_bytes;
    populated = h.machine->populate();
  }
  physmem::set_current_machine(h.machine.get());
  return *h.machine;
}

}  // namespace kmbench::replay
