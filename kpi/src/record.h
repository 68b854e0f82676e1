// Recording the KPI's calls (KMBENCH_RECORD=FILE, kpi::start_recording):
// each call appends a 48-byte record (ops/kpi_record.h) to its thread's
// buffer; a full buffer goes to the file in one write. Internal to kpi/src.
//
// The check on the path of every KPI call is one relaxed load of a global
// that is 0 when nothing records: KMBENCH_RECORD is read at the first call.
#pragma once

#include <atomic>
#include <cstdint>

#include "ops/calls.h"
#include "ops/kpi_record.h"

namespace kmbench::kpi::detail {

/// -1: KMBENCH_RECORD not read yet; 0: not recording; 1: recording.
extern std::atomic<int> g_record_state;

/// Reads KMBENCH_RECORD once and starts recording when it is set. A path
/// that cannot be written ends the program: one line on stderr, status 2.
bool record_from_environment() noexcept;

inline bool recording() noexcept {
  const int s = g_record_state.load(std::memory_order_relaxed);
  if (s < 0) [[unlikely]] {
    return record_from_environment();
  }
  return s > 0;
}

/// Appends one record to the calling thread's buffer. `call` is an ops::Call or an ops::kpirec::Event.
void record_call(std::uint8_t call, const void* address, std::uint64_t size, std::uint64_t aux,
                 std::uint32_t aux2, const void* site, std::uint8_t align_log2 = 0) noexcept;

/// Writes the name of an OSMalloc tag or an OSObject class (keyed by its pointer) to the recording.
void record_name(const void* key, const char* name) noexcept;

/// Writes the names of every OSMalloc tag (osmalloc.cpp) and every OSObject class (osobject.cpp).
void record_tag_names() noexcept;
void record_class_names() noexcept;

/// While one lives on a thread, that thread's KPI calls are not recorded: the
/// KPI's own use of its public functions where the outer call already stands
/// for the memory (an IOBufferMemoryDescriptor's buffer).
class RecordQuiet {
 public:
  RecordQuiet() noexcept;
  ~RecordQuiet();
  RecordQuiet(const RecordQuiet&) = delete;
  RecordQuiet& operator=(const RecordQuiet&) = delete;
};

}  // namespace kmbench::kpi::detail

/// Records a KPI call made from the function this expands in: its return
/// address is the caller's call site.
#define KMBENCH_KPI_RECORD(call, address, size, aux, aux2) \
  KMBENCH_KPI_RECORD_AT(__builtin_return_address(0), call, address, size, aux, aux2)

/// Records a KPI call made from `site` (a hot call's general path, out of line, is given its caller's).
#define KMBENCH_KPI_RECORD_AT(site, call, address, size, aux, aux2)                                  \
  do {                                                                                              \
    if (::kmbench::kpi::detail::recording()) [[unlikely]] {                                         \
      ::kmbench::kpi::detail::record_call(static_cast<std::uint8_t>(call), (address), (size), (aux), \
                                          (aux2), (site));                                          \
    }                                                                                               \
  } while (0)
