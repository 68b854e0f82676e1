// Reading an input: a plain file in pieces or memory-mapped, a pipe as it
// comes; gzip, xz and zstd data (recognised by magic bytes, not by name) is
// decompressed as it is read, or whole when asked for whole.
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
#include <utility>

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

/// Where a Decompressor's compressed bytes come from, a piece at a time: a
/// mapped file's (or memory's) all at once, a pipe's as it is read, so that a
/// compressed stream on stdin is never held whole.
class CompressedFeed {
 public:
  virtual ~CompressedFeed() = default;
  /// The next compressed bytes, valid until the next call; empty at the end.
  virtual std::string_view next() = 0;
};

/// Decompresses front to back, a piece per read(). Errors name the byte offset
/// in the compressed input.
class Decompressor {
 public:
  Decompressor(std::unique_ptr<CompressedFeed> feed, const std::string& name) : feed_(std::move(feed)), name_(name) {}
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
  /// Up to `max` compressed bytes the codec has not had yet; empty at the end
  /// of the input. pre: the codec holds none of the bytes it had before (a
  /// pipe's piece is gone once the next is read).
  std::string_view input(std::size_t max) {
    if (!more_input()) return {};
    const std::string_view piece = window_.substr(pos_, max);
    pos_ += piece.size();
    return piece;
  }
  /// Whether input() has more to give, reading the next piece if it must. Same pre.
  bool more_input() {
    while (pos_ == window_.size() && !ended_) {
      base_ += window_.size();
      window_ = feed_->next();
      pos_ = 0;
      ended_ = window_.empty();
    }
    return pos_ < window_.size();
  }
  /// Compressed bytes given to the codec so far.
  std::size_t given() const { return base_ + pos_; }
  /// Ends decoding at bad data: throws now if this read produced nothing.
  std::size_t stop(std::size_t offset, const std::string& what, std::size_t produced) {
    error_ = "byte offset " + std::to_string(offset) + ": " + what;
    done_ = true;
    if (produced == 0) throw InputError(name_, error_);
    return produced;
  }
  bool done_ = false;
  bool ended_ = false;  // the feed gave its last piece

 private:
  std::unique_ptr<CompressedFeed> feed_;
  const std::string& name_;
  std::string_view window_;  // the feed's current piece
  std::size_t pos_ = 0;      // bytes of it given to the codec
  std::size_t base_ = 0;     // compressed bytes before it
  std::string error_;
};

namespace {

/// All the compressed bytes at once (a mapped file, or memory).
class WholeFeed final : public CompressedFeed {
 public:
  explicit WholeFeed(std::string_view all) : all_(all) {}
  std::string_view next() override { return std::exchange(all_, std::string_view()); }

 private:
  std::string_view all_;
};

/// A pipe's compressed bytes: the ones read to recognise it, then a read at a time.
class PipeFeed final : public CompressedFeed {
 public:
  PipeFeed(std::string first, int fd, bool owns_fd, const std::string& name)
      : first_(std::move(first)), fd_(fd), owns_fd_(owns_fd), name_(name) {}
  ~PipeFeed() override {
    if (owns_fd_) ::close(fd_);
  }
  PipeFeed(const PipeFeed&) = delete;
  PipeFeed& operator=(const PipeFeed&) = delete;
  std::string_view next() override {
    if (!buffer_) {  // first the bytes read to recognise the stream, then reads into one buffer
      buffer_ = std::make_unique<char[]>(kChunk);
      return first_;
    }
    for (;;) {
      const ssize_t got = ::read(fd_, buffer_.get(), kChunk);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw InputError(name_, std::string("cannot read: ") + std::strerror(errno));
      return {buffer_.get(), static_cast<std::size_t>(got)};
    }
  }

