// zones: the emulated panic every check ends in (README.md, "Checks").
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "allocators/zones/zones_internal.h"

namespace kmbench {
namespace zones {

[[noreturn]] __attribute__((format(printf, 1, 2))) void panic(const char* fmt, ...) {
  char line[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(line, sizeof line, fmt, args);
  va_end(args);
  std::fprintf(stderr, "kmbench: panic: %s\n", line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace zones
}  // namespace kmbench
