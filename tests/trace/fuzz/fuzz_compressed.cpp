// The decoders of compressed input (gzip, xz, zstd): any bytes, read as a
// file (the decoder given them all at once) and through a pipe written a few
// bytes at a time (the decoder given them a read at a time), decode to the
// same text, and stop, if they stop, with the same InputError after the same
// text. Of corrupt data, only that it is corrupt must agree, and the text
// before it one's a prefix of the other's: a decoder takes in what it is
// given before it finds the corruption, and a pipe gives less at a time, so
// the byte offset and the reason zstd gives may differ, and zstd, given a
// whole frame at once, reports none of the blocks it decoded before a
// corrupt one. The first byte picks the pipe's writes: 1 to 256 bytes each.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "base/errors.h"
#include "harness/trace/trace.h"

namespace {

constexpr std::size_t kMaxText = std::size_t{16} << 20;  // a bomb is compared this far

struct Outcome {
  std::string text;
  std::string error;  // what stopped it (stop_of)
};

/// `what` without "NAME: "; of a corruption, only "corrupt FORMAT data".
std::string stop_of(const std::string& what) {
  std::string stop = what.substr(what.find(": ") + 2);
  const std::size_t corrupt = stop.find(": corrupt ");
  if (stop.rfind("byte offset ", 0) == 0 && corrupt != std::string::npos) {
    stop.erase(0, corrupt + 2);
    stop.erase(std::min(stop.size(), stop.find(" data") + 5));
  }
  return stop;
}

/// The text `path` reads as, up to kMaxText, a piece at a time as an import reads it.
Outcome read_all(const std::string& path) {
  Outcome o;
  try {
    const kmbench::trace::Input in(path);
    char piece[4096];
    for (std::size_t n; o.text.size() < kMaxText && (n = in.read(o.text.size(), piece, sizeof piece)) > 0;) {
      o.text.append(piece, n);
    }
  } catch (const kmbench::InputError& e) {
    o.error = stop_of(e.what());
  }
  return o;
}

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool ignored = (std::signal(SIGPIPE, SIG_IGN), true);  // a reader that stops early
  (void)ignored;
  if (size == 0) return 0;
  const std::size_t write_size = std::size_t{data[0]} + 1;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

  const int file = ::memfd_create("fuzz-compressed", MFD_CLOEXEC);
  if (file < 0 || ::write(file, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) std::abort();
  const Outcome whole = read_all(fd_path(file));
  ::close(file);

  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  std::thread writer([fd = fds[1], bytes, write_size] {
    for (std::size_t at = 0; at < bytes.size();) {
      const ssize_t n = ::write(fd, bytes.data() + at, std::min(write_size, bytes.size() - at));
      if (n <= 0) break;  // the reader stopped
      at += static_cast<std::size_t>(n);
    }
    ::close(fd);
  });
  const Outcome piped = read_all(fd_path(fds[0]));
  ::close(fds[0]);
  writer.join();

  const bool corrupt = whole.error.rfind("corrupt ", 0) == 0;
  const std::size_t common = std::min(whole.text.size(), piped.text.size());
  const bool same_text = corrupt ? whole.text.compare(0, common, piped.text, 0, common) == 0 : whole.text == piped.text;
  if (!same_text || whole.error != piped.error) {
    std::fprintf(stderr, "as a file: %zu bytes, then '%s'\nthrough a pipe in writes of %zu: %zu bytes, then '%s'\n",
                 whole.text.size(), whole.error.c_str(), write_size, piped.text.size(), piped.error.c_str());
    std::abort();
  }
  return 0;
}
