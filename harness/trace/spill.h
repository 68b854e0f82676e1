// Internal to harness/trace: an import's operations kept on disk rather than
// in memory (trace::import_to_file). The Builder hands each stream's ops over
// a window at a time; save(head, spill, path) encodes them from there.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "harness/trace/trace.h"
#include "ops/ops.h"

namespace kmbench::trace {

/// A file in a folder that no path names (O_TMPFILE, or created and unlinked
/// at once): gone when closed, even after a crash.
class TempFd {
 public:
  /// Throws RunError naming `dir` and `what` the file is for.
  TempFd(const std::string& dir, const char* what);
  ~TempFd();
  TempFd(const TempFd&) = delete;
  TempFd& operator=(const TempFd&) = delete;
  TempFd(TempFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)), dir_(std::move(o.dir_)), what_(o.what_) {}
  int fd() const { return fd_; }
  /// Writes n bytes at `offset`; throws RunError naming the folder (a full disk, say).
  void write_at(std::uint64_t offset, const void* data, std::size_t n) const;
  /// Reads n bytes at `offset`; throws RunError if fewer are there.
  void read_at(std::uint64_t offset, void* data, std::size_t n) const;

 private:
  [[noreturn]] void fail(const char* doing, int err) const;
  int fd_ = -1;
  std::string dir_;
  const char* what_;
};

/// Each stream's ops, appended to a file of its own in `dir` as the importer
/// makes them, with what the encoder needs before it reads them back: how
/// many, the first time, the gcd of the steps between times, and the calls
/// (as runs of one call). Memory holds none of the ops.
///
/// The importer holds a trace's first `hold` ops in memory, as it would
/// without a spill, and spills only a trace that grows beyond them: writing
/// them out and reading them back costs a small trace more than it spares.
class OpSpill {
 public:
  /// Ops held in memory (all streams) before the import spills: 64 MiB.
  static constexpr std::size_t kHold = std::size_t{1} << 21;
  /// Once spilling, the ops the importer keeps for a stream before it hands
  /// them over: 1 MiB.
  static constexpr std::size_t kWindow = std::size_t{1} << 15;

  explicit OpSpill(std::string dir, std::size_t hold = kHold, std::size_t window = kWindow);
  std::size_t hold() const { return hold_; }
  std::size_t window() const { return window_; }
  const std::string& dir() const { return dir_; }

  /// Appends ops to stream `index` (the importer's numbering; a new index
  /// opens a stream for `cpu`). `calls` is empty (none known) or one per op.
  void append(std::size_t index, std::uint32_t cpu, std::span<const ops::Op> ops, std::span<const ops::Call> calls);
  /// The time of the last op appended to stream `index`; 0 before any.
  std::uint64_t last_time(std::size_t index) const { return index < streams_.size() ? streams_[index].last_time : 0; }
  /// Ops appended to every stream.
  std::uint64_t op_count() const { return ops_; }
  bool empty() const { return streams_.empty(); }

  struct Stream {
    Stream(std::uint32_t c, TempFd f) : cpu(c), file(std::move(f)) {}
    std::uint32_t cpu = 0;
    TempFd file;
    std::uint64_t count = 0, first_time = 0, last_time = 0;
    std::uint64_t step_gcd = 0;  // gcd of every time step after the first op (0: none yet, or all 0)
    std::vector<std::pair<std::uint64_t, ops::Call>> calls;  // runs of one call, over every op
    bool any_call = false;                                   // a run is of a known call
  };
  /// The stream of `cpu`; nullptr if none.
  const Stream* find(std::uint32_t cpu) const;
  /// Reads ops [from, from + n) of `s` into dst.
  void read(const Stream& s, std::uint64_t from, ops::Op* dst, std::size_t n) const;
  /// Hands `s`'s ops to visit(ops, calls, first) a window at a time, their
  /// times counted from `base` as the trace's are; calls is empty when the
  /// stream has none, else one per op.
  template <class Visit>
  void visit(const Stream& s, std::uint64_t base, Visit visit) const {
    std::vector<ops::Op> ops(std::min<std::uint64_t>(s.count, window_));
    std::vector<ops::Call> calls;
    std::size_t run = 0;
    std::uint64_t left_in_run = s.calls.empty() ? 0 : s.calls[0].first;
    for (std::uint64_t from = 0; from < s.count || from == 0; from += window_) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(window_, s.count - from));
      read(s, from, ops.data(), n);
      for (std::size_t i = 0; i < n; ++i) ops[i].time_ns -= std::min(ops[i].time_ns, base);
      calls.clear();
      while (s.any_call && calls.size() < n) {
        if (left_in_run == 0) left_in_run = s.calls[++run].first;
        const std::uint64_t take = std::min<std::uint64_t>(left_in_run, n - calls.size());
        calls.insert(calls.end(), take, s.calls[run].second);
        left_in_run -= take;
      }
      visit(std::span<const ops::Op>(ops.data(), n), std::span<const ops::Call>(calls), from == 0);
      if (s.count == 0) break;
    }
  }
  /// The time unit the encoder uses for `s` once its times are made relative
  /// to `base`: the gcd of all of them, as for a stream held in memory.
  static std::uint64_t time_unit(const Stream& s, std::uint64_t base);

 private:
  std::string dir_;
  std::size_t hold_, window_;
  std::vector<Stream> streams_;
  std::uint64_t ops_ = 0;
};

/// Writes the .kmt of `head` (header, strings, counters and, for each of its
/// streams, the cpu alone) with the ops of `spill`: what save() writes for the
/// same trace held whole, byte for byte. Memory holds one window of ops and
/// the encoder's size of each object; each stream's encoded ops go through a
/// temporary file in the spill's folder.
void save(const ops::Trace& head, const OpSpill& spill, const std::string& path);

/// summarize() of `head` with the ops of `spill` (info.cpp).
Info summarize(const ops::Trace& head, const OpSpill& spill, std::size_t top = 10);

}  // namespace kmbench::trace
