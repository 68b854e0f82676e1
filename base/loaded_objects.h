// The ELF objects loaded into this process (the program first, then its
// shared libraries): where their code lies and which file, with which GNU
// build id, it came from. Recorders keep them so that return addresses can be
// named later from the files' symbol tables (harness/trace/symbols.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kmbench::base {

struct LoadedObject {
  std::uint64_t base = 0;        // load bias: run-time address = link-time address + base
  std::uint64_t lo = 0, hi = 0;  // run-time range of its executable segments [lo, hi)
  std::string path;              // the program's own path for the first object
  std::string build_id;          // raw bytes of its NT_GNU_BUILD_ID note; empty when it has none
};

/// Every loaded object with code, in the dynamic linker's order (the program first).
std::vector<LoadedObject> loaded_objects();

/// The GNU build id among the ELF notes in [p, end) (a PT_NOTE segment or an
/// SHT_NOTE section), at most 255 bytes; "" when there is none.
std::string gnu_build_id(const char* p, const char* end);

}  // namespace kmbench::base
