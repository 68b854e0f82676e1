// The .kmt binary format: encoder and save (the decoder is kmt.cpp). The
// layout is documented byte by byte in docs/kmt-format.md; keep the two in step.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/errors.h"
#include "base/file_io.h"
#include "harness/trace/pages.h"
#include "harness/trace/spill.h"
#include "harness/trace/kmt_codec.h"
#include "harness/trace/trace.h"

namespace kmbench::trace {

using namespace kmt;

namespace {

/// Appends little-endian integers, varints and strings to a growing buffer.
class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      u8(static_cast<std::uint8_t>(v | 0x80));
      v >>= 7;
    }
    u8(static_cast<std::uint8_t>(v));
  }
  void svarint(std::int64_t v) {
    varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void str(std::string_view s) {
    varint(s.size());
    out_.append(s);
  }
  void bytes(std::string_view s) { out_.append(s); }
  std::string& buffer() { return out_; }

 private:
  std::string out_;
};

/// Writes into a buffer sized for the worst case: the encoder's hot loop does no
/// capacity checks.
class RawWriter {
 public:
  explicit RawWriter(char* p) : p_(p), begin_(p) {}
  void u8(std::uint8_t v) { *p_++ = static_cast<char>(v); }
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      *p_++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p_++ = static_cast<char>(v);
  }
  void svarint(std::int64_t v) {
    varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void bytes(std::string_view s) {
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  std::size_t size() const { return static_cast<std::size_t>(p_ - begin_); }

 private:
  char* p_;
  char* begin_;
};
constexpr std::size_t kMaxOpBytes = 1 + 10 + 10 + 1 + 1 + 10 + 10 + 10 + 10;

/// The bytes of a whole file, in one buffer sized for the worst case up front:
/// the stream ops are encoded in place, never copied from section to file.
class FileBuffer {
 public:
  explicit FileBuffer(std::size_t capacity) : pages_(capacity), data_(pages_.as<char>()), capacity_(capacity) {}
  char* data() { return data_; }
  std::size_t size() const { return size_; }
  void append(std::string_view s) {
    std::memcpy(data_ + size_, s.data(), s.size());
    size_ += s.size();
  }
  /// A section whose payload `fill(RawWriter&)` writes, at most `max_payload` bytes.
  template <class Fill>
  void section(Section id, std::size_t max_payload, Fill fill) {
    char* head = data_ + size_;
    char* payload = head + kMaxHead;
    RawWriter w(payload);
    fill(w);
    const std::size_t n = w.size();
    assert(n <= max_payload && size_ + kMaxHead + n + 4 <= capacity_);
    (void)max_payload;
    RawWriter h(head);
    h.u8(id);
    h.varint(n);
    if (h.size() != kMaxHead) std::memmove(head + h.size(), payload, n);  // close the gap
    size_ += h.size() + n;
    const std::uint32_t c = crc(data_ + size_ - n, n);
    for (int i = 0; i < 4; ++i) data_[size_++] = static_cast<char>(c >> (8 * i));
  }
  void section(Section id, std::string_view payload) {
    section(id, payload.size(), [&](RawWriter& w) { w.bytes(payload); });
  }
  /// Room a section of `max_payload` bytes needs, headers and checksum included.
  static constexpr std::size_t room(std::size_t max_payload) { return kMaxHead + max_payload + 4; }

 private:
  static constexpr std::size_t kMaxHead = 1 + 10;  // id and a varint length
  ZeroedPages pages_;  // only the pages written are ever touched
  char* data_;
  [[maybe_unused]] std::size_t capacity_;  // checked by an assert
  std::size_t size_ = 0;
};

std::string encode_header(const ops::Trace& t) {
  Writer w;
  w.str(t.header.source);
  w.str(t.header.capture_tool);
  w.varint(t.header.page_size);
  w.varint(t.header.cpu_count);
  w.varint(t.header.node_count);
  w.varint(t.header.time_base_ns);
  w.varint(t.object_count);
  w.varint(t.header.metadata.size());
  for (const auto& [k, v] : t.header.metadata) {
    w.str(k);
    w.str(v);
  }
  return std::move(w.buffer());
}

std::uint64_t time_unit(const ops::Stream& s) {
  std::uint64_t g = 0;
  for (const ops::Op& op : s.ops) {
    g = kmt::fold_unit(g, op.time_ns);
    if (g == 1) break;
  }
  return g == 0 ? 1 : g;
}

/// dt / unit, with the common units divided by constants (a multiply).
std::uint64_t in_units(std::uint64_t dt, std::uint64_t unit) {
  if (unit == 1000) return dt / 1000;
  if (unit == 1) return dt;
  return dt / unit;
}

// Checks what validate() checks, in the same pass.
constexpr std::size_t kMaxStreamHead = 3 * 10;
std::size_t max_stream_bytes(const ops::Stream& s) { return kMaxStreamHead + s.ops.size() * kMaxOpBytes; }

/// Encodes one stream's ops in order, checking what validate() checks; the
/// same for a stream held whole and one read back from a spill.
class OpEncoder {
 public:
  OpEncoder(const ops::Trace& t, std::uint32_t cpu, std::uint64_t unit, KnownSizes& known)
      : cpu_(cpu), unit_(unit), strings_(t.strings.size()), objects_(t.object_count), known_(known) {}
  /// The stream section's payload head: cpu, time unit, op count.
  void head(std::uint64_t count, RawWriter& w) const {
    w.varint(cpu_);
    w.varint(unit_);
    w.varint(count);
  }
  void op(const ops::Op& op, RawWriter& w) {
    if (op.object >= objects_) bad("object id beyond object_count");
    if (op.site >= strings_ || op.tag >= strings_) bad("string id beyond the string table");
    if (static_cast<int>(op.kind) >= ops::kOpKinds) bad("unknown op kind");
    if (op.time_ns < st_.time) bad("time goes backwards");
    if (op.align_log2 > 63 || op.node < -1) bad("bad alignment or node");
    const auto k = static_cast<std::uint8_t>(op.kind);
    std::uint8_t h = k;
    if (op.flags) h |= kHasFlags;
    if (op.align_log2 || op.node != -1) h |= kHasPlacement;
    const bool implicit_size = frees_object(op.kind) ? known_.is(op.object, op.size) : op.size == st_.alloc_size;
    if (!implicit_size) h |= kHasSize;
    if (op.site != st_.site[k] || op.tag != st_.tag[k]) h |= kHasSiteTag;
    w.u8(h);
    w.varint(in_units(op.time_ns - st_.time, unit_));
    w.svarint(static_cast<std::int64_t>(op.object) - static_cast<std::int64_t>(st_.object));
    if (h & kHasFlags) w.u8(op.flags);
    if (h & kHasPlacement) {
      w.u8(op.align_log2);
      w.svarint(op.node);
    }
    if (h & kHasSize) w.varint(op.size);
    if (h & kHasSiteTag) {
      w.varint(op.site);
      w.varint(op.tag);
    }
    st_.pass(op, k, known_);
    ++index_;
  }

 private:
  [[noreturn]] void bad(const char* what) const {
    throw InputError("(trace being encoded)",
                     "stream cpu " + std::to_string(cpu_) + " op " + std::to_string(index_) + ": " + what);
  }
  std::uint32_t cpu_;
  std::uint64_t unit_, strings_, objects_;
  KnownSizes& known_;
  StreamState st_;
  std::uint64_t index_ = 0;
};

void encode_stream(const ops::Trace& t, const ops::Stream& s, KnownSizes& known, RawWriter& w) {
  OpEncoder e(t, s.cpu, time_unit(s), known);
  e.head(s.ops.size(), w);
  for (const ops::Op& op : s.ops) e.op(op, w);
}

/// A calls section's payload: the stream's index, then its runs of one call.
std::string encode_call_runs(std::size_t index, std::span<const std::pair<std::uint64_t, ops::Call>> runs) {
  Writer w;
  w.varint(index);
  w.varint(runs.size());
  for (const auto& [n, c] : runs) {
    w.varint(n);
    w.u8(static_cast<std::uint8_t>(c));
  }
  return w.buffer();
}

/// The calls section of stream `index` (docs/kmt-format.md): runs of one call; "" when the stream has none.
std::string encode_calls(std::size_t index, const ops::Stream& s) {
  if (s.calls.empty()) return {};
  if (s.calls.size() != s.ops.size()) {
    throw InputError("(trace being encoded)", "stream cpu " + std::to_string(s.cpu) + " has " +
                                                  std::to_string(s.calls.size()) + " calls for " +
                                                  std::to_string(s.ops.size()) + " ops");
  }
  std::vector<std::pair<std::uint64_t, ops::Call>> runs;
  for (const ops::Call c : s.calls) {
    if (!runs.empty() && runs.back().second == c) {
      ++runs.back().first;
    } else {
      runs.emplace_back(1, c);
    }
  }
  return encode_call_runs(index, runs);
}

/// What comes before the streams: the three sections' payloads.
struct Preamble {
  std::string header, strings, counters;
};

/// Checks the trace's strings and object count (`ops`: the op count) and encodes its preamble.
Preamble preamble(const ops::Trace& t, std::uint64_t ops) {
  if (t.strings.empty() || !t.strings[0].empty()) {
    throw InputError("(trace being encoded)", "strings[0] must be the empty string");
  }
  check_object_count(t, "(trace being encoded)", ops - t.op_count());
  Preamble p;
  p.header = encode_header(t);
  Writer strings;
  strings.varint(t.strings.size());
  for (const std::string& s : t.strings) strings.str(s);
  p.strings = std::move(strings.buffer());
  Writer counters;
  counters.varint(t.counters.size());
  for (const auto& [k, v] : t.counters) {
    counters.str(k);
    counters.varint(v);
  }
  p.counters = std::move(counters.buffer());
  return p;
}

/// The fixed header of a file of `size` bytes and `sections` sections.
std::string fixed_header(std::uint64_t size, std::uint32_t sections) {
  Writer fixed;
  fixed.bytes(std::string_view(kMagic, 8));
  fixed.u32(kFormatVersion);
  fixed.u32(kFixedHeader);
  fixed.u64(size);
  fixed.u32(sections);
  fixed.u32(crc(fixed.buffer().data(), 28));
  return std::move(fixed.buffer());
}

FileBuffer encode_file(const ops::Trace& t) {
  const Preamble p = preamble(t, t.op_count());
  std::size_t capacity = kFixedHeader + FileBuffer::room(p.header.size()) + FileBuffer::room(p.strings.size()) +
                         FileBuffer::room(p.counters.size()) + FileBuffer::room(0);
  std::vector<std::string> calls(t.streams.size());
  for (std::size_t i = 0; i < t.streams.size(); ++i) {
    capacity += FileBuffer::room(max_stream_bytes(t.streams[i]));
    calls[i] = encode_calls(i, t.streams[i]);
    if (!calls[i].empty()) capacity += FileBuffer::room(calls[i].size());
  }

  FileBuffer file(capacity);
  file.append(fixed_header(0, 0));  // patched below
  std::uint32_t sections = 0;
  file.section(kHeader, p.header);
  file.section(kStrings, p.strings);
  file.section(kCounters, p.counters);
  sections += 3;
  KnownSizes known(t.object_count);
  for (std::size_t i = 0; i < t.streams.size(); ++i) {
    file.section(kStream, max_stream_bytes(t.streams[i]),
                 [&](RawWriter& w) { encode_stream(t, t.streams[i], known, w); });
    ++sections;
    if (!calls[i].empty()) {
      file.section(kCalls, calls[i]);
      ++sections;
    }
  }
  file.section(kEnd, "");
  ++sections;
  const std::string fixed = fixed_header(file.size(), sections);
  std::memcpy(file.data(), fixed.data(), fixed.size());
  return file;
}

/// A .kmt written front to back into a file: sections as they come, the
/// fixed header last.
class SectionWriter {
 public:
  explicit SectionWriter(const std::string& path) : out_(path) { write(fixed_header(0, 0)); }
  void section(Section id, std::string_view payload) {
    head(id, payload.size());
    write(payload);
    tail(crc(payload.data(), payload.size()));
  }
  /// A section's id and length; its payload is written next, then tail().
  void head(Section id, std::uint64_t length) {
    Writer w;
    w.u8(id);
    w.varint(length);
    write(w.buffer());
    ++sections_;
  }
  void tail(std::uint32_t payload_crc) {
    Writer w;
    w.u32(payload_crc);
    write(w.buffer());
  }
  /// Copies n bytes of `from`, from its start, into the file.
  void copy(const TempFd& from, std::uint64_t n) {
    std::vector<char> buffer(std::min<std::uint64_t>(n, kCopy));
    for (std::uint64_t at = 0; at < n;) {
      const std::size_t m = static_cast<std::size_t>(std::min<std::uint64_t>(n - at, buffer.size()));
      from.read_at(at, buffer.data(), m);
      write(std::string_view(buffer.data(), m));
      at += m;
    }
  }
  void commit() {
    const std::string fixed = fixed_header(size_, sections_);
    if (::pwrite(out_.fd(), fixed.data(), fixed.size(), 0) != static_cast<ssize_t>(fixed.size())) {
      throw RunError(std::string("cannot write a .kmt header: ") + std::strerror(errno));
    }
    out_.commit();
  }

 private:
  static constexpr std::size_t kCopy = std::size_t{1} << 20;
  void write(std::string_view bytes) {
    out_.write(bytes);
    size_ += bytes.size();
  }
  base::AtomicFile out_;
  std::uint64_t size_ = 0;
  std::uint32_t sections_ = 0;
};

/// Encodes a spilled stream's payload into `to`; returns its length and CRC.
std::pair<std::uint64_t, std::uint32_t> encode_spilled(const ops::Trace& t, const OpSpill& spill,
                                                       const OpSpill::Stream& s, KnownSizes& known,
                                                       const TempFd& to) {
  const std::uint64_t base = t.header.time_base_ns;
  OpEncoder e(t, s.cpu, OpSpill::time_unit(s, base), known);
  std::vector<char> bytes(kMaxStreamHead + spill.window() * kMaxOpBytes);
  std::uint64_t length = 0;
  uLong sum = crc32_z(0, nullptr, 0);
  RawWriter w(bytes.data());
  e.head(s.count, w);
  // A window of ops at a time, the first with the head (a stream of no ops: the head alone).
  spill.visit(s, base, [&](std::span<const ops::Op> ops, std::span<const ops::Call>, bool) {
    for (const ops::Op& op : ops) e.op(op, w);
    to.write_at(length, bytes.data(), w.size());
    sum = crc32_z(sum, reinterpret_cast<const Bytef*>(bytes.data()), w.size());
    length += w.size();
    w = RawWriter(bytes.data());
  });
  return {length, static_cast<std::uint32_t>(sum)};
}

}  // namespace

