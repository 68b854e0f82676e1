#include "allocators/params.h"

#include <climits>
#include <cstdio>
#include <stdexcept>

#include "base/errors.h"
#include "base/units.h"

namespace kmbench {
namespace {

std::string hex(std::int64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

/// The choices as a list a sentence can hold: "auto, on or off".
std::string choice_list(std::string_view choices) {
  std::string out;
  std::size_t start = 0;
  while (start <= choices.size()) {
    const std::size_t bar = choices.find('|', start);
    const std::string_view one = choices.substr(start, bar == std::string_view::npos ? bar : bar - start);
    if (bar == std::string_view::npos) {
      out += (out.empty() ? "" : " or ") + std::string(one);
      break;
    }
    out += (out.empty() ? "" : ", ") + std::string(one);
    start = bar + 1;
  }
  return out;
}

bool is_choice(std::string_view choices, std::string_view value) {
  std::size_t start = 0;
  while (true) {
    const std::size_t bar = choices.find('|', start);
    if (choices.substr(start, bar == std::string_view::npos ? bar : bar - start) == value) return true;
    if (bar == std::string_view::npos) return false;
    start = bar + 1;
  }
}

std::optional<std::int64_t> parse_value(const ParamSpec& spec, std::string_view text) {
  if (spec.kind == ParamSpec::Kind::bytes) {
    const auto v = base::parse_bytes(text);
    if (!v || *v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<std::int64_t>(*v);
  }
  const bool allow_hex = spec.kind == ParamSpec::Kind::address;
  if (text.empty()) return std::nullopt;
  const std::string s(text);
  std::size_t used = 0;
  try {
    const long long v = std::stoll(s, &used, allow_hex ? 0 : 10);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace

std::string allowed_text(const ParamSpec& spec) {
  switch (spec.kind) {
    case ParamSpec::Kind::choice:
      return choice_list(spec.choices);
    case ParamSpec::Kind::integer:
      return std::to_string(spec.min) + ".." + std::to_string(spec.max);
    case ParamSpec::Kind::address:
      return hex(spec.min) + ".." + hex(spec.max);
    case ParamSpec::Kind::bytes:
      return std::to_string(spec.min) + ".." + std::to_string(spec.max) + " bytes (k, m, g, t suffixes)";
  }
  return {};
}

std::optional<std::string> param_error(const ParamSpec& spec, std::string_view value) {
  const std::string head = std::string(spec.key) + "=" + std::string(value);
  if (spec.kind == ParamSpec::Kind::choice) {
    if (is_choice(spec.choices, value)) return std::nullopt;
    return head + " is not " + allowed_text(spec);
  }
  const auto v = parse_value(spec, value);
  if (!v) {
    const char* what = spec.kind == ParamSpec::Kind::address ? "an address"
                       : spec.kind == ParamSpec::Kind::bytes ? "a byte count"
                                                             : "an integer";
    return head + " is not " + what + " (allowed: " + allowed_text(spec) + ")";
  }
  if (*v < spec.min || *v > spec.max) {
    return head + " is outside " + allowed_text(spec);
  }
  return std::nullopt;
}

const ParamSpec* find_param(std::span<const ParamSpec> specs, std::string_view key) {
  for (const ParamSpec& s : specs) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

std::optional<std::string> setting_error(std::span<const ParamSpec> specs, std::string_view key,
                                         std::string_view value) {
  if (const ParamSpec* s = find_param(specs, key)) {
    return param_error(*s, value);
  }
  std::string known;
  for (const ParamSpec& s : specs) known += (known.empty() ? "" : ", ") + std::string(s.key);
  return "unknown parameter '" + std::string(key) + "' (known: " + (known.empty() ? "none" : known) + ")";
}

ParamReader::ParamReader(std::string_view backend, std::span<const ParamSpec> specs, const BackendConfig& config)
    : backend_(backend), specs_(specs), config_(config) {
  for (const auto& [key, value] : config.params) {
    if (auto why = setting_error(specs, key, value)) {
      throw UsageError(std::string(backend) + ": " + *why);
    }
  }
}

const ParamSpec& ParamReader::spec(std::string_view key) const {
  const ParamSpec* s = find_param(specs_, key);
  if (s == nullptr) {
    throw std::logic_error(std::string(backend_) + " reads '" + std::string(key) + "', which its table lacks");
  }
  return *s;
}

std::string ParamReader::text(std::string_view key) const {
  return config_.param(key, spec(key).fallback);
}

std::int64_t ParamReader::integer(std::string_view key) const {
  return *parse_value(spec(key), text(key));  // checked by the constructor
}

bool ParamReader::given(std::string_view key) const {
  return config_.params.contains(std::string(key));
}

}  // namespace kmbench
