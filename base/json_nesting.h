// How deeply JSON text nests, found before a parser sees it: nlohmann::json
// builds, copies and destroys values recursively, so a file of a hundred
// thousand '[' overflows the stack instead of being refused.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace kmbench::base {

/// The byte offset of the first '[' or '{' that opens a value nested more
/// than `limit` deep (brackets inside strings do not count), or nullopt.
inline std::optional<std::size_t> json_nested_beyond(std::string_view text, std::size_t limit) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, a quote among them
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

}  // namespace kmbench::base
