// Reading an input: a plain file in pieces or memory-mapped, stdin whole; gzip,
// xz and zstd data (recognised by magic bytes, not by name) is decompressed as
// it is read, or whole when asked for whole.
#include <fcntl.h>
#include <lzma.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "base/errors.h"
#include "harness/trace/trace.h"

namespace kmbench::trace {
namespace {

constexpr std::size_t kChunk = 1 << 20;

bool starts_with(std::string_view s, std::string_view magic) { return s.substr(0, magic.size()) == magic; }

/// Up to n bytes from fd into dst, fewer only at its end.
std::size_t read_full(int fd, char* dst, std::size_t n, const std::string& name) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::read(fd, dst + done, n - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw InputError(name, std::string("cannot read: ") + std::strerror(errno));
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

std::string read_fd(int fd, const std::string& name) {
  std::string out;
  for (;;) {
    const std::size_t at = out.size();
    out.resize(at + kChunk);
    const std::size_t got = read_full(fd, out.data() + at, kChunk, name);
    out.resize(at + got);
    if (got < kChunk) return out;
  }
}

}  // namespace

/// Decompresses front to back, a piece per read(). Errors name the byte offset
/// in the compressed input.
class Decompressor {
 public:
  Decompressor(std::string_view in, const std::string& name) : in_(in), name_(name) {}
  virtual ~Decompressor() = default;
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
  /// Up to n decompressed bytes into dst; fewer only at the end, 0 after it.
  /// Bad data is reported once the bytes decoded before it have been read.
  std::size_t read(char* dst, std::size_t n) {
    if (!error_.empty()) throw InputError(name_, error_);
    return decode(dst, n);
  }
  /// Bytes of the compressed input the decoder is done with.
  virtual std::size_t consumed() const = 0;

 protected:
  virtual std::size_t decode(char* dst, std::size_t n) = 0;
  /// Ends decoding at bad data: throws now if this read produced nothing.
  std::size_t stop(std::size_t offset, const std::string& what, std::size_t produced) {
    error_ = "byte offset " + std::to_string(offset) + ": " + what;
    done_ = true;
    if (produced == 0) throw InputError(name_, error_);
    return produced;
  }
  std::string_view in_;
  const std::string& name_;
  bool done_ = false;

 private:
  std::string error_;
};

namespace {

class GzipDecoder final : public Decompressor {
 public:
  GzipDecoder(std::string_view in, const std::string& name) : Decompressor(in, name) {
    if (inflateInit2(&z_, 15 + 32) != Z_OK) throw RunError("zlib: inflateInit2 failed");
  }
  ~GzipDecoder() override { inflateEnd(&z_); }
  std::size_t decode(char* dst, std::size_t n) override {
    n = std::min<std::size_t>(n, kFeed);
    z_.next_out = reinterpret_cast<Bytef*>(dst);
    z_.avail_out = static_cast<uInt>(n);
    while (z_.avail_out > 0 && !done_) {
      if (z_.avail_in == 0 && fed_ < in_.size()) {  // zlib counts input in 32 bits
        const std::size_t more = std::min(in_.size() - fed_, kFeed);
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in_.data() + fed_));
        z_.avail_in = static_cast<uInt>(more);
        fed_ += more;
      }
      const int r = inflate(&z_, Z_NO_FLUSH);
      const bool input_gone = z_.avail_in == 0 && fed_ == in_.size();
      if (r == Z_STREAM_END) {
        if (input_gone) {
          done_ = true;
        } else {
          inflateReset(&z_);  // concatenated gzip members
        }
      } else if (r == Z_BUF_ERROR && input_gone) {
        return stop(in_.size(), "truncated gzip data", n - z_.avail_out);
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        return stop(fed_ - z_.avail_in, "corrupt gzip data", n - z_.avail_out);
      }
    }
    return n - z_.avail_out;
  }
  std::size_t consumed() const override { return fed_ - z_.avail_in; }

