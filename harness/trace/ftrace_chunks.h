// Internal to the ftrace text importer: the text cut into chunks of whole
// lines, and what parsing one chunk yields. Included by ftrace.cpp alone, in
// an anonymous namespace, for the reason ftrace_scan.h gives.
//
// Chunks are parsed apart, by several threads, and merged one by one in the
// text's order into the one Builder; the trace comes out byte for byte as a
// single pass gives it:
// - a chunk's strings get ids of the chunk's own in the order it meets them,
//   made the trace's in that order at its merge (ChunkStrings);
// - a chunk counts its lines from 1, and its errors carry that number, made
//   the capture's when merged (LineError);
// - the first error stops its chunk; the merge keeps the events before it and
//   stops there, as one pass stops at that line;
// - counts that are sums (lost events, filtered, skipped by name) are summed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "harness/trace/builder.h"
#include "harness/trace/ftrace_fill.h"

namespace kmbench::trace::ftrace {
namespace {

/// An event line's event, and whether the task filter keeps it (the call
/// site filter is applied at the merge, by the trace's own site ids).
struct Parsed {
  Event e;
  bool task_kept = true;
};

/// What parsing one chunk of the text gives.
struct Chunk {
  struct Fault {
    std::uint64_t line;   // within the chunk, from 1
    std::string message;  // without file:line
  };
  std::vector<Parsed> events;
  std::unique_ptr<ChunkStrings> strings = std::make_unique<ChunkStrings>();
  std::uint64_t lines = 0;  // newline-ended lines read
  bool any_event_line = false;
  std::uint64_t lost = 0, lost_markers = 0, filtered = 0;
  std::vector<std::pair<std::string, std::uint64_t>> skipped;  // unknown events by name (a few names)
  std::vector<Fault> bad_lines;                                 // lines skipped (skip_bad_lines)
  std::optional<std::uint32_t> cpu_count;                       // the last "#P:" or "cpus=" line's
  bool trace_cmd = false;                                       // `trace-cmd report` output
  std::optional<Fault> fault;                                   // the line error that stopped the chunk
  std::exception_ptr failure;                                   // any other error that stopped it

  void skip(std::string_view event_name) {
    for (auto& [name, n] : skipped) {
      if (name == event_name) {
        ++n;
        return;
      }
    }
    skipped.emplace_back(std::string(event_name), 1);
  }
  /// Empty again, keeping the events' room.
  void reset() {
    events.clear();
    strings = std::make_unique<ChunkStrings>();
    lines = lost = lost_markers = filtered = 0;
    any_event_line = trace_cmd = false;
    skipped.clear();
    bad_lines.clear();
    cpu_count.reset();
    fault.reset();
    failure = nullptr;
  }
};

/// Copies the next bytes of the text into dst: up to n, 0 at the end.
using TextSource = std::function<std::size_t(char* dst, std::size_t n)>;

/// A chunk's bytes: a buffer reused from chunk to chunk (never zero-filled).
struct Text {
  std::unique_ptr<char[]> data;
  std::size_t size = 0, capacity = 0;

  void reserve(std::size_t n) {
    if (n <= capacity) return;
    n = std::max(n, capacity * 2);
    std::unique_ptr<char[]> wider(new char[n]);
    if (size > 0) std::memcpy(wider.get(), data.get(), size);
    data = std::move(wider);
    capacity = n;
  }
};

/// Cuts the text into chunks of whole lines, front to back: each chunk is
/// `chunk_bytes` or more of text, up to and with the newline that ends its
/// last line (a line longer than that makes a longer chunk); the last chunk
/// is the rest of the text, which may end without a newline.
class ChunkReader {
 public:
  ChunkReader(TextSource source, std::size_t chunk_bytes) : source_(std::move(source)), chunk_(chunk_bytes) {}

  /// Fills `t` with the next chunk; `last` says whether it ends the text.
  /// False, with `t` empty, when no text is left.
  bool next(Text& t, bool& last) {
    t.size = 0;
    t.reserve(std::max(chunk_, carry_.size) + 1);
    if (carry_.size > 0) std::memcpy(t.data.get(), carry_.data.get(), carry_.size);
    t.size = carry_.size;
    carry_.size = 0;
    std::size_t searched = 0;  // bytes of t known to hold no newline
    while (!eof_) {
      while (t.size < searched + chunk_ && !eof_) {
        t.reserve(searched + chunk_);
        const std::size_t got = source_(t.data.get() + t.size, searched + chunk_ - t.size);
        if (got == 0) eof_ = true;
        t.size += got;
      }
      if (eof_) break;
      const void* nl = memrchr(t.data.get() + searched, '\n', t.size - searched);
      if (nl != nullptr) {
        const std::size_t cut = static_cast<std::size_t>(static_cast<const char*>(nl) - t.data.get()) + 1;
        carry_.reserve(t.size - cut);
        carry_.size = t.size - cut;
        if (carry_.size > 0) std::memcpy(carry_.data.get(), t.data.get() + cut, carry_.size);
        t.size = cut;
        last = false;
        return true;
      }
      searched = t.size;  // a line longer than a chunk: read on
    }
    last = true;
    return t.size > 0;
  }

 private:
  TextSource source_;
  std::size_t chunk_;
  Text carry_;  // the start of a line the last chunk cut
  bool eof_ = false;
};

}  // namespace
}  // namespace kmbench::trace::ftrace
