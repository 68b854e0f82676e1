// Linux ftrace text: /sys/kernel/tracing/trace, trace_pipe and `trace-cmd report`.
// A hand-written single pass over the text (no regex, no per-line allocation):
// importing must keep up with `wc -l` within a small factor.
#include <algorithm>
#include <bit>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "base/errors.h"
#include "harness/trace/builder.h"
#include "harness/trace/ftrace_events.h"

namespace kmbench::trace {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// Hex digit values by byte (-1: not a digit), built at compile time.
struct HexTable {
  std::int8_t v[256];
  constexpr HexTable() : v() {
    for (int i = 0; i < 256; ++i) v[i] = -1;
    for (int i = 0; i < 10; ++i) v['0' + i] = static_cast<std::int8_t>(i);
    for (int i = 0; i < 6; ++i) v['a' + i] = v['A' + i] = static_cast<std::int8_t>(10 + i);
  }
};
constexpr HexTable kHex;

int hex_value(char c) { return kHex.v[static_cast<unsigned char>(c)]; }

/// Byte searches within a line, eight bytes a step: a line's fields are short
/// and many, so a call to memchr per field cost more than the search itself.
/// Reads may run past the line (into the next one) but never past the text.
class Scan {
 public:
  explicit Scan(const char* text_end) : end_(text_end) {}

  /// The first `c` in [p, e), or e.
  const char* find(const char* p, const char* e, char c) const {
    return first(p, e, [c](std::uint64_t w) { return zero_bytes(w ^ splat(c)); }, [c](char b) { return b == c; });
  }
  /// The first `a` or `b` in [p, e), or e.
  const char* find2(const char* p, const char* e, char a, char b) const {
    return first(
        p, e, [a, b](std::uint64_t w) { return zero_bytes(w ^ splat(a)) | zero_bytes(w ^ splat(b)); },
        [a, b](char x) { return x == a || x == b; });
  }
  /// The first byte in [p, e) that is not `c`, or e.
  const char* skip(const char* p, const char* e, char c) const {
    return first(p, e, [c](std::uint64_t w) { return w ^ splat(c); }, [c](char b) { return b != c; });
  }
  /// The first '\n' from `p` on, or null. Sixteen bytes a step inline: a call to
  /// memchr per line cost more than the search.
  const char* line_end(const char* p) const {
#if defined(__SSE2__)
    const __m128i nl = _mm_set1_epi8('\n');
    for (; end_ - p >= 16; p += 16) {
      const unsigned m = static_cast<unsigned>(
          _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), nl)));
      if (m) return p + std::countr_zero(m);
    }
#endif
    return static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end_ - p)));
  }
  /// Whether `n` bytes from `p` lie within the text.
  bool room(const char* p, std::size_t n) const { return static_cast<std::size_t>(end_ - p) >= n; }

 private:
  static constexpr bool kWordwise = std::endian::native == std::endian::little;
  static constexpr std::uint64_t kOnes = 0x0101010101010101ull;
  static constexpr std::uint64_t splat(char c) { return kOnes * static_cast<unsigned char>(c); }
  static std::uint64_t load(const char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  /// The high bit of each zero byte; exact for the lowest zero byte, which is all a search needs.
  static std::uint64_t zero_bytes(std::uint64_t x) { return (x - kOnes) & ~x & (kOnes << 7); }
  /// The index of the lowest nonzero byte of m.
  static std::size_t byte_index(std::uint64_t m) { return static_cast<std::size_t>(std::countr_zero(m)) >> 3; }
  static const char* at_most(const char* p, const char* e) { return p < e ? p : e; }

  /// The first byte of [p, e) that `byte_hit` accepts: eight bytes a step, where
  /// `word_hits` marks them in a word (only its lowest nonzero byte need be
  /// exact), then one by one in the text's last bytes.
  template <class WordHits, class ByteHit>
  const char* first(const char* p, const char* e, WordHits word_hits, ByteHit byte_hit) const {
    if constexpr (kWordwise) {
      for (; end_ - p >= 8 && p < e; p += 8) {
        if (const std::uint64_t m = word_hits(load(p))) return at_most(p + byte_index(m), e);
      }
      if (p >= e) return e;
    }
    while (p < e && !byte_hit(*p)) ++p;
    return p;
  }

  const char* end_;  // of the text: eight-byte reads stop short of it
};

/// One line being parsed; errors name the file and line.
struct LineCtx {
  const std::string& name;
  std::uint64_t line;
  [[noreturn]] void fail(const std::string& what) const { throw InputError(name, line, what); }
};