 private:
  std::string first_;
  std::unique_ptr<char[]> buffer_;
  int fd_;
  bool owns_fd_;
  const std::string& name_;
};

class GzipDecoder final : public Decompressor {
 public:
  GzipDecoder(std::unique_ptr<CompressedFeed> feed, const std::string& name) : Decompressor(std::move(feed), name) {
    if (inflateInit2(&z_, 15 + 32) != Z_OK) throw RunError("zlib: inflateInit2 failed");
  }
  ~GzipDecoder() override { inflateEnd(&z_); }
  std::size_t decode(char* dst, std::size_t n) override {
    n = std::min<std::size_t>(n, kFeed);
    z_.next_out = reinterpret_cast<Bytef*>(dst);
    z_.avail_out = static_cast<uInt>(n);
    while (z_.avail_out > 0 && !done_) {
      if (z_.avail_in == 0) {  // zlib counts input in 32 bits
        const std::string_view more = input(kFeed);
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(more.data()));
        z_.avail_in = static_cast<uInt>(more.size());
      }
      const int r = inflate(&z_, Z_NO_FLUSH);
      const bool input_gone = z_.avail_in == 0 && !more_input();
      if (r == Z_STREAM_END) {
        if (input_gone) {
          done_ = true;
        } else {
          inflateReset(&z_);  // concatenated gzip members
        }
      } else if (r == Z_BUF_ERROR && input_gone) {
        return stop(given(), "truncated gzip data", n - z_.avail_out);
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        return stop(consumed(), "corrupt gzip data", n - z_.avail_out);
      }
    }
    return n - z_.avail_out;
  }
  std::size_t consumed() const override { return given() - z_.avail_in; }

 private:
  static constexpr std::size_t kFeed = std::size_t{1} << 30;
  z_stream z_{};
};

class XzDecoder final : public Decompressor {
 public:
  XzDecoder(std::unique_ptr<CompressedFeed> feed, const std::string& name) : Decompressor(std::move(feed), name) {
    if (lzma_stream_decoder(&s_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
      throw RunError("liblzma: decoder init failed");
    }
  }
  ~XzDecoder() override { lzma_end(&s_); }
  std::size_t decode(char* dst, std::size_t n) override {
    s_.next_out = reinterpret_cast<std::uint8_t*>(dst);
    s_.avail_out = n;
    while (s_.avail_out > 0 && !done_) {
      if (s_.avail_in == 0) {
        const std::string_view more = input(SIZE_MAX);
        s_.next_in = reinterpret_cast<const std::uint8_t*>(more.data());
        s_.avail_in = more.size();
      }
      // Concatenated streams end only where the input does.
      const lzma_ret r = lzma_code(&s_, ended_ ? LZMA_FINISH : LZMA_RUN);
      if (r == LZMA_STREAM_END) {
        done_ = true;
      } else if (r != LZMA_OK) {
        return stop(consumed(), r == LZMA_BUF_ERROR ? "truncated xz data" : "corrupt xz data", n - s_.avail_out);
      }
    }
    return n - s_.avail_out;
  }
  std::size_t consumed() const override { return given() - s_.avail_in; }

 private:
  lzma_stream s_ = LZMA_STREAM_INIT;
};

class ZstdDecoder final : public Decompressor {
 public:
  ZstdDecoder(std::unique_ptr<CompressedFeed> feed, const std::string& name)
      : Decompressor(std::move(feed), name), d_(ZSTD_createDStream()) {
    if (!d_) throw RunError("libzstd: cannot create a decoder");
  }
  ~ZstdDecoder() override { ZSTD_freeDStream(d_); }
  std::size_t decode(char* dst, std::size_t n) override {
    ZSTD_outBuffer ob{dst, n, 0};
    while (ob.pos < ob.size && !done_) {
      if (ib_.pos == ib_.size) {
        const std::string_view more = input(SIZE_MAX);
        ib_ = ZSTD_inBuffer{more.data(), more.size(), 0};
        if (ended_ && left_ == 0) {  // the last frame is decoded and flushed
          done_ = true;
          break;
        }
      }
      const std::size_t before = ob.pos;
      left_ = ZSTD_decompressStream(d_, &ob, &ib_);
      if (ZSTD_isError(left_)) {
        return stop(consumed(), std::string("corrupt zstd data (") + ZSTD_getErrorName(left_) + ")", ob.pos);
      }
      if (ended_ && ob.pos == before) return stop(given(), "truncated zstd data", ob.pos);
    }
    return ob.pos;
  }
  std::size_t consumed() const override { return given() - (ib_.size - ib_.pos); }

