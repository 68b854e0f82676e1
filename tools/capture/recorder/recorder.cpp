// kmbench's LD_PRELOAD recorder: records malloc, calloc, realloc, free,
// posix_memalign, aligned_alloc, memalign, valloc, pvalloc and anonymous
// mmap/munmap of a program, each as the call it was and with its caller's
// return address, and writes a .kmt trace when it exits.
//
//   LD_PRELOAD=libkmbench_recorder.so KMBENCH_RECORD_OUT=out.%p.kmt ./program
//
// The hot path appends a 48-byte record to a per-thread buffer (no lock, no
// allocation); a full buffer is written to an unlinked spill file under a
// spin lock. At exit the records are merged by time and turned into ops
// (pointers → object ids) by the same Builder the capture importers use, and
// the return addresses are named function+offset from the loaded objects'
// symbol tables (harness/trace/symbols.h).
// Reentrancy: a thread-local flag sends the recorder's own allocations (and
// anything they trigger) straight to glibc.
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/file_io.h"
#include "base/process.h"
#include "base/loaded_objects.h"
#include "harness/trace/builder.h"
#include "harness/trace/symbols.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);
void* __libc_memalign(size_t, size_t);
}

#define KMBENCH_EXPORT extern "C" __attribute__((visibility("default")))
#define KMBENCH_TLS __attribute__((tls_model("initial-exec"))) thread_local

namespace {

using kmbench::ops::Call;

/// One recorded call, as spilled to the spill file.
struct Rec {
  std::uint64_t time_ns;
  std::uint64_t a;     // result pointer (free/munmap/realloc: the old pointer)
  std::uint64_t b;     // realloc: the new pointer
  std::uint64_t size;  // bytes asked for
  std::uint64_t site;  // the caller's return address
  std::uint32_t thread;
  Call call;           // malloc .. munmap
  std::uint8_t align_log2;
  std::uint16_t pad;
};
static_assert(sizeof(Rec) == 48);

constexpr std::uint32_t kCap = 16384;
constexpr std::uint32_t kMaxThreads = 4096;

/// A thread's records; only its thread appends, others read under the lock.
struct ThreadBuf {
  std::atomic<std::uint32_t> n;
  std::uint32_t thread;
  Rec recs[kCap];
};

std::atomic<bool> g_active{false};
std::atomic<bool> g_child{false};
std::atomic_flag g_lock = ATOMIC_FLAG_INIT;
std::atomic<std::uint32_t> g_threads{0};
ThreadBuf* g_bufs[kMaxThreads];
int g_spill = -1;
pthread_key_t g_key;
std::atomic<std::uint64_t> g_dropped{0};

KMBENCH_TLS bool t_in_hook = false;
KMBENCH_TLS ThreadBuf* t_buf = nullptr;

/// The spin lock over the spill file and the buffer registry.
struct Lock {
  Lock() {
    while (g_lock.test_and_set(std::memory_order_acquire)) {
    }
  }
  ~Lock() { g_lock.clear(std::memory_order_release); }
};

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

void* raw_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}

// pre: the global lock is held.
void spill_locked(ThreadBuf* b) {
  const std::uint32_t n = b->n.load(std::memory_order_acquire);
  // A spill the file refused is lost whole: its records count as dropped.
  if (n && g_spill >= 0 && !kmbench::base::write_all(g_spill, b->recs, n * sizeof(Rec))) {
    g_dropped.fetch_add(n, std::memory_order_relaxed);
  }
  b->n.store(0, std::memory_order_release);
}

void thread_exit(void* p) {
  Lock l;
  spill_locked(static_cast<ThreadBuf*>(p));
}