std::uint64_t parse_hex(std::string_view v, const LineCtx& c, const char* field) {
  if (v == "(nil)" || v == "(null)") return 0;
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) v.remove_prefix(2);
  if (v.empty() || v.size() > 16) c.fail(std::string("bad ") + field + " '" + std::string(v) + "'");
  std::uint64_t x = 0;
  int bad = 0;
  for (const char ch : v) {
    const int d = hex_value(ch);
    bad |= d;
    x = (x << 4) | static_cast<std::uint64_t>(d & 15);
  }
  if (bad < 0) c.fail(std::string("bad ") + field + " '" + std::string(v) + "'");
  return x;
}

std::uint64_t parse_uint(std::string_view v, const LineCtx& c, const char* field) {
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) return parse_hex(v, c, field);
  if (v.empty() || v.size() > 19) c.fail(std::string("bad ") + field + " '" + std::string(v) + "'");
  std::uint64_t x = 0;
  for (const char ch : v) {
    if (!is_digit(ch)) c.fail(std::string("bad ") + field + " '" + std::string(v) + "'");
    x = x * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  return x;
}

std::int64_t parse_int(std::string_view v, const LineCtx& c, const char* field) {
  if (!v.empty() && v[0] == '-') return -static_cast<std::int64_t>(parse_uint(v.substr(1), c, field));
  return static_cast<std::int64_t>(parse_uint(v, c, field));
}

/// "285.740306" (seconds) → ns; up to 9 fraction digits.
bool parse_timestamp(std::string_view v, std::uint64_t& ns) {
  std::size_t i = 0;
  std::uint64_t sec = 0;
  while (i < v.size() && is_digit(v[i])) sec = sec * 10 + static_cast<std::uint64_t>(v[i++] - '0');
  if (i == 0 || i > 12) return false;
  std::uint64_t frac = 0;
  int digits = 0;
  if (i < v.size() && v[i] == '.') {
    for (++i; i < v.size() && is_digit(v[i]); ++i) {
      if (digits < 9) {
        frac = frac * 10 + static_cast<std::uint64_t>(v[i] - '0');
        ++digits;
      }
    }
  }
  if (i != v.size()) return false;
  for (; digits < 9; ++digits) frac *= 10;
  ns = sec * 1000000000ull + frac;
  return true;
}

/// parse_timestamp over "SECONDS.FRACTION:" followed by a space (or the line's
/// end), read in the same pass that finds its end; on success `p` is past the ':'.
bool quick_timestamp(const char*& p, const char* e, std::uint64_t& ns) {
  const char* q = p;
  std::uint64_t sec = 0;
  while (q < e && is_digit(*q) && q - p <= 12) sec = sec * 10 + static_cast<std::uint64_t>(*q++ - '0');
  if (q == p || q - p > 12) return false;
  std::uint64_t frac = 0;
  int digits = 0;
  if (q < e && *q == '.') {
    for (++q; q < e && is_digit(*q); ++q) {
      if (digits < 9) {
        frac = frac * 10 + static_cast<std::uint64_t>(*q - '0');
        ++digits;
      }
    }
  }
  if (q == e || *q != ':' || (q + 1 < e && q[1] != ' ')) return false;
  static constexpr std::uint64_t kScale[10] = {1000000000, 100000000, 10000000, 1000000, 100000,
                                               10000,      1000,      100,      10,      1};
  ns = sec * 1000000000ull + frac * kScale[digits];
  p = q + 1;
  return true;
}

/// The key=value fields of an event line, looked up by name. Left uninitialised
/// beyond `n`: zeroing it cost more than parsing a line.
struct Fields {
  static constexpr int kMax = 24;
  struct Field {
    const char* key;
    const char* value;
    std::uint32_t key_len, value_len;
  };
  Field f[kMax];
  std::string_view first_bare;  // the first word without '=' (dma: the device)
  int n = 0;

  Fields() {}  // NOLINT: f stays uninitialised on purpose

  void parse(const Scan& scan, const char* p, const char* e) {
    while (p < e) {
      p = scan.skip(p, e, ' ');
      if (p == e) break;
      const char* w = p;
      p = scan.find2(p, e, '=', ' ');  // the key
      if (p == e || *p == ' ') {
        if (first_bare.empty() && *w != '(') first_bare = std::string_view(w, static_cast<std::size_t>(p - w));
        continue;
      }
      const char* eq = p;
      const char* sp = scan.find(eq + 1, e, ' ');
      if (n < kMax) {
        f[n] = Field{w, eq + 1, static_cast<std::uint32_t>(eq - w), static_cast<std::uint32_t>(sp - eq - 1)};
        ++n;
      }
      p = sp;
    }
  }
  std::optional<std::string_view> find(std::string_view k) const {
    for (int i = 0; i < n; ++i) {
      if (f[i].key_len == k.size() && f[i].key[0] == k[0] && std::memcmp(f[i].key, k.data(), k.size()) == 0) {
        return std::string_view(f[i].value, f[i].value_len);
      }
    }
    return std::nullopt;
  }
  std::string_view need(std::string_view k, const LineCtx& c) const {
    const auto v = find(k);
    if (!v) c.fail("event lacks the field '" + std::string(k) + "'");
    return *v;
  }
};

