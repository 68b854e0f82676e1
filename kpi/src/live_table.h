// The KPI's record of live blocks: what each block is (family, size, tag), so
// that every free can be checked whatever backend served it. A sharded
// open-addressing table keyed by address: a shard is picked by the address's
// hash and guarded by its own spin lock; linear probing with backward-shift
// deletion keeps it free of tombstones. Each shard also remembers its last
// frees, so that a double free is told apart from a stray pointer.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "base/spin_lock.h"

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

/// One live block: 24 bytes.
struct BlockRecord {
  std::uintptr_t addr = 0;  // 0: empty slot
  std::uint64_t meta = 0;   // size (48 bits) | family << 48 | log2(align) << 56
  const void* owner = nullptr;  // the OSMalloc tag, if any

  static BlockRecord make(const void* p, std::uint64_t size, Family f, unsigned align_log2,
                          const void* owner) noexcept {
    return {reinterpret_cast<std::uintptr_t>(p),
            size | (std::uint64_t(f) << 48) | (std::uint64_t(align_log2) << 56), owner};
  }
  std::uint64_t size() const noexcept { return meta & ((std::uint64_t{1} << 48) - 1); }
  Family family() const noexcept { return Family((meta >> 48) & 0xff); }
  std::size_t align() const noexcept { return std::size_t{1} << (meta >> 56); }
};
inline constexpr std::uint64_t kMaxRecordedSize = (std::uint64_t{1} << 48) - 1;

struct FamilyCounters {
  std::uint64_t allocs = 0;
  std::uint64_t frees = 0;
  std::int64_t live_blocks = 0;
  std::int64_t live_bytes = 0;
};

class LiveTable {
 public:
  static constexpr unsigned kShardBits = 6;
  static constexpr unsigned kShards = 1u << kShardBits;
  static constexpr unsigned kRecentFrees = 16;

  LiveTable();
  ~LiveTable();
  LiveTable(const LiveTable&) = delete;
  LiveTable& operator=(const LiveTable&) = delete;

  /// post: false (and nothing changed) when r.addr is already live.
  bool insert(const BlockRecord& r) noexcept;

  /// Removes the record of addr and returns it. Under the shard's lock first
  /// calls check(found, recently_freed): found is the live record or nullptr,
  /// recently_freed the latest free of addr this shard remembers or nullptr.
  /// check panics to refuse; it must not call into the table.
  template <class Check>
  BlockRecord remove(std::uintptr_t addr, Check&& check) noexcept {
    Shard& s = shard_of(addr);
    s.lock.lock();
    const std::size_t i = s.find(addr);
    if (i == kNotFound) {
      check(static_cast<const BlockRecord*>(nullptr), s.recent_free(addr));
      s.lock.unlock();
      return {};
    }
    const BlockRecord r = s.slots[i];
    check(&r, static_cast<const BlockRecord*>(nullptr));
    s.erase(i);
    s.remember_free(r);
    FamilyCounters& c = s.counters[std::size_t(r.family())];
    ++c.frees;
    --c.live_blocks;
    c.live_bytes -= static_cast<std::int64_t>(r.size());
    s.lock.unlock();
    return r;
  }

  /// post: true and out filled when addr is live.
  bool find(std::uintptr_t addr, BlockRecord& out) noexcept;

  std::array<FamilyCounters, kFamilies> counters() noexcept;
  std::int64_t live_blocks() noexcept;
  /// Bytes the table itself holds (its metadata cost).
  std::size_t metadata_bytes() noexcept;

 private:
  static constexpr std::size_t kNotFound = ~std::size_t{0};

  static std::uint64_t hash(std::uintptr_t addr) noexcept {
    return (addr >> 4) * 0x9E3779B97F4A7C15ull;
  }

  struct alignas(64) Shard {
    base::SpinLock lock;
    BlockRecord* slots = nullptr;
    std::size_t mask = 0;
    std::size_t used = 0;
    std::array<BlockRecord, kRecentFrees> recent{};
    unsigned recent_next = 0;
    std::array<FamilyCounters, kFamilies> counters{};

    std::size_t home(std::uintptr_t addr) const noexcept { return (hash(addr) >> 20) & mask; }
    std::size_t find(std::uintptr_t addr) const noexcept;
    void erase(std::size_t i) noexcept;
    void grow() noexcept;
    void remember_free(const BlockRecord& r) noexcept;
    const BlockRecord* recent_free(std::uintptr_t addr) const noexcept;
  };

  Shard& shard_of(std::uintptr_t addr) noexcept { return shards_[hash(addr) >> (64 - kShardBits)]; }

  std::array<Shard, kShards> shards_;
};

}  // namespace kmbench::kpi::detail
