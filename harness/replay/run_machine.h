// The simulated machine a replay draws from: sized from the stream's demand,
// made resident before anything is timed, and kept for the process's next
// run when it is large enough (a machine mimalloc used is never destroyed).
#pragma once

#include <cstdint>
#include <string>

#include "allocators/physmem/physmem.h"
#include "harness/replay/program.h"

namespace kmbench::replay {

/// How large a run's machine is, and why.
struct MachinePlan {
  physmem::TopologySpec spec;     // node_bytes and low_bytes set
  std::string sizing;             // for results: the demand and the headroom, or "--memory"
};

/// Sizes the machine's nodes for a program run on `threads` threads.
/// node_bytes != 0 overrides the demand (--memory). Throws UsageError on a
/// bad topology or a --memory too small for the stream.
MachinePlan plan_machine(const std::string& topology, const MemoryDemand& demand, unsigned threads,
                         std::uint64_t node_bytes);

/// The machine for that plan, resident. Reuses the process's previous run
/// machine when it has the same topology and at least the plan's sizes.
/// Throws UsageError, before anything is made resident, when the machine
/// would not fit in the memory this system has available (the message says
/// how much was asked and how much there is).
/// populated: set to what populating took when it happened now (else left).
/// post: the returned machine is physmem::current_machine() until the next call.
physmem::Machine& run_machine(const MachinePlan& plan, physmem::PopulateStats& populated,
                              bool& reused);

}  // namespace kmbench::replay
