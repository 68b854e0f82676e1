// The harness's handle on the emulated KPI: which backend serves IOMalloc,
// OSMalloc and OSObject, how strictly misuse is checked, and what the KPI
// holds (per OSMalloc tag, per KPI family, per OSObject class).
//
// Without a call here the KPI opens the backend named by KMBENCH_BACKEND
// (default "system") and the mode named by KMBENCH_KPI_MODE (default strict)
// on first use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "allocators/any_backend.h"

namespace kmbench::kpi {

/// strict: the documented contract (exact free sizes, no Tagfree with live blocks).
/// xnu: as forgiving as XNU itself (same kalloc class accepted, Tagfree deferred).
enum class Mode { strict, xnu };

void set_mode(Mode mode);
Mode mode();
/// Whether IOMalloc, IOFree, OSMalloc, OSFree and OSObject's new and delete
/// run the active backend's code inline, on a path made for its type and the
/// mode (false before the first call, while recording, and for a backend
/// type this library was not built with: then through its function table).
bool calls_inline();
/// "strict" / "xnu"; throws UsageError on anything else.
Mode parse_mode(std::string_view text);

/// The backend serving the KPI, opened from the environment on first use.
AnyBackend& backend();
/// Makes `backend` serve the KPI from now on; IOMallocContiguous, IOMallocPageable
/// and pageable OSMalloc take pages from `machine` (nullptr: physmem::current_machine()).
/// pre: no KPI block is live and no other thread is inside the KPI.
/// Throws UsageError when blocks are live (they belong to the old backend).
void set_backend(std::unique_ptr<AnyBackend> backend, physmem::Machine* machine = nullptr);
/// open_backend(name, config) then set_backend(.., config.machine). Throws UsageError
/// for an unknown backend or one that runs in another executable (the message names it).
void use_backend(std::string_view name, BackendConfig config = {});

/// While it lives, `backend` (the caller's, not owned: a replay's) serves the
/// KPI, and its page families take their pages from `machine`; then the KPI
/// has again the backend and machine it had (none yet: KMBENCH_BACKEND's at
/// the next use). A replay of a KPI recording runs each call through the KPI
/// this way (docs/REPLAY.md).
/// pre, at both ends: no KPI block is live and no other thread is inside the KPI.
/// Throws UsageError when blocks are live at the start.
class BackendLoan {
 public:
  BackendLoan(AnyBackend& backend, physmem::Machine* machine);
  ~BackendLoan();
  BackendLoan(const BackendLoan&) = delete;
  BackendLoan& operator=(const BackendLoan&) = delete;

 private:
  AnyBackend* previous_;
  physmem::Machine* previous_machine_;
};

/// Records every KPI call to `path` (`%p` becomes the pid), as KMBENCH_RECORD
/// does from the first KPI call on: the record log of ops/kpi_record.h, which
/// `kmbench trace import` turns into a .kmt. Throws UsageError when the path
/// cannot be written or a recording is already running.
void start_recording(const std::string& path);
/// Writes what the threads still hold and ends the log (run at exit too). No-op when not recording.
void stop_recording();
bool recording();

/// One OSMalloc tag's accounting (requested bytes).
struct TagUsage {
  std::string name;
  TagId id = kNoTag;           // the tag id the backend sees
  std::uint32_t flags = 0;     // OSMT_DEFAULT / OSMT_PAGEABLE
  enum class State { active, freed_pending, released } state = State::active;
  std::uint64_t allocs = 0;
  std::uint64_t frees = 0;
  std::int64_t live_blocks = 0;
  std::int64_t live_bytes = 0;
  std::int64_t peak_live_bytes = 0;
};
/// Every tag ever allocated, in creation order (released tags included).
std::vector<TagUsage> tag_usage();

/// What one KPI family holds: IOMalloc, IOMallocAligned, IOMallocPageable,
/// IOMallocContiguous, OSMalloc, OSMalloc pageable, OSObject.
struct FamilyUsage {
  std::string family;
  std::uint64_t allocs = 0;
  std::uint64_t frees = 0;
  std::int64_t live_blocks = 0;
  std::int64_t live_bytes = 0;
};
std::vector<FamilyUsage> family_usage();
/// Blocks of every family still live.
std::int64_t live_blocks();

/// What calls that may wait did when memory ran short (docs/pressure.md): every
/// KPI allocation but OSMalloc_noblock and _nowait has the backend reclaim
/// (trim, then drain) and tries again after each pass before it returns NULL.
struct ReclaimStats {
  std::uint64_t reclaims = 0;  // reclaim passes run
  std::uint64_t rescued = 0;   // allocations that then succeeded
  std::uint64_t skipped = 0;   // failures that skipped reclaim: the thread's last passes gave nothing back
};
ReclaimStats reclaim_stats();

/// One OSObject class's instances.
struct ClassUsage {
  std::string name;
  std::string superclass;          // empty for OSObject
  unsigned class_size = 0;
  std::int64_t live_instances = 0; // objects whose most-derived class is this one
  unsigned instance_count = 0;     // OSMetaClass::getInstanceCount(), XNU's definition
  std::uint64_t constructed = 0;
};
/// Every OSObject class linked into the process.
std::vector<ClassUsage> class_usage();
/// The class of that name, or a zero record with an empty name.
ClassUsage class_usage(std::string_view name);

}  // namespace kmbench::kpi
