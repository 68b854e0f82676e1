// The readable text form of a trace (`kmbench trace dump` / `undump`), one
// op a line; grammar in docs/kmt-format.md, "Text form".
#include <charconv>
#include <ostream>

#include "base/errors.h"
#include "harness/trace/kmt_codec.h"
#include "harness/trace/trace.h"

namespace kmbench::trace {
namespace {

/// A KPI call's name as one word: its spaces become underscores ("OSObject::operator_new").
std::string call_token(ops::Call c) {
  std::string t(ops::call_name(c));
  for (char& ch : t) {
    if (ch == ' ') ch = '_';
  }
  return t;
}

ops::Call call_of_token(std::string_view token) {
  for (int i = 1; i < ops::kCalls; ++i) {
    if (call_token(static_cast<ops::Call>(i)) == token) return static_cast<ops::Call>(i);
  }
  return ops::Call::none;
}

constexpr const char* kKindNames[ops::kOpKinds] = {"alloc",     "free",      "page_alloc", "page_free",
                                                   "dma_alloc", "dma_free", "dma_map",    "dma_unmap"};
constexpr const char* kFlagNames[8] = {"zero", "noblock", "pageable", "cache", "dma32", "contiguous", "dir_in", "dir_out"};

void quote(std::ostream& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out << '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out << '\\' << c;
    } else if (u < 0x20 || u >= 0x7f) {
      out << "\\x" << kHex[u >> 4] << kHex[u & 15];
    } else {
      out << c;
    }
  }
  out << '"';
}

/// Splits a line into words; a word may be a quoted string with escapes.
class Line {
 public:
  Line(std::string_view text, const std::string& name, std::uint64_t number)
      : text_(text), name_(name), number_(number) {}
  [[noreturn]] void fail(const std::string& what) const { throw InputError(name_, number_, what); }
  bool more() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r')) ++pos_;
    return pos_ < text_.size();
  }
  std::string_view word() {
    if (!more()) fail("missing field");
    const std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != ' ' && text_[pos_] != '\t' && text_[pos_] != '\r') ++pos_;
    return text_.substr(start, pos_ - start);
  }
  std::string quoted() {
    if (!more() || text_[pos_] != '"') fail("expected a quoted string");
    std::string s;
    for (++pos_; pos_ < text_.size(); ++pos_) {
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return s;
      }
      if (c != '\\') {
        s.push_back(c);
        continue;
      }
      if (++pos_ >= text_.size()) break;
      const char e = text_[pos_];
      if (e == '"' || e == '\\') {
        s.push_back(e);
      } else if (e == 'x' && pos_ + 2 < text_.size()) {
        unsigned v = 0;
        const auto r = std::from_chars(text_.data() + pos_ + 1, text_.data() + pos_ + 3, v, 16);
        if (r.ptr != text_.data() + pos_ + 3) fail("bad \\x escape");
        s.push_back(static_cast<char>(v));
        pos_ += 2;
      } else {
        fail("bad escape in string");
      }
    }
    fail("unterminated string");
  }
  template <class T>
  T number(std::string_view w, const char* what) const {
    T v{};
    const auto r = std::from_chars(w.data(), w.data() + w.size(), v);
    if (r.ec != std::errc() || r.ptr != w.data() + w.size()) {
      fail(std::string("bad ") + what + " '" + std::string(w) + "'");
    }
    return v;
  }
  template <class T>
  T number(const char* what) {
    return number<T>(word(), what);
  }
  void end() {
    if (more()) fail("unexpected text '" + std::string(text_.substr(pos_)) + "'");
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  const std::string& name_;
  std::uint64_t number_;
};

}  // namespace

