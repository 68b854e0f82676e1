// The active backend and mode, the emulated panic, the accounts every KPI
// family keeps, and the checks behind the inline path's fast one (core.h).
#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <tuple>

#include "allocators/direct_reclaim.h"
#include "core.h"
#include "record.h"

namespace kmbench::kpi {
namespace detail {
namespace {

std::mutex g_backend_mutex;

/// The mode paths made for the active backend's type (nullptr: none; its calls take the words).
std::atomic<const BackendHotEntries*> g_backend_hot{nullptr};

// The direct calls before a backend is open: each opens KMBENCH_BACKEND's, then makes the call.
void* open_then_allocate(void*, std::size_t size, std::size_t align, TagId tag, NodeId) noexcept {
  open_from_environment();
  return backend_allocate(size, align, tag);
}
void* open_then_allocate_heap(void*, std::size_t size, TagId tag) noexcept {
  open_from_environment();
  return backend_allocate(size, kMinAlign, tag);
}
constexpr AnyBackend::DirectCalls kOpeners{nullptr, &open_then_allocate, nullptr, &open_then_allocate_heap};

/// Counts the backends published: a thread's reclaim backoff belongs to one.
std::atomic<std::uint64_t> g_backend_generation{0};

/// Makes b the active backend: its direct calls first, the allocate word last (readers start from it).
/// nullptr: none, the next use opens KMBENCH_BACKEND's.
void publish(AnyBackend* b) {
  g_backend_generation.fetch_add(1, std::memory_order_relaxed);
  const AnyBackend::DirectCalls calls = b != nullptr ? b->direct_calls() : kOpeners;
  g_direct_self.store(calls.self, std::memory_order_relaxed);
  g_direct_free.store(calls.free, std::memory_order_release);
  g_direct_allocate_heap.store(calls.allocate_heap, std::memory_order_release);
  g_direct_allocate.store(calls.allocate, std::memory_order_release);
  g_backend.store(b, std::memory_order_release);
  g_backend_hot.store(b != nullptr ? backend_hot_entries(calls) : nullptr, std::memory_order_seq_cst);
  refresh_hot_calls();
}

/// The worker a backend lives in: its executable's name after "kmbench-" (kmbench-jemalloc: jemalloc),
/// which is also the suffix of the KPI library that carries its backends (kmbench::kpi_jemalloc).
std::string worker_of(const BackendInfo& info) {
  constexpr std::string_view kPrefix = "kmbench-";
  return info.executable.rfind(kPrefix, 0) == 0 ? info.executable.substr(kPrefix.size()) : info.executable;
}

}  // namespace

AnyBackend& open_from_environment() {
  std::lock_guard lock(g_backend_mutex);
  if (AnyBackend* b = g_backend.load(std::memory_order_acquire)) {
    return *b;
  }
  active_mode();  // the mode, too, is read from the environment at first use
  // NAME or NAME,key=value,...: the backend and its parameters, as --backend-param gives them.
  const char* env = std::getenv("KMBENCH_BACKEND");
  const std::string spec = env != nullptr && *env != '\0' ? env : "system";
  const std::size_t comma = spec.find(',');
  try {
    BackendConfig config;
    if (comma != std::string::npos) apply_params(config, std::string_view(spec).substr(comma + 1));
    // Never destroyed: blocks may still be freed by static destructors at exit.
    AnyBackend* b = open_backend(spec.substr(0, comma), config).release();
    publish(b);
    return *b;
  } catch (const std::exception& e) {
    const BackendInfo* info = find_backend(spec.substr(0, comma));
    if (info != nullptr && !info->executable.empty()) {
      // A worker's backend: its allocator must own the process's malloc, so it is a link-time choice.
      std::fprintf(stderr,
                   "kmbench: KMBENCH_BACKEND=%s: backend '%s' owns the process's malloc; link the driver with "
                   "kmbench::kpi_%s instead of kmbench::kpi to run it there\n",
                   spec.c_str(), info->name.c_str(), worker_of(*info).c_str());
    } else {
      std::fprintf(stderr, "kmbench: KMBENCH_BACKEND=%s: %s\n", spec.c_str(), e.what());
    }
    std::exit(2);
  }
}

Mode mode_from_environment() {
  const char* env = std::getenv("KMBENCH_KPI_MODE");
  Mode m = Mode::strict;
  if (env != nullptr && *env != '\0') {
    try {
      m = parse_mode(env);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kmbench: KMBENCH_KPI_MODE: %s\n", e.what());
      std::exit(2);
    }
  }
  int expected = -1;
  g_mode.compare_exchange_strong(expected, static_cast<int>(m), std::memory_order_relaxed);
  refresh_hot_calls();
  return static_cast<Mode>(g_mode.load(std::memory_order_relaxed));
}

namespace {

HotPath hot_path_now() noexcept {
  const int mode = g_mode.load(std::memory_order_seq_cst);
  if (mode < 0 || g_backend.load(std::memory_order_seq_cst) == nullptr ||
      g_record_state.load(std::memory_order_seq_cst) != 0) {
    return HotPath::general;
  }
  if (static_cast<Mode>(mode) == Mode::strict) return HotPath::strict;
  return g_page_runs_recorded.load(std::memory_order_seq_cst) ? HotPath::xnu_page_runs : HotPath::xnu;
}

void point_hot_calls(HotPath path) noexcept {
  const auto i = static_cast<std::size_t>(path);
  const BackendHotEntries* own = path == HotPath::general ? nullptr : g_backend_hot.load(std::memory_order_seq_cst);
  using Word = std::tuple<HotCalls*, const HotEntries*, const HotEntries*>;  // the word, the KPI's, the backend's
  for (auto [calls, entries, owns] : {Word{&g_io_malloc_calls, &kIOMallocEntries, own ? own->io_malloc : nullptr},
                                      Word{&g_os_malloc_calls, &kOSMallocEntries, own ? own->os_malloc : nullptr},
                                      Word{&g_os_object_calls, &kOSObjectEntries, own ? own->os_object : nullptr}}) {
    const HotEntries* e = owns != nullptr ? owns : entries;
    calls->allocate.store(e->allocate[i], std::memory_order_seq_cst);
    calls->release.store(e->release[i], std::memory_order_seq_cst);
  }
}

}  // namespace

void refresh_hot_calls() noexcept {
  // Whoever points the calls reads the inputs again afterwards: the last
  // pointing made is then checked against inputs read after it, never stale.
  HotPath path = hot_path_now();
  for (;;) {
    point_hot_calls(path);
    const HotPath again = hot_path_now();
    if (again == path) return;
    path = again;
  }
}

void note_page_runs() noexcept {
  if (!g_page_runs_recorded.exchange(true, std::memory_order_seq_cst)) refresh_hot_calls();
}

namespace {

const char* tag_name(const __OSMallocTag__* tag) { return tag != nullptr ? tag->name : "-"; }

/// The tag a record names, for messages: the tag the free was given when the ids agree.
const char* record_tag_name(const BlockRecord& r, const __OSMallocTag__* given) {
  if (r.tag() == kNoTag) return "-";
  if (given != nullptr && std::min<std::uint32_t>(given->id, BlockRecord::kMaxTag) == r.tag()) return given->name;
  return tag_name_of_id(r.tag());
}

/// The live record at p in any tier (another size's tier when the free's size is wrong).
BlockRecord live_record_at(std::uintptr_t addr) {
  for (unsigned t = 0; t < BlockMap::kTiers; ++t) {
    const BlockRecord r = g_blocks.find(BlockMap::tier_shift(t), addr);
    if (r.is_live() && BlockMap::starts_at(r, BlockMap::tier_shift(t), addr)) return r;
  }
  return {};
}

/// The freed record at p (the last block freed there), if its address has not been reused:
/// the one in the tier of the size the free names first (records of older blocks of
/// other sizes may linger at the same address in other tiers).
BlockRecord freed_record_at(std::uintptr_t addr, std::uint64_t size) {
  const unsigned claimed = BlockMap::granule_shift(size);
  if (const BlockRecord r = g_blocks.find(claimed, addr); !r.is_live() && BlockMap::starts_at(r, claimed, addr)) {
    return r;
  }
  for (unsigned t = 0; t < BlockMap::kTiers; ++t) {
    const BlockRecord r = g_blocks.find(BlockMap::tier_shift(t), addr);
    if (!r.is_live() && BlockMap::starts_at(r, BlockMap::tier_shift(t), addr)) return r;
  }
  return {};
}

bool is_os_family(Family f) { return f == Family::os_malloc || f == Family::os_pageable; }

}  // namespace

// x86_64 default kalloc heap classes (KPI-NOTES.md).
constexpr std::uint64_t kKallocClasses[] = {16,   32,   48,   64,   96,   128,  192,
                                            256,  384,  512,  768,  1024, 1536, 2048,
                                            3072, 4096, 6144, 8192, 12288, 16384};
extern constinit const std::array<std::uint16_t, 16384 / 16 + 1> g_kalloc_class_of16 = [] {
  std::array<std::uint16_t, 16384 / 16 + 1> table{};
  std::size_t c = 0;
  for (std::size_t i = 0; i < table.size(); ++i) {
    while (kKallocClasses[c] < i * 16) ++c;
    table[i] = static_cast<std::uint16_t>(kKallocClasses[c]);
  }
  table[0] = 16;
  return table;
}();

std::atomic<AnyBackend*> g_backend{nullptr};
std::atomic<void*> g_direct_self{nullptr};
std::atomic<decltype(AnyBackend::DirectCalls::allocate)> g_direct_allocate{kOpeners.allocate};
std::atomic<decltype(AnyBackend::DirectCalls::allocate_heap)> g_direct_allocate_heap{kOpeners.allocate_heap};
std::atomic<decltype(AnyBackend::DirectCalls::free)> g_direct_free{nullptr};
std::atomic<int> g_mode{-1};
FamilySlot g_family_slots[kMaxCpuSlots];
BlockMap g_blocks;
std::atomic<bool> g_page_runs_recorded{false};

const char* backend_name() noexcept {
  AnyBackend* b = g_backend.load(std::memory_order_acquire);
  return b != nullptr ? b->name().c_str() : "(none)";
}

void panic(const char* what, const void* address, std::uint64_t size, const char* tag,
           const char* detail_format, ...) {
  char detail[256];
  va_list args;
  va_start(args, detail_format);
  std::vsnprintf(detail, sizeof detail, detail_format, args);
  va_end(args);
  std::fprintf(stderr, "kmbench: panic: %s: %s: address 0x%llx, size %llu, tag %s, backend %s\n",
               what, detail,
               static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(address)),
               static_cast<unsigned long long>(size),
               tag != nullptr ? tag : "-", backend_name());
  std::fflush(stderr);
  std::abort();
}

bool record_slow(Family family, void* p, std::uint64_t size, __OSMallocTag__* tag) noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  if ((addr & 15) != 0) {
    panic(family_name(family), p, size, tag_name(tag), "the backend returned a block not aligned to 16 bytes");
  }
  if (BlockMap::out_of_range(addr, size)) {
    panic(family_name(family), p, size, tag_name(tag), "the block lies beyond the %u-bit addresses the record covers",
          BlockMap::kAddressBits);
  }
  const unsigned shift = BlockMap::granule_shift(size);
  std::atomic<std::uint64_t>* w = g_blocks.reserve(shift, addr);
  if (w == nullptr) return false;
  const BlockRecord old(w->load(std::memory_order_relaxed));
  if (old.is_live()) {
    panic(family_name(family), p, size, tag_name(tag),
          "the backend returned a block that overlaps a live %s block of %llu bytes", family_name(old.family()),
          static_cast<unsigned long long>(old.size()));
  }
  w->store(BlockMap::live_word(family, size, tag_id(tag), BlockMap::tier_of_shift(shift), addr),
           std::memory_order_relaxed);
  return true;
}

