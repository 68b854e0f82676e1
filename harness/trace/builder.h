// Internal to harness/trace: turns capture events (pointers, pfns, DMA
// addresses) into an ops::Trace (dense object ids), counting every
// imperfection of the capture on the way. Shared by all importers and the
// LD_PRELOAD recorder.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "harness/trace/pages.h"
#include "ops/size_classes.h"
#include "harness/trace/trace.h"

namespace kmbench::trace {

/// The kinds of capture events.
enum class Ev : std::uint8_t {
  kmalloc, cache_alloc, kfree, cache_free,   // one address space: kfree also frees cache objects
  page_alloc, page_free,                     // by pfn (or page address)
  dma_alloc, dma_free,                       // by DMA address
  dma_map, dma_unmap,                        // by DMA (or first physical) address
};

/// A capture event as importers see it.
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
  ops::Call call = ops::Call::none; // the KPI call, when the capture names it
  std::uint64_t target = 0;         // dma_map: the key of the DMA buffer it maps (its dma_alloc), 0: unknown
};

/// Open-addressing map from a 64-bit address to V (linear probing, backward-shift
/// deletion; key 0 marks an empty slot and is kept aside). The importer does a
/// lookup per event: std::unordered_map's nodes dominated a profile, and a large
/// table asks for transparent huge pages to spare TLB misses.
/// pre: V is trivially copyable.
template <class V>
class AddressMap {
 public:
  AddressMap() { rehash(1u << 12); }
  AddressMap(const AddressMap&) = delete;
  AddressMap& operator=(const AddressMap&) = delete;
  std::size_t size() const { return size_ + (zero_used_ ? 1 : 0); }
  /// Returns the value for `key`, inserting `v` first when absent; `fresh` says which.
  V& try_emplace(std::uint64_t key, const V& v, bool& fresh) {
    if (key == 0) {
      fresh = !zero_used_;
      if (fresh) zero_ = v;
      zero_used_ = true;
      return zero_;
    }
    if ((size_ + 1) * 4 > capacity_ * 3) rehash(capacity_ * 2);
    std::size_t i = slot_of(key);
    while (slots_[i].key != 0) {
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
    if (key == 0) return zero_used_ ? &zero_ : nullptr;
    std::size_t i = slot_of(key);
    while (slots_[i].key != 0) {
      if (slots_[i].key == key) return &slots_[i].value;
      i = (i + 1) & mask_;
    }
    return nullptr;
  }
  /// pre: `v` was returned by find() and nothing was inserted since.
  void erase(V* v) {
    if (v == &zero_) {
      zero_used_ = false;
      return;
    }
    std::size_t i = static_cast<std::size_t>(
        reinterpret_cast<Slot*>(reinterpret_cast<char*>(v) - offsetof(Slot, value)) - slots_);
    slots_[i].key = 0;
    --size_;
    for (std::size_t j = (i + 1) & mask_; slots_[j].key != 0; j = (j + 1) & mask_) {
      const std::size_t home = slot_of(slots_[j].key);
      if (((j - home) & mask_) >= ((j - i) & mask_)) {  // home not in (i, j]: move j into the hole
        slots_[i] = slots_[j];
        slots_[j].key = 0;
        i = j;
      }
    }
  }
  void prefetch(std::uint64_t key) const { __builtin_prefetch(&slots_[slot_of(key)]); }
  template <class F>
  void for_each(F f) const {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].key != 0) f(slots_[i].key, slots_[i].value);
    }
    if (zero_used_) f(std::uint64_t{0}, zero_);
  }

 private:
  struct Slot {
    std::uint64_t key;
    V value;
  };
  std::size_t slot_of(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void rehash(std::size_t n) {
    ZeroedPages old = std::move(pages_);
    const Slot* const old_slots = slots_;
    const std::size_t old_n = capacity_;
    pages_ = ZeroedPages(n * sizeof(Slot));
    pages_.populate();  // every page of a table gets used: keys spread evenly
    slots_ = pages_.as<Slot>();
    capacity_ = n;
    mask_ = n - 1;
    shift_ = 64;
    for (std::size_t m = n; m > 1; m >>= 1) --shift_;
    size_ = 0;
    bool fresh;
    for (std::size_t i = 0; i < old_n; ++i) {
      if (old_slots[i].key != 0) try_emplace(old_slots[i].key, old_slots[i].value, fresh);
    }
  }
  ZeroedPages pages_;
  Slot* slots_ = nullptr;
  std::size_t capacity_ = 0, mask_ = 0, size_ = 0;
  int shift_ = 64;
  V zero_{};
  bool zero_used_ = false;
};