ThreadBuf* thread_buf() {
  if (t_buf) return t_buf;
  const std::uint32_t idx = g_threads.fetch_add(1, std::memory_order_relaxed);
  if (idx >= kMaxThreads) return nullptr;
  void* m = raw_mmap(nullptr, sizeof(ThreadBuf), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  auto* b = static_cast<ThreadBuf*>(m);
  b->thread = idx;
  b->n.store(0, std::memory_order_relaxed);
  g_bufs[idx] = b;
  t_buf = b;
  pthread_setspecific(g_key, b);
  return b;
}

void record(Call call, std::uint64_t a, std::uint64_t b_ptr, std::uint64_t size, const void* site,
            std::uint8_t align_log2 = 0) {
  ThreadBuf* b = thread_buf();
  if (!b) {
    g_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::uint32_t n = b->n.load(std::memory_order_relaxed);
  if (n == kCap) {
    Lock l;
    spill_locked(b);
    n = 0;
  }
  Rec& r = b->recs[n];
  r.time_ns = now_ns();
  r.a = a;
  r.b = b_ptr;
  r.size = size;
  r.site = reinterpret_cast<std::uintptr_t>(site);
  r.thread = b->thread;
  r.call = call;
  r.align_log2 = align_log2;
  r.pad = 0;
  b->n.store(n + 1, std::memory_order_release);
}

std::uint8_t log2_of(std::size_t align) {
  std::uint8_t l = 0;
  while (l < 63 && (std::size_t{1} << l) < align) ++l;
  return l;
}

/// Runs `body` with recording of this call: false when recording is off or reentered.
struct Hook {
  bool on;
  Hook() : on(!t_in_hook && g_active.load(std::memory_order_relaxed)) {
    if (on) t_in_hook = true;
  }
  ~Hook() {
    if (on) t_in_hook = false;
  }
};

std::string output_path() {
  const char* env = std::getenv("KMBENCH_RECORD_OUT");
  return kmbench::base::with_pid(env && *env ? env : "kmbench-record.%p.kmt");
}

void finish() {
  using namespace kmbench::trace;
  ImportOptions options;
  Builder b("ldpreload", "kmbench-record", options);
  std::vector<Rec> recs;
  {
    Lock l;
    const std::uint32_t threads = std::min(g_threads.load(), kMaxThreads);
    for (std::uint32_t i = 0; i < threads; ++i) {
      if (g_bufs[i]) spill_locked(g_bufs[i]);
    }
    const off_t size = ::lseek(g_spill, 0, SEEK_END);
    if (size > 0) {
      recs.resize(static_cast<std::size_t>(size) / sizeof(Rec));
      std::size_t done = 0;
      const std::size_t want = recs.size() * sizeof(Rec);
      while (done < want) {
        const ssize_t r = ::pread(g_spill, reinterpret_cast<char*>(recs.data()) + done, want - done,
                                  static_cast<off_t>(done));
        if (r <= 0) break;
        done += static_cast<std::size_t>(r);
      }
      recs.resize(done / sizeof(Rec));
    }
    ::close(g_spill);
    g_spill = -1;
  }
  const auto by_time = [](const Rec& x, const Rec& y) { return x.time_ns < y.time_ns; };
  if (!std::is_sorted(recs.begin(), recs.end(), by_time)) std::stable_sort(recs.begin(), recs.end(), by_time);
  const std::uint32_t page = static_cast<std::uint32_t>(::sysconf(_SC_PAGESIZE));
  std::unordered_set<std::uint64_t> anon;
  std::uint64_t other_munmaps = 0;
  // Call sites named from the objects loaded now (those unloaded since are object+offset, or hex).
  Symbolizer symbols(kmbench::base::loaded_objects(), std::getenv("KMBENCH_RECORD_NO_SYMBOLS") == nullptr);
  std::unordered_map<std::uint64_t, std::uint32_t> site_ids;
  const auto site_of = [&](std::uint64_t address) {
    auto [it, fresh] = site_ids.try_emplace(address, 0);
    if (fresh) it->second = b.intern(symbols.name(address));
    return it->second;
  };
  // A heap block allocated or freed at `key`; 0 is NULL (a failed allocation, or free(NULL)).
  const auto add_heap = [&b](Event x, Ev ev, std::uint64_t key) {
    x.ev = ev;
    x.key = key;
    x.null = key == 0;
    b.add(x, true);
  };
  for (const Rec& r : recs) {
    Event e;
    e.cpu = r.thread;
    e.time_ns = r.time_ns;
    e.size = e.charged = r.size;
    e.align_log2 = r.align_log2;
    e.call = r.call;
    e.site = site_of(r.site);
    switch (r.call) {
      case Call::realloc:
        // A realloc is the free of the old block (when there was one and the call
        // did not fail) and the allocation of the new one (unless it only freed).
        if (r.a && (r.b || r.size == 0)) add_heap(e, Ev::kfree, r.a);
        if (r.size || !r.a) add_heap(e, Ev::kmalloc, r.b);
        break;
      case Call::free:
        add_heap(e, Ev::kfree, r.a);
        break;
      case Call::mmap:
        anon.insert(r.a);
        e.ev = Ev::page_alloc;
        e.key = r.a;
        e.size = e.charged = (r.size + page - 1) / page * page;
        e.flags = kmbench::ops::kOpContiguous;
        b.add(e, true);
        break;
      case Call::munmap:
        if (!anon.erase(r.a)) {  // a file mapping, or one made before recording started
          ++other_munmaps;
          break;
        }
        e.ev = Ev::page_free;
        e.key = r.a;
        b.add(e, true);
        break;
      default:  // malloc, calloc and the aligned allocations
        if (r.call == Call::calloc) e.flags = kmbench::ops::kOpZero;
        add_heap(e, Ev::kmalloc, r.a);
        break;
    }
  }
  b.set_metadata("pid", std::to_string(::getpid()));
  char exe[4096];
  if (const std::size_t n = kmbench::base::self_exe(exe, sizeof exe); n > 0) b.set_metadata("program", std::string(exe, n));
  b.set_cpu_count(std::min(g_threads.load(), kMaxThreads));
  kmbench::ops::Trace t = b.finish();
  t.header.page_size = page;
  t.counters["recorder.dropped_records"] = g_dropped.load();
  t.counters["recorder.threads"] = g_threads.load();
  t.counters["recorder.other_munmaps"] = other_munmaps;
  t.counters["recorder.sites"] = site_ids.size();
  t.counters["recorder.objects_unreadable"] = symbols.counts().unreadable_objects;
  const std::string path = output_path();
  try {
    kmbench::trace::save(t, path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kmbench-record: %s\n", e.what());
  }
}

void at_fork_child() {
  g_active.store(false);
  g_child.store(true);
}

__attribute__((constructor)) void start() {
  pthread_key_create(&g_key, thread_exit);
  pthread_atfork(nullptr, nullptr, at_fork_child);
  const char* tmp = std::getenv("TMPDIR");
  g_spill = ::open(tmp && *tmp ? tmp : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (g_spill < 0) g_spill = static_cast<int>(syscall(SYS_memfd_create, "kmbench-record", 1u /* MFD_CLOEXEC */));
  if (g_spill < 0) {
    std::fprintf(stderr, "kmbench-record: no spill file: recording is off\n");
    return;
  }
  g_active.store(true);
}

__attribute__((destructor)) void stop() {
  if (!g_active.exchange(false) || g_child.load()) return;
  t_in_hook = true;
  finish();
}

}  // namespace

#define KMBENCH_CALLER __builtin_return_address(0)

KMBENCH_EXPORT void* malloc(size_t n) {
  Hook h;
  void* p = __libc_malloc(n);
  if (h.on) record(Call::malloc, reinterpret_cast<std::uint64_t>(p), 0, n, KMBENCH_CALLER);
  return p;
}

KMBENCH_EXPORT void free(void* p) {
  Hook h;
  if (h.on) record(Call::free, reinterpret_cast<std::uint64_t>(p), 0, 0, KMBENCH_CALLER);
  __libc_free(p);
}

KMBENCH_EXPORT void* calloc(size_t n, size_t size) {
  Hook h;
  void* p = __libc_calloc(n, size);
  if (h.on) record(Call::calloc, reinterpret_cast<std::uint64_t>(p), 0, n * size, KMBENCH_CALLER);
  return p;
}

KMBENCH_EXPORT void* realloc(void* old, size_t n) {
  Hook h;
  void* p = __libc_realloc(old, n);
  if (h.on) {
    record(Call::realloc, reinterpret_cast<std::uint64_t>(old), reinterpret_cast<std::uint64_t>(p), n, KMBENCH_CALLER);
  }
  return p;
}

KMBENCH_EXPORT void* memalign(size_t align, size_t n) {
  Hook h;
  void* p = __libc_memalign(align, n);
  if (h.on) record(Call::memalign, reinterpret_cast<std::uint64_t>(p), 0, n, KMBENCH_CALLER, log2_of(align));
  return p;
}

KMBENCH_EXPORT void* aligned_alloc(size_t align, size_t n) {
  Hook h;
  void* p = __libc_memalign(align, n);
  if (h.on) record(Call::aligned_alloc, reinterpret_cast<std::uint64_t>(p), 0, n, KMBENCH_CALLER, log2_of(align));
  return p;
}

KMBENCH_EXPORT int posix_memalign(void** out, size_t align, size_t n) {
  if (align < sizeof(void*) || (align & (align - 1))) return EINVAL;
  Hook h;
  void* p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  if (h.on) record(Call::posix_memalign, reinterpret_cast<std::uint64_t>(p), 0, n, KMBENCH_CALLER, log2_of(align));
  return 0;
}

KMBENCH_EXPORT void* valloc(size_t n) {
  Hook h;
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  void* p = __libc_memalign(page, n);
  if (h.on) record(Call::valloc, reinterpret_cast<std::uint64_t>(p), 0, n, KMBENCH_CALLER, log2_of(page));
  return p;
}

KMBENCH_EXPORT void* pvalloc(size_t n) {
  Hook h;
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t rounded = (n + page - 1) / page * page;
  void* p = __libc_memalign(page, rounded ? rounded : page);
  if (h.on) record(Call::pvalloc, reinterpret_cast<std::uint64_t>(p), 0, rounded, KMBENCH_CALLER, log2_of(page));
  return p;
}

namespace {

void* mmap_from(const void* site, void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  Hook h;
  void* p = raw_mmap(addr, len, prot, flags, fd, off);
  if (h.on && p != MAP_FAILED && (flags & MAP_ANONYMOUS)) {
    record(Call::mmap, reinterpret_cast<std::uint64_t>(p), 0, len, site);
  }
  return p;
}

}  // namespace

KMBENCH_EXPORT void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap_from(KMBENCH_CALLER, addr, len, prot, flags, fd, off);
}

KMBENCH_EXPORT void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap_from(KMBENCH_CALLER, addr, len, prot, flags, fd, off);
}

KMBENCH_EXPORT int munmap(void* addr, size_t len) {
  Hook h;
  const int r = static_cast<int>(syscall(SYS_munmap, addr, len));
  if (h.on && r == 0) record(Call::munmap, reinterpret_cast<std::uint64_t>(addr), 0, len, KMBENCH_CALLER);
  return r;
}
