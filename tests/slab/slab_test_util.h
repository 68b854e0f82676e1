// Machines and backends for the slab tests.
#pragma once

#include <memory>
#include <string>

#include "allocators/physmem/physmem.h"
#include "allocators/registry.h"
#include "allocators/slab/slab.h"

namespace kmbench::testing {

/// One node of 256 MiB (the real topology), or two synthetic ones.
inline physmem::Machine& slab_machine(unsigned nodes = 1) {
  static physmem::Machine one([] {
    physmem::TopologySpec spec;
    spec.node_bytes = 256ull << 20;
    return spec;
  }());
  static physmem::Machine two([] {
    physmem::TopologySpec spec;
    spec.kind = physmem::TopologySpec::Kind::synthetic;
    spec.text = "pack:2 [numa] core:1 pu:1";
    spec.node_bytes = 256ull << 20;
    return spec;
  }());
  return nodes == 1 ? one : two;
}

/// A slab backend on slab_machine(nodes) with "key=value,..." parameters.
inline std::unique_ptr<SlabBackend> make_slab(const std::string& params = "", unsigned nodes = 1) {
  BackendConfig config;
  config.machine = &slab_machine(nodes);
  apply_params(config, params);
  return std::make_unique<SlabBackend>(config);
}

/// A metric of the backend's statistics, or -1 when absent.
inline double metric(const SlabBackend& b, const std::string& name) {
  for (const Metric& m : b.stats().metrics) {
    if (m.name == name) {
      return m.value;
    }
  }
  return -1;
}

}  // namespace kmbench::testing
