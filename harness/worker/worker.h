// Worker executables: how the plain kmbench hands a command to the process
// that serves a backend (kmbench-jemalloc, kmbench-mimalloc: each links one
// allocator that owns its malloc; see cmake/KmbenchWorkers.cmake).
//
// main() calls exec_worker_for_backend_option() before parsing, so every
// subcommand that takes `--backend NAME` (now or later) runs in the right
// process with the same arguments. A subcommand that learns its backend some
// other way calls exec_worker_if_needed() itself; a runner that starts cells
// as child processes starts worker_path(info) directly.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "allocators/any_backend.h"

namespace kmbench::worker {

/// The directory of this executable (/proc/self/exe).
std::string self_directory();

/// Where the executable serving info lives: next to this one. Empty if info is served here.
std::string worker_path(const BackendInfo& info);

/// If info is served by another executable: replaces this process with it,
/// passing argv[1..] unchanged (argv[0] becomes the worker's path). Returns
/// only when info is served here. Throws RunError if the worker is missing
/// or cannot be started.
void exec_worker_if_needed(const BackendInfo& info, int argc, char** argv);

/// The value of `--backend NAME` / `--backend=NAME` in argv, if any.
std::optional<std::string> backend_option(int argc, char** argv);

/// exec_worker_if_needed for the backend named by --backend, when it is a known
/// backend of another executable. Unknown names are left to the subcommand.
void exec_worker_for_backend_option(int argc, char** argv);

/// Runs path with args, waits, returns its standard output; nullopt if it
/// could not start or did not exit 0. (For asking a worker, e.g. its versions.)
std::optional<std::string> run_and_capture(const std::string& path,
                                           const std::vector<std::string>& args);

}  // namespace kmbench::worker
