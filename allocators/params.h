// A backend's parameters, declared once in a table beside its class
// (`static constexpr ParamSpec kParams[]`): `kmbench list --params BACKEND`
// prints the table, a matrix checks every value against it before anything
// runs, and the backend's constructor reads its settings through it, so the
// three can never disagree.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "allocators/backend.h"

namespace kmbench {

struct ParamSpec {
  enum class Kind : std::uint8_t {
    choice,   // one of `choices` ("auto|on|off")
    integer,  // a decimal integer in [min, max]
    address,  // an integer in [min, max], decimal or 0x-hexadecimal
    bytes,    // a byte count in [min, max], digits with an optional k, m, g or t
  };
  std::string_view key;
  Kind kind;
  std::string_view fallback;  // the value when the parameter is not given, as text
  std::string_view meaning;
  std::string_view choices = {};  // choice: the allowed values, separated by '|'
  std::int64_t min = 0;
  std::int64_t max = 0;
};

/// "1..1024", "auto, on or off", "0x1000..0xffffffffffff".
std::string allowed_text(const ParamSpec& spec);

/// Why `value` is not a valid setting of `spec` ("magazine=2048 is outside
/// 1..1024"), or nothing when it is.
std::optional<std::string> param_error(const ParamSpec& spec, std::string_view value);

/// The spec of `key`, or null.
const ParamSpec* find_param(std::span<const ParamSpec> specs, std::string_view key);

/// Why `key=value` is not a setting of a backend with these parameters
/// ("unknown parameter 'x' (known: a, b)" or the value's error), or nothing.
std::optional<std::string> setting_error(std::span<const ParamSpec> specs, std::string_view key,
                                         std::string_view value);

/// Reads a backend's settings from its config: every key must be one of the
/// specs and every value valid, else UsageError "BACKEND: <why>".
class ParamReader {
 public:
  ParamReader(std::string_view backend, std::span<const ParamSpec> specs, const BackendConfig& config);

  /// The setting's text (the fallback when absent).
  std::string text(std::string_view key) const;
  /// A choice's value; an integer's or address's value.
  std::string choice(std::string_view key) const { return text(key); }
  std::int64_t integer(std::string_view key) const;
  bool on(std::string_view key) const { return text(key) == "on"; }
  /// Whether the user (or the variant) set the key.
  bool given(std::string_view key) const;

 private:
  const ParamSpec& spec(std::string_view key) const;

  std::string_view backend_;
  std::span<const ParamSpec> specs_;
  const BackendConfig& config_;
};

}  // namespace kmbench
