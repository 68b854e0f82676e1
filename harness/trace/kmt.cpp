// The .kmt binary format: decoder and load. The encoder and save are in
// kmt_encode.cpp; the layout is documented byte by byte in
// docs/kmt-format.md; keep the three in step.
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/errors.h"
#include "harness/trace/kmt_codec.h"
#include "harness/trace/trace.h"

namespace kmbench::trace {

using namespace kmt;

namespace {

/// Bounds-checked reading; every error names the absolute byte offset.
class Reader {
 public:
  Reader(const char* base, std::size_t begin, std::size_t end, const std::string& name)
      : base_(base), pos_(begin), end_(end), name_(&name) {}
  std::size_t pos() const { return pos_; }
  bool done() const { return pos_ >= end_; }
  std::size_t left() const { return end_ - pos_; }
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }
  [[noreturn]] void fail_at(std::size_t at, const std::string& what) const {
    throw InputError(*name_, "byte offset " + std::to_string(at) + ": " + what);
  }
  std::uint8_t u8() {
    if (pos_ >= end_) fail("unexpected end of data");
    return static_cast<std::uint8_t>(base_[pos_++]);
  }
  std::uint32_t u32() { return little_endian<std::uint32_t>(); }
  std::uint64_t u64() { return little_endian<std::uint64_t>(); }
  std::uint64_t varint() {
    std::size_t start = pos_;
    std::uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      if (pos_ >= end_) fail_at(start, "varint runs past the end of its section");
      const auto b = static_cast<std::uint8_t>(base_[pos_++]);
      if (shift == 63 && b > 1) fail_at(start, "varint overflows 64 bits");
      v |= std::uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
      if (shift == 63) fail_at(start, "varint overflows 64 bits");
    }
  }
  std::int64_t svarint() {
    const std::uint64_t z = varint();
    return static_cast<std::int64_t>((z >> 1) ^ (~(z & 1) + 1));
  }
  std::uint32_t varint32(const char* what) {
    const std::size_t at = pos_;
    const std::uint64_t v = varint();
    if (v > 0xffffffffu) fail_at(at, std::string(what) + " " + std::to_string(v) + " exceeds 32 bits");
    return static_cast<std::uint32_t>(v);
  }
  std::string str() {
    const std::size_t at = pos_;
    const std::uint64_t n = varint();
    if (n > left()) fail_at(at, "string of " + std::to_string(n) + " bytes runs past its section");
    std::string s(base_ + pos_, n);
    pos_ += n;
    return s;
  }

 private:
  /// A T stored in sizeof(T) bytes, least significant first.
  template <class T>
  T little_endian() {
    if (left() < sizeof(T)) fail("unexpected end of data");
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v |= T{static_cast<std::uint8_t>(base_[pos_ + i])} << (8 * i);
    pos_ += sizeof(T);
    return v;
  }

  const char* base_;
  std::size_t pos_, end_;
  const std::string* name_;
};

