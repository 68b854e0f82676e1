#include "base/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/errors.h"

namespace kmbench::base {

bool write_all(int fd, const void* data, std::size_t n) noexcept {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    if (w == 0) {
      errno = EIO;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

namespace {

/// The file a write to `path` lands in: `path` itself, or the end of the
/// chain of symbolic links it starts (which may not exist yet).
std::string resolve_links(const std::string& path) {
  std::string at = path;
  for (int hops = 0; hops < 40; ++hops) {  // as the kernel's ELOOP limit
    struct stat st;
    if (::lstat(at.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return at;
    std::string target(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 4096), '\0');
    const ssize_t n = ::readlink(at.c_str(), target.data(), target.size());
    if (n < 0) return at;
    target.resize(static_cast<std::size_t>(n));
    if (target.empty() || target[0] != '/') {  // relative to the link's own directory
      const std::size_t slash = at.rfind('/');
      if (slash != std::string::npos) target = at.substr(0, slash + 1) + target;
    }
    at = target;
  }
  return at;
}

}  // namespace

AtomicFile::AtomicFile(std::string path, unsigned mode) : path_(std::move(path)), dest_(path_) {
  struct stat st;
  const bool exists = ::stat(path_.c_str(), &st) == 0;  // through links, /dev/stdout's to a pipe among them
  if (exists && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) fail("cannot open it for writing", errno);
    return;
  }
  dest_ = resolve_links(path_);
  tmp_ = dest_ + ".tmp.XXXXXX";
  fd_ = ::mkostemp(tmp_.data(), O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    tmp_.clear();
    if (err == ENOENT || err == ENOTDIR) {  // the path's mistake, not the machine's
      const std::size_t slash = dest_.rfind('/');
      const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : dest_.substr(0, slash);
      throw UsageError(path_ + ": cannot write it: directory " + dir + " does not exist (or is not a directory)");
    }
    fail("cannot create a temporary file beside it", err);
  }
  if (exists && S_ISREG(st.st_mode)) mode = st.st_mode & 07777;
  if (::fchmod(fd_, mode) != 0) fail("cannot set its mode", errno);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(std::string_view bytes) {
  if (!write_all(fd_, bytes.data(), bytes.size())) fail("cannot write", errno);
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0 && errno != EINVAL) fail("cannot flush it to the disk", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("cannot close", errno);
  if (tmp_.empty()) return;  // written straight into a stream
  if (::rename(tmp_.c_str(), dest_.c_str()) != 0) fail("cannot rename " + tmp_ + " over it", errno);
  tmp_.clear();
}

void AtomicFile::fail(const std::string& what, int err) {
  throw RunError(path_ + ": " + what + ": " + std::strerror(err));
}

void refuse_output_over_input(const std::string& output, const std::string& input) {
  if (output == "-" || input == "-") return;
  struct stat out, in;
  if (::stat(output.c_str(), &out) != 0 || ::stat(input.c_str(), &in) != 0) return;
  if (out.st_dev == in.st_dev && out.st_ino == in.st_ino && S_ISREG(out.st_mode)) {
    throw UsageError("output " + output + " is the input " + input + ": writing it would destroy what is read");
  }
}

void write_file_atomic(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

}  // namespace kmbench::base
