// trace-cmd's binary trace.dat: libtracecmd formats each kmem/dma record as
// a `trace-cmd report` line (tracedat_reader.c) and the ftrace text importer
// reads those, so both paths apply the same rules.
//
// libtracecmd trusts the file it reads: some damaged files make it free a
// buffer twice (3.1.6's tracecmd_alloc_fd, for one). So it runs in a child
// process that sends the lines back through a pipe; a file that kills the
// child is bad input, reported with what the child last said, and kmbench
// goes on.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "base/errors.h"
#include "base/file_io.h"
#include "harness/trace/trace.h"
#include "harness/trace/tracedat_reader.h"

namespace kmbench::trace {
namespace {

/// What the child sends: frames of a head and `len` bytes. The last frame is
/// `done` (an int: the CPU count) or `error` (libtracecmd's message).
enum class FrameKind : std::uint32_t { line, done, error };
struct FrameHead {
  FrameKind kind;
  std::uint32_t len;
};

/// A descriptor closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

/// The child's side: frames gathered into pipe-sized writes.
class FrameWriter {
 public:
  explicit FrameWriter(int fd) : fd_(fd) {}

  void frame(FrameKind kind, const void* data, std::size_t len) {
    const FrameHead head{kind, static_cast<std::uint32_t>(len)};
    put(&head, sizeof head);
    put(data, len);
  }

  void flush() {
    if (!base::write_all(fd_, buf_, used_)) ::_exit(3);
    used_ = 0;
  }

 private:
  void put(const void* data, std::size_t len) {
    if (used_ + len > sizeof buf_) flush();
    if (len > sizeof buf_) {
      if (!base::write_all(fd_, static_cast<const char*>(data), len)) ::_exit(3);
      return;
    }
    std::memcpy(buf_ + used_, data, len);
    used_ += len;
  }

  int fd_;
  std::size_t used_ = 0;
  char buf_[1 << 16];
};

/// Runs in the child: reads the file with libtracecmd and never returns.
[[noreturn]] void read_in_child(const char* path, pid_t parent, int out_fd, int err_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // an import that is given up on takes the child with it
  if (::getppid() != parent) ::_exit(4);
  ::dup2(err_fd, STDERR_FILENO);  // glibc's and the sanitizers' last words, for the report
  static FrameWriter out(out_fd);
  int cpus = 0;
  char err[256] = {};
  const auto send_line = [](void* ctx, const char* line, std::size_t len) {
    static_cast<FrameWriter*>(ctx)->frame(FrameKind::line, line, len);
  };
  if (kmb_tracedat_read(path, send_line, &out, &cpus, err, sizeof err) == 0) {
    out.frame(FrameKind::done, &cpus, sizeof cpus);
  } else {
    out.frame(FrameKind::error, err, std::strlen(err));
  }
  out.flush();
  ::_exit(0);
}

/// The first line the child wrote to its stderr, without a sanitizer's "==pid==" prefix.
std::string first_words(int err_fd) {
  char buf[1024];
  const ssize_t n = ::pread(err_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return {};
  std::string_view s(buf, static_cast<std::size_t>(n));
  while (!s.empty() && (s.front() == '\n' || s.front() == ' ')) s.remove_prefix(1);
  s = s.substr(0, s.find('\n'));
  if (s.starts_with("==")) {
    const std::size_t end = s.find("==", 2);
    if (end != std::string_view::npos) s.remove_prefix(end + 2);
  }
  return std::string(s.substr(0, 200));
}

/// Why the child ended without its last frame.
std::string death(int status, int err_fd) {
  std::string why = WIFSIGNALED(status) ? "libtracecmd was killed by signal " + std::to_string(WTERMSIG(status)) +
                                              " (" + ::strsignal(WTERMSIG(status)) + ")"
                                        : "libtracecmd stopped with exit status " + std::to_string(WEXITSTATUS(status));
  why += " reading this file: it is damaged or not a trace-cmd trace.dat";
  const std::string said = first_words(err_fd);
  if (!said.empty()) why += " (it said: " + said + ")";
  return why;
}

}  // namespace

ops::Trace import_tracedat(const std::string& path, const std::string& name, const ImportOptions& options) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw RunError(std::string("cannot make a pipe: ") + std::strerror(errno));
  Fd from_child(p[0]);
  Fd to_parent(p[1]);
  Fd child_err(::memfd_create("kmbench-libtracecmd-stderr", MFD_CLOEXEC));
  if (child_err.get() < 0) throw RunError(std::string("cannot make a memfd: ") + std::strerror(errno));

  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) throw RunError(std::string("cannot fork the trace.dat reader: ") + std::strerror(errno));
  if (child == 0) read_in_child(path.c_str(), parent, to_parent.get(), child_err.get());
  to_parent.reset();

  // Frames are parsed as they arrive; `pending` holds a frame cut by a read.
  std::string text;
  std::string pending;
  int cpus = 0;
  bool finished = false;
  bool failed = false;
  std::string error;
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(from_child.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(chunk, static_cast<std::size_t>(n));
    std::size_t at = 0;
    while (pending.size() - at >= sizeof(FrameHead)) {
      FrameHead head;
      std::memcpy(&head, pending.data() + at, sizeof head);
      if (pending.size() - at - sizeof head < head.len) break;
      const char* body = pending.data() + at + sizeof head;
      switch (head.kind) {
        case FrameKind::line:
          text.append(body, head.len);
          text.push_back('\n');
          break;
        case FrameKind::done:
          std::memcpy(&cpus, body, std::min<std::size_t>(head.len, sizeof cpus));
          finished = true;
          break;
        case FrameKind::error:
          error.assign(body, head.len);
          finished = failed = true;
          break;
      }
      at += sizeof head + head.len;
    }
    pending.erase(0, at);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!finished) throw InputError(name, death(status, child_err.get()));
  if (failed) throw InputError(name, error);

  text.insert(0, "cpus=" + std::to_string(cpus > 0 ? cpus : 1) + "\n");
  ops::Trace t = import_ftrace(text, name, options);
  t.header.capture_tool = "trace-cmd trace.dat (libtracecmd)";
  return t;
}

}  // namespace kmbench::trace
