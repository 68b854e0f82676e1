// A gathered view: one new range of virtual memory that shows the pages of
// several non-adjacent pieces end to end. XNU maps a descriptor made of
// several ranges this way (IOMultiMemoryDescriptor::doMap reserves a range and
// maps each piece over the next part of it), so the driver reads and writes
// the pieces through one pointer while each piece keeps its own address.
//
// User space cannot map a private page a second time. So a view first makes
// its pieces' pages shared, in place: their contents move into a memory file
// (memfd) mapped at the same addresses, and the view maps the same file pages
// again. Both addresses then reach the same bytes, as two kernel mappings of
// one physical page do. When the last view of a page goes, the page becomes
// private anonymous memory again, with its contents.
//
// Only private anonymous read-write memory can move (the simulated RAM, the
// heap, stacks); a piece in a file mapping or read-only memory is refused.
// And the move copies each page once: a write another thread makes to that
// page while the view is being made (or undone) can be lost, a window XNU does
// not have. Drivers map before the device or other threads use the memory.
#pragma once

#include <IOKit/IOReturn.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace kmbench::kpi::dma {

/// `length` bytes at `address`: one piece of a view, in the view's order.
struct ViewPiece {
  std::uintptr_t address;
  std::size_t length;
};

class GatheredView {
 public:
  /// The pieces end to end in one new range, read-only when asked.
  /// pre: pieces.size() >= 1, every length > 0.
  /// post: nullptr when a boundary between two pieces is not on a page boundary
  /// (*why = kIOReturnNotAligned: pages cannot be cut), when a piece lies in memory other
  /// than private anonymous read-write memory (kIOReturnNotWritable), or when the kernel
  /// refuses a mapping (kIOReturnVMError). Nothing has changed then.
  static GatheredView* make(std::span<const ViewPiece> pieces, bool read_only, IOReturn* why);
  /// Unmaps the view; pages no other view shows become private again, with their contents.
  ~GatheredView();

  GatheredView(const GatheredView&) = delete;
  GatheredView& operator=(const GatheredView&) = delete;

  /// The first piece's first byte (at the same offset in its page as in the piece).
  void* address() const noexcept { return reinterpret_cast<void*>(base_ + first_offset_); }
  std::size_t length() const noexcept { return length_; }
  /// Pages whose contents moved to shared memory for views, now (all views).
  static std::uint64_t shared_pages() noexcept;

 private:
  GatheredView() = default;

  std::uintptr_t base_ = 0;        // the reserved range, page-aligned
  std::size_t reserved_ = 0;       // its bytes
  std::size_t first_offset_ = 0;   // the first piece's offset in its page
  std::size_t length_ = 0;         // bytes of the pieces
  std::vector<std::uintptr_t> pages_;  // the pieces' pages, in view order
};

}  // namespace kmbench::kpi::dma