 private:
  static constexpr std::size_t kFeed = std::size_t{1} << 30;
  z_stream z_{};
  std::size_t fed_ = 0;
};

class XzDecoder final : public Decompressor {
 public:
  XzDecoder(std::string_view in, const std::string& name) : Decompressor(in, name) {
    if (lzma_stream_decoder(&s_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
      throw RunError("liblzma: decoder init failed");
    }
    s_.next_in = reinterpret_cast<const std::uint8_t*>(in.data());
    s_.avail_in = in.size();
  }
  ~XzDecoder() override { lzma_end(&s_); }
  std::size_t decode(char* dst, std::size_t n) override {
    s_.next_out = reinterpret_cast<std::uint8_t*>(dst);
    s_.avail_out = n;
    while (s_.avail_out > 0 && !done_) {
      const lzma_ret r = lzma_code(&s_, LZMA_FINISH);
      if (r == LZMA_STREAM_END) {
        done_ = true;
      } else if (r != LZMA_OK) {
        return stop(in_.size() - s_.avail_in, r == LZMA_BUF_ERROR ? "truncated xz data" : "corrupt xz data",
                    n - s_.avail_out);
      }
    }
    return n - s_.avail_out;
  }
  std::size_t consumed() const override { return in_.size() - s_.avail_in; }

 private:
  lzma_stream s_ = LZMA_STREAM_INIT;
};

class ZstdDecoder final : public Decompressor {
 public:
  ZstdDecoder(std::string_view in, const std::string& name) : Decompressor(in, name), d_(ZSTD_createDStream()) {
    if (!d_) throw RunError("libzstd: cannot create a decoder");
    ib_ = ZSTD_inBuffer{in.data(), in.size(), 0};
  }
  ~ZstdDecoder() override { ZSTD_freeDStream(d_); }
  std::size_t decode(char* dst, std::size_t n) override {
    ZSTD_outBuffer ob{dst, n, 0};
    while (ob.pos < ob.size && !done_) {
      const std::size_t before = ob.pos;
      const std::size_t left = ZSTD_decompressStream(d_, &ob, &ib_);
      if (ZSTD_isError(left)) {
        return stop(ib_.pos, std::string("corrupt zstd data (") + ZSTD_getErrorName(left) + ")", ob.pos);
      }
      if (ib_.pos == ib_.size) {
        if (left == 0) {
          done_ = true;  // the last frame is decoded and flushed
        } else if (ob.pos == before) {
          return stop(in_.size(), "truncated zstd data", ob.pos);
        }
      }
    }
    return ob.pos;
  }
  std::size_t consumed() const override { return ib_.pos; }