std::uint64_t retire_slow(Family expected, const char* fn, void* p, std::uint64_t size,
                          __OSMallocTag__* tag) noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  const Mode mode = active_mode();
  const BlockRecord found = (addr & 15) == 0 ? live_record_at(addr) : BlockRecord{};
  if (!found.is_live()) {
    const BlockRecord freed = (addr & 15) == 0 ? freed_record_at(addr, size) : BlockRecord{};
    if (!freed.empty()) {
      panic(fn, p, size, record_tag_name(freed, tag), "double free (a %s block of %llu bytes, already freed)",
            family_name(freed.family()), static_cast<unsigned long long>(freed.size()));
    }
    panic(fn, p, size, tag_name(tag), "pointer is not a live KPI block (double free, or never allocated by %s)",
          family_name(expected));
  }
  const bool family_ok = is_os_family(expected) ? is_os_family(found.family()) : found.family() == expected;
  if (!family_ok) {
    panic(fn, p, size, record_tag_name(found, tag), "block was allocated by %s, not %s", family_name(found.family()),
          family_name(expected));
  }
  const std::uint32_t given_tag = tag != nullptr ? std::min<std::uint32_t>(tag->id, BlockRecord::kMaxTag) : kNoTag;
  if (is_os_family(expected) && found.tag() != given_tag) {
    panic(fn, p, size, tag_name(tag), "wrong tag: the block belongs to tag '%s'", record_tag_name(found, nullptr));
  }
  if (is_os_family(expected) && found.family() != expected) {
    panic(fn, p, size, tag_name(tag), "size %llu makes this a %s free, but the block of %llu bytes is %s",
          static_cast<unsigned long long>(size), expected == Family::os_pageable ? "pageable" : "wired",
          static_cast<unsigned long long>(found.size()),
          found.family() == Family::os_pageable ? "pageable" : "wired");
  }
  const bool same_pages = is_page_family(expected) && page_round(size) == page_round(found.size());
  if (size != found.size() && !(mode == Mode::xnu && same_pages)) {
    if (size > found.size()) {
      panic(fn, p, size, record_tag_name(found, tag), "size %llu is larger than the block (%llu bytes)",
            static_cast<unsigned long long>(size), static_cast<unsigned long long>(found.size()));
    }
    panic(fn, p, size, record_tag_name(found, tag), "size %llu does not match the block (%llu bytes%s)",
          static_cast<unsigned long long>(size), static_cast<unsigned long long>(found.size()),
          mode == Mode::xnu ? ", another page count" : "");
  }
  // Accepted (xnu mode: a page run freed with a size of the same page count).
  g_blocks.existing(BlockMap::granule_shift(found.size()), addr)->store(found.freed().word(), std::memory_order_relaxed);
  return found.size();
}

