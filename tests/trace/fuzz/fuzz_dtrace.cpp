// The dtrace importer: any text is imported or throws InputError; an imported trace is valid and encodes.
#include <cstdint>
#include <string_view>

#include "base/errors.h"
#include "harness/trace/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmbench;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const ops::Trace t = trace::import_dtrace(text, "fuzz.txt", {});
    trace::validate(t, "imported");
    const std::string bytes = trace::encode(t);
    trace::decode(bytes.data(), bytes.size(), "encoded");
    trace::summarize(t);
  } catch (const InputError&) {
  }
  return 0;
}
