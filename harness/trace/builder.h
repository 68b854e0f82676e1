// Internal to harness/trace: turns capture events (pointers, pfns, DMA
// addresses) into an ops::Trace (dense object ids), counting every
// imperfection of the capture on the way. Shared by all importers and the
// LD_PRELOAD recorder.
#pragma once

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
  void lost(std::uint64_t n) { lost_ += n; ++lost_markers_; }
  void skipped(std::string_view event_name);
  void filtered() { ++filtered_; }
  void set_cpu_count(std::uint32_t n) { cpu_hint_ = n; }
  void set_metadata(const std::string& k, const std::string& v) { trace_.header.metadata[k] = v; }
  std::uint64_t events_seen() const { return events_ + dma_events_; }

  ops::Trace finish();

 private:
  struct Live {
    std::uint32_t object;
    bool kept;
    std::uint32_t tag;
    std::uint64_t size, charged;
  };
  using Map = std::unordered_map<std::uint64_t, Live>;
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
