// Errors that reach the user. Each kind maps to one exit code of `kmbench`:
// UsageError and InputError exit 2, RunError exits 1.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace kmbench {

/// The command line or a setting is wrong (unknown backend, bad parameter).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An input file is wrong; the message names the file and the line or byte offset.
class InputError : public std::runtime_error {
 public:
  InputError(const std::string& file, std::uint64_t line, const std::string& what)
      : std::runtime_error(file + ":" + std::to_string(line) + ": " + what) {}
  InputError(const std::string& file, const std::string& what)
      : std::runtime_error(file + ": " + what) {}
  /// A message that already names the file (and line): another InputError's, passed on.
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
};

/// The run itself failed (a backend crashed, a worker could not start).
class RunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace kmbench