void dump(const ops::Trace& t, std::ostream& out) {
  out << "kmt-text " << kFormatVersion << "\n";
  out << "source ";
  quote(out, t.header.source);
  out << "\ncapture_tool ";
  quote(out, t.header.capture_tool);
  out << "\npage_size " << t.header.page_size << "\ncpu_count " << t.header.cpu_count << "\nnode_count "
      << t.header.node_count << "\ntime_base_ns " << t.header.time_base_ns << "\nobject_count " << t.object_count
      << "\n";
  for (const auto& [k, v] : t.header.metadata) {
    out << "meta ";
    quote(out, k);
    out << ' ';
    quote(out, v);
    out << '\n';
  }
  for (std::size_t i = 1; i < t.strings.size(); ++i) {
    out << "string " << i << ' ';
    quote(out, t.strings[i]);
    out << '\n';
  }
  for (const auto& [k, v] : t.counters) {
    out << "counter ";
    quote(out, k);
    out << ' ' << v << '\n';
  }
  out << "# ops: time_ns kind object size [site=S] [tag=T] [align=LOG2] [node=N] [flags=F|F] [call=C]\n";
  for (const ops::Stream& s : t.streams) {
    out << "stream " << s.cpu << '\n';
    for (std::size_t i = 0; i < s.ops.size(); ++i) {
      const ops::Op& op = s.ops[i];
      out << op.time_ns << ' ' << kKindNames[static_cast<int>(op.kind) & 7] << ' ' << op.object << ' ' << op.size;
      if (op.site) out << " site=" << op.site;
      if (op.tag) out << " tag=" << op.tag;
      if (op.align_log2) out << " align=" << int{op.align_log2};
      if (op.node != -1) out << " node=" << int{op.node};
      if (op.flags) {
        out << " flags=";
        bool first = true;
        for (int b = 0; b < 8; ++b) {
          if (op.flags & (1u << b)) {
            out << (first ? "" : "|") << kFlagNames[b];
            first = false;
          }
        }
      }
      if (!s.calls.empty() && s.calls[i] != ops::Call::none) out << " call=" << call_token(s.calls[i]);
      out << '\n';
    }
  }
  out << "end\n";
}

/// An `object_count` line's count, on line `number`; the first such line's number is kept in `first`.
static std::uint32_t object_count_once(Line& line, std::uint64_t& first, std::uint64_t number) {
  if (first != 0) line.fail("object_count given again (first at line " + std::to_string(first) + ")");
  first = number;
  return line.number<std::uint32_t>("object count");
}

/// A `stream CPU` line's CPU, at most the largest a stream may have.
static std::uint32_t stream_cpu(Line& line) {
  const auto cpu = line.number<std::uint32_t>("cpu");
  if (cpu > kmt::kMaxStreamCpu) line.fail("stream cpu " + std::to_string(cpu) + " is more than 65535");
  return cpu;
}

