#include "harness/env/environment.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <hwloc.h>
#include <mimalloc.h>
#include <numa.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "base/process.h"
#include "harness/env/build_info.h"
#include "harness/env/machine_state.h"

// Worker executables own a third-party allocator: ask it for its runtime version.
#if defined(KMBENCH_WORKER_JEMALLOC)
#include "allocators/jemalloc/jemalloc.h"
#elif defined(KMBENCH_WORKER_MIMALLOC)
#include "allocators/mimalloc/mimalloc.h"
#endif

namespace kmbench {
namespace {

std::string read_first_matching(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        auto value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        return value;
      }
    }
  }
  return {};
}

std::string kernel_release() {
  struct utsname u {};
  if (uname(&u) != 0) {
    return "unknown";
  }
  return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

std::string hwloc_runtime_version() {
  const unsigned v = hwloc_get_api_version();
  std::ostringstream out;
  out << (v >> 16) << '.' << ((v >> 8) & 0xff) << '.' << (v & 0xff);
  return out.str();
}

}  // namespace

std::vector<VersionEntry> versions() {
  std::vector<VersionEntry> out = {
      {"kmbench", KMBENCH_VERSION,
       std::string(KMBENCH_BUILD_TYPE) +
           (std::string(KMBENCH_SANITIZER).empty() ? "" : ", sanitizer " KMBENCH_SANITIZER)},
      {"compiler",
#if defined(__clang__)
       "clang " __clang_version__,
#else
       "g++ " __VERSION__,
#endif
       "C++ " + std::to_string(__cplusplus)},
      {"glibc", gnu_get_libc_version(), "runtime"},
      {"kernel", kernel_release(), "runtime"},
#if defined(KMBENCH_WORKER_JEMALLOC)
      {"jemalloc", JemallocBackend::runtime_version(),
       "runtime (mallctl version); package " KMBENCH_JEMALLOC_PKG_VERSION},
#else
      {"jemalloc", KMBENCH_JEMALLOC_HEADER_VERSION, "headers; package " KMBENCH_JEMALLOC_PKG_VERSION},
#endif
#if defined(KMBENCH_WORKER_MIMALLOC)
      {"mimalloc", MimallocBackend::runtime_version(),
       "runtime (mi_version); package " KMBENCH_MIMALLOC_PKG_VERSION},
#else
      {"mimalloc",
       std::to_string(MI_MALLOC_VERSION / 100) + "." + std::to_string(MI_MALLOC_VERSION % 100 / 10) +
           "." + std::to_string(MI_MALLOC_VERSION % 10),
       "headers; package " KMBENCH_MIMALLOC_PKG_VERSION},
#endif
      {"hwloc", KMBENCH_HWLOC_PKG_VERSION, "package; runtime API " + hwloc_runtime_version()},
      {"libnuma", "API " + std::to_string(LIBNUMA_API_VERSION),
       numa_available() < 0 ? "runtime: NUMA not available" : "runtime: NUMA available"},
      {"google-benchmark", KMBENCH_BENCHMARK_VERSION, "package"},
  };
  return out;
}

std::string process_malloc_owner() {
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info{};
  if (sym == nullptr || dladdr(sym, &info) == 0 || info.dli_fname == nullptr) {
    return "unknown";
  }
  std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string executable_name() {
  char path[4096];
  const std::size_t n = base::self_exe(path, sizeof path);
  if (n == 0) {
    return "unknown";
  }
  const std::string full(path, n);
  const auto slash = full.rfind('/');
  return slash == std::string::npos ? full : full.substr(slash + 1);
}

nlohmann::json machine_info() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  nlohmann::json m = {
      {"cpu_model", read_first_matching("/proc/cpuinfo", "model name")},
      {"online_cpus", sysconf(_SC_NPROCESSORS_ONLN)},
      {"memory_bytes", static_cast<long long>(pages) * page_size},
      {"page_size", page_size},
      {"kernel", kernel_release()},
      {"hostname", host},
  };
  m.update(machine_state("/"));
  return m;
}

nlohmann::json environment_json() {
  nlohmann::json v = nlohmann::json::object();
  for (const VersionEntry& e : versions()) {
    v[e.component] = {{"version", e.version}, {"note", e.note}};
  }
  return {{"versions", v},
          {"machine", machine_info()},
          {"build", {{"type", KMBENCH_BUILD_TYPE},
                     {"sanitizer", std::string(KMBENCH_SANITIZER).empty() ? nlohmann::json(nullptr)
                                                                          : nlohmann::json(KMBENCH_SANITIZER)}}},
          {"process_malloc", process_malloc_owner()},
          {"executable", executable_name()}};
}

}  // namespace kmbench
