// The replay options, once: how the command line and a matrix file spell
// each, what values it takes, its help, and the field of replay::Options it
// sets. `kmbench replay`/`kmbench workload` and the matrix (its axes and its
// `replay = { ... }` tables) check values here, so a mistake gets the same
// message wherever it is made.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "harness/replay/replay.h"

namespace kmbench::replay {

enum class OptionType : std::uint8_t {
  flag,     // true or false; on the command line, a flag without a value
  choice,   // one of `choices`
  integer,  // a whole number within [lo, hi]
  number,   // a number within (lo, hi]
  bytes,    // a byte count: digits with an optional k, m, g or t
  text,     // checked by `set` (UsageError: a pressure schedule), or by the layer that uses it (a topology: hwloc)
};

struct OptionSpec {
  std::string_view key;   // a matrix's spelling: "sample_ms"
  std::string_view flag;  // the command line's: "--sample-ms" (for a negated flag, "--no-latency")
  OptionType type;
  std::string_view help;
  std::vector<std::string_view> choices = {};
  double lo = 0, hi = 0;
  bool negated = false;      // flag: the command line's flag sets the option false
  bool zero_is_off = false;  // integer: 0 is allowed too, and turns the option off
  bool per_entry = true;     // may stand in a matrix entry's `replay = { ... }` (else a matrix axis)
  void (*set)(Options&, const std::string& checked) = nullptr;
  std::string (*get)(const Options&) = nullptr;  // the value as text (defaults in help)
};

/// Every replay option, in the order help lists them.
const std::vector<OptionSpec>& option_table();
/// nullptr when no option has that key (flag).
const OptionSpec* option_by_key(std::string_view key);
const OptionSpec* option_by_flag(std::string_view flag);

/// The value text checked against the spec, in canonical form ("true" or
/// "false" for a flag). A bad value throws UsageError whose message names the
/// option as `spelling` and says what the option takes.
std::string check_option(const OptionSpec& spec, std::string_view text, std::string_view spelling);
/// check_option, then the value into o.
void set_option(Options& o, const OptionSpec& spec, std::string_view text, std::string_view spelling);
/// What the option takes, for messages: "none, first or pages", "an integer in 0..256".
std::string what_it_takes(const OptionSpec& spec);

}  // namespace kmbench::replay
