// The text form: parses or throws InputError; what parses encodes and decodes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/errors.h"
#include "harness/trace/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmbench;
  ops::Trace t;
  try {
    t = trace::undump(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.txt");
  } catch (const InputError&) {
    return 0;
  }
  const std::string bytes = trace::encode(t);
  if (trace::decode(bytes.data(), bytes.size(), "encoded").op_count() != t.op_count()) std::abort();
  return 0;
}
