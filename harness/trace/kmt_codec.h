// Internal to harness/trace: what the .kmt encoder (kmt_encode.cpp) and
// decoder (kmt.cpp) share. The layout is documented byte by byte in
// docs/kmt-format.md; keep the two in step.
#pragma once

#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <unordered_map>

#include "base/errors.h"
#include "harness/trace/pages.h"
#include "harness/trace/trace.h"

namespace kmbench::trace::kmt {

inline constexpr char kMagic[8] = {'K', 'M', 'B', 'T', 'R', 'A', 'C', 'E'};
inline constexpr std::size_t kFixedHeader = 32;

enum Section : std::uint8_t { kEnd = 0, kHeader = 1, kStrings = 2, kCounters = 3, kStream = 4, kCalls = 64 };
inline constexpr std::uint8_t kFirstOptionalSection = 64;  // unknown ids at or above are skipped

// Op header byte bits (docs/kmt-format.md, "Ops").
inline constexpr std::uint8_t kHasFlags = 1u << 3;
inline constexpr std::uint8_t kHasPlacement = 1u << 4;
inline constexpr std::uint8_t kHasSize = 1u << 5;
inline constexpr std::uint8_t kHasSiteTag = 1u << 6;
inline constexpr std::uint8_t kReservedBit = 1u << 7;

/// gcd(g, v), as a stream's time unit is folded from its times (or their
/// steps) one by one: the common unit, 1000, is tested by a division by a
/// constant; gcd(0, v) is v.
inline std::uint64_t fold_unit(std::uint64_t g, std::uint64_t v) {
  const bool divides = g == 1000 ? v % 1000 == 0 : g != 0 && v % g == 0;
  return divides ? g : std::gcd(g, v);
}

inline bool frees_object(ops::OpKind k) {
  return k == ops::OpKind::free || k == ops::OpKind::page_free || k == ops::OpKind::dma_free ||
         k == ops::OpKind::dma_unmap;
}

inline std::uint32_t crc(const char* p, std::size_t n) {
  return static_cast<std::uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(p), n));
}

/// The size each object was last allocated with, once an op has allocated it
/// (in file order): what lets a free leave its size out. 4 bytes an object,
/// the size plus one (0: not allocated yet); a size of 4 GiB - 2 or more is
/// kept aside. Pages are touched only where objects are.
class KnownSizes {
 public:
  explicit KnownSizes(std::uint64_t objects)
      : pages_(objects * sizeof(std::uint32_t)), slots_(pages_.as<std::uint32_t>()) {}
  void set(std::uint32_t object, std::uint64_t size) {
    if (size < kAside - 1) {
      slots_[object] = static_cast<std::uint32_t>(size + 1);
    } else {
      slots_[object] = kAside;
      aside_[object] = size;
    }
  }
  bool known(std::uint32_t object) const { return slots_[object] != 0; }
  /// pre: known(object).
  std::uint64_t size(std::uint32_t object) const {
    const std::uint32_t v = slots_[object];
    return v != kAside ? v - 1 : aside_.at(object);
  }
  /// Whether `object` is known, with `size`.
  bool is(std::uint32_t object, std::uint64_t size) const {
    const std::uint32_t v = slots_[object];
    return v != kAside ? v != 0 && v - 1 == size : aside_.at(object) == size;
  }

 private:
  static constexpr std::uint32_t kAside = 0xffffffffu;
  ZeroedPages pages_;
  std::uint32_t* slots_;
  std::unordered_map<std::uint32_t, std::uint64_t> aside_;
};

/// Per-stream coder state, identical in encoder and decoder.
struct StreamState {
  std::uint64_t time = 0;
  std::uint32_t object = 0;
  std::uint64_t alloc_size = 0;
  std::array<std::uint32_t, ops::kOpKinds> site{}, tag{};

  /// Moves past `op`, of kind k. An allocation's size is remembered for its
  /// object: a free of the same size need not carry it.
  void pass(const ops::Op& op, std::uint8_t k, KnownSizes& known) {
    time = op.time_ns;
    object = op.object;
    site[k] = op.site;
    tag[k] = op.tag;
    if (!frees_object(op.kind)) {
      alloc_size = op.size;
      known.set(op.object, op.size);
    }
  }
};

/// What is wrong with a trace header's machine, or "": a page is a power of
/// two up to 1 GiB, CPUs at most 65536 (ops name a CPU in 16 bits), nodes at
/// most 128 (an op's node is a signed byte). A profile holds the same bounds.
inline std::string header_problem(const ops::Header& h) {
  if (h.page_size == 0 || (h.page_size & (h.page_size - 1)) != 0 || h.page_size > (1u << 30)) {
    return "page size " + std::to_string(h.page_size) + " is not a power of two up to 1 GiB";
  }
  if (h.cpu_count > 65536) return "cpu count " + std::to_string(h.cpu_count) + " is more than 65536";
  if (h.node_count > 128) return "node count " + std::to_string(h.node_count) + " is more than 128";
  return "";
}
/// The largest CPU number a stream may have.
inline constexpr std::uint32_t kMaxStreamCpu = 65535;

/// Every object is made by an operation, so ids beyond the op count are
/// noise that would still cost a replay an array slot each.
inline void check_object_count(const ops::Trace& t, const std::string& name, std::uint64_t other_ops = 0) {
  const std::uint64_t ops = t.op_count() + other_ops;  // other_ops: streams already handed over
  if (t.object_count > ops) {
    throw InputError(name, "object_count " + std::to_string(t.object_count) + " is more than the trace's " +
                               std::to_string(ops) + " operations can use");
  }
}

}  // namespace kmbench::trace::kmt