/// Decodes a stream section's ops into `buffer`, `batch` at a time, handing
/// each run of them to `take(cpu, ops, n)`; returns the stream's CPU. With a
/// batch of the whole stream, `buffer` ends up holding the stream's ops.
template <class Take>
std::uint32_t decode_ops(Reader& r, const ops::Trace& t, KnownSizes& known, std::vector<ops::Op>& buffer,
                         std::uint64_t batch, Take take) {
  const std::uint32_t cpu = r.varint32("cpu");
  if (cpu > kMaxStreamCpu)
    r.fail("stream cpu " + std::to_string(cpu) + " is more than " + std::to_string(kMaxStreamCpu));
  const std::size_t unit_at = r.pos();
  const std::uint64_t unit = r.varint();
  if (unit == 0) r.fail_at(unit_at, "time unit 0");
  const std::size_t count_at = r.pos();
  const std::uint64_t n = r.varint();
  if (n > r.left() / 3) r.fail_at(count_at, "op count " + std::to_string(n) + " does not fit in the section");
  buffer.resize(static_cast<std::size_t>(std::min(n, batch)));
  StreamState st;
  const std::uint64_t strings = t.strings.size();
  for (std::uint64_t done = 0; done < n || done == 0;) {
    const std::size_t m = static_cast<std::size_t>(std::min<std::uint64_t>(n - done, buffer.size()));
    for (ops::Op& op : std::span(buffer.data(), m)) {
      const std::size_t at = r.pos();
      const std::uint8_t h = r.u8();
      if (h & kReservedBit) r.fail_at(at, "op header byte has the reserved bit set");
      const std::uint8_t k = h & 7u;
      op.kind = static_cast<ops::OpKind>(k);
      const std::uint64_t dt = r.varint();
      if (dt > (~std::uint64_t{0} - st.time) / unit) r.fail_at(at, "time overflows 64 bits");
      op.time_ns = st.time + dt * unit;
      const std::int64_t obj = static_cast<std::int64_t>(st.object) + r.svarint();
      if (obj < 0 || obj >= static_cast<std::int64_t>(t.object_count)) {
        r.fail_at(at, "object id " + std::to_string(obj) + " outside 0.." + std::to_string(t.object_count));
      }
      op.object = static_cast<std::uint32_t>(obj);
      op.flags = 0;
      op.align_log2 = 0;
      op.node = -1;
      if (h & kHasFlags) op.flags = r.u8();
      if (h & kHasPlacement) {
        op.align_log2 = r.u8();
        if (op.align_log2 > 63) r.fail_at(at, "alignment 2^" + std::to_string(op.align_log2));
        const std::int64_t node = r.svarint();
        if (node < -1 || node > 127) r.fail_at(at, "node " + std::to_string(node));
        op.node = static_cast<std::int8_t>(node);
      }
      if (h & kHasSize) {
        op.size = r.varint();
      } else if (frees_object(op.kind)) {
        if (!known.known(op.object)) r.fail_at(at, "implicit size of object " + std::to_string(op.object) + " never allocated before");
        op.size = known.size(op.object);
      } else {
        op.size = st.alloc_size;
      }
      if (h & kHasSiteTag) {
        const std::uint64_t site = r.varint();
        const std::uint64_t tag = r.varint();
        if (site >= strings || tag >= strings) r.fail_at(at, "string id outside the string table");
        op.site = static_cast<std::uint32_t>(site);
        op.tag = static_cast<std::uint32_t>(tag);
      } else {
        op.site = st.site[k];
        op.tag = st.tag[k];
      }
      st.pass(op, k, known);
    }
    take(cpu, buffer.data(), m);
    done += m;
    if (n == 0) break;
  }
  if (!r.done()) r.fail("stream section has " + std::to_string(r.left()) + " bytes after its last op");
  return cpu;
}

void decode_stream(Reader& r, ops::Trace& t, KnownSizes& known) {
  ops::Stream s;
  s.cpu = decode_ops(r, t, known, s.ops, ~std::uint64_t{0}, [](std::uint32_t, const ops::Op*, std::size_t) {});
  t.streams.push_back(std::move(s));
}

/// Ops a streaming decode hands over at a time.
constexpr std::uint64_t kVisitBatch = 1u << 16;

/// Reads the header section's fields into `t` (its format version aside).
void read_header_section(Reader& pr, std::size_t body, std::uint64_t file_size, ops::Trace& t) {
  t.header.source = pr.str();
  t.header.capture_tool = pr.str();
  t.header.page_size = pr.varint32("page size");
  t.header.cpu_count = pr.varint32("cpu count");
  t.header.node_count = pr.varint32("node count");
  t.header.time_base_ns = pr.varint();
  t.object_count = pr.varint32("object count");
  const std::uint64_t n = pr.varint();
  if (n > pr.left()) pr.fail("metadata count " + std::to_string(n) + " does not fit");
  for (std::uint64_t j = 0; j < n; ++j) {
    std::string k = pr.str();
    t.header.metadata[std::move(k)] = pr.str();
  }
  if (!pr.done()) pr.fail("header section has trailing bytes");
  if (const std::string why = header_problem(t.header); !why.empty()) pr.fail_at(body, why);
  if (t.object_count > file_size * 8) {
    pr.fail_at(body, "object count " + std::to_string(t.object_count) + " is absurd for the file size");
  }
}

