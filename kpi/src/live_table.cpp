#include "live_table.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kmbench::kpi::detail {
namespace {

constexpr std::size_t kInitialSlots = 64;

BlockRecord* new_slots(std::size_t n) noexcept {
  auto* p = static_cast<BlockRecord*>(std::calloc(n, sizeof(BlockRecord)));
  if (p == nullptr) {
    std::fprintf(stderr, "kmbench: kpi: out of memory for the live-block table (%zu slots)\n", n);
    std::abort();
  }
  return p;
}

}  // namespace

const char* family_name(Family f) noexcept {
  static constexpr const char* kNames[kFamilies] = {
      "IOMalloc", "IOMallocAligned", "IOMallocPageable", "IOMallocContiguous",
      "OSMalloc", "OSMalloc(pageable)", "OSObject"};
  return kNames[std::size_t(f)];
}

const char* family_free_name(Family f) noexcept {
  static constexpr const char* kNames[kFamilies] = {
      "IOFree", "IOFreeAligned", "IOFreePageable", "IOFreeContiguous",
      "OSFree", "OSFree", "OSObject::release"};
  return kNames[std::size_t(f)];
}

LiveTable::LiveTable() {
  for (Shard& s : shards_) {
    s.slots = new_slots(kInitialSlots);
    s.mask = kInitialSlots - 1;
  }
}

LiveTable::~LiveTable() {
  for (Shard& s : shards_) {
    std::free(s.slots);
  }
}

std::size_t LiveTable::Shard::find(std::uintptr_t addr) const noexcept {
  for (std::size_t i = home(addr);; i = (i + 1) & mask) {
    if (slots[i].addr == addr) {
      return i;
    }
    if (slots[i].addr == 0) {
      return kNotFound;
    }
  }
}

void LiveTable::Shard::erase(std::size_t i) noexcept {
  // Backward-shift deletion: pull later members of the probe run into the hole.
  std::size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (slots[j].addr == 0) {
      break;
    }
    const std::size_t k = home(slots[j].addr);
    const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      slots[i] = slots[j];
      i = j;
    }
  }
  slots[i] = BlockRecord{};
  --used;
}

void LiveTable::Shard::grow() noexcept {
  BlockRecord* old = slots;
  const std::size_t old_n = mask + 1;
  slots = new_slots(old_n * 2);
  mask = old_n * 2 - 1;
  for (std::size_t i = 0; i < old_n; ++i) {
    if (old[i].addr != 0) {
      std::size_t j = home(old[i].addr);
      while (slots[j].addr != 0) {
        j = (j + 1) & mask;
      }
      slots[j] = old[i];
    }
  }
  std::free(old);
}

void LiveTable::Shard::remember_free(const BlockRecord& r) noexcept {
  recent[recent_next] = r;
  recent_next = (recent_next + 1) % kRecentFrees;
}

const BlockRecord* LiveTable::Shard::recent_free(std::uintptr_t addr) const noexcept {
  for (unsigned n = 1; n <= kRecentFrees; ++n) {
    const BlockRecord& r = recent[(recent_next + kRecentFrees - n) % kRecentFrees];
    if (r.addr == addr) {
      return &r;
    }
  }
  return nullptr;
}

bool LiveTable::insert(const BlockRecord& r) noexcept {
  Shard& s = shard_of(r.addr);
  s.lock.lock();
  if ((s.used + 1) * 2 > s.mask + 1) {
    s.grow();
  }
  std::size_t i = s.home(r.addr);
  for (; s.slots[i].addr != 0; i = (i + 1) & s.mask) {
    if (s.slots[i].addr == r.addr) {
      s.lock.unlock();
      return false;
    }
  }
  s.slots[i] = r;
  ++s.used;
  FamilyCounters& c = s.counters[std::size_t(r.family())];
  ++c.allocs;
  ++c.live_blocks;
  c.live_bytes += static_cast<std::int64_t>(r.size());
  s.lock.unlock();
  return true;
}

bool LiveTable::find(std::uintptr_t addr, BlockRecord& out) noexcept {
  Shard& s = shard_of(addr);
  s.lock.lock();
  const std::size_t i = s.find(addr);
  const bool found = i != kNotFound;
  if (found) {
    out = s.slots[i];
  }
  s.lock.unlock();
  return found;
}

std::array<FamilyCounters, kFamilies> LiveTable::counters() noexcept {
  std::array<FamilyCounters, kFamilies> out{};
  for (Shard& s : shards_) {
    s.lock.lock();
    for (std::size_t f = 0; f < kFamilies; ++f) {
      out[f].allocs += s.counters[f].allocs;
      out[f].frees += s.counters[f].frees;
      out[f].live_blocks += s.counters[f].live_blocks;
      out[f].live_bytes += s.counters[f].live_bytes;
    }
    s.lock.unlock();
  }
  return out;
}

std::int64_t LiveTable::live_blocks() noexcept {
  std::int64_t n = 0;
  for (Shard& s : shards_) {
    s.lock.lock();
    n += static_cast<std::int64_t>(s.used);
    s.lock.unlock();
  }
  return n;
}

std::size_t LiveTable::metadata_bytes() noexcept {
  std::size_t n = sizeof(*this);
  for (Shard& s : shards_) {
    s.lock.lock();
    n += (s.mask + 1) * sizeof(BlockRecord);
    s.lock.unlock();
  }
  return n;
}

}  // namespace kmbench::kpi::detail