std::string encode(const ops::Trace& t) {
  FileBuffer file = encode_file(t);
  return std::string(file.data(), file.size());
}

void save(const ops::Trace& trace, const std::string& path) {
  FileBuffer file = encode_file(trace);
  const std::string_view bytes(file.data(), file.size());
  base::AtomicFile out(path);
  out.write(bytes);
  out.commit();
}

void save(const ops::Trace& head, const OpSpill& spill, const std::string& path) {
  const Preamble p = preamble(head, spill.op_count());
  SectionWriter out(path);
  out.section(kHeader, p.header);
  out.section(kStrings, p.strings);
  out.section(kCounters, p.counters);
  KnownSizes known(head.object_count);
  const TempFd encoded(spill.dir(), "a stream being encoded");
  for (std::size_t i = 0; i < head.streams.size(); ++i) {
    const OpSpill::Stream* s = spill.find(head.streams[i].cpu);
    if (s == nullptr || !head.streams[i].ops.empty()) {
      throw std::logic_error("save: stream cpu " + std::to_string(head.streams[i].cpu) + " is not all spilled");
    }
    const auto [length, sum] = encode_spilled(head, spill, *s, known, encoded);
    out.head(kStream, length);
    out.copy(encoded, length);
    out.tail(sum);
    if (s->any_call) out.section(kCalls, encode_call_runs(i, s->calls));
  }
  out.section(kEnd, "");
  out.commit();
}

}  // namespace kmbench::trace