void page_run_given_to_heap_free(Family expected, const char* fn, void* p, std::uint64_t size,
                                 __OSMallocTag__* tag) noexcept {
  const BlockRecord run = g_blocks.find(BlockMap::kLargestShift, reinterpret_cast<std::uintptr_t>(p));
  if (is_os_family(expected) && run.family() == Family::os_pageable) {
    panic(fn, p, size, tag_name(tag), "size %llu makes this a wired free, but the block of %llu bytes is pageable",
          static_cast<unsigned long long>(size), static_cast<unsigned long long>(run.size()));
  }
  panic(fn, p, size, tag_name(tag), "block was allocated by %s, not %s", family_name(run.family()),
        family_name(expected));
}

}  // namespace detail

using namespace detail;

Mode parse_mode(std::string_view text) {
  if (text == "strict") {
    return Mode::strict;
  }
  if (text == "xnu") {
    return Mode::xnu;
  }
  throw UsageError("KPI mode '" + std::string(text) + "' is not 'strict' or 'xnu'");
}

void set_mode(Mode mode) {
  std::lock_guard lock(g_backend_mutex);
  const int old = g_mode.load(std::memory_order_relaxed);
  if (old == static_cast<int>(mode)) return;
  const std::int64_t live = live_blocks();
  if (live != 0) {
    // A block's record and backing size follow the mode it was allocated in.
    throw UsageError(std::string("kpi::set_mode(") + (mode == Mode::strict ? "strict" : "xnu") + "): " +
                     std::to_string(live) + " KPI blocks are live; the mode changes only while none is");
  }
  g_mode.store(static_cast<int>(mode), std::memory_order_relaxed);
  refresh_hot_calls();
}