constexpr std::uint64_t kAbsurdSize = std::uint64_t{1} << 44;  // 16 TiB

/// Reads a line's fields in the order the kernel prints them, converting each
/// value as it is passed over, without splitting the line first. Every step
/// matches or declines; a declined line is read again by the general path
/// (Fields), which also words the errors. On the lines it accepts the quick
/// path yields exactly what the general one would.
class Quick {
 public:
  Quick(const Scan& scan, const char* p, const char* e) : scan_(scan), p_(scan.skip(p, e, ' ')), e_(e) {}

  /// `k`, e.g. " ptr=", next on the line.
  template <std::size_t N>
  bool key(const char (&k)[N]) {
    constexpr std::size_t n = N - 1;
    if (static_cast<std::size_t>(e_ - p_) < n || std::memcmp(p_, k, n) != 0) return false;
    p_ += n;
    return true;
  }
  bool hex(std::uint64_t& x) {
#if defined(__SSE2__)
    if (scan_.room(p_, 16)) return hex16(x);
#endif
    const char* s = p_;
    int bad = 0;
    x = 0;
    while (p_ < e_ && *p_ != ' ' && p_ - s <= 16) {
      const int d = hex_value(*p_++);
      bad |= d;
      x = (x << 4) | static_cast<std::uint64_t>(d & 15);
    }
    return bad >= 0 && p_ > s && p_ - s <= 16 && ended();
  }
#if defined(__SSE2__)
  /// Up to 16 hex digits converted together: each byte is checked and turned
  /// into its nibble, then pairs of nibbles are packed into bytes.
  bool hex16(std::uint64_t& x) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_));
    const __m128i lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
    const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)), _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
    const __m128i letter =
        _mm_and_si128(_mm_cmpgt_epi8(lower, _mm_set1_epi8('a' - 1)), _mm_cmplt_epi8(lower, _mm_set1_epi8('f' + 1)));
    const unsigned ok = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(digit, letter)));
    const int n = std::countr_zero(~ok);  // the digits that lead; bytes after them are ignored
    if (n == 0) return false;
    const __m128i nibble = _mm_and_si128(
        _mm_or_si128(_mm_and_si128(digit, _mm_sub_epi8(v, _mm_set1_epi8('0'))),
                     _mm_andnot_si128(digit, _mm_sub_epi8(lower, _mm_set1_epi8('a' - 10)))),
        _mm_set1_epi8(0x0f));
    // 16-bit lane i holds nibbles 2i (low byte) and 2i+1: make them the byte (2i << 4 | 2i+1).
    const __m128i pairs = _mm_or_si128(_mm_and_si128(_mm_slli_epi16(nibble, 4), _mm_set1_epi16(0x00f0)),
                                       _mm_srli_epi16(nibble, 8));
    std::uint64_t packed;
    _mm_storel_epi64(reinterpret_cast<__m128i*>(&packed), _mm_packus_epi16(pairs, pairs));
    const std::uint64_t all = __builtin_bswap64(packed);  // the first digit is the most significant
    x = n == 16 ? all : all >> (4 * (16 - n));
    p_ += n;
    return ended();  // a seventeenth digit declines: too long for 64 bits
  }
#endif
  bool dec(std::uint64_t& x) {
    const char* s = p_;
    x = 0;
    while (p_ < e_ && is_digit(*p_) && p_ - s < 19) x = x * 10 + static_cast<std::uint64_t>(*p_++ - '0');
    return p_ > s && ended();
  }
  bool node(std::int8_t& n) {  // -1 .. 127
    const bool minus = p_ < e_ && *p_ == '-';
    p_ += minus;
    std::uint64_t v;
    if (!dec(v) || v > (minus ? 1u : 127u)) return false;
    n = static_cast<std::int8_t>(minus ? -static_cast<int>(v) : static_cast<int>(v));
    return true;
  }
  bool word(std::string_view& w) {
    const char* s = p_;
    p_ = scan_.find(p_, e_, ' ');
    w = std::string_view(s, static_cast<std::size_t>(p_ - s));
    return p_ > s;
  }
  bool done() const { return p_ == e_; }

 private:
  bool ended() const { return p_ == e_ || *p_ == ' '; }
  const Scan& scan_;
  const char* p_;
  const char* e_;
};

