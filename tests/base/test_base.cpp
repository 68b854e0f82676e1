// base/: what the layers above rely on, checked on real files, processes and threads.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/errors.h"
#include "base/file_io.h"
#include "base/json_nesting.h"
#include "base/process.h"
#include "base/spin_lock.h"
#include "base/units.h"

namespace kmbench::base {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

fs::path scratch_dir() { return fs::temp_directory_path() / ("kmbench-test-base-" + std::to_string(::getpid())); }

fs::path scratch(const char* name) {
  fs::create_directories(scratch_dir());
  return scratch_dir() / name;
}

/// The scratch directory goes when the tests end.
class ScratchCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(scratch_dir(), ec);
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

std::size_t entries_in(const fs::path& dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

TEST(Crc32c, KnownValueAndTheTableAgreeWithTheInstructionAtEveryLengthAndOffset) {
  EXPECT_EQ(base::crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(base::crc32c_table("123456789", 9), 0xE3069283u);
  EXPECT_EQ(base::crc32c("", 0), 0u);
  std::vector<unsigned char> bytes(1000);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 131 + 7);
  for (std::size_t off = 0; off < 9; ++off) {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{9},
                          std::size_t{63}, std::size_t{64}, std::size_t{65}, 991 - off}) {
      EXPECT_EQ(base::crc32c(bytes.data() + off, n), base::crc32c_table(bytes.data() + off, n)) << off << " " << n;
    }
  }
  // Continuing from a partial CRC gives the CRC of the whole.
  EXPECT_EQ(base::crc32c(bytes.data() + 100, 900, base::crc32c(bytes.data(), 100)), base::crc32c(bytes.data(), 1000));
}

TEST(AtomicFile, TheFileAppearsWholeOnCommitAndNotBefore) {
  const fs::path p = scratch("atomic.txt");
  write_file_atomic(p, "old\n");
  {
    AtomicFile f(p);
    f.write("new ");
    EXPECT_EQ(slurp(p), "old\n");  // a reader still sees the old file
    f.write("text\n");
    f.commit();
  }
  EXPECT_EQ(slurp(p), "new text\n");
  EXPECT_EQ(fs::status(p).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  EXPECT_EQ(entries_in(p.parent_path()), 1u);  // no temporary left beside it
}

TEST(AtomicFile, AbandonedWithoutCommitLeavesTheOldFileAndNoTemporary) {
  const fs::path p = scratch("abandoned.txt");
  write_file_atomic(p, "kept\n");
  const std::size_t before = entries_in(p.parent_path());
  {
    AtomicFile f(p);
    f.write("half");
  }
  EXPECT_EQ(slurp(p), "kept\n");
  EXPECT_EQ(entries_in(p.parent_path()), before);
}

TEST(AtomicFile, AMissingDirectoryIsAUsageErrorAndAnUnwritableOneARunError) {
  try {
    write_file_atomic("/nonexistent-dir/x.json", "x");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.json: cannot write it: directory /nonexistent-dir does "
                                         "not exist"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(write_file_atomic("/dev/null/x.json", "x"), UsageError);  // a file where the directory should be
  try {
    write_file_atomic("/sys/x.json", "x");  // sysfs takes no new file, not even root's
    FAIL() << "no error";
  } catch (const RunError& e) {
    EXPECT_NE(std::string(e.what()).find("/sys/x.json: cannot create a temporary file beside it"), std::string::npos)
        << e.what();
  }
}

TEST(AtomicFile, AReplacedFileKeepsItsPermissions) {
  const fs::path p = scratch("private.txt");
  write_file_atomic(p, "old\n");
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
  write_file_atomic(p, "new\n");
  EXPECT_EQ(slurp(p), "new\n");
  EXPECT_EQ(fs::status(p).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

TEST(AtomicFile, APipeIsWrittenIntoNotReplaced) {
  const fs::path p = scratch("pipe");
  fs::remove(p);
  ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = slurp(p); });
  write_file_atomic(p, "through the pipe\n");
  reader.join();
  EXPECT_EQ(got, "through the pipe\n");
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(p)));
  fs::remove(p);
}

TEST(AtomicFile, AnOutputThatIsItsInputIsRefused) {
  const fs::path p = scratch("input.txt");
  write_file_atomic(p, "read\n");
  EXPECT_THROW(refuse_output_over_input(p.string(), (p.parent_path() / "." / p.filename()).string()), UsageError);
  EXPECT_NO_THROW(refuse_output_over_input((p.string() + ".out"), p.string()));  // a new file
  EXPECT_NO_THROW(refuse_output_over_input("-", "-"));
}

TEST(Units, ACountIsDigitsAloneWithinSixtyFourBits) {
  EXPECT_EQ(parse_count("0"), std::optional<std::uint64_t>(0));
  EXPECT_EQ(parse_count("18446744073709551615"), std::optional<std::uint64_t>(UINT64_MAX));
  for (const char* bad : {"", "-1", "18446744073709551616", "1k", " 1", "1.0", "+1"}) {
    EXPECT_EQ(parse_count(bad), std::nullopt) << bad;
  }
}