Mode mode() { return active_mode(); }

bool calls_inline() {
  const BackendHotEntries* own = g_backend_hot.load(std::memory_order_acquire);
  const HotPath path = hot_path_now();
  return own != nullptr && path != HotPath::general &&
         g_io_malloc_calls.allocate.load(std::memory_order_acquire) ==
             own->io_malloc->allocate[static_cast<std::size_t>(path)];
}

AnyBackend& backend() { return active_backend(); }

void set_backend(std::unique_ptr<AnyBackend> backend, physmem::Machine* machine) {
  if (!backend) {
    throw UsageError("kpi::set_backend: no backend given");
  }
  std::lock_guard lock(g_backend_mutex);
  const std::int64_t live = live_blocks();
  AnyBackend* old = g_backend.load(std::memory_order_acquire);
  if (live != 0) {
    throw UsageError("kpi::set_backend(" + backend->name() + "): " + std::to_string(live) +
                     " KPI blocks of backend " + (old ? old->name() : "(none)") +
                     " are still live; free them first");
  }
  set_page_machine(machine);
  publish(backend.release());
  delete old;
}

BackendLoan::BackendLoan(AnyBackend& backend, physmem::Machine* machine) {
  std::lock_guard lock(g_backend_mutex);
  if (const std::int64_t live = live_blocks(); live != 0) {
    throw UsageError("kpi::BackendLoan(" + backend.name() + "): " + std::to_string(live) +
                     " KPI blocks are still live; the KPI changes backends only while none is");
  }
  previous_ = g_backend.load(std::memory_order_acquire);
  previous_machine_ = page_machine_set();
  set_page_machine(machine);
  publish(&backend);
}

