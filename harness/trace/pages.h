// Internal to harness (trace, profile): anonymous memory for the large arrays an import,
// an encode or a profile fills (hash tables, the output file, per-object tables).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace kmbench::trace {

/// Asks for transparent huge pages over the whole 2 MiB pages inside
/// [p, p + n) of memory that is not ZeroedPages' own (a large vector's): a
/// stream of a large capture fills tens of MiB, and 4 KiB page faults were a
/// tenth of an import.
inline void advise_huge(void* p, std::size_t n) {
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  const std::uintptr_t from = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t to = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(kHuge - 1);
  if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
}

/// Zero-filled pages of their own, given back on destruction. From 2 MiB on,
/// the whole 2 MiB pages inside are asked to be transparent huge pages: filled
/// front to back, such an array took a 4 KiB page fault per page, and the
/// faults cost more than the zeroing (most of all in a virtual machine).
class ZeroedPages {
 public:
  ZeroedPages() = default;
  explicit ZeroedPages(std::size_t bytes) {
    if (bytes == 0) return;
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    bytes = (bytes + page - 1) / page * page;
    size_ = bytes;
    if (bytes < kHuge) {
      data_ = map(bytes);
      return;
    }
    // Mapped 2 MiB aligned (the slack around is unmapped), so every whole huge page is one.
    char* p = static_cast<char*>(map(bytes + kHuge));
    char* aligned = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1));
    if (aligned > p) ::munmap(p, static_cast<std::size_t>(aligned - p));
    const std::size_t tail = static_cast<std::size_t>(p + bytes + kHuge - (aligned + bytes));
    if (tail > 0) ::munmap(aligned + bytes, tail);
    data_ = aligned;
    ::madvise(data_, bytes, MADV_HUGEPAGE);
  }
  ~ZeroedPages() {
    if (data_) ::munmap(data_, size_);
  }
  ZeroedPages(ZeroedPages&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  ZeroedPages& operator=(ZeroedPages&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }

  /// Faults every page in now, written: worth it for an array whose every page
  /// gets used (a hash table), which a first read would otherwise map to the
  /// shared zero page and the first write copy.
  void populate() {
#ifdef MADV_POPULATE_WRITE
    if (data_) ::madvise(data_, size_, MADV_POPULATE_WRITE);
#endif
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  std::size_t size() const { return size_; }

 private:
  static constexpr std::size_t kHuge = std::size_t{2} << 20;
  static void* map(std::size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return p;
  }
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace kmbench::trace
