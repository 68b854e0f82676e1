#include "allocators/system/system.h"

#include <dlfcn.h>
#include <malloc.h>

#include <cstdio>
#include <cstdlib>

#include "base/sanitizers.h"

namespace kmbench {
namespace {

void* libc_symbol(void* handle, const char* name) {
  void* sym = dlsym(handle, name);
  if (sym == nullptr) {
    std::fprintf(stderr, "kmbench: system backend: %s not found in libc.so.6: %s\n", name,
                 dlerror());
    std::abort();
  }
  return sym;
}

GlibcFunctions resolve_glibc() {
#if defined(KMBENCH_ASAN) || defined(KMBENCH_TSAN)
  // A sanitizer must see every block to check it, so sanitizer builds use the
  // process's malloc (the sanitizer's own). They measure nothing.
  void* libc = RTLD_DEFAULT;  // (a null handle)
#else
  // RTLD_NOLOAD: libc is already mapped; dlsym on its handle finds libc's own
  // definitions, not the process's first malloc.
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (libc == nullptr) {
    std::fprintf(stderr, "kmbench: system backend: cannot open libc.so.6: %s\n", dlerror());
    std::abort();
  }
#endif
  GlibcFunctions fn;
  fn.malloc = reinterpret_cast<void* (*)(std::size_t)>(libc_symbol(libc, "malloc"));
  fn.free = reinterpret_cast<void (*)(void*)>(libc_symbol(libc, "free"));
  fn.realloc = reinterpret_cast<void* (*)(void*, std::size_t)>(libc_symbol(libc, "realloc"));
  fn.memalign =
      reinterpret_cast<void* (*)(std::size_t, std::size_t)>(libc_symbol(libc, "memalign"));
  fn.usable_size =
      reinterpret_cast<std::size_t (*)(void*)>(libc_symbol(libc, "malloc_usable_size"));
  return fn;
}

}  // namespace

const GlibcFunctions& glibc() noexcept {
  static const GlibcFunctions fn = resolve_glibc();
  return fn;
}

void keep_glibc_memory() noexcept {
  static const bool done = [] {
    using Mallopt = int (*)(int, int);
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    const auto set = libc == nullptr ? nullptr : reinterpret_cast<Mallopt>(dlsym(libc, "mallopt"));
    if (set != nullptr) {
      set(M_MMAP_MAX, 0);         // every block from the heaps, none mapped and unmapped alone
      set(M_TRIM_THRESHOLD, -1);  // never give the top of a heap back
    }
    return true;
  }();
  (void)done;
}

BackendStats SystemBackend::stats() const {
  using Mallinfo2 = struct mallinfo2 (*)();
  static const auto info_fn = reinterpret_cast<Mallinfo2>(
      dlsym(dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD), "mallinfo2"));
  BackendStats s;
  if (info_fn == nullptr) {
    return s;
  }
  const struct mallinfo2 mi = info_fn();
  // glibc cannot tell what is resident; mapped is what it holds from the OS.
  s.mapped_bytes = mi.arena + mi.hblkhd;
  s.resident_bytes = s.mapped_bytes;
  s.metrics = {
      {"backend.system.arena_bytes", static_cast<double>(mi.arena)},
      {"backend.system.mmap_bytes", static_cast<double>(mi.hblkhd)},
      {"backend.system.mmap_blocks", static_cast<double>(mi.hblks)},
      {"backend.system.in_use_bytes", static_cast<double>(mi.uordblks)},
      {"backend.system.free_bytes", static_cast<double>(mi.fordblks)},
      {"backend.system.releasable_bytes", static_cast<double>(mi.keepcost)},
  };
  return s;
}

}  // namespace kmbench
