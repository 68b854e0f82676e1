#include "harness/trace/spill.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "base/errors.h"
#include "base/file_io.h"
#include "harness/trace/kmt_codec.h"

namespace kmbench::trace {

TempFd::TempFd(const std::string& dir, const char* what) : dir_(dir), what_(what) {
  fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd_ < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {  // no O_TMPFILE there
    std::string path = dir + "/.kmbench-spill.XXXXXX";
    fd_ = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd_ >= 0) ::unlink(path.c_str());
  }
  if (fd_ < 0) fail("cannot create", errno);
}

TempFd::~TempFd() {
  if (fd_ >= 0) ::close(fd_);
}

void TempFd::write_at(std::uint64_t offset, const void* data, std::size_t n) const {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("cannot write", w < 0 ? errno : EIO);
    p += w;
    offset += static_cast<std::uint64_t>(w);
    n -= static_cast<std::size_t>(w);
  }
}

void TempFd::read_at(std::uint64_t offset, void* data, std::size_t n) const {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) fail("cannot read back", r < 0 ? errno : EIO);
    p += r;
    offset += static_cast<std::uint64_t>(r);
    n -= static_cast<std::size_t>(r);
  }
}

void TempFd::fail(const char* doing, int err) const {
  throw RunError(dir_ + ": " + doing + " a temporary file for " + what_ + ": " + std::strerror(err));
}

OpSpill::OpSpill(std::string dir, std::size_t hold, std::size_t window)
    : dir_(std::move(dir)), hold_(hold), window_(window ? window : kWindow) {}

void OpSpill::append(std::size_t index, std::uint32_t cpu, std::span<const ops::Op> ops,
                     std::span<const ops::Call> calls) {
  if (index == streams_.size()) streams_.push_back(Stream{cpu, TempFd(dir_, "the import's operations")});
  if (index >= streams_.size()) throw std::logic_error("OpSpill::append: streams are opened in order");
  Stream& s = streams_[index];
  if (ops.empty()) return;
  s.file.write_at(s.count * sizeof(ops::Op), ops.data(), ops.size_bytes());
  // The steps between times, the one from the ops before these included.
  std::uint64_t g = s.step_gcd, prev = s.count == 0 ? ops.front().time_ns : s.last_time;
  if (s.count == 0) s.first_time = prev;
  for (const ops::Op& op : ops) {
    g = kmt::fold_unit(g, op.time_ns - prev);
    prev = op.time_ns;
  }
  s.step_gcd = g;
  s.last_time = prev;
  const auto run = [&](std::uint64_t n, ops::Call c) {
    if (!s.calls.empty() && s.calls.back().second == c) {
      s.calls.back().first += n;
    } else {
      s.calls.emplace_back(n, c);
    }
    if (c != ops::Call::none) s.any_call = true;
  };
  if (calls.empty()) {
    run(ops.size(), ops::Call::none);
  } else {
    for (const ops::Call c : calls) run(1, c);
  }
  s.count += ops.size();
  ops_ += ops.size();
}

const OpSpill::Stream* OpSpill::find(std::uint32_t cpu) const {
  for (const Stream& s : streams_) {
    if (s.cpu == cpu) return &s;
  }
  return nullptr;
}

void OpSpill::read(const Stream& s, std::uint64_t from, ops::Op* dst, std::size_t n) const {
  s.file.read_at(from * sizeof(ops::Op), dst, n * sizeof(ops::Op));
}

std::uint64_t OpSpill::time_unit(const Stream& s, std::uint64_t base) {
  if (s.count == 0) return 1;
  const std::uint64_t g = std::gcd(s.first_time - base, s.step_gcd);
  return g == 0 ? 1 : g;
}

}  // namespace kmbench::trace