 private:
  ZSTD_DStream* d_;
  ZSTD_inBuffer ib_{};
};

enum class Compression { none, gzip, xz, zstd };

Compression compression_of(std::string_view magic) {
  if (starts_with(magic, "\x1f\x8b")) return Compression::gzip;
  if (starts_with(magic, std::string_view("\xfd" "7zXZ\0", 6))) return Compression::xz;
  if (starts_with(magic, "\x28\xb5\x2f\xfd")) return Compression::zstd;
  return Compression::none;
}

/// The decoded size the compressed data says it has, without decoding it; 0
/// when it does not say. A zstd frame may carry its content size (the first
/// frame's is taken: the zstd tool writes one frame); gzip's last four bytes
/// are the size modulo 4 GiB. Either is taken when at least the compressed
/// size, as text's is; xz's index is not read.
std::uint64_t declared_size(Compression c, std::string_view in) {
  if (c == Compression::zstd) {
    const unsigned long long n = ZSTD_getFrameContentSize(in.data(), in.size());
    return n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR || n < in.size() ? 0 : n;
  }
  if (c == Compression::gzip && in.size() >= 18) {
    std::uint64_t isize = 0;
    for (int i = 0; i < 4; ++i) isize |= std::uint64_t{static_cast<unsigned char>(in[in.size() - 4 + i])} << (8 * i);
    return isize >= in.size() ? isize : 0;
  }
  return 0;
}

std::unique_ptr<Decompressor> decoder_for(Compression c, std::string_view in, const std::string& name) {
  switch (c) {
    case Compression::gzip: return std::make_unique<GzipDecoder>(in, name);
    case Compression::xz: return std::make_unique<XzDecoder>(in, name);
    case Compression::zstd: return std::make_unique<ZstdDecoder>(in, name);
    case Compression::none: break;
  }
  return nullptr;
}

}  // namespace

Input::Input(const std::string& path) : name_(path == "-" ? "(stdin)" : path) {
  if (path == "-") {
    open_pipe(0);
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
      raw_size_ = static_cast<std::uint64_t>(st.st_size);
    } else {
      owns_pipe_ = true;  // a pipe or device
      open_pipe(fd);
    }
  }
  if (pipe_ >= 0) return;
  try {
    char magic[6];
    const std::size_t got = read_raw(0, magic, sizeof magic);
    const Compression c = compression_of(std::string_view(magic, got));
    if (c == Compression::none) return;
    compressed_ = true;
    stream_ = decoder_for(c, raw_bytes(), name_);
    declared_size_ = declared_size(c, raw_bytes());
    head_.resize(kHead);  // the first bytes, for format detection
    head_.resize(fill(*stream_, head_.data(), kHead));  // stops short of bad data
  } catch (...) {
    release();
    throw;
  }
}

Input::~Input() {
  release();
  if (owns_pipe_ && pipe_ >= 0) ::close(pipe_);
}

/// A pipe (or stdin, or a device) is read once, front to back: its first
/// bytes tell the format; plain text is then read as the importer asks for
/// it, never held whole. A compressed one is read whole (its decoders take
/// the compressed bytes in memory) and decoded as a file's is.
void Input::open_pipe(int fd) {
  std::string head(kHead, '\0');
  try {
    head.resize(read_full(fd, head.data(), head.size(), name_));
    if (compression_of(std::string_view(head).substr(0, 6)) == Compression::none) {
      head_ = std::move(head);
      pipe_ = fd;
      return;
    }
    raw_ = std::move(head) + read_fd(fd, name_);
  } catch (...) {
    if (owns_pipe_) ::close(fd);
    throw;
  }
  if (owns_pipe_) ::close(fd);
  owns_pipe_ = false;
  raw_size_ = raw_.size();
}

void Input::release() {
  stream_.reset();
  if (map_) ::munmap(map_, raw_size_);
  map_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::size_t Input::fill(Decompressor& d, char* dst, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    std::size_t got;
    try {
      got = d.read(dst + done, n - done);
    } catch (const InputError&) {
      if (done == 0) throw;
      return done;  // the error comes again with the next read
    }
    if (got == 0) break;
    done += got;
  }
  return done;
}

std::string_view Input::raw_bytes() const {
  if (fd_ < 0) return raw_;
  if (!map_ && raw_size_ > 0) {  // a file, mapped on first use; a compressed one is decoded as it faults in
    void* m = ::mmap(nullptr, raw_size_, PROT_READ, compressed_ ? MAP_PRIVATE : MAP_PRIVATE | MAP_POPULATE, fd_, 0);
    if (m == MAP_FAILED) throw InputError(name_, std::string("cannot map: ") + std::strerror(errno));
    ::madvise(m, raw_size_, MADV_SEQUENTIAL);
    map_ = m;
  }
  return {static_cast<const char*>(map_), raw_size_};
}

