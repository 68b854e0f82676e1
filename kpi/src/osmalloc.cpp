// OSMalloc: tags and tagged blocks over the KPI core.
#include <libkern/OSMalloc.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "core.h"
#include "record.h"

using kmbench::kpi::TagUsage;
using kmbench::kpi::detail::Family;
namespace kd = kmbench::kpi::detail;

namespace {

std::mutex g_tags_mutex;
__OSMallocTag__* g_first_tag = nullptr;
__OSMallocTag__* g_last_tag = nullptr;
kmbench::TagId g_next_id = 1;

constexpr int kActive = static_cast<int>(TagUsage::State::active);
constexpr int kPending = static_cast<int>(TagUsage::State::freed_pending);
constexpr int kReleased = static_cast<int>(TagUsage::State::released);

/// A tag's state as reported: a deferred release is done once its last block is freed.
TagUsage::State state_of(const __OSMallocTag__& tag) {
  const int state = tag.state.load(std::memory_order_acquire);
  return state == kPending && tag.live_blocks() == 0 ? TagUsage::State::released
                                                     : static_cast<TagUsage::State>(state);
}

}  // namespace

using kd::check_tag;
using kd::family_for;

void kd::check_tag_slow(OSMallocTag tag, const char* fn, const void* addr, std::uint64_t size, bool for_free) {
  if (tag == nullptr) {
    kd::panic(fn, addr, size, nullptr, "NULL tag");
  }
  if (tag->magic != __OSMallocTag__::kMagic) {
    kd::panic(fn, addr, size, nullptr, "%p is not an OSMalloc tag", static_cast<void*>(tag));
  }
  const int state = tag->state.load(std::memory_order_acquire);
  if (state == kActive) [[likely]] {
    return;
  }
  // A tag whose release waits for its last block (xnu mode) still takes that block's free.
  const bool waiting = state == kPending && tag->live_blocks() != 0;
  if (for_free && waiting) {
    return;
  }
  kd::panic(fn, addr, size, tag->name, "tag was freed by OSMalloc_Tagfree%s",
            waiting ? " (its release waits for its last block)" : "");
}

kd::TagSlot& __OSMallocTag__::new_share() noexcept {
  // Only this slot's thread creates its share; readers find it through the acquire load.
  auto* share = new kd::TagSlot;
  slots[kmbench::this_cpu_slot()].store(share, std::memory_order_release);
  return *share;
}

std::int64_t __OSMallocTag__::live_blocks() const noexcept {
  std::int64_t n = 0;
  for (const auto& slot : slots) {
    if (const kd::TagSlot* share = slot.load(std::memory_order_acquire)) {
      n += static_cast<std::int64_t>(share->allocs.load(std::memory_order_relaxed)) -
           static_cast<std::int64_t>(share->frees.load(std::memory_order_relaxed));
    }
  }
  return n;
}

std::int64_t __OSMallocTag__::live_bytes() const noexcept {
  std::int64_t n = folded_bytes.load(std::memory_order_relaxed);
  for (const auto& slot : slots) {
    if (const kd::TagSlot* share = slot.load(std::memory_order_acquire)) {
      n += share->pending_bytes.load(std::memory_order_relaxed);
    }
  }
  return n;
}

kd::TagTotals kd::all_tags_totals() noexcept {
  TagTotals t;
  std::lock_guard lock(g_tags_mutex);
  for (const __OSMallocTag__* tag = g_first_tag; tag != nullptr; tag = tag->next) {
    for (const auto& slot : tag->slots) {
      if (const kd::TagSlot* share = slot.load(std::memory_order_acquire)) {
        t.allocs += share->allocs.load(std::memory_order_relaxed);
        t.frees += share->frees.load(std::memory_order_relaxed);
      }
    }
    t.live_bytes += tag->live_bytes();
  }
  return t;
}

const char* kd::tag_name_of_id(kmbench::TagId id) noexcept {
  if (id >= kd::BlockRecord::kMaxTag) {
    return "(a tag of id 65535 or more)";
  }
  std::lock_guard lock(g_tags_mutex);
  for (const __OSMallocTag__* t = g_first_tag; t != nullptr; t = t->next) {
    if (t->id == id) return t->name;
  }
  return "(unknown tag)";
}

