#include "harness/worker/worker.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/errors.h"
#include "base/process.h"

namespace kmbench::worker {

std::string self_directory() { return std::filesystem::path(base::self_exe()).parent_path().string(); }

std::string worker_path(const BackendInfo& info) {
  if (info.executable.empty()) {
    return {};
  }
  return self_directory() + "/" + info.executable;
}

void exec_worker_if_needed(const BackendInfo& info, int argc, char** argv) {
  const std::string path = worker_path(info);
  if (path.empty()) {
    return;
  }
  if (access(path.c_str(), X_OK) != 0) {
    throw RunError("backend '" + info.name + "' runs in " + info.executable +
                   ", which is not at " + path + " (build it: cmake --build <dir> --target " +
                   info.executable + ")");
  }
  std::vector<char*> args;
  args.push_back(const_cast<char*>(path.c_str()));
  for (int i = 1; i < argc; ++i) {
    args.push_back(argv[i]);
  }
  args.push_back(nullptr);
  execv(path.c_str(), args.data());
  throw RunError("cannot start " + path + ": " + std::strerror(errno));
}

std::optional<std::string> backend_option(int argc, char** argv) {
  static constexpr std::string_view kOption = "--backend";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") {
      break;
    }
    if (arg == kOption && i + 1 < argc) {
      return std::string(argv[i + 1]);
    }
    if (arg.size() > kOption.size() && arg.substr(0, kOption.size()) == kOption &&
        arg[kOption.size()] == '=') {
      return std::string(arg.substr(kOption.size() + 1));
    }
  }
  return std::nullopt;
}

void exec_worker_for_backend_option(int argc, char** argv) {
  const auto name = backend_option(argc, argv);
  if (!name) {
    return;
  }
  if (const BackendInfo* info = find_backend(*name)) {
    exec_worker_if_needed(*info, argc, argv);
  }
}

std::optional<std::string> run_and_capture(const std::string& path,
                                           const std::vector<std::string>& args) {
  std::vector<std::string> argv = {path};
  argv.insert(argv.end(), args.begin(), args.end());
  base::SpawnOptions o;
  o.capture_stdout = true;
  try {
    base::ChildExit e = base::run_child(argv, o);
    if (!e.exited_ok()) return std::nullopt;
    return std::move(e.output);
  } catch (const RunError&) {
    return std::nullopt;
  }
}

}  // namespace kmbench::worker
