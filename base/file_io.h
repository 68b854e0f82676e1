// Writing files so that a reader never sees half of one: write-all loops that
// survive EINTR and short writes, and a file that appears under its name only
// once it is complete.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kmbench::base {

/// Writes all n bytes, retrying after EINTR and short writes. Allocates
/// nothing and throws nothing (callable from a malloc hook or a forked child).
/// post: false with errno set when the descriptor refused the rest.
bool write_all(int fd, const void* data, std::size_t n) noexcept;

/// A file written under a temporary name beside its destination and renamed
/// over it by commit(): a crash or an error leaves the old file (or none),
/// never a truncated one. Destroyed without commit(), it removes its
/// temporary file. Errors throw RunError naming the file and the reason, but
/// a path whose directory does not exist, a mistake in the path, which throws UsageError.
///
/// A destination that is a symbolic link is written through it: the file it
/// names is replaced, the link stays. One that is not a regular file (a pipe,
/// a terminal, /dev/stdout) is written straight into, as a stream has no
/// "whole" to appear at once; replacing it would put a regular file in its
/// place. A regular file replaced keeps its permissions; a new one has `mode`.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path, unsigned mode = 0644);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view bytes);
  /// Flushes to the disk and renames the file to its destination.
  void commit();
  int fd() const noexcept { return fd_; }

 private:
  void fail(const std::string& what, int err);

  std::string path_;  // as given, for messages
  std::string dest_;  // the file replaced: path_, or what its links name
  std::string tmp_;   // empty when writing straight into dest_
  int fd_ = -1;
};

/// Throws UsageError when `output` names the same file as `input` (through
/// links or another spelling): writing it would destroy what is being read.
/// Either may not exist yet; "-" (standard input or output) is never a file here.
void refuse_output_over_input(const std::string& output, const std::string& input);

/// The whole of `text` in `path`, atomically (AtomicFile).
void write_file_atomic(const std::string& path, std::string_view text);

}  // namespace kmbench::base
