// Internal to harness/trace: what the .kmt encoder (kmt_encode.cpp) and
// decoder (kmt.cpp) share. The layout is documented byte by byte in
// docs/kmt-format.md; keep the two in step.
#pragma once

#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/errors.h"
#include "harness/trace/trace.h"

namespace kmbench::trace::kmt {

inline constexpr char kMagic[8] = {'K', 'M', 'B', 'T', 'R', 'A', 'C', 'E'};
inline constexpr std::size_t kFixedHeader = 32;

enum Section : std::uint8_t {
  kEnd = 0,
  kHeader = 1,
  kStrings = 2,
  kCounters = 3,
  kStream = 4,
  kCalls = 64
};
inline constexpr std::uint8_t kFirstOptionalSection =
    64; // unknown ids at or above are skipped

// Op header byte bits (docs/kmt-format.md, "Ops").
inline constexpr std::uint8_t kHasFlags = 1u << 3;
inline constexpr std::uint8_t kHasPlacement = 1u << 4;
inline constexpr std::uint8_t kHasSize = 1u << 5;
inline constexpr std::uint8_t kHasSiteTag = 1u << 6;
inline constexpr std::uint8_t kReservedBit = 1u << 7;

inline bool frees_object(ops::OpKind k) {
  return k == ops::OpKind::free || k == ops::OpKind::page_free ||
         k == ops::OpKind::dma_free || k == ops::OpKind::dma_unmap;
}

inline std::uint32_t crc(const char *p, std::size_t n) {
  return static_cast<std::uint32_t>(
      crc32_z(0, reinterpret_cast<const Bytef *>(p), n));
}

/// Per-stream coder state, identical in encoder and decoder.
struct StreamState {
  std::uint64_t time = 0;
  std::uint32_t object = 0;
  std::uint64_t alloc_size = 0;
  std::array<std::uint32_t, ops::kOpKinds> site{}, tag{};

  /// Moves past `op`, of kind k. An allocation's size is remembered for its
  /// object: a free of the same size need not carry it.
  void pass(const ops::Op &op, std::uint8_t k, std::uint64_t *known_size,
            std::uint8_t *known) {
    time = op.time_ns;
    object = op.object;
    site[k] = op.site;
    tag[k] = op.tag;
    if (!frees_object(op.kind)) {
      alloc_size = op.size;
      known_size[op.object] = op.size;
      known[op.object] = 1;
    }
  }
};

/// Every object is made by an operation, so ids beyond the op count are
/// noise that would still cost a replay an array slot each.
inline void check_object_count(const ops::Trace &t, const std::string &name,
                               std::uint64_t other_ops = 0) {
  const std::uint64_t ops =
      t.op_count() + other_ops; // other_ops: streams already handed over
  if (t.object_count > ops) {
    throw InputError(name, "object_count " + std::to_string(t.object_count) +
                               " is more than the trace's " +
                               std::to_string(ops) + " operations can use");
  }
}

} // namespace kmbench::trace::kmt
