// The KPI's record of its blocks in strict mode: what each block is (family,
// size, tag), so that every free can be checked whatever backend served it.
//
// A record is one 8-byte word found from the block's address alone, the way a
// sanitizer finds its shadow: no hash, no lock, no table shared by threads.
// Blocks fall into five tiers by size, each with its own granule (16, 64, 256,
// 1024 and 4096 bytes: a tier holds sizes from its granule to four times it,
// the last one everything from 4 KiB up). Two live blocks of one tier start at
// least a granule apart, so a granule holds at most one record, and a record
// keeps its block's offset in the granule to tell the start from a pointer
// inside. The record of the granule at address / granule sits in the tier's
// map, an index of 8 MiB leaves reserved on first use and committed by the
// kernel page by page as records are written. Records are spread a cache line
// apart (16 bytes apart for 16-byte granules), so that one line of records
// never spans more than one line of blocks: threads whose blocks do not share
// a cache line do not share one of records either. Where small blocks are, the
// map's pages mirror the heap's one for one; blocks of 256 bytes and up cost a
// quarter of that or less (1/64 for pages).
//
// Each word belongs to the one block at its address: the thread that
// allocates it writes it, the thread that frees it rewrites it, and the
// backend orders the two as it orders the memory itself. Plain (relaxed)
// loads and stores suffice. A free clears the word's live bit and keeps the
// rest, so a later free of the same address is named a double free of that
// block until the address is handed out again.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace kmbench::kpi::detail {

/// The KPI families a block can belong to; a block is freed by its own family's function.
enum class Family : std::uint8_t {
  io_malloc,
  io_aligned,
  io_pageable,
  io_contiguous,
  os_malloc,
  os_pageable,
  os_object,
};
inline constexpr std::size_t kFamilies = 7;
const char* family_name(Family f) noexcept;       // "IOMalloc", ...
const char* family_free_name(Family f) noexcept;  // "IOFree", ...

/// One block's record: live | family | offset in granule (16-byte units) | tag | size.
/// Tags with ids of kMaxTag and above are all recorded as kMaxTag.
class BlockRecord {
 public:
  static constexpr unsigned kSizeBits = 36;
  static constexpr std::uint64_t kMaxSize = (std::uint64_t{1} << kSizeBits) - 1;  // 64 GiB - 1
  static constexpr unsigned kTagBits = 16;
  static constexpr std::uint32_t kMaxTag = (1u << kTagBits) - 1;

  constexpr BlockRecord() = default;
  constexpr explicit BlockRecord(std::uint64_t word) : word_(word) {}
  /// pre: size <= kMaxSize, offset16 < 256
  static constexpr BlockRecord live(Family f, std::uint64_t size, std::uint32_t tag, unsigned offset16) {
    const std::uint64_t t = tag < kMaxTag ? tag : kMaxTag;
    return BlockRecord(kLive | std::uint64_t(f) << kFamilyShift | std::uint64_t(offset16) << kOffsetShift |
                       t << kSizeBits | size);
  }

  constexpr std::uint64_t word() const { return word_; }
  constexpr bool empty() const { return word_ == 0; }
  constexpr bool is_live() const { return (word_ & kLive) != 0; }
  constexpr BlockRecord freed() const { return BlockRecord(word_ & ~kLive); }
  constexpr Family family() const { return Family((word_ >> kFamilyShift) & 7); }
  constexpr unsigned offset16() const { return unsigned(word_ >> kOffsetShift) & 0xff; }
  constexpr std::uint32_t tag() const { return std::uint32_t(word_ >> kSizeBits) & kMaxTag; }
  constexpr std::uint64_t size() const { return word_ & kMaxSize; }

 private:
  static constexpr std::uint64_t kLive = std::uint64_t{1} << 63;
  static constexpr unsigned kFamilyShift = 60;
  static constexpr unsigned kOffsetShift = 52;
  std::uint64_t word_ = 0;
};

/// What a lookup needs of one of the map's tiers (BlockMap): the record of a
/// block at addr is word (addr >> word_shift) & word_mask among the tier's
/// records (the granule's index, spread), in the index's leaves from `root` on.
struct BlockTier {
  std::uint64_t word_mask;
  std::uint64_t granule_mask;  // the block's offset in its granule: addr & granule_mask
  std::uint64_t root;
  std::uint32_t word_shift;
  std::uint32_t shift;  // log2 of the granule: 4, 6, 8, 10 or 12
};

/// The tiers by the bit width of the block's size: widths up to 6 (under 64
/// bytes) the first, 7-8 the second, ..., 13 and up (4 KiB and up) the last.
/// Words from one granule's record to the next (the spread, as a shift): 2
/// words for 16-byte granules, a cache line's 8 for the others; each tier's
/// index is 2^25 leaves from the one before.
constexpr std::array<BlockTier, 65> kBlockTierByWidth = [] {
  std::array<BlockTier, 65> table{};
  for (unsigned width = 0; width < table.size(); ++width) {
    const unsigned t = unsigned(std::clamp((int(width) - 5) >> 1, 0, 4));
    const unsigned shift = 4 + 2 * t;
    const unsigned spread = shift - 3 < 3 ? shift - 3 : 3;
    table[width] = {~((std::uint64_t{1} << spread) - 1), (std::uint64_t{1} << shift) - 1, std::uint64_t{t} << 25,
                    shift - spread, shift};
  }
  return table;
}();

