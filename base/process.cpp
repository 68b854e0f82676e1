#include "base/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/errors.h"

extern char** environ;

namespace kmbench::base {

std::size_t self_exe(char* buf, std::size_t size) noexcept {
  if (size == 0) return 0;
  const ssize_t n = ::readlink("/proc/self/exe", buf, size - 1);
  if (n <= 0 || static_cast<std::size_t>(n) >= size - 1) {
    buf[0] = '\0';
    return 0;
  }
  buf[n] = '\0';
  return static_cast<std::size_t>(n);
}

std::string self_exe() {
  char buf[4096];
  const std::size_t n = self_exe(buf, sizeof buf);
  if (n == 0) throw RunError(std::string("cannot read /proc/self/exe: ") + std::strerror(errno));
  return std::string(buf, n);
}

std::string with_pid(const std::string& pattern) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size() && pattern[i + 1] == 'p') {
      out += std::to_string(::getpid());
      ++i;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

bool ChildExit::exited_ok() const noexcept {
  return !timed_out && !stopped && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string ChildExit::describe(double timeout_s) const {
  if (stopped) return "stopped";
  if (timed_out) {
    std::string s = std::to_string(timeout_s);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return "timeout after " + s + " s";
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) + (name != nullptr ? std::string(" (SIG") + name + ")" : "");
  }
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  return "ended with wait status " + std::to_string(status);
}

namespace {

/// posix_spawn's attributes and file actions, released on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

void kill_child(pid_t pid, bool group) { ::kill(group ? -pid : pid, SIGKILL); }

}  // namespace

ChildExit run_child(const std::vector<std::string>& argv, const SpawnOptions& o,
                    std::optional<std::chrono::duration<double>> time_limit, const std::function<bool()>& stop) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  SpawnSetup s;
  if (!o.stdin_path.empty()) posix_spawn_file_actions_addopen(&s.actions, 0, o.stdin_path.c_str(), O_RDONLY, 0);
  int out_pipe[2] = {-1, -1};
  if (o.capture_stdout) {
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw RunError(std::string("cannot make a pipe: ") + std::strerror(errno));
    posix_spawn_file_actions_adddup2(&s.actions, out_pipe[1], 1);
  } else if (!o.stdout_path.empty()) {
    posix_spawn_file_actions_addopen(&s.actions, 1, o.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  if (!o.stderr_path.empty()) {
    posix_spawn_file_actions_addopen(&s.actions, 2, o.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  // The child starts with no signal blocked and every handler at its default,
  // whatever this process installed (an interrupt handler, say).
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (o.own_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&s.attr, 0);
  }
  posix_spawnattr_setflags(&s.attr, flags);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&s.attr, &none);
  posix_spawnattr_setsigdefault(&s.attr, &all);

  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &s.actions, &s.attr, args.data(), environ);
  if (out_pipe[1] >= 0) ::close(out_pipe[1]);
  if (rc != 0) {
    if (out_pipe[0] >= 0) ::close(out_pipe[0]);
    throw RunError("cannot start " + argv[0] + ": " + std::strerror(rc));
  }

  ChildExit e;
  if (out_pipe[0] >= 0) {
    // The child's output is read to its end before waiting, so that a child
    // that fills the pipe is not left blocked. A captured child is expected
    // to be short-lived (a version query): no deadline applies while reading.
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
      if (n > 0) {
        e.output.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        break;
      }
    }
    ::close(out_pipe[0]);
  }

  const bool polls = time_limit.has_value() || static_cast<bool>(stop);
  for (;;) {
    const pid_t w = ::wait4(pid, &e.status, polls ? WNOHANG : 0, &e.usage);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      const int err = errno;
      kill_child(pid, o.own_process_group);
      throw RunError("lost the child process " + argv[0] + ": " + std::strerror(err));
    }
    if (w == 0) {
      const bool late = time_limit && std::chrono::steady_clock::now() - start >= *time_limit;
      const bool stopping = stop && stop();
      if (late || stopping) {
        e.timed_out = late && !stopping;
        e.stopped = stopping;
        kill_child(pid, o.own_process_group);
        while (::wait4(pid, &e.status, 0, &e.usage) < 0 && errno == EINTR) {
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  // Whatever the child left behind in its group goes with it.
  if (o.own_process_group) kill_child(pid, true);
  e.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return e;
}

}  // namespace kmbench::base