/// Whether a and b hold the same bytes: compared a word at a time in line,
/// overlapping words at the end; never reads outside either.
inline bool same_bytes(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  const auto load8 = [](const char* p) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  const auto load4 = [](const char* p) {
    std::uint32_t w;
    std::memcpy(&w, p, 4);
    return w;
  };
  if (n >= 8) {
    for (std::size_t i = 0; i + 8 < n; i += 8) {
      if (load8(a.data() + i) != load8(b.data() + i)) return false;
    }
    return load8(a.data() + n - 8) == load8(b.data() + n - 8);
  }
  if (n >= 4) return load4(a.data()) == load4(b.data()) && load4(a.data() + n - 4) == load4(b.data() + n - 4);
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

/// Ids of the strings of a trace (call sites, cache names), looked up once or
/// twice per event: an open-addressing table of (hash, id) over the trace's
/// own string vector, hashed eight bytes a step. std::unordered_map's modulo
/// and node walk cost more than the hashing.
class StringIds {
 public:
  explicit StringIds(std::vector<std::string>& strings) : strings_(strings) {
    slots_.assign(kFirstCapacity, 0);
    for (std::uint32_t id = 0; id < strings_.size(); ++id) insert(hash(strings_[id]), id);
  }
  /// The id of `s`, appending it to the strings when new.
  std::uint32_t intern(std::string_view s) {
    const std::uint64_t h = hash(s);
    const std::uint64_t tag = h >> 32 << 32;
    for (std::size_t i = h & mask(); slots_[i] != 0; i = (i + 1) & mask()) {
      if ((slots_[i] & ~kIdBits) == tag) {
        const auto id = static_cast<std::uint32_t>((slots_[i] & kIdBits) - 1);
        if (same_bytes(strings_[id], s)) return id;
      }
    }
    const auto id = static_cast<std::uint32_t>(strings_.size());
    strings_.emplace_back(s);
    if ((strings_.size() + 1) * 2 > slots_.size()) {
      grow();
    } else {
      insert(h, id);
    }
    return id;
  }

 private:
  static constexpr std::size_t kFirstCapacity = 1024;
  static constexpr std::uint64_t kIdBits = 0xffffffffull;  // id + 1 (0: empty slot); the hash's high half above
  static std::uint64_t hash(std::string_view s) {
    std::uint64_t h = 0x9E3779B97F4A7C15ull * (s.size() + 1);
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      h = (h ^ w) * 0xff51afd7ed558ccdull;
      h ^= h >> 29;
    }
    if (i < s.size()) {
      std::uint64_t w = 0;
      std::memcpy(&w, s.data() + i, s.size() - i);
      h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    }
    return h ^ (h >> 32);
  }
  std::size_t mask() const { return slots_.size() - 1; }
  void insert(std::uint64_t h, std::uint32_t id) {
    std::size_t i = h & mask();
    while (slots_[i] != 0) i = (i + 1) & mask();
    slots_[i] = (h >> 32 << 32) | (std::uint64_t{id} + 1);
  }
  void grow() {
    slots_.assign(slots_.size() * 2, 0);
    for (std::uint32_t id = 0; id < strings_.size(); ++id) insert(hash(strings_[id]), id);
  }
  std::vector<std::string>& strings_;
  std::vector<std::uint64_t> slots_;  // power-of-two size, at most half full
};

