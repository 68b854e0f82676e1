// trace.dat through libtracecmd: junk is an InputError, never a crash in kmbench's code.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "allocators/errors.h"
#include "harness/trace/trace.h"

namespace {

/// The lowest descriptor number not in use.
int first_free_fd() {
  const int fd = dup(0);
  close(fd);
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmbench;
  static const int fd = memfd_create("fuzz.dat", 0);
  // libtracecmd leaks a descriptor on some malformed files. kmbench reads one
  // file per import, but a fuzzer reads thousands: give them back, or the run
  // ends at the process's descriptor limit. The fuzzer opens none meanwhile.
  const int first_new = first_free_fd();
  struct CloseLeaked {
    int from;
    ~CloseLeaked() {
      for (int d = from; d < from + 64; ++d) {
        if (d != fd) {
          close(d);
        }
      }
    }
  } close_leaked{first_new};
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    const ops::Trace t = trace::import_tracedat(path, "fuzz.dat", {});
    trace::validate(t, "imported");
  } catch (const InputError&) {
  }
  return 0;
}
