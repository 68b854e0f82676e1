// trace.dat through libtracecmd: junk is an InputError, never a crash in kmbench.
// libtracecmd runs in a child process (harness/trace/tracedat.cpp); a file
// that kills the child must still come back as an InputError here.
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "base/errors.h"
#include "harness/trace/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmbench;
  static const int fd = [] {
    // In the reader's child a sanitizer report ends the child, not the fuzzing
    // run: without libFuzzer's death callback the child just exits non-zero.
    pthread_atfork(nullptr, nullptr, [] { __sanitizer_set_death_callback(nullptr); });
    return memfd_create("fuzz.dat", 0);
  }();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    const ops::Trace t = trace::import_tracedat(path, "fuzz.dat", {});
    trace::validate(t, "imported");
  } catch (const InputError&) {
  }
  return 0;
}
