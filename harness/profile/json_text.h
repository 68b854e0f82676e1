// Writes JSON text straight into a string, laid out as nlohmann::json's
// dump(1) lays it out (one value a line, one space of indent a level), so a
// profile reads the same whichever wrote it. A profile of a large capture is
// half a megabyte of JSON: building it as a tree of nodes first and then
// dumping it took longer than counting the profile.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kmbench::profile {

class JsonText {
 public:
  /// Opens an object or array: as a member's value after key(), as an
  /// element, or at the top.
  void open_object() { open('{'); }
  void open_array() { open('['); }
  /// Closes the innermost object or array: "{}" or "[]" when it got nothing.
  void close() {
    const Level l = levels_[--depth_];
    if (l.count != 0) {
      out_ += '\n';
      indent();
    }
    out_ += l.bracket == '{' ? '}' : ']';
  }
  /// A member's name; its value follows.
  void key(std::string_view name) {
    next();
    string_value(name);
    out_ += ": ";
    keyed_ = true;
  }

  void value(std::string_view s) {
    next();
    string_value(s);
  }
  void value(const char* s) { value(std::string_view(s)); }
  void value(std::uint64_t v) { number(v); }
  void value(std::uint32_t v) { number(v); }
  void value(std::int64_t v) { number(v); }
  void value(int v) { number(v); }
  void value(double v) {
    next();
    real(v);
  }

  /// An array of these values: [a, b, ...].
  template <class... T>
  void row(const T&... values) {
    open_array();
    (value(values), ...);
    close();
  }

  /// key(name) then value(v).
  template <class T>
  void member(std::string_view name, const T& v) {
    key(name);
    value(v);
  }

  /// Room for `bytes` of text: a string grown by doubling took a fresh page
  /// fault for every page of every copy.
  void reserve(std::size_t bytes) { out_.reserve(bytes); }

  /// The text so far, with a final newline once everything is closed.
  std::string finish() {
    out_ += '\n';
    return std::move(out_);
  }

 private:
  struct Level {
    char bracket;
    std::uint64_t count;
  };

  template <class T>
  void number(T v) {
    next();
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
  }

  void open(char bracket) {
    if (depth_ == kMaxDepth) throw std::logic_error("JsonText: nested deeper than 16");
    next();
    out_ += bracket;
    levels_[depth_++] = {bracket, 0};
  }

  /// Before a value or key: the separator and the indent, unless the value is a key's.
  void next() {
    if (keyed_) {
      keyed_ = false;
      return;
    }
    if (depth_ == 0) return;
    Level& l = levels_[depth_ - 1];
    out_ += l.count++ == 0 ? "\n" : ",\n";
    indent();
  }
  void indent() { out_.append(depth_, ' '); }

  /// Quoted and escaped; bytes that are not UTF-8 become U+FFFD.
  void string_value(std::string_view s) {
    out_ += '"';
    for (std::size_t i = 0; i < s.size();) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c < 0x80) {
        escape_ascii(static_cast<char>(c));
        ++i;
        continue;
      }
      const std::size_t n = utf8_length(s, i);
      if (n == 0) {
        out_ += "\xef\xbf\xbd";
        ++i;
      } else {
        out_.append(s.substr(i, n));
        i += n;
      }
    }
    out_ += '"';
  }

  void escape_ascii(char c) {
    switch (c) {
      case '"': out_ += "\\\""; return;
      case '\\': out_ += "\\\\"; return;
      case '\b': out_ += "\\b"; return;
      case '\f': out_ += "\\f"; return;
      case '\n': out_ += "\\n"; return;
      case '\r': out_ += "\\r"; return;
      case '\t': out_ += "\\t"; return;
      default: break;
    }
    if (static_cast<unsigned char>(c) < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out_ += "\\u00";
      out_ += kHex[(c >> 4) & 0xf];
      out_ += kHex[c & 0xf];
      return;
    }
    out_ += c;
  }

  /// The length of the well-formed UTF-8 sequence at s[i] (a lead byte of 0x80 or more), or 0.
  static std::size_t utf8_length(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return 0;
    }
    if (i + n > s.size() || b(i + 1) < lo || b(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k) {
      if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
    }
    return n;
  }

  /// The shortest digits that read back as v, placed as nlohmann::json
  /// places them: plain from 1e-4 up to 1e15 (with ".0" on whole numbers),
  /// else d.ddde±XX.
  void real(double v) {
    if (!std::isfinite(v)) {
      out_ += "null";
      return;
    }
    if (v == 0) {
      out_ += std::signbit(v) ? "-0.0" : "0.0";
      return;
    }
    char buf[40];
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    const std::string_view sci(buf, static_cast<std::size_t>(r.ptr - buf));  // [-]d[.ddd]e±XX
    std::size_t at = 0;
    if (sci[0] == '-') out_ += '-', at = 1;
    const std::size_t e = sci.find('e');
    std::string digits;
    for (std::size_t k = at; k < e; ++k) {
      if (sci[k] != '.') digits += sci[k];
    }
    const int exp10 = std::atoi(std::string(sci.substr(e + 1)).c_str());
    const int len = static_cast<int>(digits.size());
    const int n = exp10 + 1;  // where the point goes, counted from the first digit
    if (n >= len && n <= 15) {
      out_ += digits;
      out_.append(static_cast<std::size_t>(n - len), '0');
      out_ += ".0";
    } else if (n > 0 && n <= 15) {
      out_.append(digits, 0, static_cast<std::size_t>(n));
      out_ += '.';
      out_.append(digits, static_cast<std::size_t>(n));
    } else if (n > -4 && n <= 0) {
      out_ += "0.";
      out_.append(static_cast<std::size_t>(-n), '0');
      out_ += digits;
    } else {
      out_ += digits[0];
      if (len > 1) {
        out_ += '.';
        out_.append(digits, 1);
      }
      out_ += 'e';
      const int x = n - 1;
      out_ += x < 0 ? '-' : '+';
      const int ax = std::abs(x);
      if (ax < 10) out_ += '0';
      out_ += std::to_string(ax);
    }
  }

  static constexpr std::size_t kMaxDepth = 16;
  std::string out_;
  Level levels_[kMaxDepth] = {};
  std::size_t depth_ = 0;
  bool keyed_ = false;
};

}  // namespace kmbench::profile
