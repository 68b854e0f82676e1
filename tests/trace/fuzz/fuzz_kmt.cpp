// .kmt decoding: any bytes either decode or throw InputError; what decodes re-encodes to a trace that decodes the same.
#include <cstdint>
#include <cstdlib>

#include "base/errors.h"
#include "harness/trace/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmbench;
  ops::Trace t;
  try {
    t = trace::decode(data, size, "fuzz.kmt");
  } catch (const InputError&) {
    return 0;
  }
  const std::string again = trace::encode(t);
  const ops::Trace u = trace::decode(again.data(), again.size(), "re-encoded");
  if (u.op_count() != t.op_count() || u.strings != t.strings || u.object_count != t.object_count) std::abort();
  return 0;
}
