// The configuration every backend is opened with in the conformance suite.
#pragma once

#include "allocators/backend.h"
#include "allocators/physmem/physmem.h"

namespace kmbench::testing {

/// A small simulated machine: two synthetic nodes of 512 MiB (reserved, touched on use).
inline physmem::Machine& conformance_machine() {
  static physmem::Machine machine([] {
    physmem::TopologySpec spec;
    spec.kind = physmem::TopologySpec::Kind::synthetic;
    spec.text = "pack:2 [numa] core:1 pu:1";
    spec.node_bytes = 512ull << 20;
    return spec;
  }());
  return machine;
}

/// A config fit for any in-process backend (a simulated machine, where one is needed).
inline BackendConfig conformance_config() {
  BackendConfig config;
  config.machine = &conformance_machine();
  return config;
}

}  // namespace kmbench::testing
