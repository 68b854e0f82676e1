// Topology: NUMA nodes and their CPUs from hwloc, binding to real nodes, placement.
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "allocators/physmem/physmem.h"
#include "base/errors.h"

namespace kmbench::physmem {
namespace {

/// An hwloc bitmap freed on scope exit.
struct Bitmap {
  hwloc_bitmap_t set = hwloc_bitmap_alloc();
  ~Bitmap() { hwloc_bitmap_free(set); }
};

}  // namespace

void Machine::load_topology(const TopologySpec& spec) {
  kind_ = spec.kind;
  spec_text_ = spec.text;
  if (hwloc_topology_init(&topo_) != 0) {
    throw RunError("topology: hwloc_topology_init failed");
  }
  switch (spec.kind) {
    case TopologySpec::Kind::real:
      break;
    case TopologySpec::Kind::synthetic:
      if (spec.text.empty() || hwloc_topology_set_synthetic(topo_, spec.text.c_str()) != 0) {
        throw UsageError("topology: '" + spec.text +
                         "' is not an hwloc synthetic description (e.g. \"pack:2 [numa] core:1 "
                         "pu:1\")");
      }
      break;
    case TopologySpec::Kind::xml:
      if (spec.text.empty() || hwloc_topology_set_xml(topo_, spec.text.c_str()) != 0) {
        throw UsageError(spec.text + ": cannot read as an hwloc XML topology (lstopo --of xml)");
      }
      break;
  }
  if (hwloc_topology_load(topo_) != 0) {
    throw UsageError("topology: hwloc could not load '" + spec.text + "': " + std::strerror(errno));
  }
  synthetic_ = hwloc_topology_is_thissystem(topo_) == 0;

  const int count = hwloc_get_nbobjs_by_type(topo_, HWLOC_OBJ_NUMANODE);
  if (count <= 0) {
    throw UsageError("topology: '" + spec.text + "' has no NUMA node");
  }
  unsigned max_cpu = 0;
  std::vector<unsigned> all_cpus;
  for (int i = 0; i < count; ++i) {
    hwloc_obj_t obj = hwloc_get_obj_by_type(topo_, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(i));
    NodeInfo info;
    info.id = i;
    info.os_memory_bytes = obj->attr->numanode.local_memory;
    if (obj->cpuset != nullptr) {
      unsigned cpu;
      hwloc_bitmap_foreach_begin(cpu, obj->cpuset) {
        info.cpus.push_back(cpu);
        all_cpus.push_back(cpu);
        max_cpu = std::max(max_cpu, cpu);
      }
      hwloc_bitmap_foreach_end();
    }
    nodes_.push_back(std::move(info));
  }
  cpu_node_.assign(max_cpu + 1, 0);
  for (const NodeInfo& n : nodes_) {
    for (unsigned cpu : n.cpus) {
      cpu_node_[cpu] = n.id;
    }
  }
  // Synthetic CPUs are not this machine's: CPU slot k stands for the k-th CPU.
  std::sort(all_cpus.begin(), all_cpus.end());
  all_cpus.erase(std::unique(all_cpus.begin(), all_cpus.end()), all_cpus.end());
  for (unsigned slot = 0; slot < kMaxCpuSlots; ++slot) {
    slot_node_[slot] = all_cpus.empty() ? 0 : cpu_node_[all_cpus[slot % all_cpus.size()]];
  }
}

void Machine::bind_nodes() {
  if (synthetic_ || nodes_.size() < 2) {
    return;
  }
  for (NodeInfo& info : nodes_) {
    hwloc_obj_t obj =
        hwloc_get_obj_by_type(topo_, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(info.id));
    info.bound = true;
    for (const RamRange& r : ram_) {
      if (r.node == info.id) {
        info.bound &= hwloc_set_area_membind(topo_, reinterpret_cast<void*>(r.va), r.bytes,
                                             obj->nodeset, HWLOC_MEMBIND_BIND,
                                             HWLOC_MEMBIND_BYNODESET) == 0;
      }
    }
    if (!info.bound) {
      continue;
    }
    // Touch the node's last page (never handed out before; it stays zero) and ask
    // the kernel where it landed.
    auto* last = static_cast<volatile unsigned char*>(reinterpret_cast<void*>(
        va_base_ + info.phys_end - kPageSize));
    *last = 0;
    const Placement where = placement(const_cast<unsigned char*>(last), kPageSize);
    info.placement_verified = where.measured && where.node == info.id;
  }
}

Placement Machine::placement(const void* p, std::size_t bytes) const {
  Placement out;
  if (synthetic_) {
    out.note = "synthetic topology: placement not measured";
    return out;
  }
  Bitmap where;
  if (hwloc_get_area_memlocation(topo_, p, bytes, where.set, HWLOC_MEMBIND_BYNODESET) != 0) {
    out.note = std::string("hwloc_get_area_memlocation failed: ") + std::strerror(errno);
    return out;
  }
  if (hwloc_bitmap_iszero(where.set)) {
    out.note = "no page of the range is resident";
    return out;
  }
  out.measured = true;
  for (const NodeInfo& info : nodes_) {
    hwloc_obj_t obj =
        hwloc_get_obj_by_type(topo_, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(info.id));
    if (hwloc_bitmap_isequal(where.set, obj->nodeset)) {
      out.node = info.id;
      out.note = "measured: on node " + std::to_string(info.id);
      return out;
    }
  }
  out.note = "measured: spread over several nodes";
  return out;
}

std::string Machine::topology_description() const {
  const std::string n =
      std::to_string(nodes_.size()) + (nodes_.size() == 1 ? " node" : " nodes");
  switch (kind_) {
    case TopologySpec::Kind::real:
      return "real: " + n;
    case TopologySpec::Kind::synthetic:
      return "synthetic: " + spec_text_ + " (" + n + ")";
    case TopologySpec::Kind::xml:
      return std::string(synthetic_ ? "synthetic" : "real") + ": xml " + spec_text_ + " (" + n +
             ")";
  }
  return n;
}

std::string Machine::numa_note() const {
  if (synthetic_) {
    return "synthetic topology: placement not measured";
  }
  if (nodes_.size() == 1) {
    return "real topology with 1 NUMA node: no placement to measure";
  }
  unsigned verified = 0;
  for (const NodeInfo& info : nodes_) {
    verified += info.placement_verified ? 1 : 0;
  }
  return "real topology: " + std::to_string(nodes_.size()) +
         " nodes bound with hwloc membind, placement verified on " + std::to_string(verified);
}

NodeId Machine::node_of_cpu(unsigned cpu) const noexcept {
  return cpu < cpu_node_.size() ? cpu_node_[cpu] : 0;
}

NodeId Machine::local_node_slow() const noexcept {
  if (synthetic_) {
    return slot_node_[this_cpu_slot()];
  }
  const int cpu = sched_getcpu();
  return cpu < 0 ? 0 : node_of_cpu(static_cast<unsigned>(cpu));
}

}  // namespace kmbench::physmem