ops::Trace undump(std::string_view text, const std::string& name) {
  ops::Trace t;
  std::uint64_t number = 0, object_count_line = 0;
  bool versioned = false, ended = false;
  ops::Stream* stream = nullptr;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    Line line(text.substr(pos, nl - pos), name, ++number);
    pos = nl + 1;
    if (!line.more()) continue;
    const std::string_view key = line.word();
    if (key[0] == '#') continue;
    if (ended) line.fail("text after 'end'");
    if (!versioned) {
      if (key != "kmt-text") line.fail("not a kmbench trace text form (expected 'kmt-text VERSION')");
      const auto v = line.number<std::uint32_t>("version");
      if (v == 0 || v > kFormatVersion) {
        line.fail("text form version " + std::to_string(v) + " is not one this kmbench reads (" +
                  std::to_string(kFormatVersion) + ")");
      }
      t.header.format_version = v;
      versioned = true;
    } else if (key == "source") {
      t.header.source = line.quoted();
    } else if (key == "capture_tool") {
      t.header.capture_tool = line.quoted();
    } else if (key == "page_size" || key == "cpu_count" || key == "node_count") {
      const auto n = line.number<std::uint32_t>(key == "page_size"   ? "page size"
                                                : key == "cpu_count" ? "cpu count"
                                                                     : "node count");
      (key == "page_size" ? t.header.page_size : key == "cpu_count" ? t.header.cpu_count : t.header.node_count) = n;
      if (const std::string why = kmt::header_problem(t.header); !why.empty()) line.fail(why);
    } else if (key == "time_base_ns") {
      t.header.time_base_ns = line.number<std::uint64_t>("time base");
    } else if (key == "object_count") {
      t.object_count = object_count_once(line, object_count_line, number);
    } else if (key == "meta") {
      std::string k = line.quoted();
      t.header.metadata[std::move(k)] = line.quoted();
    } else if (key == "string") {
      const auto id = line.number<std::uint64_t>("string id");
      if (id != t.strings.size()) line.fail("string ids must count up from 1; expected " + std::to_string(t.strings.size()));
      t.strings.push_back(line.quoted());
    } else if (key == "counter") {
      std::string k = line.quoted();
      t.counters[std::move(k)] = line.number<std::uint64_t>("counter value");
    } else if (key == "stream") {
      t.streams.push_back({stream_cpu(line), {}, {}});
      stream = &t.streams.back();
    } else if (key == "end") {
      ended = true;
    } else {
      if (!stream) line.fail("unknown keyword '" + std::string(key) + "'");
      ops::Op op;
      ops::Call call = ops::Call::none;
      op.time_ns = line.number<std::uint64_t>(key, "time");
      const std::string_view kind = line.word();
      int k = 0;
      while (k < ops::kOpKinds && kind != kKindNames[k]) ++k;
      if (k == ops::kOpKinds) line.fail("unknown op kind '" + std::string(kind) + "'");
      op.kind = static_cast<ops::OpKind>(k);
      op.object = line.number<std::uint32_t>("object");
      op.size = line.number<std::uint64_t>("size");
      if (op.object >= t.object_count) line.fail("object " + std::to_string(op.object) + " >= object_count");
      if (!stream->ops.empty() && op.time_ns < stream->ops.back().time_ns) line.fail("time goes backwards in this stream");
      while (line.more()) {
        const std::string_view w = line.word();
        const std::size_t eq = w.find('=');
        if (eq == std::string_view::npos) line.fail("expected key=value, got '" + std::string(w) + "'");
        const std::string_view k2 = w.substr(0, eq), v = w.substr(eq + 1);
        if (k2 == "site" || k2 == "tag") {
          const auto id = line.number<std::uint32_t>(v, "string id");
          if (id >= t.strings.size()) line.fail("string id " + std::to_string(id) + " not in the string table");
          (k2 == "site" ? op.site : op.tag) = id;
        } else if (k2 == "align") {
          op.align_log2 = line.number<std::uint8_t>(v, "alignment");
          if (op.align_log2 > 63) line.fail("alignment 2^" + std::to_string(op.align_log2));
        } else if (k2 == "node") {
          const int n = line.number<int>(v, "node");
          if (n < -1 || n > 127) line.fail("node " + std::to_string(n));
          op.node = static_cast<std::int8_t>(n);
        } else if (k2 == "flags") {
          std::size_t p = 0;
          while (p <= v.size()) {
            std::size_t bar = v.find('|', p);
            if (bar == std::string_view::npos) bar = v.size();
            const std::string_view f = v.substr(p, bar - p);
            int b = 0;
            while (b < 8 && f != kFlagNames[b]) ++b;
            if (b == 8) line.fail("unknown flag '" + std::string(f) + "'");
            op.flags |= static_cast<std::uint8_t>(1u << b);
            p = bar + 1;
          }
        } else if (k2 == "call") {
          call = call_of_token(v);
          if (call == ops::Call::none) line.fail("unknown KPI call '" + std::string(v) + "'");
        } else {
          line.fail("unknown op field '" + std::string(k2) + "'");
        }
      }
      if (call != ops::Call::none || !stream->calls.empty()) {
        stream->calls.resize(stream->ops.size(), ops::Call::none);
        stream->calls.push_back(call);
      }
      stream->ops.push_back(op);
    }
    line.end();
  }
  if (!versioned) throw InputError(name, number, "empty text form");
  if (!ended) throw InputError(name, number, "missing 'end' line (truncated?)");
  if (t.object_count > t.op_count()) {
    throw InputError(name, object_count_line,
                     "object_count " + std::to_string(t.object_count) + " is more than the trace's " +
                         std::to_string(t.op_count()) + " operations can use");
  }
  return t;
}

}  // namespace kmbench::trace