BackendLoan::~BackendLoan() {
  std::lock_guard lock(g_backend_mutex);
  if (const std::int64_t live = live_blocks(); live != 0) {
    panic("kpi::BackendLoan", nullptr, 0, nullptr, "%lld KPI blocks of the loaned backend %s are still live",
          static_cast<long long>(live), backend_name());
  }
  set_page_machine(previous_machine_);
  publish(previous_);
}

void use_backend(std::string_view name, BackendConfig config) {
  physmem::Machine* machine = config.machine;
  set_backend(open_backend(name, std::move(config)), machine);
}

namespace detail {
namespace {
std::atomic<std::uint64_t> g_reclaims{0}, g_rescued{0}, g_reclaims_skipped{0};
/// A thread's backoff, and the backend it was earned on (a backend put in
/// since starts with none).
struct ThreadBackoff {
  ReclaimBackoff backoff;
  std::uint64_t generation = 0;
};
thread_local ThreadBackoff t_reclaim;
}

void* backing_allocate_nowait(Family family, std::uint64_t bytes, std::size_t align, __OSMallocTag__* tag,
                              std::uint64_t max_phys) noexcept {
  if (is_page_family(family)) return backing_allocate(family, bytes, align, tag, max_phys);
  return active_backend().allocate_direct_nowait(bytes, std::max(align, kMinAlign), tag_id(tag), kAnyNode);
}

void* backing_allocate_after_reclaim(Family family, std::uint64_t bytes, std::size_t align, __OSMallocTag__* tag,
                                     std::uint64_t max_phys) noexcept {
  const std::uint64_t generation = g_backend_generation.load(std::memory_order_relaxed);
  if (t_reclaim.generation != generation) t_reclaim = {ReclaimBackoff{}, generation};
  bool skipped = false;
  void* p = reclaim_and_retry(
      t_reclaim.backoff, [](ReclaimLevel level) { return active_backend().reclaim(level); },
      [&] { return backing_allocate(family, bytes, align, tag, max_phys); },
      [](const ReclaimPass& pass) {
        g_reclaims.fetch_add(1, std::memory_order_relaxed);
        if (pass.block != nullptr) g_rescued.fetch_add(1, std::memory_order_relaxed);
      },
      &skipped);
  if (skipped) g_reclaims_skipped.fetch_add(1, std::memory_order_relaxed);
  return p;
}

}  // namespace detail

ReclaimStats reclaim_stats() {
  return {g_reclaims.load(std::memory_order_relaxed), g_rescued.load(std::memory_order_relaxed),
          g_reclaims_skipped.load(std::memory_order_relaxed)};
}

std::vector<FamilyUsage> family_usage() {
  std::vector<FamilyUsage> out(kFamilies);
  const unsigned slots = cpu_slots_in_use();
  for (std::size_t f = 0; f < kFamilies; ++f) {
    FamilyUsage& u = out[f];
    u.family = family_name(Family(f));
    for (unsigned s = 0; s < slots; ++s) {
      const FamilyCounts& c = g_family_slots[s].family[f];
      u.allocs += c.allocs.load(std::memory_order_relaxed);
      u.frees += c.frees.load(std::memory_order_relaxed);
      u.live_bytes += c.live_bytes.load(std::memory_order_relaxed);
    }
  }
  // OSMalloc's blocks are counted by their tags alone (counted_by_family),
  // which count the pageable tags' page blocks (os_pageable) too.
  static_assert(!counted_by_family(Family::os_malloc) && counted_by_family(Family::os_pageable));
  const TagTotals tags = all_tags_totals();
  const FamilyUsage& pageable = out[std::size_t(Family::os_pageable)];
  FamilyUsage& os = out[std::size_t(Family::os_malloc)];
  os.allocs = tags.allocs - pageable.allocs;
  os.frees = tags.frees - pageable.frees;
  os.live_bytes = tags.live_bytes - pageable.live_bytes;
  for (FamilyUsage& u : out) u.live_blocks = static_cast<std::int64_t>(u.allocs) - static_cast<std::int64_t>(u.frees);
  return out;
}

std::int64_t live_blocks() {
  std::int64_t n = 0;
  for (const FamilyUsage& u : family_usage()) n += u.live_blocks;
  return n;
}

}  // namespace kmbench::kpi
