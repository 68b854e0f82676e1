// Files a test writes and reads back, named per process: ctest runs a test
// binary's cases as processes of their own, at the same time.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace kmbench::test_support {

/// $TMPDIR, else /tmp.
inline std::string temp_dir() {
  const char* dir = std::getenv("TMPDIR");
  return dir != nullptr && *dir != '\0' ? dir : "/tmp";
}

/// temp_dir()/kmbench-test-SUITE-PID-NAME: a name no other test process uses.
inline std::string temp_path(const std::string& suite, const std::string& name) {
  return temp_dir() + "/kmbench-test-" + suite + "-" + std::to_string(::getpid()) + "-" + name;
}

/// A test's files, named by temp_path() and removed when it ends, passed or
/// failed (an ASSERT returns early).
class TempFiles {
 public:
  explicit TempFiles(std::string suite) : suite_(std::move(suite)) {}
  TempFiles(const TempFiles&) = delete;
  TempFiles& operator=(const TempFiles&) = delete;
  ~TempFiles() {
    for (const std::string& p : paths_) std::remove(p.c_str());
  }
  /// A path of this process's own for `name`, removed with the others.
  std::string path(const std::string& name) {
    paths_.push_back(temp_path(suite_, name));
    return paths_.back();
  }

 private:
  std::string suite_;
  std::vector<std::string> paths_;
};

/// The bytes of the file at `path` ("" when it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Writes `bytes` to `path`; returns `path`.
inline std::string write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

}  // namespace kmbench::test_support
