#include "base/proc.h"

#include <cstdio>
#include <cstring>

namespace kmbench::base {

std::uint64_t proc_kib_field(const char* path, const char* field) {
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) {
    return 0;
  }
  const std::size_t len = std::strlen(field);
  char line[256];
  unsigned long long kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, field, len) == 0 && line[len] == ':' && std::sscanf(line + len + 1, "%llu kB", &kb) == 1) {
      break;
    }
  }
  std::fclose(f);
  return kb << 10;
}

std::uint64_t available_memory_bytes() { return proc_kib_field("/proc/meminfo", "MemAvailable"); }

}  // namespace kmbench::base
