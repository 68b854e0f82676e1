// Reading what the kernel says of memory in /proc: a "Field:  N kB" line of
// meminfo or smaps_rollup, and the memory this system can give now.
#pragma once

#include <cstdint>

namespace kmbench::base {

/// A "Field:  N kB" line of a /proc file (meminfo, smaps_rollup) in bytes; 0 when absent.
std::uint64_t proc_kib_field(const char* path, const char* field);

/// Bytes of memory this system can give now (MemAvailable), 0 when unknown.
std::uint64_t available_memory_bytes();

}  // namespace kmbench::base
