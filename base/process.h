// This executable's path, and starting a program as a child process: the one
// place that spawns, redirects, waits with a time limit and kills.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kmbench::base {

/// The running executable's path (/proc/self/exe) into buf, NUL-terminated.
/// Allocates nothing (callable from a malloc hook). post: its length, 0 when
/// it cannot be read or does not fit.
std::size_t self_exe(char* buf, std::size_t size) noexcept;
/// The same as a string. Throws RunError when /proc/self/exe cannot be read.
std::string self_exe();
/// A file name pattern with every "%p" replaced by this process's pid (recorders' outputs).
std::string with_pid(const std::string& pattern);

struct SpawnOptions {
  /// Where the child's standard streams go: empty inherits ours; a path is
  /// opened for it (stdin read-only, stdout and stderr created or truncated).
  std::string stdin_path, stdout_path, stderr_path;
  bool capture_stdout = false;    // read it through a pipe (Child::output): overrides stdout_path
  bool own_process_group = false; // a group of its own, so that kill() reaches what it started too
};

struct ChildExit {
  int status = 0;            // as waitpid reports it
  bool timed_out = false;    // killed at the deadline
  bool stopped = false;      // killed because stop() said so
  double wall_s = 0;         // from spawn to exit
  rusage usage{};            // the child's (and its waited-for children's) resources
  std::string output;        // its stdout, with capture_stdout

  bool exited_ok() const noexcept;
  /// "exit status N", "killed by signal N (NAME)", "timeout after S s", "stopped".
  std::string describe(double timeout_s) const;
};

/// Runs argv[0] (a path) with argv, in the environment of this process, and
/// waits for it. With a deadline, the child (its whole group with
/// own_process_group) is killed when it passes; stop() is polled while
/// waiting and kills it when it returns true. Throws RunError when the
/// program cannot be started.
ChildExit run_child(const std::vector<std::string>& argv, const SpawnOptions& options = {},
                    std::optional<std::chrono::duration<double>> time_limit = std::nullopt,
                    const std::function<bool()>& stop = {});

}  // namespace kmbench::base
