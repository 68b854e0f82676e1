// Reading an input: a plain file in pieces or memory-mapped; stdin whole; gzip,
// xz and zstd data (recognised by magic bytes, not by name) is decompressed whole.
#include <fcntl.h>
#include <lzma.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>

#include "allocators/errors.h"
#include "harness/trace/trace.h"

namespace kmbench::trace {
namespace {

constexpr std::size_t kChunk = 1 << 20;

bool starts_with(std::string_view s, std::string_view magic) { return s.substr(0, magic.size()) == magic; }

std::string read_fd(int fd, const std::string& name) {
  std::string out;
  for (;;) {
    const std::size_t at = out.size();
    out.resize(at + kChunk);
    const ssize_t n = ::read(fd, out.data() + at, kChunk);
    if (n < 0 && errno == EINTR) {
      out.resize(at);
      continue;
    }
    if (n < 0) throw InputError(name, std::string("cannot read: ") + std::strerror(errno));
    out.resize(at + static_cast<std::size_t>(n));
    if (n == 0) return out;
  }
}

std::string gunzip(std::string_view in, const std::string& name) {
  std::string out;
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) throw RunError("zlib: inflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size(), 1u << 30));
  std::size_t fed = z.avail_in;
  for (;;) {
    const std::size_t at = out.size();
    out.resize(at + kChunk);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + at);
    z.avail_out = kChunk;
    const int r = inflate(&z, Z_NO_FLUSH);
    out.resize(at + kChunk - z.avail_out);
    if (z.avail_in == 0 && fed < in.size()) {
      const std::size_t more = std::min<std::size_t>(in.size() - fed, 1u << 30);
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + fed));
      z.avail_in = static_cast<uInt>(more);
      fed += more;
    }
    if (r == Z_STREAM_END) {
      if (z.avail_in == 0 && fed == in.size()) break;
      inflateReset(&z);  // concatenated gzip members
      continue;
    }
    if (r != Z_OK && r != Z_BUF_ERROR) {
      const std::size_t off = fed - z.avail_in;
      inflateEnd(&z);
      throw InputError(name, "byte offset " + std::to_string(off) + ": corrupt gzip data");
    }
    if (r == Z_BUF_ERROR && z.avail_in == 0 && fed == in.size()) {
      inflateEnd(&z);
      throw InputError(name, "byte offset " + std::to_string(in.size()) + ": truncated gzip data");
    }
  }
  inflateEnd(&z);
  return out;
}

std::string unxz(std::string_view in, const std::string& name) {
  std::string out;
  lzma_stream s = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&s, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) throw RunError("liblzma: decoder init failed");
  s.next_in = reinterpret_cast<const std::uint8_t*>(in.data());
  s.avail_in = in.size();
  lzma_action action = LZMA_FINISH;
  for (;;) {
    const std::size_t at = out.size();
    out.resize(at + kChunk);
    s.next_out = reinterpret_cast<std::uint8_t*>(out.data() + at);
    s.avail_out = kChunk;
    const lzma_ret r = lzma_code(&s, action);
    out.resize(at + kChunk - s.avail_out);
    if (r == LZMA_STREAM_END) break;
    if (r != LZMA_OK) {
      const std::size_t off = in.size() - s.avail_in;
      lzma_end(&s);
      throw InputError(name, "byte offset " + std::to_string(off) +
                                 (r == LZMA_BUF_ERROR ? ": truncated xz data" : ": corrupt xz data"));
    }
  }
  lzma_end(&s);
  return out;
}

std::string unzstd(std::string_view in, const std::string& name) {
  std::string out;
  ZSTD_DStream* d = ZSTD_createDStream();
  if (!d) throw RunError("libzstd: cannot create a decoder");
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::size_t last = 1;
  while (ib.pos < ib.size || last != 0) {
    const std::size_t at = out.size();
    out.resize(at + kChunk);
    ZSTD_outBuffer ob{out.data() + at, kChunk, 0};
    last = ZSTD_decompressStream(d, &ob, &ib);
    out.resize(at + ob.pos);
    if (ZSTD_isError(last)) {
      ZSTD_freeDStream(d);
      throw InputError(name, "byte offset " + std::to_string(ib.pos) + ": corrupt zstd data (" +
                                 ZSTD_getErrorName(last) + ")");
    }
    if (ib.pos == ib.size && last != 0 && ob.pos == 0) {
      ZSTD_freeDStream(d);
      throw InputError(name, "byte offset " + std::to_string(in.size()) + ": truncated zstd data");
    }
  }
  ZSTD_freeDStream(d);
  return out;
}

}  // namespace

Input::Input(const std::string& path) : name_(path == "-" ? "(stdin)" : path) {
  if (path == "-") {
    owned_ = read_fd(0, name_);
    data_ = owned_.data();
    size_ = owned_.size();
  } else {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw InputError(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw InputError(path, std::string("cannot stat: ") + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      throw InputError(path, "is a directory");
    }
    if (S_ISREG(st.st_mode)) {
      fd_ = fd;
      size_ = static_cast<std::size_t>(st.st_size);
    } else {
      owned_ = read_fd(fd, name_);  // a pipe or device
      ::close(fd);
      data_ = owned_.data();
      size_ = owned_.size();
    }
  }
  std::string plain;
  try {
    const std::string_view magic = head(6);
    if (starts_with(magic, "\x1f\x8b")) {
      plain = gunzip(bytes(), name_);
    } else if (starts_with(magic, std::string_view("\xfd" "7zXZ\0", 6))) {
      plain = unxz(bytes(), name_);
    } else if (starts_with(magic, "\x28\xb5\x2f\xfd")) {
      plain = unzstd(bytes(), name_);
    } else {
      return;
    }
  } catch (...) {
    release();
    throw;
  }
  release();
  compressed_ = true;
  head_.clear();
  owned_ = std::move(plain);
  data_ = owned_.data();
  size_ = owned_.size();
}

Input::~Input() { release(); }

void Input::release() {
  if (map_) ::munmap(map_, size_);
  map_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string_view Input::bytes() const {
  if (!data_ && size_ > 0) {  // a plain file, mapped on first use
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd_, 0);
    if (m == MAP_FAILED) throw InputError(name_, std::string("cannot map: ") + std::strerror(errno));
    ::madvise(m, size_, MADV_SEQUENTIAL);
    map_ = m;
    data_ = static_cast<const char*>(m);
  }
  return {data_, size_};
}

std::string_view Input::head(std::size_t n) const {
  if (fd_ < 0 || data_) return bytes().substr(0, n);
  if (head_.size() < std::min<std::size_t>(n, size_)) {
    head_.resize(std::min<std::size_t>(n, size_));
    head_.resize(read(0, head_.data(), head_.size()));
  }
  return std::string_view(head_).substr(0, n);
}

std::size_t Input::read(std::uint64_t offset, char* dst, std::size_t n) const {
  if (fd_ < 0) {
    const std::string_view all = bytes();
    if (offset >= all.size()) return 0;
    n = std::min<std::size_t>(n, all.size() - offset);
    std::memcpy(dst, all.data() + offset, n);
    return n;
  }
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      throw InputError(name_, "byte offset " + std::to_string(offset + done) + ": cannot read: " + std::strerror(errno));
    }
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

}  // namespace kmbench::trace