TEST(JsonNesting, FindsTheFirstBracketBeyondTheLimitOutsideStrings) {
  EXPECT_EQ(json_nested_beyond(R"({"a": [[1]]})", 3), std::nullopt);
  EXPECT_EQ(json_nested_beyond(R"({"a": [[1]]})", 2), std::optional<std::size_t>(7));
  EXPECT_EQ(json_nested_beyond(R"({"[[[[\"[[": 1})", 1), std::nullopt);  // brackets in a string, an escaped quote
  EXPECT_EQ(json_nested_beyond(std::string(100000, '['), 64), std::optional<std::size_t>(64));
}

TEST(WriteAll, WritesEveryByteThroughAPipeSmallerThanTheData) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string data(1 << 20, 'k');  // 16x a default pipe buffer: many short writes
  std::string got;
  std::thread reader([&] {
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  });
  EXPECT_TRUE(write_all(fds[1], data.data(), data.size()));
  ::close(fds[1]);
  reader.join();
  ::close(fds[0]);
  EXPECT_EQ(got, data);
  EXPECT_FALSE(write_all(-1, "x", 1));
  EXPECT_EQ(errno, EBADF);
}

TEST(Process, SelfExeIsThisTestProgram) {
  EXPECT_EQ(fs::path(self_exe()).filename(), "test_base");
  char small[4];
  EXPECT_EQ(self_exe(small, sizeof small), 0u);  // does not fit: nothing, not a cut path
}

TEST(Process, ExitStatusOutputAndSignalsAreReported) {
  SpawnOptions capture;
  capture.capture_stdout = true;
  ChildExit e = run_child({"/bin/sh", "-c", "echo hello; echo more"}, capture);
  EXPECT_TRUE(e.exited_ok());
  EXPECT_EQ(e.output, "hello\nmore\n");

  e = run_child({"/bin/sh", "-c", "exit 3"});
  EXPECT_FALSE(e.exited_ok());
  EXPECT_EQ(e.describe(1), "exit status 3");

  e = run_child({"/bin/sh", "-c", "kill -SEGV $$"});
  EXPECT_EQ(e.describe(1), "killed by signal 11 (SIGSEGV)");

  EXPECT_THROW(run_child({"/nonexistent/program"}), RunError);
}

TEST(Process, RedirectsStderrToAFile) {
  const fs::path err = scratch("stderr.txt");
  SpawnOptions o;
  o.stderr_path = err;
  o.stdout_path = "/dev/null";
  EXPECT_TRUE(run_child({"/bin/sh", "-c", "echo out; echo oops >&2"}, o).exited_ok());
  EXPECT_EQ(slurp(err), "oops\n");
}

TEST(Process, ATimeLimitKillsTheChildAndWhatItStarted) {
  const fs::path marker = scratch("grandchild-ran");
  fs::remove(marker);
  SpawnOptions o;
  o.own_process_group = true;
  // The grandchild would write the marker after the limit; killing the group stops it.
  const ChildExit e = run_child({"/bin/sh", "-c", "(sleep 1; touch " + marker.string() + ") & sleep 30"}, o,
                                std::chrono::milliseconds(200));
  EXPECT_TRUE(e.timed_out);
  EXPECT_EQ(e.describe(0.2), "timeout after 0.2 s");
  EXPECT_LT(e.wall_s, 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE(fs::exists(marker));
}

TEST(Process, StopKillsTheChild) {
  int polls = 0;
  const ChildExit e = run_child({"/bin/sleep", "30"}, {}, std::nullopt, [&] { return ++polls > 3; });
  EXPECT_TRUE(e.stopped);
  EXPECT_FALSE(e.timed_out);
  EXPECT_EQ(e.describe(0), "stopped");
}

TEST(SpinLock, ExcludesAndTryLockFailsWhileHeld) {
  SpinLock lock;
  lock.lock();
  EXPECT_FALSE(lock.try_lock());
  lock.unlock();
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();

  constexpr int kThreads = 4, kRounds = 100000;
  std::uint64_t counter = 0;  // plain: the lock alone orders the increments (TSan checks it)
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        lock.lock();
        ++counter;
        lock.unlock();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(counter, std::uint64_t{kThreads} * kRounds);
}

TEST(Clock, TicksAdvanceAndTheRateMatchesTheSteadyClock) {
  const std::uint64_t a = interval_begin();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::uint64_t b = interval_end();
  ASSERT_GT(b, a);
  const double ms = static_cast<double>(b - a) * ns_per_tick() / 1e6;
  EXPECT_GE(ms, 49.0);
  EXPECT_LT(ms, 5000.0);  // a loaded machine may oversleep, never undersleep
}

}  // namespace
}  // namespace kmbench::base

namespace kmbench::base {
namespace {

TEST(ParseBytes, DigitsWithOneSuffixOfPowersOf1024) {
  EXPECT_EQ(parse_bytes("0"), 0u);
  EXPECT_EQ(parse_bytes("4096"), 4096u);
  EXPECT_EQ(parse_bytes("64k"), 64u << 10);
  EXPECT_EQ(parse_bytes("2M"), 2u << 20);
  EXPECT_EQ(parse_bytes("4g"), 4ull << 30);
  EXPECT_EQ(parse_bytes("1T"), 1ull << 40);
  EXPECT_EQ(parse_bytes("16777215t"), 16777215ull << 40);  // the largest count of TiB that fits
  for (const char* bad : {"", "k", "-1", "+1", " 1", "1 ", "1.5m", "1kb", "1x", "16777216t",
                          "99999999999999999999"}) {
    EXPECT_FALSE(parse_bytes(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace kmbench::base
