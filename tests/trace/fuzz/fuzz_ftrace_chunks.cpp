// The ftrace importer's chunks: any text, cut into chunks at any size and
// parsed on one to three threads, gives the trace (or the error, with its
// line) that one pass over the whole text gives. The first byte picks the
// cut: a chunk of 1 to 64 bytes (lines split across chunks, CRLF pairs,
// chunks of one line longer than a chunk), and the threads.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/errors.h"
#include "harness/trace/trace.h"

namespace {

std::string outcome(std::string_view text, kmbench::trace::ImportOptions o) {
  try {
    return kmbench::trace::encode(kmbench::trace::import_ftrace(text, "fuzz.txt", o));
  } catch (const kmbench::InputError& e) {
    return std::string("error: ") + e.what();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t pick = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  kmbench::trace::ImportOptions o;
  o.skip_bad_lines = (pick & 0x80) != 0;
  o.keep_partial = (pick & 0x40) != 0;
  o.threads = 1;
  o.chunk_bytes = text.size() + 1;
  const std::string whole = outcome(text, o);
  o.threads = 1 + (pick >> 4 & 3) % 3;
  o.chunk_bytes = 1 + (pick & 0x0f) * 4;
  if (outcome(text, o) != whole) std::abort();
  return 0;
}
