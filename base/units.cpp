#include "base/units.h"

#include <charconv>

namespace kmbench::base {

std::optional<std::uint64_t> parse_bytes(std::string_view text) noexcept {
  std::uint64_t value = 0;
  const char* const first = text.data();
  const char* const last = first + text.size();
  const auto [end, ec] = std::from_chars(first, last, value);
  if (ec != std::errc{} || end == first) {
    return std::nullopt;
  }
  unsigned shift = 0;
  if (end != last) {
    if (end + 1 != last) return std::nullopt;
    switch (*end) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      case 't': case 'T': shift = 40; break;
      default: return std::nullopt;
    }
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) {
    return std::nullopt;
  }
  return value << shift;
}

}  // namespace kmbench::base
