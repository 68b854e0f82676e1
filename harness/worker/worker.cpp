#include "harness/worker/worker.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "allocators/errors.h"

namespace kmbench::worker {

std::string self_directory() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    throw RunError("cannot read /proc/self/exe: " + ec.message());
  }
  return exe.parent_path().string();
}

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
  int fds[2];
  if (pipe(fds) != 0) {
    return std::nullopt;
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const std::string& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return std::nullopt;
  }
  return out;
}

}  // namespace kmbench::worker
