// The KPI's recorder: per-thread buffers of records, written to the record
// log a whole buffer at a time (ops/kpi_record.h, docs/kmt-format.md).
#include "record.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/file_io.h"
#include "base/loaded_objects.h"
#include "base/errors.h"
#include "base/process.h"
#include "core.h"
#include "kmbench/kpi.h"

namespace kmbench::kpi::detail {

std::atomic<int> g_record_state{-1};

namespace {

using namespace ops::kpirec;

/// Records a thread holds before they go to the file: what a crash can lose of that thread.
constexpr std::uint32_t kRecords = 4096;  // 192 KiB

struct ThreadLog {
  std::atomic<std::uint32_t> n{0};
  std::uint32_t thread = 0;
  ThreadLog* prev = nullptr;
  ThreadLog* next = nullptr;
  Record recs[kRecords];
};

std::mutex g_start_mutex;   // starting and stopping
std::mutex g_mutex;         // the file and the list of logs
int g_fd = -1;
std::string g_path;
ThreadLog* g_logs = nullptr;
std::uint32_t g_threads = 0;
std::atomic<std::uint64_t> g_dropped{0};  // records a refused write lost
std::atomic<bool> g_write_failed{false};  // said once on stderr
pthread_key_t g_key;
bool g_exit_hook = false;

thread_local ThreadLog* t_log = nullptr;
thread_local unsigned t_quiet = 0;

std::uint64_t mono_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// The time stamp counter and the CPU the thread runs on. rdtsc and the vDSO's
/// getcpu cost about 11 and 2 ns on the project's VM; rdtscp, which gives both,
/// 22 ns: it waits for every instruction before it.
inline std::uint64_t clock_and_cpu(std::uint16_t& cpu) noexcept {
  const int c = sched_getcpu();
  cpu = static_cast<std::uint16_t>(c < 0 ? 0 : c);
  return base::ticks();
}

/// Writes one block. pre: g_mutex is held, or the block is a thread's records (one writev: appended whole).
void write_block(BlockType type, const void* payload, std::uint32_t bytes, std::uint32_t thread) noexcept {
  if (g_fd < 0) return;
  BlockHeader h{};
  h.type = type;
  h.bytes = bytes;
  h.crc = base::crc32c(payload, bytes);
  h.thread = thread;
  h.ticks = base::ticks();
  h.mono_ns = mono_ns();
  iovec v[2] = {{&h, sizeof h}, {const_cast<void*>(payload), bytes}};
  std::size_t left = sizeof h + bytes;
  int iovs = 2;
  iovec* at = v;
  while (left > 0) {
    const ssize_t w = ::writev(g_fd, at, iovs);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (type == BlockType::records) g_dropped.fetch_add(bytes / sizeof(Record), std::memory_order_relaxed);
      if (!g_write_failed.exchange(true, std::memory_order_relaxed)) {
        std::fprintf(stderr, "kmbench: KMBENCH_RECORD=%s: write failed: %s; later records are lost\n",
                     g_path.c_str(), std::strerror(errno));
      }
      return;
    }
    left -= static_cast<std::size_t>(w);
    auto done = static_cast<std::size_t>(w);
    while (done > 0 && done >= at->iov_len) {
      done -= at->iov_len;
      ++at;
      --iovs;
    }
    if (iovs > 0) {
      at->iov_base = static_cast<char*>(at->iov_base) + done;
      at->iov_len -= done;
    }
  }
}

void flush(ThreadLog* log) noexcept {
  const std::uint32_t n = log->n.load(std::memory_order_acquire);
  if (n == 0) return;
  write_block(BlockType::records, log->recs, n * static_cast<std::uint32_t>(sizeof(Record)), log->thread);
  log->n.store(0, std::memory_order_release);
}

void thread_exit(void* p) {
  auto* log = static_cast<ThreadLog*>(p);
  {
    std::lock_guard lock(g_mutex);
    flush(log);
    (log->prev != nullptr ? log->prev->next : g_logs) = log->next;
    if (log->next != nullptr) log->next->prev = log->prev;
  }
  if (t_log == log) t_log = nullptr;
  delete log;
}

ThreadLog* new_log() noexcept {
  auto* log = new (std::nothrow) ThreadLog;
  if (log == nullptr) return nullptr;
  std::lock_guard lock(g_mutex);
  log->thread = g_threads++;
  log->next = g_logs;
  if (g_logs != nullptr) g_logs->prev = log;
  g_logs = log;
  pthread_setspecific(g_key, log);
  t_log = log;
  return log;
}

/// pre: g_mutex is held.
void write_modules() {
  std::string payload;
  for (base::LoadedObject& o : base::loaded_objects()) {
    if (o.path.size() > 0xffff) o.path.resize(0xffff);
    Module m{};
    m.base = o.base;
    m.lo = o.lo;
    m.hi = o.hi;
    m.path_bytes = static_cast<std::uint16_t>(o.path.size());
    m.build_id_bytes = static_cast<std::uint8_t>(o.build_id.size());
    payload.append(reinterpret_cast<const char*>(&m), sizeof m);
    payload += o.path;
    payload += o.build_id;
  }
  write_block(BlockType::modules, payload.data(), static_cast<std::uint32_t>(payload.size()), 0);
}

/// pre: g_mutex is held.
void write_header(const std::string& text) {
  write_block(BlockType::header, text.data(), static_cast<std::uint32_t>(text.size()), 0);
}

void at_fork_child() {
  // The child does not write into its parent's recording.
  g_record_state.store(0, std::memory_order_relaxed);
  refresh_hot_calls();
  g_fd = -1;
  t_log = nullptr;
}

void stop_at_exit() { kmbench::kpi::stop_recording(); }

/// pre: g_start_mutex is held and nothing records.
void start_locked(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw UsageError("cannot record to " + path + ": " + std::strerror(errno));
  }
  char head[kFileHeaderBytes] = {};
  std::memcpy(head, kMagic, sizeof kMagic);
  std::memcpy(head + 8, &kVersion, sizeof kVersion);
  if (!base::write_all(fd, head, sizeof head)) {
    const int err = errno;
    ::close(fd);
    throw UsageError("cannot record to " + path + ": " + std::strerror(err));
  }
  static std::once_flag once;
  std::call_once(once, [] {
    pthread_key_create(&g_key, thread_exit);
    pthread_atfork(nullptr, nullptr, at_fork_child);
  });
  {
    std::lock_guard lock(g_mutex);
    g_fd = fd;
    g_path = path;
    g_write_failed.store(false, std::memory_order_relaxed);
    g_dropped.store(0, std::memory_order_relaxed);
    const char* backend = std::getenv("KMBENCH_BACKEND");
    write_header("pid=" + std::to_string(::getpid()) + "\nprogram=" + base::self_exe() +
                 "\npage_size=" + std::to_string(::sysconf(_SC_PAGESIZE)) +
                 "\ncpus=" + std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)) +
                 "\nbackend=" + (backend != nullptr && *backend != '\0' ? backend : "system") + "\n");
    write_modules();
  }
  record_tag_names();
  record_class_names();
  if (!g_exit_hook) {
    g_exit_hook = true;
    std::atexit(stop_at_exit);
  }
  g_record_state.store(1, std::memory_order_release);
  refresh_hot_calls();
}

}  // namespace