/// Copies the next bytes of the text into dst: up to n, 0 at the end.
using TextSource = std::function<std::size_t(char* dst, std::size_t n)>;

/// One pass over ftrace text, feeding the Builder a few events behind the parse.
/// The text is read a window at a time into a buffer that stays in cache:
/// parsing straight from a mapping of a large file stalled on its page walks.
class FtraceParser {
 public:
  FtraceParser(TextSource source, std::uint64_t text_size, const std::string& name, const ImportOptions& options)
      : source_(std::move(source)),
        text_size_(text_size),
        name_(name),
        options_(options),
        scan_(nullptr),
        b_("ftrace", "tracefs", options) {
    b_.set_stream_reserve(std::min<std::uint64_t>(text_size / 64, std::uint64_t{1} << 24));
  }

  ops::Trace run() {
    std::uint64_t line = 0;
    bool any_event_line = false;
    std::string error;
    try {
      std::size_t capacity = static_cast<std::size_t>(std::clamp<std::uint64_t>(text_size_ + 1, 4096, kWindow));
      std::unique_ptr<char[]> window(new char[capacity]);
      std::size_t held = 0;  // an unfinished line, moved to the window's front
      for (;;) {
        if (held == capacity) {  // a line longer than the window
          std::unique_ptr<char[]> wider(new char[capacity * 2]);
          std::memcpy(wider.get(), window.get(), held);
          window = std::move(wider);
          capacity *= 2;
        }
        const std::size_t got = source_(window.get() + held, capacity - held);
        if (got == 0) {
          if (held > 0) throw InputError(name_, line + 1, "truncated: the last line has no newline");
          break;
        }
        const char* p = window.get();
        const char* end = p + held + got;
        scan_ = Scan(end);
        for (const char* nl; (nl = scan_.line_end(p)); p = nl + 1) {
          ++line;
          const char* e = nl;
          if (e > p && e[-1] == '\r') --e;
          if (line_(p, e, line)) any_event_line = true;
        }
        held = static_cast<std::size_t>(end - p);
        std::memmove(window.get(), p, held);
      }
      if (!any_event_line && line == 0) throw InputError(name_, "empty input");
    } catch (const InputError& e) {
      if (!options_.keep_partial) throw;
      error = e.what();
    }
    drain();
    b_.set_metadata("input", name_);
    if (!error.empty()) b_.set_metadata("import.error", error);
    ops::Trace t = b_.finish();
    if (trace_cmd_) t.header.capture_tool = "trace-cmd report";
    return t;
  }

 private:
  // Returns true for an event line.
  bool line_(const char* const line_start, const char* e, std::uint64_t line) {
    const LineCtx c{name_, line};
    const char* p;   // the line's first non-blank byte
    const char* br;  // its '[' before the CPU number
    const char* q;   // past the timestamp's ':'
    std::uint32_t cpu;
    std::uint64_t ts = 0;
    if (const Head* h = known_head(line_start); h && (q = line_start + h->length, quick_timestamp(q, e, ts))) {
      p = line_start + h->blank;
      br = line_start + h->bracket;
      cpu = h->cpu;
    } else {
      p = scan_.skip(line_start, e, ' ');
      while (p < e && (*p == ' ' || *p == '\t')) ++p;
      if (p == e) return false;
      const std::string_view whole(p, static_cast<std::size_t>(e - p));
      if (other_line(whole, c)) return false;
      event_head(line_start, p, e, c, br, cpu, q, ts);
    }
    q = scan_.skip(q, e, ' ');
    const char* ev = q;
    q = scan_.find2(q, e, ':', ' ');
    if (q == e || *q != ':' || q == ev) c.fail("no event name in line '" + excerpt(p, e) + "'");
    const std::string_view event(ev, static_cast<std::size_t>(q - ev));
    ++q;

    const FtraceEvent* known = find_ftrace_event(event);
    if (!known) {
      if (options_.strict) c.fail("unknown event '" + std::string(event) + "' (--strict)");
      b_.skipped(event);
      return true;
    }
    if (!b_.in_window(ts) || !b_.kind_selected(known->kind_bit)) {
      b_.filtered();
      return true;
    }
    Event& x = free_slot();  // filled in place: copying it stalled on store forwarding
    start(x, known->ev, cpu, ts);
    std::string_view site, tag;  // interned once the line is read, site first
    if (quick(q, e, x, site, tag)) {
      if (!site.empty()) x.site = b_.intern(site);  // page events name no call site: 0, the empty string
      if (!tag.empty()) x.tag = b_.intern(tag);
    } else {
      start(x, known->ev, cpu, ts);
      Fields f;
      f.parse(scan_, q, e);
      fill(known->shape, f, x, c);
    }
    bool selected = true;
    if (b_.has_task_filter()) {
      const char* t0 = p;
      const char* t1 = br - 1;
      while (t1 > t0 && t1[-1] == ' ') --t1;
      const char* dash = t1;
      while (dash > t0 && dash[-1] != '-') --dash;
      const std::string_view comm(t0, dash > t0 ? static_cast<std::size_t>(dash - 1 - t0) : 0);
      const std::string_view pid(dash, static_cast<std::size_t>(t1 - dash));
      selected = b_.task_selected(comm, pid);
    }
    if (selected) selected = b_.site_selected(x.site);
    commit(selected);
    return true;
  }