extern "C" {

OSMallocTag OSMalloc_Tagalloc(const char* name, uint32_t flags) {
  auto* tag = new __OSMallocTag__;
  if (name != nullptr) {
    std::strncpy(tag->name, name, sizeof tag->name - 1);
  }
  tag->flags = flags & OSMT_PAGEABLE;
  {
    std::lock_guard lock(g_tags_mutex);
    tag->id = g_next_id++;
    (g_last_tag != nullptr ? g_last_tag->next : g_first_tag) = tag;
    g_last_tag = tag;
  }
  if (kd::recording()) {
    kd::record_name(tag, tag->name);
  }
  return tag;
}

void OSMalloc_Tagfree(OSMallocTag tag) {
  if (tag == nullptr) {
    kd::panic("OSMalloc_Tagfree", nullptr, 0, nullptr, "NULL tag");
  }
  int expected = kActive;
  if (tag->magic != __OSMallocTag__::kMagic ||
      !tag->state.compare_exchange_strong(expected, kPending, std::memory_order_seq_cst)) {
    kd::panic("OSMalloc_Tagfree", tag, 0, tag->magic == __OSMallocTag__::kMagic ? tag->name : nullptr,
              "tag already freed");
  }
  const std::int64_t live = tag->live_blocks();
  if (live != 0 && kd::active_mode() == kmbench::kpi::Mode::strict) {
    kd::panic("OSMalloc_Tagfree", tag, static_cast<std::uint64_t>(tag->live_bytes()),
              tag->name, "%lld blocks of the tag are still live (XNU defers the release; "
              "KMBENCH_KPI_MODE=xnu does too)",
              static_cast<long long>(live));
  }
  // xnu mode: the release waits for the last OSFree (state_of reports it done then).
  if (live == 0) {
    tag->state.store(kReleased, std::memory_order_release);
  }
}

// Records (record.h): aux the tag, aux2 its flags (a pageable tag's blocks are the pageable family).
using kmbench::ops::Call;

}  // extern "C"

constexpr const char* kOSFree = "OSFree";

// OSMalloc's and OSFree's paths before the hot path is known, while the calls
// are recorded, and for a pageable tag's pages (kd::HotCalls).
void* kd::os_malloc_general(std::uint64_t size, OSMallocTag tag, const void* site) noexcept {
  check_tag(tag, "OSMalloc", nullptr, size, false);
  void* p = kd::allocate(family_for(tag, size), size, kmbench::kMinAlign, tag);
  KMBENCH_KPI_RECORD_AT(site, Call::os_malloc, p, size, reinterpret_cast<std::uintptr_t>(tag), tag->flags);
  return p;
}

void kd::os_free_general(void* addr, std::uint64_t size, OSMallocTag tag, const void* site) noexcept {
  check_tag(tag, kOSFree, addr, size, true);
  KMBENCH_KPI_RECORD_AT(site, Call::os_free, addr, size, reinterpret_cast<std::uintptr_t>(tag), tag->flags);
  kd::release(family_for(tag, size), kOSFree, addr, size, tag);
}

constinit const kd::HotEntries kd::kOSMallocEntries =
    kd::kTaggedEntries<&kd::os_malloc_general, &kd::os_free_general>;
constinit kd::HotCalls kd::g_os_malloc_calls{&kd::os_malloc_general, &kd::os_free_general};

extern "C" {

namespace {

void* malloc_noblock(uint32_t size, OSMallocTag tag, const char* fn) {
  check_tag(tag, fn, nullptr, size, false);
  if ((tag->flags & OSMT_PAGEABLE) != 0) {
    return nullptr;  // pageable memory may have to wait for the pager
  }
  // Never waits: no reclaim, a failed allocation returns NULL at once.
  return kd::allocate(Family::os_malloc, size, kmbench::kMinAlign, tag, ~0ull, kd::Wait::never);
}

}  // namespace

void* OSMalloc_noblock(uint32_t size, OSMallocTag tag) {
  void* p = malloc_noblock(size, tag, "OSMalloc_noblock");
  KMBENCH_KPI_RECORD(Call::os_malloc_noblock, p, size, reinterpret_cast<std::uintptr_t>(tag), tag->flags);
  return p;
}

void* OSMalloc_nowait(uint32_t size, OSMallocTag tag) {
  void* p = malloc_noblock(size, tag, "OSMalloc_nowait");
  KMBENCH_KPI_RECORD(Call::os_malloc_nowait, p, size, reinterpret_cast<std::uintptr_t>(tag), tag->flags);
  return p;
}

}  // extern "C"

namespace kmbench::kpi::detail {

void record_tag_names() noexcept {
  std::lock_guard lock(g_tags_mutex);
  for (const __OSMallocTag__* t = g_first_tag; t != nullptr; t = t->next) {
    record_name(t, t->name);
  }
}

}  // namespace kmbench::kpi::detail

namespace kmbench::kpi {

std::vector<TagUsage> tag_usage() {
  std::vector<TagUsage> out;
  std::lock_guard lock(g_tags_mutex);
  for (const __OSMallocTag__* t = g_first_tag; t != nullptr; t = t->next) {
    TagUsage u;
    u.name = t->name;
    u.id = t->id;
    u.flags = t->flags;
    u.state = state_of(*t);
    for (const auto& slot : t->slots) {
      if (const kd::TagSlot* share = slot.load(std::memory_order_acquire)) {
        u.allocs += share->allocs.load(std::memory_order_relaxed);
        u.frees += share->frees.load(std::memory_order_relaxed);
      }
    }
    u.live_blocks = static_cast<std::int64_t>(u.allocs) - static_cast<std::int64_t>(u.frees);
    u.live_bytes = t->live_bytes();
    // The peak is a lower bound with several threads (core.h); never below what is live now.
    u.peak_live_bytes = std::max(t->peak_bytes.load(std::memory_order_relaxed), u.live_bytes);
    out.push_back(std::move(u));
  }
  return out;
}

}  // namespace kmbench::kpi