void read_strings_section(Reader& pr, std::size_t body, ops::Trace& t) {
  const std::uint64_t n = pr.varint();
  if (n > pr.left() || n == 0) pr.fail("string count " + std::to_string(n) + " is impossible here");
  t.strings.reserve(n);
  for (std::uint64_t j = 0; j < n; ++j) t.strings.push_back(pr.str());
  if (!t.strings[0].empty()) pr.fail_at(body, "strings[0] is not the empty string");
  if (!pr.done()) pr.fail("string table has trailing bytes");
}

void read_counters_section(Reader& pr, ops::Trace& t) {
  const std::uint64_t n = pr.varint();
  if (n > pr.left()) pr.fail("counter count " + std::to_string(n) + " does not fit");
  for (std::uint64_t j = 0; j < n; ++j) {
    std::string k = pr.str();
    t.counters[std::move(k)] = pr.varint();
  }
  if (!pr.done()) pr.fail("counter section has trailing bytes");
}

/// Decodes a stream section a batch of ops at a time into `visit`, each op
/// with its call when `calls` (read ahead) has them; returns its op count.
std::uint64_t visit_stream(Reader& pr, const ops::Trace& t, KnownSizes& known, const std::vector<ops::Call>& calls,
                           std::vector<ops::Op>& batch, const OpVisitor& visit) {
  std::uint64_t done = 0;
  bool first = true;
  decode_ops(pr, t, known, batch, kVisitBatch, [&](std::uint32_t cpu, const ops::Op* ops, std::size_t n) {
    if (!calls.empty() && done + n > calls.size()) pr.fail("more ops than the stream's calls");
    const std::span<const ops::Call> these = calls.empty() ? std::span<const ops::Call>() : std::span(calls.data() + done, n);
    visit(t, OpBatch{cpu, std::span(ops, n), these, first});
    done += n;
    first = false;
  });
  if (!calls.empty() && done != calls.size()) {
    pr.fail(std::to_string(calls.size()) + " calls for the stream's " + std::to_string(done) + " ops");
  }
  return done;
}

}  // namespace

void validate(const ops::Trace& t, const std::string& name) {
  if (t.strings.empty() || !t.strings[0].empty()) throw InputError(name, "strings[0] must be the empty string");
  check_object_count(t, name);
  for (const ops::Stream& s : t.streams) {
    std::uint64_t prev = 0;
    for (std::size_t i = 0; i < s.ops.size(); ++i) {
      const ops::Op& op = s.ops[i];
      const std::string where = "stream cpu " + std::to_string(s.cpu) + " op " + std::to_string(i) + ": ";
      if (op.object >= t.object_count) throw InputError(name, where + "object id beyond object_count");
      if (op.site >= t.strings.size() || op.tag >= t.strings.size()) {
        throw InputError(name, where + "string id beyond the string table");
      }
      if (static_cast<int>(op.kind) >= ops::kOpKinds) throw InputError(name, where + "unknown op kind");
      if (op.time_ns < prev) throw InputError(name, where + "time goes backwards");
      if (op.align_log2 > 63 || op.node < -1) throw InputError(name, where + "bad alignment or node");
      prev = op.time_ns;
    }
    if (!s.calls.empty() && s.calls.size() != s.ops.size()) {
      throw InputError(name, "stream cpu " + std::to_string(s.cpu) + ": " + std::to_string(s.calls.size()) +
                                 " calls for " + std::to_string(s.ops.size()) + " ops");
    }
    for (const ops::Call c : s.calls) {
      if (static_cast<int>(c) >= ops::kCalls) throw InputError(name, "stream cpu " + std::to_string(s.cpu) + ": unknown KPI call");
    }
  }
}

