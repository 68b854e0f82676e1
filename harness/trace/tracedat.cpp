// trace-cmd's binary trace.dat: each kmem/dma record is formatted as a
// `trace-cmd report` line (tracedat_reader.c) and the ftrace text importer
// reads those as they come, so both paths apply the same rules and the text
// is never held whole. Version 7 files are read by kmbench's own reader
// (tracedat_file.c), the others by libtracecmd.
//
// The reading runs in a child process that writes the lines into a pipe, so
// formatting and parsing overlap. It also keeps kmbench safe from
// libtracecmd, which trusts the file it reads: some damaged files make it free
// a buffer twice (3.1.6's tracecmd_alloc_fd, for one). A file that kills the
// child is bad input, reported with what the child last said, and kmbench goes on.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include "base/errors.h"
#include "base/file_io.h"
#include "harness/trace/trace.h"
#include "harness/trace/tracedat_reader.h"

namespace kmbench::trace {
namespace {

/// The child's exit status when libtracecmd refused the file; its message
/// follows kErrorMark on the child's stderr.
constexpr int kRefused = 5;
constexpr std::string_view kErrorMark = "kmbench-tracedat-error: ";
/// On success, the child says which reader read the file after this.
constexpr std::string_view kReaderMark = "kmbench-tracedat-reader: ";

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

/// The child's side: lines gathered into pipe-sized writes.
class LineWriter {
 public:
  explicit LineWriter(int fd) : fd_(fd) {}

  void line(const char* data, std::size_t len) {
    if (used_ + len + 1 > sizeof buf_) flush();
    if (len + 1 > sizeof buf_) {
      if (!base::write_all(fd_, data, len) || !base::write_all(fd_, "\n", 1)) ::_exit(3);
      return;
    }
    std::memcpy(buf_ + used_, data, len);
    buf_[used_ + len] = '\n';
    used_ += len + 1;
  }

  void flush() {
    if (!base::write_all(fd_, buf_, used_)) ::_exit(3);
    used_ = 0;
  }