  static std::string excerpt(const char* p, const char* e) {
    return std::string(p, static_cast<std::size_t>(std::min<std::ptrdiff_t>(e - p, 80)));
  }

  /// Reads the lines that are not events (comments, lost-event markers,
  /// trace-cmd's headings); false for any other line.
  bool other_line(std::string_view whole, const LineCtx& c) {
    if (whole[0] == '#') {
      const std::size_t at = whole.find("#P:");
      if (at != std::string_view::npos) b_.set_cpu_count(static_cast<std::uint32_t>(parse_uint(whole.substr(at + 3), c, "#P")));
      return true;
    }
    if (whole.starts_with("CPU:")) {  // "CPU:1 [LOST 12 EVENTS]" or "CPU:0 [232250 EVENTS DROPPED]"
      std::size_t i = whole.find('[');
      if (i == std::string_view::npos) c.fail("unrecognised line '" + std::string(whole.substr(0, 80)) + "'");
      ++i;
      if (whole.substr(i).starts_with("LOST ")) i += 5;
      std::size_t j = i;
      while (j < whole.size() && is_digit(whole[j])) ++j;
      if (j == i) c.fail("unrecognised lost-events line '" + std::string(whole.substr(0, 80)) + "'");
      b_.lost(parse_uint(whole.substr(i, j - i), c, "lost count"));
      return true;
    }
    if (whole.starts_with("cpus=")) {
      trace_cmd_ = true;
      b_.set_cpu_count(static_cast<std::uint32_t>(parse_uint(whole.substr(5), c, "cpus")));
      return true;
    }
    return whole.starts_with("version = ") || (whole.starts_with("CPU ") && whole.ends_with(" is empty"));
  }

  /// Reads "TASK-PID [CPU] [FLAGS] TIMESTAMP:" from `p`, the line's first non-blank
  /// byte; `q` ends past the timestamp's ':'. Remembers the line's head up to the
  /// timestamp so the next line can skip it when it repeats (see repeats_head).
  void event_head(const char* line_start, const char* p, const char* e, const LineCtx& c, const char*& br,
                  std::uint32_t& cpu, const char*& q, std::uint64_t& ts) {
    const char* cpu_end = nullptr;
    br = p;
    while (true) {
      br = static_cast<const char*>(std::memchr(br, '[', static_cast<std::size_t>(e - br)));
      if (!br) c.fail("not an ftrace event line: '" + excerpt(p, e) + "'");
      const char* d = br + 1;
      while (d < e && is_digit(*d)) ++d;
      if (d > br + 1 && d < e && *d == ']' && br > p && br[-1] == ' ') {
        cpu_end = d;
        break;
      }
      ++br;
    }
    cpu = 0;
    for (const char* d = br + 1; d < cpu_end; ++d) cpu = cpu * 10 + static_cast<std::uint32_t>(*d - '0');
    if (cpu_end - br > 6) c.fail("absurd cpu number");
    q = cpu_end + 1;
    for (int token = 0;; ++token) {
      q = scan_.skip(q, e, ' ');
      const char* w = q;
      if (token <= 1 && quick_timestamp(q, e, ts)) {
        remember_head(line_start, p, br, w, cpu);
        return;
      }
      q = scan_.find(q, e, ' ');
      if (w == q || token > 1) c.fail("no timestamp in event line '" + excerpt(p, e) + "'");
      if (q[-1] == ':' && parse_timestamp(std::string_view(w, static_cast<std::size_t>(q - 1 - w)), ts)) return;
    }
  }

