// The operation stream: one in-memory form for replayed traces and synthetic
// workloads alike (docs/kmt-format.md describes how traces store it).
//
// A Trace is one stream of operations per recorded CPU. Blocks are named by
// dense object ids (0..object_count-1), resolved from pointers at import time,
// so the replay loop indexes an array instead of hashing. A free carries the
// size of its allocation (importers copy it), so sized frees need no lookup.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ops/calls.h"

namespace kmbench::ops {

enum class OpKind : std::uint8_t {
  alloc,       // object allocation: kmalloc / kmem_cache_alloc / IOMalloc / OSMalloc / malloc
  free,        // frees `object`; size is the allocation's
  page_alloc,  // page-level allocation of `size` bytes (a whole number of pages)
  page_free,
  dma_alloc,   // DMA-able buffer (dma_alloc_coherent, IOBufferMemoryDescriptor)
  dma_free,
  dma_map,     // a transfer of `size` bytes over `object` starts (dma_map_*, IODMACommand prepare)
  dma_unmap,   // ... and completes
};
inline constexpr int kOpKinds = 8;

/// Flags on an operation; importers map GFP bits and KPI options onto these.
enum OpFlag : std::uint8_t {
  kOpZero = 1u << 0,        // zeroed memory (__GFP_ZERO, IOMallocZero, IONewZero)
  kOpNoblock = 1u << 1,     // must not wait (GFP_ATOMIC/GFP_NOWAIT, OSMalloc_noblock)
  kOpPageable = 1u << 2,    // pageable memory (OSMT_PAGEABLE, IOMallocPageable)
  kOpCache = 1u << 3,       // from/to a named object cache (kmem_cache_*); tag names the cache
  kOpDma32 = 1u << 4,       // must lie below 4 GiB (GFP_DMA32, 32-bit device masks)
  kOpContiguous = 1u << 5,  // physically contiguous
  kOpDirIn = 1u << 6,       // DMA direction: device → memory
  kOpDirOut = 1u << 7,      // DMA direction: memory → device
};

/// 32 bytes; an array of these is what the replay loop walks.
struct Op {
  std::uint64_t time_ns = 0;  // since the start of the trace (per-stream non-decreasing)
  std::uint64_t size = 0;     // bytes asked for; on frees and unmaps the allocation's size
  std::uint32_t object = 0;   // dense object id
  std::uint32_t site = 0;     // call site: index into Trace::strings (0: unknown)
  std::uint32_t tag = 0;      // tag or cache name: index into Trace::strings (0: none)
  OpKind kind = OpKind::alloc;
  std::uint8_t align_log2 = 0;  // requested alignment = 1 << align_log2 (0: default)
  std::int8_t node = -1;        // requested NUMA node, -1: any
  std::uint8_t flags = 0;       // OpFlag bits
};
static_assert(sizeof(Op) == 32);

/// One recorded CPU's (or thread's) operations, in time order.
struct Stream {
  std::uint32_t cpu = 0;
  std::vector<Op> ops;
  /// The KPI call of each op (ops/calls.h), when the trace knows them: empty,
  /// or exactly one per op.
  std::vector<Call> calls;
};

/// Where a trace came from and what it was recorded on.
struct Header {
  std::uint32_t format_version = 1;
  std::string source;        // "ftrace", "dtrace", "ldpreload", "workload:nic", ...
  std::string capture_tool;  // "tracefs", "trace-cmd 3.1.6", "kmbench-record", ...
  std::uint32_t page_size = 4096;
  std::uint32_t cpu_count = 1;
  std::uint32_t node_count = 1;
  std::uint64_t time_base_ns = 0;  // absolute time of time_ns == 0 in the capture's clock
  std::map<std::string, std::string> metadata;  // free-form: host, kernel, parameters, seed
};

struct Trace {
  Header header;
  std::vector<Stream> streams;
  std::vector<std::string> strings{""};  // strings[0] is the empty string
  std::uint32_t object_count = 0;
  /// What the importer met and how often ("import.unmatched_frees", "import.null_frees", ...).
  std::map<std::string, std::uint64_t> counters;

  std::uint64_t op_count() const {
    std::uint64_t n = 0;
    for (const Stream& s : streams) {
      n += s.ops.size();
    }
    return n;
  }
};

}  // namespace kmbench::ops
