// The active backend and mode, the emulated panic, and the one allocate/release
// path every KPI family goes through.
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core.h"

namespace kmbench::kpi {
namespace detail {
namespace {

std::atomic<AnyBackend*> g_backend{nullptr};
std::mutex g_backend_mutex;
std::atomic<int> g_mode{-1};

/// The worker a backend lives in: its executable's name after "kmbench-" (kmbench-jemalloc: jemalloc),
/// which is also the suffix of the KPI library that carries its backends (kmbench::kpi_jemalloc).
std::string worker_of(const BackendInfo& info) {
  constexpr std::string_view kPrefix = "kmbench-";
  return info.executable.rfind(kPrefix, 0) == 0 ? info.executable.substr(kPrefix.size()) : info.executable;
}

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
    g_backend.store(b, std::memory_order_release);
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
  return static_cast<Mode>(g_mode.load(std::memory_order_relaxed));
}

// x86_64 default kalloc heap classes (KPI-NOTES.md).
constexpr std::uint64_t kKallocClasses[] = {16,   32,   48,   64,   96,   128,  192,
                                            256,  384,  512,  768,  1024, 1536, 2048,
                                            3072, 4096, 6144, 8192, 12288, 16384};

unsigned log2_of(std::size_t pow2) { return static_cast<unsigned>(__builtin_ctzll(pow2)); }

bool is_page_family(Family f) {
  return f == Family::io_pageable || f == Family::io_contiguous || f == Family::os_pageable;
}

/// Bytes XNU would take for a block of `size` in family f: two sizes XNU cannot tell apart
/// give the same answer (the xnu mode accepts a free with either).
std::uint64_t xnu_footprint(Family f, std::uint64_t size, std::size_t align) {
  switch (f) {
    case Family::io_aligned: {
      const std::uint64_t with_header = size + 16 + (align - 1);
      return with_header >= kPage ? page_round(size) : kalloc_class(with_header);
    }
    case Family::io_pageable:
    case Family::io_contiguous:
    case Family::os_pageable:
      return page_round(size);
    default:
      return kalloc_class(size);
  }
}

const char* tag_name(const void* owner) {
  return owner != nullptr ? static_cast<const __OSMallocTag__*>(owner)->name : "-";
}

}  // namespace

AnyBackend& active_backend() {
  if (AnyBackend* b = g_backend.load(std::memory_order_acquire)) [[likely]] {
    return *b;
  }
  return open_from_environment();
}

const char* backend_name() noexcept {
  AnyBackend* b = g_backend.load(std::memory_order_acquire);
  return b != nullptr ? b->name().c_str() : "(none)";
}

Mode active_mode() {
  const int m = g_mode.load(std::memory_order_relaxed);
  return m >= 0 ? static_cast<Mode>(m) : mode_from_environment();
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

LiveTable& live_table() {
  static LiveTable* table = new LiveTable;  // never destroyed, as the backend
  return *table;
}

std::uint64_t kalloc_class(std::uint64_t size) noexcept {
  for (std::uint64_t c : kKallocClasses) {
    if (size <= c) {
      return c;
    }
  }
  return page_round(size);
}

std::uint64_t backing_size(Family family, std::uint64_t size) noexcept {
  if (is_page_family(family)) {
    return page_round(size);
  }
  if (size == 0 && (family == Family::io_malloc || family == Family::os_malloc)) {
    return 16;  // as kalloc: a real 16-byte element
  }
  return size;
}

void* allocate(Family family, std::uint64_t size, std::size_t align, __OSMallocTag__* tag,
               std::uint64_t max_phys) noexcept {
  if (size > kMaxRecordedSize) {
    return nullptr;
  }
  const std::uint64_t bytes = backing_size(family, size);
  void* p;
  if (is_page_family(family)) {
    p = pages_alloc(bytes, std::max<std::size_t>(align, kPage), max_phys);
    align = std::max<std::size_t>(align, kPage);
  } else {
    align = std::max<std::size_t>(align, kMinAlign);
    p = active_backend().allocate(bytes, align, tag != nullptr ? tag->id : kNoTag, kAnyNode);
  }
  if (p == nullptr) {
    return nullptr;
  }
  if (!live_table().insert(BlockRecord::make(p, size, family, log2_of(align), tag))) {
    panic(family_name(family), p, size, tag_name(tag),
          "the backend returned a block that is still live");
  }
  if (tag != nullptr) {
    tag->allocs.fetch_add(1, std::memory_order_relaxed);
    tag->live_blocks.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t now =
        tag->live_bytes.fetch_add(static_cast<std::int64_t>(size), std::memory_order_relaxed) +
        static_cast<std::int64_t>(size);
    std::int64_t peak = tag->peak_live_bytes.load(std::memory_order_relaxed);
    while (now > peak &&
           !tag->peak_live_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }
  return p;
}

void release(Family expected, const char* fn, void* p, std::uint64_t size,
             __OSMallocTag__* tag) noexcept {
  if (p == nullptr) {
    return;
  }
  const Mode mode = active_mode();
  const BlockRecord r = live_table().remove(
      reinterpret_cast<std::uintptr_t>(p), [&](const BlockRecord* found, const BlockRecord* freed) {
        if (found == nullptr) {
          if (freed != nullptr) {
            panic(fn, p, size, tag_name(freed->owner),
                  "double free (a %s block of %llu bytes, already freed)",
                  family_name(freed->family()), static_cast<unsigned long long>(freed->size()));
          }
          panic(fn, p, size, tag_name(tag),
                "pointer is not a live KPI block (double free, or never allocated by %s)",
                family_name(expected));
        }
        const bool os_family = expected == Family::os_malloc || expected == Family::os_pageable;
        const bool family_ok = os_family ? (found->family() == Family::os_malloc ||
                                            found->family() == Family::os_pageable)
                                         : found->family() == expected;
        if (!family_ok) {
          panic(fn, p, size, tag_name(found->owner), "block was allocated by %s, not %s",
                family_name(found->family()), family_name(expected));
        }
        if (os_family && found->owner != tag) {
          panic(fn, p, size, tag_name(tag), "wrong tag: the block belongs to tag '%s'",
                tag_name(found->owner));
        }
        if (os_family && found->family() != expected) {
          panic(fn, p, size, tag_name(tag),
                "size %llu makes this a %s free, but the block of %llu bytes is %s",
                static_cast<unsigned long long>(size),
                expected == Family::os_pageable ? "pageable" : "wired",
                static_cast<unsigned long long>(found->size()),
                found->family() == Family::os_pageable ? "pageable" : "wired");
        }
        if (size == found->size()) {
          return;
        }
        if (mode == Mode::xnu && xnu_footprint(found->family(), size, found->align()) ==
                                     xnu_footprint(found->family(), found->size(), found->align())) {
          return;
        }
        if (size > found->size()) {
          panic(fn, p, size, tag_name(found->owner), "size %llu is larger than the block (%llu bytes)",
                static_cast<unsigned long long>(size),
                static_cast<unsigned long long>(found->size()));
        }
        panic(fn, p, size, tag_name(found->owner),
              "size %llu does not match the block (%llu bytes%s)",
              static_cast<unsigned long long>(size),
              static_cast<unsigned long long>(found->size()),
              mode == Mode::xnu ? ", another size class" : "");
      });
  const Family family = r.family();
  if (is_page_family(family)) {
    pages_free(p, page_round(r.size()));
  } else {
    auto* owner = static_cast<__OSMallocTag__*>(const_cast<void*>(r.owner));
    active_backend().free(p, backing_size(family, r.size()), owner != nullptr ? owner->id : kNoTag);
  }
  if (auto* owner = static_cast<__OSMallocTag__*>(const_cast<void*>(r.owner))) {
    owner->frees.fetch_add(1, std::memory_order_relaxed);
    owner->live_bytes.fetch_sub(static_cast<std::int64_t>(r.size()), std::memory_order_relaxed);
    if (owner->live_blocks.fetch_sub(1, std::memory_order_seq_cst) == 1) {
      // The last block of a tag freed while blocks were live (xnu mode): release it now.
      int pending = static_cast<int>(TagUsage::State::freed_pending);
      owner->state.compare_exchange_strong(pending, static_cast<int>(TagUsage::State::released),
                                           std::memory_order_seq_cst);
    }
  }
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

void set_mode(Mode mode) { g_mode.store(static_cast<int>(mode), std::memory_order_relaxed); }

Mode mode() { return active_mode(); }

AnyBackend& backend() { return active_backend(); }

void set_backend(std::unique_ptr<AnyBackend> backend, physmem::Machine* machine) {
  if (!backend) {
    throw UsageError("kpi::set_backend: no backend given");
  }
  std::lock_guard lock(g_backend_mutex);
  const std::int64_t live = live_table().live_blocks();
  AnyBackend* old = g_backend.load(std::memory_order_acquire);
  if (live != 0) {
    throw UsageError("kpi::set_backend(" + backend->name() + "): " + std::to_string(live) +
                     " KPI blocks of backend " + (old ? old->name() : "(none)") +
                     " are still live; free them first");
  }
  set_page_machine(machine);
  g_backend.store(backend.release(), std::memory_order_release);
  delete old;
}

void use_backend(std::string_view name, BackendConfig config) {
  physmem::Machine* machine = config.machine;
  set_backend(open_backend(name, std::move(config)), machine);
}

std::vector<FamilyUsage> family_usage() {
  const auto counters = live_table().counters();
  std::vector<FamilyUsage> out;
  for (std::size_t f = 0; f < kFamilies; ++f) {
    out.push_back({family_name(Family(f)), counters[f].allocs, counters[f].frees,
                   counters[f].live_blocks, counters[f].live_bytes});
  }
  return out;
}

std::int64_t live_blocks() { return live_table().live_blocks(); }

}  // namespace kmbench::kpi