namespace {

/// Reads a calls section's runs (after its stream index) into `calls`, at
/// most `ops` of them.
void read_call_runs(Reader& r, std::uint64_t ops, std::vector<ops::Call>& calls) {
  const std::uint64_t runs = r.varint();
  if (runs > r.left() / 2) r.fail("run count " + std::to_string(runs) + " does not fit in the section");
  for (std::uint64_t i = 0; i < runs; ++i) {
    const std::uint64_t n = r.varint();
    const std::uint8_t c = r.u8();
    if (c >= ops::kCalls) r.fail("unknown KPI call " + std::to_string(c));
    if (n > ops - calls.size()) r.fail("calls outnumber the stream's " + std::to_string(ops) + " ops");
    calls.insert(calls.end(), n, static_cast<ops::Call>(c));
  }
  if (!r.done()) r.fail("calls section has trailing bytes");
}

/// Reads a calls section into its stream (the index-th stream section read so far).
void decode_calls(Reader& r, ops::Trace& t) {
  const std::uint64_t index = r.varint();
  if (index >= t.streams.size()) r.fail("calls section for stream " + std::to_string(index) + ", which is not before it");
  ops::Stream& s = t.streams[index];
  if (!s.calls.empty()) r.fail("second calls section for stream " + std::to_string(index));
  s.calls.reserve(s.ops.size());
  read_call_runs(r, s.ops.size(), s.calls);
  if (s.calls.size() != s.ops.size()) {
    r.fail(std::to_string(s.calls.size()) + " calls for the stream's " + std::to_string(s.ops.size()) + " ops");
  }
}

/// Whether the section at `at` is the calls section of stream `index`; if so,
/// reads its calls into `calls` (checksum checked).
bool calls_ahead(const char* base, std::size_t at, std::size_t end, const std::string& name, std::size_t index,
                 std::vector<ops::Call>& calls) {
  Reader r(base, at, end, name);
  if (r.u8() != kCalls) return false;
  const std::uint64_t len = r.varint();
  if (len + 4 > r.left()) r.fail_at(at, "section of " + std::to_string(len) + " bytes runs past the end of the file");
  const std::size_t body = r.pos();
  Reader tail(base, body + len, body + len + 4, name);
  if (crc(base + body, len) != tail.u32()) r.fail_at(at, "checksum mismatch in a calls section: the file is corrupted");
  Reader pr(base, body, body + len, name);
  if (pr.varint() != index) return false;
  read_call_runs(pr, ~std::uint64_t{0}, calls);
  return true;
}

}  // namespace

ops::Trace decode(const void* data, std::size_t size, const std::string& name) { return decode(data, size, name, {}); }