bool record_from_environment() noexcept {
  std::lock_guard lock(g_start_mutex);
  int s = g_record_state.load(std::memory_order_acquire);
  if (s >= 0) return s > 0;
  const char* env = std::getenv("KMBENCH_RECORD");
  if (env == nullptr || *env == '\0') {
    g_record_state.store(0, std::memory_order_release);
    refresh_hot_calls();
    return false;
  }
  const std::string path = base::with_pid(env);
  try {
    start_locked(path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kmbench: KMBENCH_RECORD: %s\n", e.what());
    std::_Exit(2);  // at the first KPI call: nothing of the program's is lost
  }
  return true;
}

void record_call(std::uint8_t call, const void* address, std::uint64_t size, std::uint64_t aux,
                 std::uint32_t aux2, const void* site, std::uint8_t align_log2) noexcept {
  if (t_quiet != 0) return;
  ThreadLog* log = t_log;
  if (log == nullptr) [[unlikely]] {
    log = new_log();
    if (log == nullptr) {
      g_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  const std::uint32_t n = log->n.load(std::memory_order_relaxed);
  Record& r = log->recs[n];
  r.ticks = clock_and_cpu(r.cpu);
  r.address = reinterpret_cast<std::uintptr_t>(address);
  r.size = size;
  r.site = reinterpret_cast<std::uintptr_t>(site);
  r.aux = aux;
  r.aux2 = aux2;
  r.call = call;
  r.align_log2 = align_log2;
  log->n.store(n + 1, std::memory_order_release);
  if (n + 1 == kRecords) [[unlikely]] {
    flush(log);  // one writev on a file opened for appending: no lock needed
  }
}

void record_name(const void* key, const char* name) noexcept {
  std::string payload;
  const auto k = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(key));
  const auto len = static_cast<std::uint16_t>(std::min<std::size_t>(std::strlen(name), 0xffff));
  payload.append(reinterpret_cast<const char*>(&k), sizeof k);
  payload.append(reinterpret_cast<const char*>(&len), sizeof len);
  payload.append(name, len);
  std::lock_guard lock(g_mutex);
  write_block(BlockType::names, payload.data(), static_cast<std::uint32_t>(payload.size()), 0);
}

RecordQuiet::RecordQuiet() noexcept { ++t_quiet; }
RecordQuiet::~RecordQuiet() { --t_quiet; }

}  // namespace kmbench::kpi::detail

namespace kmbench::kpi {

namespace kd = kmbench::kpi::detail;

void start_recording(const std::string& path) {
  std::lock_guard lock(kd::g_start_mutex);
  if (kd::g_record_state.load(std::memory_order_acquire) > 0) {
    throw UsageError("start_recording(" + path + "): already recording to " + kd::g_path);
  }
  kd::start_locked(base::with_pid(path));
}

bool recording() { return kd::recording(); }

void stop_recording() {
  std::lock_guard start_lock(kd::g_start_mutex);
  int on = 1;
  if (!kd::g_record_state.compare_exchange_strong(on, 0, std::memory_order_acq_rel)) return;
  kd::refresh_hot_calls();
  kd::record_class_names();  // classes of objects loaded since the start
  std::lock_guard lock(kd::g_mutex);
  for (kd::ThreadLog* log = kd::g_logs; log != nullptr; log = log->next) kd::flush(log);
  kd::write_modules();
  kd::write_header(std::string("backend=") + kd::backend_name() +
                   "\ndropped_records=" + std::to_string(kd::g_dropped.load()) +
                   "\nthreads=" + std::to_string(kd::g_threads) + "\n");
  kd::write_block(kd::BlockType::end, "", 0, 0);
  ::close(kd::g_fd);
  kd::g_fd = -1;
}

}  // namespace kmbench::kpi