class BlockMap {
 public:
  static constexpr unsigned kTiers = 5;
  static constexpr unsigned kAddressBits = 48;  // user-space addresses on x86_64 and arm64
  static constexpr unsigned kLargestShift = 12;

  using Tier = BlockTier;
  /// The tier of a block of `size` bytes: one load, indexed by the size's bit width.
  static constexpr const Tier& tier(std::uint64_t size) noexcept { return kBlockTierByWidth[std::bit_width(size | 1)]; }
  /// The tier whose granule is 1 << shift.
  static constexpr const Tier& tier_of_shift(unsigned shift) noexcept { return kBlockTierByWidth[shift + 1]; }
  /// log2 of the granule of the tier of a block of `size` bytes: 4, 6, 8, 10 or 12.
  static constexpr unsigned granule_shift(std::uint64_t size) noexcept { return tier(size).shift; }

  /// The record word a block of that tier at addr has, or would have.
  /// pre: addr is 16-aligned, below 2^kAddressBits; size <= BlockRecord::kMaxSize
  [[gnu::always_inline]] static std::uint64_t live_word(Family f, std::uint64_t size, std::uint32_t tag, const Tier& t,
                                 std::uintptr_t addr) noexcept {
    return BlockRecord::live(f, size, tag, 0).word() | (addr & t.granule_mask) << 48;  // offset / 16 << 52
  }
  /// True when no record can be kept for a block at addr of size (the slow path decides).
  [[gnu::always_inline]] static bool out_of_range(std::uintptr_t addr, std::uint64_t size) noexcept {
    return ((addr & 15) | (addr >> kAddressBits) | (size >> BlockRecord::kSizeBits)) != 0;
  }

  /// The record's word in tier t, or nullptr when no record was ever kept near addr.
  /// pre: !out_of_range(addr, 0)
  [[gnu::always_inline]] std::atomic<std::uint64_t>* existing(const Tier& t, std::uintptr_t addr) const noexcept {
    const std::atomic<Leaf>* roots = roots_.load(std::memory_order_acquire);
    if (roots == nullptr) [[unlikely]] return nullptr;
    const std::uintptr_t word = (addr >> t.word_shift) & t.word_mask;
    const Leaf leaf = roots[t.root + (word >> kLeafBits)].load(std::memory_order_acquire);
    return leaf != nullptr ? &leaf[word & kLeafMask] : nullptr;
  }
  [[gnu::always_inline]] std::atomic<std::uint64_t>* existing(unsigned shift, std::uintptr_t addr) const noexcept {
    return existing(tier_of_shift(shift), addr);
  }
  /// As existing, reserving the leaf (and the tier's index) on first use.
  /// nullptr only when no memory is left for them.
  std::atomic<std::uint64_t>* reserve(unsigned shift, std::uintptr_t addr) noexcept {
    std::atomic<std::uint64_t>* w = existing(shift, addr);
    return w != nullptr ? w : install(shift, addr);
  }
  /// The record for addr in that tier without reserving anything (empty when none).
  [[gnu::always_inline]] BlockRecord find(unsigned shift, std::uintptr_t addr) const noexcept {
    if (out_of_range(addr, 0)) return {};
    const std::atomic<std::uint64_t>* w = existing(shift, addr);
    return w != nullptr ? BlockRecord(w->load(std::memory_order_relaxed)) : BlockRecord{};
  }
  /// The granule shift of tier t (0..kTiers-1).
  static constexpr unsigned tier_shift(unsigned t) { return 4 + 2 * t; }
  /// Whether a record found in the tier of `shift` names a block starting at addr.
  static bool starts_at(BlockRecord r, unsigned shift, std::uintptr_t addr) noexcept {
    return !r.empty() && granule_shift(r.size()) == shift &&
           r.offset16() == unsigned(addr & ((std::uintptr_t{1} << shift) - 1)) >> 4;
  }

  /// Bytes of address space the records reserved (the kernel commits pages as they are written).
  std::size_t reserved_bytes() const noexcept;

 private:
  static constexpr unsigned kLeafBits = 20;  // words per leaf: 8 MiB of address space reserved
  static constexpr std::uintptr_t kLeafMask = (std::uintptr_t{1} << kLeafBits) - 1;

  /// Every tier's index of leaves lies in one reservation, each at a fixed
  /// offset (BlockTier::root), so that a lookup's first load does not wait for the size's tier.
  static constexpr unsigned kRootBits = 25;  // leaves per tier's index, at most (tiers of 16 and 64 bytes)

  using Leaf = std::atomic<std::uint64_t>*;
  std::atomic<std::uint64_t>* install(unsigned shift, std::uintptr_t addr) noexcept;

  std::atomic<std::atomic<Leaf>*> roots_{nullptr};  // kTiers indexes of 1 << kRootBits leaves
  static_assert(kAddressBits - 4 + 1 - kLeafBits <= kRootBits && kAddressBits - 6 + 3 - kLeafBits <= kRootBits);
  std::atomic<std::size_t> leaves_reserved_{0};
};

static_assert(BlockMap::tier(16).shift == 4 && BlockMap::tier(64).shift == 6 && BlockMap::tier(255).shift == 6 &&
              BlockMap::tier(4095).shift == 10 && BlockMap::tier(1 << 20).shift == 12 &&
              BlockMap::tier(1 << 20).root == std::uint64_t{BlockMap::kTiers - 1} << 25);

}  // namespace kmbench::kpi::detail
