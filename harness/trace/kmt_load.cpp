// Reading a .kmt file: mapped whole, read only, and decoded in place.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/errors.h"
#include "harness/trace/trace.h"

namespace kmbench::trace {
namespace {

/// A read-only memory mapping of a whole file.
class Mapping {
 public:
  explicit Mapping(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw InputError(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw InputError(path, "not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (data_ == MAP_FAILED) {
        ::close(fd_);
        throw InputError(path, std::string("cannot map: ") + std::strerror(errno));
      }
    }
  }
  ~Mapping() {
    if (data_ && data_ != MAP_FAILED) ::munmap(data_, size_);
    ::close(fd_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  const char* data() const { return static_cast<const char*>(data_); }
  std::size_t size() const { return size_; }

 private:
  int fd_ = -1;
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace

ops::Trace load(const std::string& path) {
  Mapping m(path);
  return decode(m.data(), m.size(), path);
}

ops::Trace load(const std::string& path, const OpVisitor& visit) {
  Mapping m(path);
  return decode(m.data(), m.size(), path, visit);
}

}  // namespace kmbench::trace
