// Physical addresses for the DMA layer: the simulated machine's own pages,
// and frames lent to pages outside it (glibc's heap, the process's own
// memory) while a descriptor covers them. Lent frames lie above 1 TiB and
// are scattered (consecutive pages never get adjacent frames), so such memory
// is never physically contiguous and always beyond a 32-bit device's reach.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kmbench::physmem {
class Machine;
}

namespace kmbench::kpi::dma {

inline constexpr std::uint64_t kPage = 4096;
inline constexpr std::uint64_t kLentFrameBase = 1ull << 40;

/// The machine DMA buffers and bounce buffers come from.
physmem::Machine& machine() noexcept;

/// Physical address of a byte: the machine's, or its page's lent frame; 0 if neither.
std::uint64_t phys_of(const void* va) noexcept;
/// Virtual address of a physical address (machine RAM or a lent frame); nullptr if neither.
void* virt_of(std::uint64_t pa) noexcept;

/// Lends frames to the pages of [va, va+length) that the machine does not own
/// (nested: each lend needs a return). post: true if any page needed a frame.
bool lend_frames(const void* va, std::uint64_t length);
void return_frames(const void* va, std::uint64_t length) noexcept;
/// Pages holding lent frames right now.
std::uint64_t lent_pages() noexcept;

/// Copies between physical addresses and memory, page by page (copypv).
/// post: bytes copied (stops at the first address that is not memory).
std::uint64_t copy_from_phys(void* dst, std::uint64_t pa, std::uint64_t length) noexcept;
std::uint64_t copy_to_phys(std::uint64_t pa, const void* src, std::uint64_t length) noexcept;

}  // namespace kmbench::kpi::dma
