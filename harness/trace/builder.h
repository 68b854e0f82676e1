// Internal to harness/trace: turns capture events (pointers, pfns, DMA
// addresses) into an ops::Trace (dense object ids), counting every
// imperfection of the capture on the way. Shared by all importers and the
// LD_PRELOAD recorder.
#pragma once

#include <cstddef>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "harness/trace/trace.h"

namespace kmbench::trace {

/// A capture event as importers see it.
enum class Ev : std::uint8_t {
  kmalloc, cache_alloc, kfree, cache_free,   // one address space: kfree also frees cache objects
  page_alloc, page_free,                     // by pfn (or page address)
  dma_alloc, dma_free,                       // by DMA address
  dma_map, dma_unmap,                        // by DMA (or first physical) address
};

struct Event {
  Ev ev = Ev::kmalloc;
  bool null = false;          // NULL free, or an allocation that failed
  std::uint8_t flags = 0;     // ops::OpFlag
  std::uint8_t align_log2 = 0;
  std::int8_t node = -1;
  std::uint32_t cpu = 0;
  std::uint32_t site = 0, tag = 0;  // Builder::intern ids
  std::uint64_t time_ns = 0;        // capture clock
  std::uint64_t key = 0;            // address, pfn
  std::uint64_t size = 0;           // bytes asked for (pages: bytes)
  std::uint64_t charged = 0;        // bytes the allocator handed out (bytes_alloc; pages: bytes)
};

/// Open-addressing map from a 64-bit address to V (linear probing, backward-shift
/// deletion, an empty slot holds the key ~0, which is kept aside): the importer
/// does a lookup per event, and std::unordered_map's nodes dominated a profile.
template <class V>
class AddressMap {
 public:
  AddressMap() { rehash(1u << 12); }
  std::size_t size() const { return size_ + (ones_used_ ? 1 : 0); }
  /// Returns the value for `key`, inserting `v` first when absent; `fresh` says which.
  V& try_emplace(std::uint64_t key, const V& v, bool& fresh) {
    if (key == kEmpty) {
      fresh = !ones_used_;
      if (fresh) ones_ = v;
      ones_used_ = true;
      return ones_;
    }
    if ((size_ + 1) * 4 > slots_.size() * 3) rehash(slots_.size() * 2);
    std::size_t i = slot_of(key);
    while (slots_[i].key != kEmpty) {
      if (slots_[i].key == key) {
        fresh = false;
        return slots_[i].value;
      }
      i = (i + 1) & mask_;
    }
    slots_[i].key = key;
    slots_[i].value = v;
    ++size_;
    fresh = true;
    return slots_[i].value;
  }
  V* find(std::uint64_t key) {
    if (key == kEmpty) return ones_used_ ? &ones_ : nullptr;
    std::size_t i = slot_of(key);
    while (slots_[i].key != kEmpty) {
      if (slots_[i].key == key) return &slots_[i].value;
      i = (i + 1) & mask_;
    }
    return nullptr;
  }
  /// pre: `v` was returned by find() and nothing was inserted since.
  void erase(V* v) {
    if (v == &ones_) {
      ones_used_ = false;
      return;
    }
    std::size_t i = static_cast<std::size_t>(
        reinterpret_cast<Slot*>(reinterpret_cast<char*>(v) - offsetof(Slot, value)) - slots_.data());
    slots_[i].key = kEmpty;
    --size_;
    for (std::size_t j = (i + 1) & mask_; slots_[j].key != kEmpty; j = (j + 1) & mask_) {
      const std::size_t home = slot_of(slots_[j].key);
      if (((j - home) & mask_) >= ((j - i) & mask_)) {  // home not in (i, j]: move j into the hole
        slots_[i] = slots_[j];
        slots_[j].key = kEmpty;
        i = j;
      }
    }
  }
  void prefetch(std::uint64_t key) const { __builtin_prefetch(&slots_[slot_of(key)]); }
  template <class F>
  void for_each(F f) const {
    for (const Slot& s : slots_) {
      if (s.key != kEmpty) f(s.key, s.value);
    }
    if (ones_used_) f(kEmpty, ones_);
  }

 private:
  static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};
  struct Slot {
    std::uint64_t key;
    V value;
  };
  std::size_t slot_of(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void rehash(std::size_t n) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(n, Slot{kEmpty, V{}});
    mask_ = n - 1;
    shift_ = 64;
    for (std::size_t m = n; m > 1; m >>= 1) --shift_;
    size_ = 0;
    bool fresh;
    for (const Slot& s : old) {
      if (s.key != kEmpty) try_emplace(s.key, s.value, fresh);
    }
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
  V ones_{};
  bool ones_used_ = false;
};

class Builder {
 public:
  Builder(std::string source, std::string capture_tool, const ImportOptions& options);

  std::uint32_t intern(std::string_view s);
  /// Whether an event at `time_ns` of `kind` (EventKindBit) passes the window and kind filters.
  bool in_window(std::uint64_t time_ns) const { return time_ns >= from_ns_ && time_ns <= to_ns_; }
  bool kind_selected(std::uint32_t kind) const { return (kinds_ & kind) != 0; }
  bool has_task_filter() const { return !task_.empty(); }
  bool task_selected(std::string_view comm, std::string_view pid) const;
  bool site_selected(std::uint32_t site);

  /// pre: e.cpu < 65536; `selected` says whether site and task filters keep it.
  void add(const Event& e, bool selected);
  /// Starts loading the table slot add(e) will touch (importers run a few events ahead).
  void prefetch(const Event& e) { map_for(e.ev).prefetch(e.key); }
  void lost(std::uint64_t n) { lost_ += n; ++lost_markers_; }
  void skipped(std::string_view event_name);
  void filtered() { ++filtered_; }
  void set_cpu_count(std::uint32_t n) { cpu_hint_ = n; }
  void set_metadata(const std::string& k, const std::string& v) { trace_.header.metadata[k] = v; }
  std::uint64_t events_seen() const { return events_ + dma_events_; }

  ops::Trace finish();

 private:
  struct Live {
    std::uint64_t size, charged;
    std::uint32_t object, tag;
    bool kept;
  };
  using Map = AddressMap<Live>;
  Map& map_for(Ev ev);
  void emit(const Event& e, ops::OpKind kind, std::uint32_t object, std::uint64_t size, std::uint32_t tag);

  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  ops::Trace trace_;
  std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>> ids_;
  std::vector<std::int8_t> site_ok_;  // per string id: -1 unknown, 0 no, 1 yes
  std::unique_ptr<std::regex> site_re_;
  std::string task_;
  std::uint64_t from_ns_ = 0, to_ns_ = ~std::uint64_t{0};
  std::uint32_t kinds_ = kKindAll;
  Map slab_, pages_, dma_, maps_;
  std::vector<std::int32_t> stream_of_cpu_;
  std::uint32_t cpu_hint_ = 0;
  std::uint64_t last_time_ = 0, min_time_ = ~std::uint64_t{0};
  std::uint64_t live_bytes_ = 0, peak_live_ = 0;
  std::uint64_t events_ = 0, allocs_ = 0, frees_ = 0, null_frees_ = 0, unmatched_ = 0, page_allocs_ = 0;
  std::uint64_t page_frees_ = 0, failed_ = 0, reuse_ = 0, out_of_order_ = 0, clamped_ = 0, lost_ = 0;
  std::uint64_t lost_markers_ = 0, dma_events_ = 0, dma_unmatched_ = 0, filtered_ = 0, skipped_ = 0;
  std::map<std::string, std::uint64_t, std::less<>> skipped_by_name_;
};

}  // namespace kmbench::trace
