// kmbench's own trace.dat reader (harness/trace/tracedat_file.c), in process so
// that libFuzzer sees its branches and AddressSanitizer every byte it reads:
// junk is refused or read, never read out of bounds. Every record's bytes are
// touched, as the report writer touches them. libtraceevent's text parsers are
// left out (kmb_tdfile_parse_text): some damaged event formats crash them,
// which an import's child reports as a damaged file (fuzz_tracedat).
#include <sanitizer/lsan_interface.h>
#include <sys/mman.h>
#include <traceevent/event-parse.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "harness/trace/tracedat_file.h"

namespace {

void touch(tep_record* record, void* ctx) {
  auto* sum = static_cast<unsigned*>(ctx);
  const auto* bytes = static_cast<const unsigned char*>(record->data);
  for (int i = 0; i < record->size; ++i) *sum += bytes[i];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const int fd = [] {
    kmb_tdfile_parse_text(0);
    return memfd_create("fuzz.dat", 0);
  }();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  __lsan_disable();  // libtraceevent 1.7's event parser leaks a few bytes per format
  kmb_tdfile* f = nullptr;
  char why[256];
  if (kmb_tdfile_open(path.c_str(), nullptr, &f, why, sizeof why) == KMB_TD_OPENED) {
    unsigned sum = 0;
    kmb_tdfile_iterate(f, touch, &sum, why, sizeof why);
    kmb_tdfile_close(f);
  }
  __lsan_enable();
  return 0;
}
