// The KPI's core: the active backend and mode, the record of live blocks every
// KPI function checks against, the emulated panic, and the OSMalloc tag.
// Internal to kpi/src.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "allocators/any_backend.h"
#include "kmbench/kpi.h"
#include "live_table.h"

/// An OSMalloc tag (opaque to drivers). Never freed: a stale tag stays readable
/// so a use after OSMalloc_Tagfree is caught instead of reading freed memory.
struct __OSMallocTag__ {
  static constexpr std::uint32_t kMagic = 0x4f534d54;  // "OSMT"
  std::uint32_t magic = kMagic;
  std::atomic<int> state{0};  // kmbench::kpi::TagUsage::State
  std::uint32_t flags = 0;
  kmbench::TagId id = kmbench::kNoTag;
  char name[64] = {};
  std::atomic<std::uint64_t> allocs{0}, frees{0};
  std::atomic<std::int64_t> live_blocks{0}, live_bytes{0}, peak_live_bytes{0};
  __OSMallocTag__* next = nullptr;  // creation order
};

namespace kmbench::kpi::detail {

inline constexpr std::size_t kPage = 4096;
inline constexpr std::uint64_t kMaxPageable = 512ull << 20;  // IOMallocPageable's x86_64 limit

inline std::uint64_t page_round(std::uint64_t n) { return (n + kPage - 1) & ~std::uint64_t{kPage - 1}; }

/// The active backend; opened from KMBENCH_BACKEND on first use.
AnyBackend& active_backend();
/// The active backend's name, or "(none)" before first use; never opens one.
const char* backend_name() noexcept;
Mode active_mode();

/// An emulated kernel panic: one line on stderr (what, address, size, tag, backend), then abort().
[[noreturn]] void panic(const char* what, const void* address, std::uint64_t size,
                        const char* tag, const char* detail_format, ...)
    __attribute__((format(printf, 5, 6)));

LiveTable& live_table();

/// Size handed to the backend (or page layer) for a request of `size`.
std::uint64_t backing_size(Family family, std::uint64_t size) noexcept;
/// The XNU kalloc size class of a request (16 for 0; page multiples above 16 KiB).
std::uint64_t kalloc_class(std::uint64_t size) noexcept;

/// Allocates a block of `family` and records it. post: nullptr on failure.
///  pre: align is a power of two; max_phys bounds the physical address (page families only).
void* allocate(Family family, std::uint64_t size, std::size_t align, __OSMallocTag__* tag,
               std::uint64_t max_phys = ~0ull) noexcept;
/// Checks a free against the record (panics on misuse), then gives the memory back.
/// `fn` names the KPI function; `tag` is the tag OSFree was given (or nullptr).
void release(Family expected, const char* fn, void* p, std::uint64_t size,
             __OSMallocTag__* tag) noexcept;

/// The machine page runs come from (nullptr: physmem::current_machine()).
/// pre: no page run is live.
void set_page_machine(physmem::Machine* machine) noexcept;
/// The machine the KPI's page runs and DMA buffers come from.
physmem::Machine& page_machine() noexcept;
/// Pages for the pageable and contiguous families. post: nullptr on failure.
void* pages_alloc(std::uint64_t bytes, std::size_t align, std::uint64_t max_phys) noexcept;
void pages_free(void* p, std::uint64_t bytes) noexcept;
std::uint64_t pages_phys(const void* p) noexcept;
/// The virtual address of a physical address in a live page run, or nullptr.
void* pages_virt(std::uint64_t pa) noexcept;

}  // namespace kmbench::kpi::detail