std::size_t Input::read_raw(std::uint64_t offset, char* dst, std::size_t n) const {
  if (fd_ < 0) {
    if (offset >= raw_.size()) return 0;
    n = std::min<std::size_t>(n, raw_.size() - offset);
    std::memcpy(dst, raw_.data() + offset, n);
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

std::string_view Input::bytes() const {
  if (pipe_ >= 0) {
    if (!whole_) {
      if (piped_ > 0) throw std::logic_error(name_ + ": a piped input was asked for whole after being read in part");
      plain_ = head_ + read_fd(pipe_, name_);
      whole_ = true;
    }
    return plain_;
  }
  if (!compressed_) return raw_bytes();
  if (!whole_) {  // decoded again from the start: the stream may be part way through
    const auto d = decoder_for(compression_of(raw_bytes().substr(0, 6)), raw_bytes(), name_);
    std::string out;
    for (;;) {
      const std::size_t at = out.size();
      out.resize(at + kChunk);
      const std::size_t got = fill(*d, out.data() + at, kChunk);
      out.resize(at + got);
      if (got == 0) break;  // or the next fill throws at bad data
    }
    plain_ = std::move(out);
    whole_ = true;
  }
  return plain_;
}

std::uint64_t Input::size() const { return compressed_ || pipe_ >= 0 ? bytes().size() : raw_size_; }

std::uint64_t Input::size_hint() const {
  if (pipe_ >= 0) return whole_ ? plain_.size() : kPipeGuess;
  if (!compressed_) return raw_size_;
  if (whole_) return plain_.size();
  return declared_size_ ? declared_size_ : raw_size_ * 8;
}

std::string_view Input::head(std::size_t n) const {
  if (pipe_ >= 0) return whole_ || n > kHead ? bytes().substr(0, n) : std::string_view(head_).substr(0, n);
  if (compressed_) {  // head_ holds all there is up to kHead, or up to bad data
    return whole_ || n > kHead ? bytes().substr(0, n) : std::string_view(head_).substr(0, n);
  }
  if (fd_ < 0 || map_) return raw_bytes().substr(0, n);
  if (head_.size() < std::min<std::uint64_t>(n, raw_size_)) {
    head_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(n, raw_size_)));
    head_.resize(read_raw(0, head_.data(), head_.size()));
  }
  return std::string_view(head_).substr(0, n);
}

std::size_t Input::read(std::uint64_t offset, char* dst, std::size_t n) const {
  if (pipe_ >= 0 && !whole_) {
    if (offset < head_.size()) {
      n = std::min<std::size_t>(n, head_.size() - static_cast<std::size_t>(offset));
      std::memcpy(dst, head_.data() + offset, n);
      return n;
    }
    if (offset != head_.size() + piped_) {
      throw std::logic_error(name_ + ": a piped input is read front to back, once");
    }
    const std::size_t got = read_full(pipe_, dst, n, name_);
    piped_ += got;
    return got;
  }
  if (pipe_ >= 0) {
    if (offset >= plain_.size()) return 0;
    n = std::min<std::size_t>(n, plain_.size() - static_cast<std::size_t>(offset));
    std::memcpy(dst, plain_.data() + offset, n);
    return n;
  }
  if (!compressed_) return read_raw(offset, dst, n);
  if (!whole_) {
    if (offset < head_.size()) {
      n = std::min<std::size_t>(n, head_.size() - static_cast<std::size_t>(offset));
      std::memcpy(dst, head_.data() + offset, n);
      return n;
    }
    if (offset == head_.size() + streamed_) {  // the next bytes: decoded straight into dst
      const std::size_t got = fill(*stream_, dst, n);
      streamed_ += got;
      release_consumed();
      return got;
    }
  }
  const std::string_view all = bytes();
  if (offset >= all.size()) return 0;
  n = std::min<std::size_t>(n, all.size() - static_cast<std::size_t>(offset));
  std::memcpy(dst, all.data() + offset, n);
  return n;
}

/// Gives back the pages of a mapped compressed file that the stream has
/// decoded, a MiB at a time: memory holds the part being decoded, not
/// the file. They are the file's own pages, read again if decoded again.
void Input::release_consumed() const {
  if (!map_) return;
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t done = stream_->consumed() / page * page;
  if (done < released_ + kReleaseStep) return;
  ::madvise(static_cast<char*>(map_) + released_, done - released_, MADV_DONTNEED);
  released_ = done;
}

}  // namespace kmbench::trace