  // Consecutive lines mostly come from one task on one CPU and repeat the same
  // head up to the timestamp ("            bash-3235    [000] .....  "): when
  // a line starts with a recent event line's head byte for byte, its task,
  // CPU and flags are those already read, and parsing resumes at the
  // timestamp. The two most recent heads are kept (two CPUs' lines
  // interleave); heads longer than kHeadMax are not.
  static constexpr std::size_t kHeadMax = 48;
  struct Head {
    char text[kHeadMax];         // the first bytes of the line that had it
    std::uint32_t length = 0;    // bytes up to the timestamp; 0: none
    std::uint32_t blank = 0, bracket = 0;  // offsets of the first non-blank byte and of '['
    std::uint32_t cpu = 0;
  };

  void remember_head(const char* line_start, const char* p, const char* br, const char* stamp, std::uint32_t cpu) {
    // A head starting "CPU " could be trace-cmd's "CPU 3 is empty", told apart only by the line's end.
    const std::size_t length = static_cast<std::size_t>(stamp - line_start);
    if (length > kHeadMax || !scan_.room(line_start, kHeadMax) || std::string_view(p, 4) == "CPU ") return;
    newest_ ^= 1;
    Head& h = heads_[newest_];
    std::memcpy(h.text, line_start, kHeadMax);
    h.length = static_cast<std::uint32_t>(length);
    h.blank = static_cast<std::uint32_t>(p - line_start);
    h.bracket = static_cast<std::uint32_t>(br - line_start);
    h.cpu = cpu;
  }

  /// The remembered head the line at `s` starts with, the most recent first; or null.
  const Head* known_head(const char* s) {
    if (!scan_.room(s, kHeadMax)) return nullptr;
    if (repeats(s, heads_[newest_])) return &heads_[newest_];
    if (repeats(s, heads_[newest_ ^ 1])) {
      newest_ ^= 1;
      return &heads_[newest_];
    }
    return nullptr;
  }
  /// pre: kHeadMax bytes from `s` lie within the text.
  static bool repeats(const char* s, const Head& h) {
    if (h.length == 0) return false;
#if defined(__SSE2__)
    const auto same16 = [&](std::size_t at) -> std::uint64_t {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h.text + at));
      return static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(a, b)))) << at;
    };
    const std::uint64_t same = same16(0) | same16(16) | same16(32);
    const std::uint64_t need = (std::uint64_t{1} << h.length) - 1;
    return (same & need) == need;
#else
    return std::memcmp(s, h.text, h.length) == 0;
