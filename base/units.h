// Byte counts as people write them: "4096", "64k", "2m", "4g", "1t".
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace kmbench::base {

/// Digits with an optional k, m, g or t suffix (either case; powers of 1024).
/// Nothing else: no sign, no spaces, no fraction. nullopt when text is not
/// one, or when the count does not fit in 64 bits.
std::optional<std::uint64_t> parse_bytes(std::string_view text) noexcept;

/// Digits alone (a seed, a count), fitting in 64 bits; nullopt otherwise. No
/// sign: "-1" is no count, where reading it into an unsigned wraps to 2^64 - 1.
inline std::optional<std::uint64_t> parse_count(std::string_view text) noexcept {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  return parse_bytes(text);
}

}  // namespace kmbench::base
