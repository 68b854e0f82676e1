// What a result must say about where it was measured: versions, machine, kernel,
// and which allocator owns this process's malloc.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kmbench {

struct VersionEntry {
  std::string component;  // "jemalloc", "compiler", "kernel", ...
  std::string version;
  std::string note;       // where the figure comes from ("runtime", "headers", "package")
};

/// kmbench, its libraries, the compiler, glibc and the kernel, exact.
std::vector<VersionEntry> versions();

/// The shared object whose `malloc` this process calls (e.g. "libc.so.6",
/// "libjemalloc.so.2"): a measurement names the allocator behind its own malloc.
std::string process_malloc_owner();

/// The file name of this executable ("kmbench", "kmbench-jemalloc"): which process measured.
std::string executable_name();

/// Machine facts for result files: CPU model, cores, memory, kernel, hostname,
/// and the kernel's state when called (machine_state.h: clock, caches, load,
/// governor, SMT, transparent huge pages, boot command line).
nlohmann::json machine_info();

/// versions() + machine_info() + build type + process_malloc_owner() + executable_name() as one JSON object.
nlohmann::json environment_json();

}  // namespace kmbench
