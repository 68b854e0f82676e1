// The example driver (examples/rx_driver) runs on every in-process backend:
// KMBENCH_BACKEND=<name>, exit status 0 and a clean unload.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tests/kpi/kpi_test.h"

extern char** environ;

namespace kmbench::testing {
namespace {

class ExampleDriver : public ::testing::TestWithParam<std::string> {};

/// Runs exe with KMBENCH_BACKEND=backend (and KMBENCH_KPI_MODE=mode unless
/// empty); returns its exit status and stdout.
std::pair<int, std::string> run_with_backend(const std::string& exe, const std::string& backend,
                                             const std::string& mode = "") {
  std::vector<std::string> env_strings = {"KMBENCH_BACKEND=" + backend};
  if (!mode.empty()) env_strings.push_back("KMBENCH_KPI_MODE=" + mode);
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var(*e);
    if (var.rfind("KMBENCH_BACKEND=", 0) != 0 && (mode.empty() || var.rfind("KMBENCH_KPI_MODE=", 0) != 0)) {
      env_strings.push_back(var);
    }
  }
  std::vector<char*> envp;
  for (std::string& s : env_strings) {
    envp.push_back(s.data());
  }
  envp.push_back(nullptr);
  int out[2];
  if (pipe(out) != 0) {
    return {-1, "pipe failed"};
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<char*> argv = {const_cast<char*>(exe.c_str()), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) {
    text.append(buf, static_cast<std::size_t>(n));
  }
  close(out[0]);
  if (rc != 0) {
    return {-1, "posix_spawn failed"};
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), text};
}

TEST_P(ExampleDriver, RxDriverRunsAndUnloadsCleanly) {
  const auto [status, out] = run_with_backend(KMBENCH_EXAMPLE_RX_DRIVER, GetParam());
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("rx_driver: backend " + GetParam() + ": 5000 packets"), std::string::npos)
      << out;
  EXPECT_NE(out.find("unloaded cleanly"), std::string::npos) << out;
}

// XNU's lenient mode is a mode a driver may run in: its tag counts kalloc's class sizes.
TEST_P(ExampleDriver, BothDriversRunInXnuMode) {
  for (const char* exe : {KMBENCH_EXAMPLE_RX_DRIVER, KMBENCH_EXAMPLE_DMA_DRIVER}) {
    const auto [status, out] = run_with_backend(exe, GetParam(), "xnu");
    EXPECT_EQ(status, 0) << exe << "\n" << out;
    EXPECT_NE(out.find("unloaded cleanly"), std::string::npos) << out;
  }
}

// The DMA-engine driver: an IOService with its parameters in an OSDictionary,
// completions on its work loop, where it frees and reposts its buffers.
TEST_P(ExampleDriver, DmaDriverRunsItsCompletionsOnItsWorkLoopAndUnloadsCleanly) {
  const auto [status, out] = run_with_backend(KMBENCH_EXAMPLE_DMA_DRIVER, GetParam());
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("dma_driver: backend " + GetParam() + ": 3000 packets, 6144000 bytes, 0 bad, "
                     "0 completions off the work loop, 3000 transfers"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("unloaded cleanly"), std::string::npos) << out;
}

// KMBENCH_BACKEND carries backend parameters: the driver runs on zones with
// XNU's per-CPU caching on from the start, single-threaded as it is.
TEST(ExampleDriverConfigured, RxDriverRunsOnABackendWithParameters) {
  const auto [status, out] = run_with_backend(KMBENCH_EXAMPLE_RX_DRIVER, "zones,cache=on,magazine=16");
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("rx_driver: backend zones: 5000 packets"), std::string::npos) << out;
  EXPECT_NE(out.find("unloaded cleanly"), std::string::npos) << out;
}

// Linked with kmbench::kpi_jemalloc or kmbench::kpi_mimalloc, the driver runs
// on that allocator's backends, every variant and parameter included.
TEST(ExampleDriverOnWorkerBackends, RxDriverRunsOnJemallocAndMimalloc) {
  const std::pair<const char*, const char*> runs[] = {
      {KMBENCH_EXAMPLE_RX_DRIVER_JEMALLOC, "jemalloc"},
      {KMBENCH_EXAMPLE_RX_DRIVER_JEMALLOC, "jemalloc-notcache"},
      {KMBENCH_EXAMPLE_RX_DRIVER_JEMALLOC, "jemalloc,arenas_per_node=2"},
      {KMBENCH_EXAMPLE_RX_DRIVER_MIMALLOC, "mimalloc"},
      {KMBENCH_EXAMPLE_RX_DRIVER_MIMALLOC, "mimalloc-nonuma"},
  };
  for (const auto& [exe, backend] : runs) {
    const auto [status, out] = run_with_backend(exe, backend);
    const std::string name = std::string(backend).substr(0, std::string(backend).find(','));
    EXPECT_EQ(status, 0) << backend << "\n" << out;
    EXPECT_NE(out.find("rx_driver: backend " + name + ": 5000 packets"), std::string::npos) << out;
    EXPECT_NE(out.find("unloaded cleanly"), std::string::npos) << out;
  }
  for (const auto& [exe, backend] : {std::pair{KMBENCH_EXAMPLE_DMA_DRIVER_JEMALLOC, "jemalloc"},
                                     std::pair{KMBENCH_EXAMPLE_DMA_DRIVER_MIMALLOC, "mimalloc"}}) {
    const auto [status, out] = run_with_backend(exe, backend);
    EXPECT_EQ(status, 0) << backend << "\n" << out;
    EXPECT_NE(out.find(std::string("dma_driver: backend ") + backend + ": 3000 packets"), std::string::npos) << out;
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, ExampleDriver, ::testing::ValuesIn(kpi_backends()),
                         backend_test_name);

}  // namespace
}  // namespace kmbench::testing