 private:
  ZSTD_DStream* d_;
  ZSTD_inBuffer ib_{};
  std::size_t left_ = 1;  // what the last call said a frame still needs; 0: none begun
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

std::unique_ptr<Decompressor> decoder_for(Compression c, std::unique_ptr<CompressedFeed> feed,
                                          const std::string& name) {
  switch (c) {
    case Compression::gzip: return std::make_unique<GzipDecoder>(std::move(feed), name);
    case Compression::xz: return std::make_unique<XzDecoder>(std::move(feed), name);
    case Compression::zstd: return std::make_unique<ZstdDecoder>(std::move(feed), name);
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
  if (fd_ < 0) return;  // a pipe
  try {
    char magic[6];
    const std::size_t got = read_raw(0, magic, sizeof magic);
    const Compression c = compression_of(std::string_view(magic, got));
    if (c == Compression::none) return;
    compressed_ = true;
    stream_ = decoder_for(c, std::make_unique<WholeFeed>(raw_bytes()), name_);
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
/// it, and a compressed stream decoded as it is read, the decoder reading
/// the pipe a piece at a time. Neither is held whole unless asked for whole.
void Input::open_pipe(int fd) {
  // The magic bytes first: a compressed stream then goes to its decoder a
  // read at a time, and plain text is read on to a whole head.
  constexpr std::size_t kMagic = 6, kZstdHeader = 18;  // a zstd frame's header, with its content size
  std::string head(kHead, '\0');
  Compression c;
  try {
    head.resize(read_full(fd, head.data(), kMagic, name_));
    c = compression_of(head);
    const std::size_t want = c == Compression::none ? kHead : c == Compression::zstd ? kZstdHeader : kMagic;
    if (head.size() == kMagic && want > kMagic) {
      head.resize(want);
      head.resize(kMagic + read_full(fd, head.data() + kMagic, want - kMagic, name_));
    }
  } catch (...) {
    if (owns_pipe_) ::close(fd);
    throw;
  }
  if (c == Compression::none) {
    head_ = std::move(head);
    pipe_ = fd;
    return;
  }
  compressed_ = piped_stream_ = true;
  declared_size_ = declared_size(c, head);  // what a zstd frame's header may say
  stream_ = decoder_for(c, std::make_unique<PipeFeed>(std::move(head), fd, owns_pipe_, name_), name_);
  owns_pipe_ = false;  // the feed closes it
  head_.resize(kHead);
  head_.resize(fill(*stream_, head_.data(), kHead));  // stops short of bad data
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
  if (!map_ && raw_size_ > 0) {  // a file, mapped on first use; a compressed one is decoded as it faults in
    void* m = ::mmap(nullptr, raw_size_, PROT_READ, compressed_ ? MAP_PRIVATE : MAP_PRIVATE | MAP_POPULATE, fd_, 0);
    if (m == MAP_FAILED) throw InputError(name_, std::string("cannot map: ") + std::strerror(errno));
    ::madvise(m, raw_size_, MADV_SEQUENTIAL);
    map_ = m;
  }
  return {static_cast<const char*>(map_), raw_size_};
}

std::size_t Input::read_raw(std::uint64_t offset, char* dst, std::size_t n) const {
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
  if (!whole_) {
    std::unique_ptr<Decompressor> again;
    Decompressor* d;
    std::string out;
    if (piped_stream_) {  // a pipe is decoded once: the rest of its stream, after the head
      if (streamed_ > 0) throw std::logic_error(name_ + ": a piped input was asked for whole after being read in part");
      d = stream_.get();
      out = head_;
    } else {  // decoded again from the start: the stream may be part way through
      again = decoder_for(compression_of(raw_bytes().substr(0, 6)), std::make_unique<WholeFeed>(raw_bytes()), name_);
      d = again.get();
    }
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
  if (declared_size_) return declared_size_;
  return piped_stream_ ? kPipeGuess : raw_size_ * 8;
}

std::string_view Input::head(std::size_t n) const {
  if (pipe_ >= 0) return whole_ || n > kHead ? bytes().substr(0, n) : std::string_view(head_).substr(0, n);
  if (compressed_) {  // head_ holds all there is up to kHead, or up to bad data
    return whole_ || n > kHead ? bytes().substr(0, n) : std::string_view(head_).substr(0, n);
  }
  if (map_) return raw_bytes().substr(0, n);
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