/// Turns capture events into ops: resolves addresses to object ids, applies
/// the site/task selection, keeps per-CPU streams and counts what it meets.
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
  /// `n` events lost, told by `markers` lines of the capture.
  void lost(std::uint64_t n, std::uint64_t markers = 1) {
    lost_ += n;
    lost_markers_ += markers;
  }
  void skipped(std::string_view event_name, std::uint64_t n = 1);
  void filtered(std::uint64_t n = 1) { filtered_ += n; }
  /// A line skipped as unreadable (ImportOptions::skip_bad_lines); `message` names file:line.
  void bad_line(const std::string& message);
  void set_cpu_count(std::uint32_t n) { cpu_hint_ = n; }
  /// Ops a new stream reserves room for (address space only until used).
  void set_stream_reserve(std::size_t ops) { stream_reserve_ = ops; }
  /// Sum bytes_req and bytes_alloc of slab allocations by size class (the
  /// kernel's own slack: ops::slab_slack_counter), for captures that carry both.
  void count_slab_slack() { slack_on_ = true; }
  void set_metadata(const std::string& k, const std::string& v) { trace_.header.metadata[k] = v; }
  std::uint64_t events_seen() const { return events_ + dma_events_; }
  /// Calls f(first op, ops written, ops reserved) for each stream: where the
  /// next ops will be written, for a thread that faults those pages in ahead.
  template <class F>
  void for_each_stream(F f) const {
    for (const ops::Stream& s : trace_.streams) f(s.ops.data(), s.ops.size(), s.ops.capacity());
  }

  ops::Trace finish();
  /// finish() with metadata "input" (the file read) and, when not empty,
  /// "import.error" (what stopped a --keep-partial import).
  ops::Trace finish(const std::string& input, const std::string& error) {
    set_metadata("input", input);
    if (!error.empty()) set_metadata("import.error", error);
    return finish();
  }

 private:
  /// A block live in the capture. 24 bytes, so a table slot (with its key)
  /// is 32 and never straddles a cache line.
  struct Live {
    static constexpr std::uint32_t kDropped = ~std::uint32_t{0};  // never an object id (object_count < 2^32)
    std::uint64_t size, charged;
    std::uint32_t object, tag;  // object kDropped: allocated, but filtered out of the trace
    bool kept() const { return object != kDropped; }
  };
  static constexpr Live kDroppedBlock{0, 0, Live::kDropped, 0};
  using Map = AddressMap<Live>;
  Map& map_for(Ev ev) {
    switch (ev) {
      case Ev::kmalloc: case Ev::cache_alloc: case Ev::kfree: case Ev::cache_free: return slab_;
      case Ev::page_alloc: case Ev::page_free: return pages_;
      case Ev::dma_alloc: case Ev::dma_free: return dma_;
      default: return maps_;
    }
  }
  void emit(const Event& e, ops::OpKind kind, std::uint32_t object, std::uint64_t size, std::uint32_t tag);
  /// Hands stream `index`'s ops (and calls) to the spill and empties it.
  void spill_stream(std::size_t index);
  /// Past the spill's hold: hands every stream's ops over, and keeps a window each from now on.
  void start_spilling();

  ops::Trace trace_;
  StringIds ids_{trace_.strings};
  std::vector<std::int8_t> site_ok_;  // per string id: -1 unknown, 0 no, 1 yes
  std::unique_ptr<std::regex> site_re_;
  std::string task_;
  std::uint64_t from_ns_ = 0, to_ns_ = ~std::uint64_t{0};
  std::uint32_t kinds_ = kKindAll;
  Map slab_, pages_, dma_, maps_;
  std::vector<std::int32_t> stream_of_cpu_;
  std::uint32_t cpu_hint_ = 0;
  std::size_t stream_reserve_ = 0;
  OpSpill* spill_ = nullptr;
  bool spilling_ = false;    // the ops go to spill_ a window at a time
  std::size_t held_ = 0;     // ops held in memory until then
  std::uint64_t last_time_ = 0, min_time_ = ~std::uint64_t{0};
  std::uint64_t live_bytes_ = 0, peak_live_ = 0;
  std::uint64_t events_ = 0, allocs_ = 0, frees_ = 0, null_frees_ = 0, unmatched_ = 0, page_allocs_ = 0;
  std::uint64_t page_frees_ = 0, failed_ = 0, reuse_ = 0, out_of_order_ = 0, clamped_ = 0, lost_ = 0;
  std::uint64_t lost_markers_ = 0, dma_events_ = 0, dma_unmatched_ = 0, filtered_ = 0, skipped_ = 0;
  std::uint64_t bad_lines_ = 0;
  std::map<std::string, std::uint64_t, std::less<>> skipped_by_name_;
  bool slack_on_ = false;
  std::uint64_t slack_[ops::kPagesClass][3] = {};  // by size class: allocs, bytes_req, bytes_alloc
};

}  // namespace kmbench::trace
