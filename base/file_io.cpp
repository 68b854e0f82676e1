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

AtomicFile::AtomicFile(std::string path, unsigned mode) : path_(std::move(path)), tmp_(path_ + ".tmp.XXXXXX") {
  fd_ = ::mkostemp(tmp_.data(), O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    tmp_.clear();
    fail("cannot create a temporary file beside it", err);
  }
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
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename " + tmp_ + " over it", errno);
  tmp_.clear();
}

void AtomicFile::fail(const std::string& what, int err) {
  throw RunError(path_ + ": " + what + ": " + std::strerror(err));
}

void write_file_atomic(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

}  // namespace kmbench::base
