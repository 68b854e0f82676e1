// One operation of a hand-made trace, for tests that build streams op by op.
#pragma once

#include <cstdint>

#include "ops/ops.h"

namespace kmbench::test_support {

struct OpFields {
  std::uint32_t site = 0, tag = 0;
  std::uint8_t flags = 0;
};

inline ops::Op make_op(std::uint64_t t, ops::OpKind kind, std::uint32_t object, std::uint64_t size,
                       OpFields f = {}) {
  ops::Op o;
  o.time_ns = t;
  o.kind = kind;
  o.object = object;
  o.size = size;
  o.site = f.site;
  o.tag = f.tag;
  o.flags = f.flags;
  return o;
}

}  // namespace kmbench::test_support