 private:
  int fd_;
  std::size_t used_ = 0;
  char buf_[1 << 16];
};

/// Runs in the child: reads the file with libtracecmd and never returns.
[[noreturn]] void read_in_child(const char* path, pid_t parent, int out_fd, int err_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // an import that is given up on takes the child with it
  if (::getppid() != parent) ::_exit(4);
  ::dup2(err_fd, STDERR_FILENO);  // glibc's and the sanitizers' last words, for the report
  static LineWriter out(out_fd);
  int cpus = 0;
  char err[256] = {};
  const auto send_line = [](void* ctx, const char* line, std::size_t len) {
    static_cast<LineWriter*>(ctx)->line(line, len);
  };
  int reader = KMB_TRACEDAT_ANY;
  const int r = kmb_tracedat_read(path, send_line, &out, &cpus, &reader, err, sizeof err);
  out.flush();
  if (r == 0) {
    const std::string said = std::string(kReaderMark) + (reader == KMB_TRACEDAT_OWN ? "own" : "libtracecmd") + "\n";
    (void)!::write(STDERR_FILENO, said.data(), said.size());
    ::_exit(0);
  }
  const std::string said = std::string(kErrorMark) + err + "\n";
  (void)!::write(STDERR_FILENO, said.data(), said.size());
  ::_exit(kRefused);
}

/// What the child wrote to its stderr (the start of it).
std::string child_said(int err_fd) {
  char buf[4096];
  const ssize_t n = ::pread(err_fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

/// The first line the child wrote to its stderr, without a sanitizer's "==pid==" prefix.
std::string first_words(const std::string& said) {
  std::string_view s(said);
  while (!s.empty() && (s.front() == '\n' || s.front() == ' ')) s.remove_prefix(1);
  s = s.substr(0, s.find('\n'));
  if (s.starts_with("==")) {
    const std::size_t end = s.find("==", 2);
    if (end != std::string_view::npos) s.remove_prefix(end + 2);
  }
  return std::string(s.substr(0, 200));
}

/// Why the child ended as it did: libtracecmd's own message when it refused
/// the file, else how it died; "" when it finished.
std::string failure(int status, int err_fd) {
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  const std::string said = child_said(err_fd);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kRefused) {
    const std::size_t at = said.find(kErrorMark);
    if (at != std::string::npos) {
      const std::size_t from = at + kErrorMark.size();
      return said.substr(from, said.find('\n', from) - from);
    }
  }
  std::string why = WIFSIGNALED(status) ? "the trace.dat reader (libtraceevent, or libtracecmd) was killed by signal " +
                                              std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) +
                                              ")"
                                        : "the trace.dat reader stopped with exit status " +
                                              std::to_string(WEXITSTATUS(status));
  why += " reading this file: it is damaged or not a trace-cmd trace.dat";
  const std::string words = first_words(said);
  if (!words.empty()) why += " (it said: " + words + ")";
  return why;
}

int reap(pid_t child) {
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

/// The reading child takes a core of its own: by default the lines are parsed
/// by one thread a core less two (the child's and the merging thread's), and by
/// the merging thread alone on two cores. Four threads on two cores took 1.3
/// times as long as two on the 2.3 GB capture (docs/kmt-format.md).
ImportOptions with_parsing_threads(const ImportOptions& options) {
  ImportOptions o = options;
  if (o.threads == 0) {
    const unsigned cores = std::thread::hardware_concurrency();
    o.threads = cores > 3 ? cores - 2 : 1;
  }
  return o;
}

/// KMBENCH_TRACEDAT_READER: auto (the own reader, else libtracecmd), own or libtracecmd.
int chosen_reader() {
  const char* env = std::getenv("KMBENCH_TRACEDAT_READER");
  const std::string_view v = env != nullptr ? env : "";
  if (v.empty() || v == "auto") return KMB_TRACEDAT_ANY;
  if (v == "own") return KMB_TRACEDAT_OWN;
  if (v == "libtracecmd") return KMB_TRACEDAT_LIBTRACECMD;
  throw UsageError("KMBENCH_TRACEDAT_READER='" + std::string(v) + "': auto, own or libtracecmd");
}

}  // namespace

ops::Trace import_tracedat(const std::string& path, const std::string& name, const ImportOptions& options) {
  kmb_tracedat_set_reader(chosen_reader());  // the child reads with it
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw RunError(std::string("cannot make a pipe: ") + std::strerror(errno));
  Fd from_child(p[0]);
  Fd to_parent(p[1]);
  Fd child_err(::memfd_create("kmbench-libtracecmd-stderr", MFD_CLOEXEC));
  if (child_err.get() < 0) throw RunError(std::string("cannot make a memfd: ") + std::strerror(errno));
  ::fcntl(p[0], F_SETPIPE_SZ, 1 << 20);  // fewer switches between the child and the reading thread

  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) throw RunError(std::string("cannot fork the trace.dat reader: ") + std::strerror(errno));
  if (child == 0) read_in_child(path.c_str(), parent, to_parent.get(), child_err.get());
  to_parent.reset();

  const auto read_lines = [fd = from_child.get(), &name](char* dst, std::size_t n) -> std::size_t {
    for (;;) {
      const ssize_t got = ::read(fd, dst, n);
      if (got >= 0) return static_cast<std::size_t>(got);
      if (errno != EINTR) throw InputError(name, std::string("cannot read libtracecmd's lines: ") + std::strerror(errno));
    }
  };
  // The text's size is not known before it is read: a compressed trace.dat
  // (version 7) holds about a thirtieth of it, an uncompressed one a third.
  struct stat st {};
  const std::uint64_t file_bytes = ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  ops::Trace t;
  try {
    t = import_ftrace(read_lines, file_bytes * 16, name, with_parsing_threads(options));
  } catch (const InputError&) {
    // A child that died mid-line leaves a cut line: its death is the news.
    ::kill(child, SIGKILL);
    const int status = reap(child);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      if (std::string why = failure(status, child_err.get()); !why.empty()) throw InputError(name, why);
    }
    throw;
  }
  // An import that stopped early (--keep-partial) may have left the child
  // writing; one that read to the end met the pipe's end, which the child's
  // exit closed, and the kill changes nothing.
  const bool partial = t.header.metadata.contains("import.error");
  if (partial) ::kill(child, SIGKILL);
  const int status = reap(child);
  if (!(partial && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
    if (std::string why = failure(status, child_err.get()); !why.empty()) {
      if (!partial) throw InputError(name, why);
      t.header.metadata["import.error"] = name + ": " + why;  // what cut the lines short
    }
  }
  const std::string said = child_said(child_err.get());
  const bool own = said.find(std::string(kReaderMark) + "own") != std::string::npos;
  t.header.capture_tool = own ? "trace-cmd trace.dat" : "trace-cmd trace.dat (libtracecmd)";
  return t;
}

}  // namespace kmbench::trace