#endif
  }

  /// x = Event{ev, cpu, time}, field by field: `x = Event{}` compiled to a slow `rep stos`.
  static void start(Event& x, Ev ev, std::uint32_t cpu, std::uint64_t time_ns) {
    x.ev = ev;
    x.null = false;
    x.flags = 0;
    x.align_log2 = 0;
    x.node = -1;
    x.cpu = cpu;
    x.site = x.tag = 0;
    x.time_ns = time_ns;
    x.key = x.size = x.charged = 0;
  }

  // Events wait in a short queue so their hash-table slots are in cache when added.
  Event& free_slot() {
    if (pending_n_ == kAhead) {
      const Pending& p = pending_[pending_head_];
      b_.add(p.e, p.selected);
      --pending_n_;
      pending_head_ = (pending_head_ + 1) % kAhead;
    }
    return pending_[(pending_head_ + pending_n_) % kAhead].e;
  }
  void commit(bool selected) {
    Pending& p = pending_[(pending_head_ + pending_n_) % kAhead];
    p.selected = selected;
    b_.prefetch(p.e);
    ++pending_n_;
  }
  void drain() {
    for (; pending_n_; --pending_n_, pending_head_ = (pending_head_ + 1) % kAhead) {
      b_.add(pending_[pending_head_].e, pending_[pending_head_].selected);
    }
  }

  /// The quick path for the events of a 6.x kernel's kmem.h; false declines the line.
  bool quick(const char* fields, const char* e, Event& x, std::string_view& site, std::string_view& tag) {
    Quick r(scan_, fields, e);  // built here: passed by value it was stored and reloaded, stalling
    const bool cache = x.ev == Ev::cache_alloc || x.ev == Ev::cache_free;
    std::string_view gfp, accounted;
    switch (x.ev) {
      case Ev::kmalloc:  // kmalloc_node prints the same fields
      case Ev::cache_alloc: {
        std::uint64_t req, charged;
        if (!(r.key("call_site=") && r.word(site) && r.key(" ptr=") && r.hex(x.key))) return false;
        if (cache && !(r.key(" name=") && r.word(tag))) return false;
        if (!(r.key(" bytes_req=") && r.dec(req) && r.key(" bytes_alloc=") && r.dec(charged) &&
              r.key(" gfp_flags=") && r.word(gfp) && r.key(" node=") && r.node(x.node) && r.key(" accounted=") &&
              r.word(accounted) && r.done())) {
          return false;
        }
        if (req > kAbsurdSize || charged > kAbsurdSize || !gfp_quick(gfp, x.flags)) return false;
        x.null = x.key == 0;
        x.size = req;
        x.charged = charged;
        if (cache) x.flags |= ops::kOpCache;
        return true;
      }
      case Ev::kfree:
      case Ev::cache_free:
        if (!(r.key("call_site=") && r.word(site) && r.key(" ptr=") && r.hex(x.key))) return false;
        if (cache && !(r.key(" name=") && r.word(tag))) return false;
        if (!r.done()) return false;
        x.null = x.key == 0;
        if (cache) x.flags |= ops::kOpCache;
        return true;
      case Ev::page_alloc:
      case Ev::page_free: {
        std::uint64_t page, order, migratetype;
        if (!(r.key("page=") && r.hex(page) && r.key(" pfn=0x") && r.hex(x.key) && r.key(" order=") && r.dec(order))) {
          return false;
        }
        if (x.ev == Ev::page_alloc &&
            !(r.key(" migratetype=") && r.dec(migratetype) && r.key(" gfp_flags=") && r.word(gfp) && gfp_quick(gfp, x.flags))) {
          return false;
        }
        if (!r.done() || order > 20) return false;
        x.null = page == 0;
        x.size = x.charged = std::uint64_t{4096} << order;
        x.flags |= ops::kOpContiguous;
        return true;
      }
      default:
        return false;
    }
  }
  /// The flags of a gfp_flags value already met (most lines repeat a few); false otherwise.
  bool gfp_quick(std::string_view v, std::uint8_t& flags) {
    for (const auto& [k, f] : gfp_cache_) {
      if (same_bytes(k, v)) {
        flags = f;
        return true;
      }
    }
    return false;
  }

  std::uint8_t gfp_flags(std::string_view v, const LineCtx& c) {
    for (const auto& [k, flags] : gfp_cache_) {
      if (k == v) return flags;
    }
    std::uint8_t f = gfp_to_flags(v);
    if (v.size() > 2 && v[0] == '0' && v[1] == 'x') f = gfp_bits_to_flags(parse_hex(v, c, "gfp_flags"));
    if (gfp_cache_.size() < 64) gfp_cache_.emplace_back(std::string(v), f);
    return f;
  }

  void fill(Shape shape, const Fields& f, Event& x, const LineCtx& c) {
    switch (shape) {
      case Shape::slab_alloc: {
        const std::string_view ptr = f.need("ptr", c);
        x.key = parse_hex(ptr, c, "ptr");
        x.null = x.key == 0;
        x.size = parse_uint(f.need("bytes_req", c), c, "bytes_req");
        const auto ba = f.find("bytes_alloc");
        x.charged = ba ? parse_uint(*ba, c, "bytes_alloc") : x.size;
        if (x.size > kAbsurdSize || x.charged > kAbsurdSize) c.fail("absurd allocation size " + std::to_string(std::max(x.size, x.charged)));
        if (const auto g = f.find("gfp_flags")) x.flags = gfp_flags(*g, c);
        if (const auto n = f.find("node")) x.node = node(*n, c);
        x.site = b_.intern(f.need("call_site", c));
        if (x.ev == Ev::cache_alloc) {
          x.flags |= ops::kOpCache;
          if (const auto n = f.find("name")) x.tag = b_.intern(*n);
        }
        break;
      }
      case Shape::slab_free: {
        x.key = parse_hex(f.need("ptr", c), c, "ptr");
        x.null = x.key == 0;
        x.site = b_.intern(f.need("call_site", c));
        if (x.ev == Ev::cache_free) {
          x.flags |= ops::kOpCache;
          if (const auto n = f.find("name")) x.tag = b_.intern(*n);
        }
        break;
      }
      case Shape::page_alloc:
      case Shape::page_free: {
        const auto pfn = f.find("pfn");
        const auto page = f.find("page");
        if (!pfn && !page) c.fail("page event lacks pfn= and page=");
        const std::uint64_t page_v = page ? parse_hex(*page, c, "page") : 1;
        x.key = pfn ? parse_uint(*pfn, c, "pfn") : page_v;
        x.null = page_v == 0;
        std::uint64_t order = 0;
        if (const auto o = f.find("order")) order = parse_uint(*o, c, "order");
        if (order > 20) c.fail("absurd page order " + std::to_string(order));
        x.size = x.charged = std::uint64_t{4096} << order;
        x.flags = ops::kOpContiguous;
        if (shape == Shape::page_alloc) {
          if (const auto g = f.find("gfp_flags")) x.flags |= gfp_flags(*g, c);
        }
        break;
      }
      case Shape::dma_alloc:
      case Shape::dma_free:
      case Shape::dma_map:
      case Shape::dma_unmap: {
        if (!f.first_bare.empty()) x.tag = b_.intern(f.first_bare);
        if (const auto d = f.find("dir")) x.flags = dir_flags(*d);
        if (known_sg(x, f, c)) break;
        x.key = parse_hex(f.need("dma_addr", c), c, "dma_addr");
        if (const auto s = f.find("size")) x.size = parse_uint(*s, c, "size");
        if (x.size > kAbsurdSize) c.fail("absurd DMA size " + std::to_string(x.size));
        x.charged = x.size;
        if (shape == Shape::dma_alloc) {
          x.flags |= ops::kOpContiguous;
          if (const auto g = f.find("flags")) x.flags |= gfp_flags(*g, c);
        }
        break;
      }
    }
  }

  // dma_map_sg / dma_unmap_sg: keyed by the first physical address; size is the sum of lengths.
  bool known_sg(Event& x, const Fields& f, const LineCtx& c) {
    if (f.find("dma_addr")) return false;
    const auto phys = f.find("phys_addrs");
    if (!phys) c.fail("DMA event lacks dma_addr= and phys_addrs=");
    std::string_view v = *phys;
    while (!v.empty() && (v[0] == '{' || v[0] == '[')) v.remove_prefix(1);
    std::size_t cut = v.find_first_of(",}]");
    if (cut == std::string_view::npos) cut = v.size();
    x.key = cut ? parse_hex(v.substr(0, cut), c, "phys_addrs") : 0;
    auto lens = f.find("sizes");
    if (!lens) lens = f.find("lengths");
    if (lens) {
      std::string_view l = *lens;
      std::uint64_t total = 0;
      while (!l.empty()) {
        while (!l.empty() && (l[0] == '{' || l[0] == '[' || l[0] == ',' || l[0] == '}' || l[0] == ']')) l.remove_prefix(1);
        std::size_t n = l.find_first_of(",}]");
        if (n == std::string_view::npos) n = l.size();
        if (n) total += parse_uint(l.substr(0, n), c, "sizes");
        if (total > kAbsurdSize) c.fail("absurd DMA size");
        l.remove_prefix(n);
      }
      x.size = x.charged = total;
    }
    return true;
  }

  static std::uint8_t dir_flags(std::string_view d) {
    if (d == "TO_DEVICE") return ops::kOpDirOut;
    if (d == "FROM_DEVICE") return ops::kOpDirIn;
    if (d == "BIDIRECTIONAL") return ops::kOpDirIn | ops::kOpDirOut;
    return 0;
  }

  static std::int8_t node(std::string_view v, const LineCtx& c) {
    const std::int64_t n = parse_int(v, c, "node");
    if (n < -1 || n > 127) c.fail("absurd node " + std::to_string(n));
    return static_cast<std::int8_t>(n);
  }

  struct Pending {
    Event e;
    bool selected;
  };
  static constexpr std::size_t kAhead = 16;

  /// Bytes of text read per window: small enough to stay in the cache.
  static constexpr std::size_t kWindow = std::size_t{1} << 19;
  TextSource source_;
  std::uint64_t text_size_;  // expected; the window grows for a longer line
  const std::string& name_;
  const ImportOptions& options_;
  Scan scan_;
  Builder b_;
  Pending pending_[kAhead];
  std::size_t pending_head_ = 0, pending_n_ = 0;
  bool trace_cmd_ = false;
  Head heads_[2];
  unsigned newest_ = 0;  // index of the most recent head
  std::vector<std::pair<std::string, std::uint8_t>> gfp_cache_;
};

}  // namespace

ops::Trace import_ftrace(std::string_view text, const std::string& name, const ImportOptions& options) {
  std::size_t at = 0;
  const auto source = [&](char* dst, std::size_t n) {
    n = std::min(n, text.size() - at);
    if (n > 0) std::memcpy(dst, text.data() + at, n);
    at += n;
    return n;
  };
  return FtraceParser(source, text.size(), name, options).run();
}

ops::Trace import_ftrace(const Input& in, const ImportOptions& options) {
  std::uint64_t at = 0;
  const auto source = [&](char* dst, std::size_t n) {
    n = in.read(at, dst, n);
    at += n;
    return n;
  };
  return FtraceParser(source, in.size_hint(), in.name(), options).run();
}

}  // namespace kmbench::trace
