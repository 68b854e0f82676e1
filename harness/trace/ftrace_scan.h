// Internal to the ftrace text importer: tokenising a line and reading its
// fields. Included by ftrace.cpp alone, and in an anonymous namespace: the
// per-line loop calls all of this, and with internal linkage the compiler
// inlines it as it did when it was part of ftrace.cpp (given external linkage,
// it kept the general path's fill() out of line).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "base/errors.h"

namespace kmbench::trace::ftrace {
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

/// An error in one line. It keeps the line number and the message apart:
/// a chunk of the text is parsed before the lines ahead of it are counted,
/// so its errors are numbered within the chunk and renamed when merged.
class LineError : public InputError {
 public:
  LineError(const std::string& name, std::uint64_t line, const std::string& what)
      : InputError(name, line, what), line_(line), message_(what) {}
  std::uint64_t line() const { return line_; }
  const std::string& message() const { return message_; }

 private:
  std::uint64_t line_;
  std::string message_;
};

/// One line being parsed; errors name the file and line.
struct LineCtx {
  const std::string& name;
  std::uint64_t line;
  [[noreturn]] void fail(const std::string& what) const { throw LineError(name, line, what); }
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
/// The most seconds a timestamp may hold: with any fraction, its nanoseconds fit in 64 bits.
inline constexpr std::uint64_t kMaxTimestampSeconds = 18446744072;

bool parse_timestamp(std::string_view v, std::uint64_t& ns) {
  std::size_t i = 0;
  std::uint64_t sec = 0;
  while (i < v.size() && is_digit(v[i])) sec = sec * 10 + static_cast<std::uint64_t>(v[i++] - '0');
  if (i == 0 || i > 12 || sec > kMaxTimestampSeconds) return false;
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
  if (q == p || q - p > 12 || sec > kMaxTimestampSeconds) return false;
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

/// Reads a line's fields in the order the kernel prints them, converting each
/// value as it is passed over, without splitting the line first. Every step
/// matches or declines; a declined line is read again by the general path
/// (Fields), which also words the errors. On the lines it accepts the quick
/// path yields exactly what the general one would.
class Quick {
  /// Whether n bytes at a and b are the same: a word or two in line, overlapping
  /// at the end (with the parser grown, GCC called memcmp for these).
  template <std::size_t n>
  static bool same(const char* a, const char* b) {
    const auto word = [](const char* p) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      return w;
    };
    const auto half = [](const char* p) {
      std::uint32_t w;
      std::memcpy(&w, p, 4);
      return w;
    };
    if constexpr (n > 16) {
      return std::memcmp(a, b, n) == 0;
    } else if constexpr (n > 8) {
      return word(a) == word(b) && word(a + n - 8) == word(b + n - 8);
    } else if constexpr (n >= 4) {
      return half(a) == half(b) && half(a + n - 4) == half(b + n - 4);
    } else {
      return std::memcmp(a, b, n) == 0;
    }
  }

 public:
  Quick(const Scan& scan, const char* p, const char* e) : scan_(scan), p_(scan.skip(p, e, ' ')), e_(e) {}

  /// `k`, e.g. " ptr=", next on the line.
  template <std::size_t N>
  bool key(const char (&k)[N]) {
    constexpr std::size_t n = N - 1;
    if (static_cast<std::size_t>(e_ - p_) < n || !same<n>(p_, k)) return false;
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

}  // namespace
}  // namespace kmbench::trace::ftrace
