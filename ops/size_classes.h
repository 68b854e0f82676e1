// Size classes of requested bytes, shared by the importers' kernel slack
// counters, `trace info` and the replay's internal fragmentation table.
//
// Power-of-two classes of the requested size: <=16, <=32, ... <=4096, then
// "large" (a bigger object request) and "pages" (page and DMA allocations,
// whatever their size).
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

namespace kmbench::ops {

inline constexpr int kSizeClasses = 11;
/// Names as results and counters spell them, in order.
inline constexpr std::array<std::string_view, kSizeClasses> kSizeClassNames = {
    "le16", "le32", "le64", "le128", "le256", "le512", "le1024", "le2048", "le4096", "large", "pages"};
inline constexpr int kLargeClass = 9;
inline constexpr int kPagesClass = 10;

/// Largest requested size of class c (0: unbounded).
constexpr std::uint64_t size_class_limit(int c) noexcept {
  return c < kLargeClass ? std::uint64_t{16} << c : 0;
}

/// The class of a request of `size` bytes; pages: a page or DMA allocation.
constexpr int size_class(std::uint64_t size, bool pages) noexcept {
  if (pages) return kPagesClass;
  if (size <= 16) return 0;
  if (size > 4096) return kLargeClass;
  return static_cast<int>(std::bit_width(size - 1)) - 4;  // 17..32 -> 1, ..., 2049..4096 -> 8
}

/// The importer counter of the kernel's own slack (ftrace captures): over the
/// slab allocations (kmalloc, kmem_cache_alloc) of requested-size class c,
/// `field` is allocs, bytes_req or bytes_alloc. "import.slab_slack.le64.bytes_req".
inline std::string slab_slack_counter(int c, std::string_view field) {
  return "import.slab_slack." + std::string(kSizeClassNames[static_cast<std::size_t>(c)]) + "." + std::string(field);
}
inline constexpr std::array<std::string_view, 3> kSlackFields = {"allocs", "bytes_req", "bytes_alloc"};

static_assert(size_class(16, false) == 0 && size_class(17, false) == 1 && size_class(32, false) == 1 &&
              size_class(4096, false) == 8 && size_class(4097, false) == kLargeClass &&
              size_class(1, true) == kPagesClass && size_class(0, false) == 0);

}  // namespace kmbench::ops