ops::Trace decode(const void* data, std::size_t size, const std::string& name, const OpVisitor& visit) {
  const char* base = static_cast<const char*>(data);
  Reader head(base, 0, size, name);
  if (size < 8 || std::memcmp(base, kMagic, 8) != 0) head.fail_at(0, "not a .kmt file (bad magic)");
  if (size < kFixedHeader) head.fail_at(size, "truncated: " + std::to_string(size) + " bytes, the fixed header alone is 32");
  head = Reader(base, 8, size, name);
  const std::uint32_t version = head.u32();
  const std::uint32_t header_size = head.u32();
  const std::uint64_t file_size = head.u64();
  const std::uint32_t sections = head.u32();
  const std::uint32_t hcrc = head.u32();
  if (crc(base, 28) != hcrc) head.fail_at(28, "header checksum mismatch (corrupted header)");
  if (version > kFormatVersion) {
    head.fail_at(8, "format version " + std::to_string(version) + " is newer than this kmbench reads (" +
                        std::to_string(kFormatVersion) + ")");
  }
  if (version == 0) head.fail_at(8, "format version 0");
  if (header_size < kFixedHeader || header_size > size) head.fail_at(12, "bad header size " + std::to_string(header_size));
  if (size < file_size) {
    head.fail_at(size, "truncated: file has " + std::to_string(size) + " bytes, its header says " +
                           std::to_string(file_size));
  }
  if (size > file_size) head.fail_at(file_size, std::to_string(size - file_size) + " bytes of trailing data");

  ops::Trace t;
  t.strings.clear();
  bool have_header = false, have_strings = false, ended = false;
  std::optional<KnownSizes> known;
  // With a visitor, streams are decoded a batch of ops at a time and handed
  // over, their calls with them (read first: a stream's calls section comes
  // right after it), and kept nowhere.
  std::size_t visited = 0;           // streams handed over
  std::uint64_t visited_ops = 0;
  std::int64_t calls_read_for = -1;  // the stream whose calls section was read ahead
  std::vector<ops::Op> batch;
  std::vector<ops::Call> calls;
  Reader r(base, header_size, file_size, name);
  for (std::uint32_t i = 0; i < sections; ++i) {
    const std::size_t at = r.pos();
    if (ended) r.fail_at(at, "section after the end section");
    const std::uint8_t id = r.u8();
    const std::uint64_t len = r.varint();
    if (len + 4 > r.left()) r.fail_at(at, "section of " + std::to_string(len) + " bytes runs past the end of the file");
    const std::size_t body = r.pos();
    Reader pr(base, body, body + len, name);
    Reader tail(base, body + len, body + len + 4, name);
    if (crc(base + body, len) != tail.u32()) {
      r.fail_at(at, "checksum mismatch in section " + std::to_string(id) + " (" + std::to_string(len) +
                        " bytes at offset " + std::to_string(body) + "): the file is corrupted");
    }
    switch (id) {
      case kEnd:
        if (len != 0) r.fail_at(at, "end section is not empty");
        ended = true;
        break;
      case kHeader: {
        if (have_header) r.fail_at(at, "second header section");
        t.header.format_version = version;
        read_header_section(pr, body, file_size, t);
        known.emplace(t.object_count);
        have_header = true;
        break;
      }
      case kStrings:
        if (have_strings) r.fail_at(at, "second string table");
        read_strings_section(pr, body, t);
        have_strings = true;
        break;
      case kCounters:
        read_counters_section(pr, t);
        break;
      case kStream:
        if (!have_header || !have_strings) r.fail_at(at, "stream section before the header and string table");
        if (!visit) {
          decode_stream(pr, t, *known);
          break;
        }
        calls.clear();
        if (i + 1 < sections && calls_ahead(base, body + len + 4, file_size, name, visited, calls)) {
          calls_read_for = static_cast<std::int64_t>(visited);
        }
        visited_ops += visit_stream(pr, t, *known, calls, batch, visit);
        ++visited;
        break;
      case kCalls:
        if (visit) {  // read ahead with its stream, or misplaced
          Reader head_of(pr);
          if (static_cast<std::int64_t>(head_of.varint()) != calls_read_for || calls_read_for + 1 != static_cast<std::int64_t>(visited)) {
            pr.fail("calls section that does not follow its stream");
          }
          calls_read_for = -1;
          break;
        }
        decode_calls(pr, t);
        break;
      default:
        if (id < kFirstOptionalSection) {
          r.fail_at(at, "unknown section id " + std::to_string(id) + " (written by a newer kmbench?)");
        }
        break;
    }
    r = Reader(base, body + len + 4, file_size, name);
  }
  if (!ended) r.fail_at(r.pos(), "no end section: the file is truncated or corrupted");
  if (!r.done()) r.fail("data after the end section");
  if (!have_header || !have_strings) r.fail_at(header_size, "header or string table missing");
  check_object_count(t, name, visited_ops);
  return t;
}

}  // namespace kmbench::trace
