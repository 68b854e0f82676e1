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

}  // namespace kmbench::base
