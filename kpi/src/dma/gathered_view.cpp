#include "gathered_view.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "physical.h"

namespace kmbench::kpi::dma {
namespace {

constexpr std::uintptr_t kPageMask = kPage - 1;

std::uintptr_t page_down(std::uintptr_t a) { return a & ~kPageMask; }
std::uintptr_t page_up(std::uintptr_t a) { return (a + kPageMask) & ~kPageMask; }

/// A memory file holding moved pages; closed when no page of it is shared any more.
struct MemFile {
  int fd = -1;
  ino_t inode = 0;
  ~MemFile() {
    if (fd >= 0) {
      close(fd);
    }
  }
};

struct SharedPage {
  std::shared_ptr<MemFile> file;
  off_t offset = 0;      // the page's place in its file
  std::uint32_t views = 0;
};

/// One mapping of the process, as /proc/self/maps lists it.
struct Vma {
  std::uintptr_t begin = 0, end = 0;
  bool private_rw = false;  // "rw-p"
  bool shared = false;      // "...s"
  std::uint64_t offset = 0;
  std::uint64_t inode = 0;
};

// PROCMAP_QUERY (Linux 6.11): one mapping by address, an ioctl on the maps
// file, instead of the kernel printing every mapping and us parsing them.
// The layout is the kernel's uapi (linux/fs.h), which older headers lack.
struct ProcmapQuery {
  std::uint64_t size = sizeof(ProcmapQuery);
  std::uint64_t query_flags = 0;
  std::uint64_t query_addr = 0;
  std::uint64_t vma_start = 0, vma_end = 0, vma_flags = 0, vma_page_size = 0, vma_offset = 0;
  std::uint64_t inode = 0;
  std::uint32_t dev_major = 0, dev_minor = 0, vma_name_size = 0, build_id_size = 0;
  std::uint64_t vma_name_addr = 0, build_id_addr = 0;
};
static_assert(sizeof(ProcmapQuery) == 104);
constexpr unsigned long kProcmapQuery = _IOWR('f', 17, ProcmapQuery);
constexpr std::uint64_t kVmaRead = 1, kVmaWrite = 2, kVmaExec = 4, kVmaShared = 8;

/// The process's mappings at given addresses, asked under the registry's lock.
class Vmas {
 public:
  Vmas() {
    if (maps_fd_ < 0 || maps_pid_ != getpid()) {  // a forked child reads its own
      if (maps_fd_ >= 0) {
        close(maps_fd_);
      }
      maps_fd_ = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
      maps_pid_ = getpid();
      query_works_ = true;
    }
  }

  /// The mapping holding `a`; nullptr when none does.
  const Vma* at(std::uintptr_t a) {
    if (last_ != nullptr && last_->begin <= a && a < last_->end) {
      return last_;
    }
    if (query_works_ && maps_fd_ >= 0) {
      ProcmapQuery q;
      q.query_addr = a;
      if (ioctl(maps_fd_, kProcmapQuery, &q) == 0) {
        one_ = Vma{q.vma_start, q.vma_end,
                   (q.vma_flags & (kVmaRead | kVmaWrite | kVmaExec | kVmaShared)) ==
                       (kVmaRead | kVmaWrite),
                   (q.vma_flags & kVmaShared) != 0, q.vma_offset, q.inode};
        return last_ = &one_;
      }
      if (errno == ENOENT) {
        return last_ = nullptr;
      }
      query_works_ = false;  // ENOTTY, EINVAL: a kernel before 6.11
    }
    if (!listed_) {
      list_all();
    }
    auto it = std::upper_bound(all_.begin(), all_.end(), a,
                               [](std::uintptr_t x, const Vma& v) { return x < v.end; });
    return last_ = it != all_.end() && it->begin <= a ? &*it : nullptr;
  }

  bool anonymous_private_rw(std::uintptr_t page) {
    const Vma* v = at(page);
    return v != nullptr && v->private_rw && v->inode == 0;
  }

  bool maps_file_page(std::uintptr_t page, const SharedPage& s) {
    const Vma* v = at(page);
    return v != nullptr && v->shared && v->inode == s.file->inode &&
           v->offset + (page - v->begin) == static_cast<std::uint64_t>(s.offset);
  }

 private:
  /// Every line of /proc/self/maps: "begin-end perms offset dev inode [path]".
  void list_all() {
    listed_ = true;
    std::FILE* f = std::fopen("/proc/self/maps", "re");
    if (f == nullptr) {
      return;
    }
    char line[512];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      char* p = line;
      Vma v;
      v.begin = std::strtoull(p, &p, 16);
      v.end = std::strtoull(p + 1, &p, 16);
      const char* perms = p + 1;
      v.private_rw = std::strncmp(perms, "rw-p", 4) == 0;
      v.shared = perms[3] == 's';
      v.offset = std::strtoull(perms + 5, &p, 16);
      std::strtoul(p + 1, &p, 16);  // device major
      std::strtoul(p + 1, &p, 16);  // device minor
      v.inode = std::strtoull(p, &p, 10);
      all_.push_back(v);
    }
    std::fclose(f);
  }

  static inline int maps_fd_ = -1;  // guarded by the registry's lock, as every Vmas is
  static inline pid_t maps_pid_ = 0;
  static inline bool query_works_ = true;
  Vma one_;
  const Vma* last_ = nullptr;
  bool listed_ = false;
  std::vector<Vma> all_;  // in address order, as the kernel lists them
};

// The copies go through the system calls themselves: the pages may hold bytes
// outside the pieces that a sanitizer's interceptor would call unaddressable.
/// Every byte of [memory, memory + bytes) to the file at `at` (SYS_pwrite64),
/// or from it (SYS_pread64).
bool copy_all(long call, int fd, std::uintptr_t memory, std::size_t bytes, off_t at) {
  while (bytes > 0) {
    const long n = syscall(call, fd, memory, bytes, at);
    if (n <= 0) {
      return false;
    }
    memory += static_cast<std::size_t>(n);
    bytes -= static_cast<std::size_t>(n);
    at += n;
  }
  return true;
}

/// Every page some view shows, by address. One lock: views are made and
/// unmade when drivers map, not per byte moved.
class SharedPages {
 public:
  std::mutex mu;

  SharedPage* find(std::uintptr_t page) {
    auto it = pages_.find(page);
    return it == pages_.end() ? nullptr : &it->second;
  }

  /// Moves the private pages [begin, end) into a new memory file mapped in their place.
  /// post: false and nothing changed when the kernel refuses.
  bool share(std::uintptr_t begin, std::uintptr_t end) {
    const std::size_t bytes = end - begin;
    auto file = std::make_shared<MemFile>();
    file->fd = memfd_create("kmbench-view", MFD_CLOEXEC);
    struct stat st{};
    if (file->fd < 0 || ftruncate(file->fd, static_cast<off_t>(bytes)) != 0 ||
        fstat(file->fd, &st) != 0 || !copy_all(SYS_pwrite64, file->fd, begin, bytes, 0)) {
      return false;
    }
    file->inode = st.st_ino;
    void* at = mmap(reinterpret_cast<void*>(begin), bytes, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_FIXED, file->fd, 0);
    if (at == MAP_FAILED) {
      return false;
    }
    for (std::uintptr_t p = begin; p < end; p += kPage) {
      pages_.emplace(p, SharedPage{file, static_cast<off_t>(p - begin), 1});
    }
    shared_.store(pages_.size(), std::memory_order_relaxed);
    return true;
  }

  /// One view fewer of each page; pages no view shows any more become private again.
  void release(std::span<const std::uintptr_t> pages) {
    std::vector<std::uintptr_t> unviewed;
    for (std::uintptr_t p : pages) {
      SharedPage* s = find(p);
      if (s != nullptr && --s->views == 0) {
        unviewed.push_back(p);
      }
    }
    if (unviewed.empty()) {
      return;
    }
    std::sort(unviewed.begin(), unviewed.end());
    Vmas vmas;
    for (std::size_t i = 0; i < unviewed.size();) {
      // A run: adjacent pages, adjacent in one file.
      const SharedPage& first = pages_.at(unviewed[i]);
      std::size_t j = i + 1;
      while (j < unviewed.size() && unviewed[j] == unviewed[j - 1] + kPage) {
        const SharedPage& s = pages_.at(unviewed[j]);
        if (s.file != first.file || s.offset != first.offset + off_t(unviewed[j] - unviewed[i])) {
          break;
        }
        ++j;
      }
      make_private(unviewed[i], unviewed[j - 1] + kPage, first, vmas);
      for (std::size_t k = i; k < j; ++k) {
        pages_.erase(unviewed[k]);
      }
      i = j;
    }
    shared_.store(pages_.size(), std::memory_order_relaxed);
  }

  std::uint64_t shared() const noexcept { return shared_.load(std::memory_order_relaxed); }

 private:
  /// Private anonymous memory again at [begin, end), holding the file's bytes. Pages their
  /// owner has unmapped or mapped anew since (they no longer show the file) are left alone.
  static void make_private(std::uintptr_t begin, std::uintptr_t end, const SharedPage& first,
                           Vmas& vmas) {
    for (std::uintptr_t p = begin; p < end; p += kPage) {
      const SharedPage here{first.file, first.offset + off_t(p - begin), 0};
      if (!vmas.maps_file_page(p, here)) {
        return;  // replaced by its owner: nothing of ours to give back
      }
    }
    void* at = mmap(reinterpret_cast<void*>(begin), end - begin, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (at != MAP_FAILED) {
      copy_all(SYS_pread64, first.file->fd, begin, end - begin, first.offset);
    }
  }

  std::map<std::uintptr_t, SharedPage> pages_;
  std::atomic<std::uint64_t> shared_{0};
};

SharedPages& shared_pages_registry() {
  static SharedPages* registry = new SharedPages;  // outlives every static descriptor
  return *registry;
}

}  // namespace

GatheredView* GatheredView::make(std::span<const ViewPiece> pieces, bool read_only, IOReturn* why) {
  // Inside the view, pieces meet on page boundaries: a page shows one piece's memory.
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const bool starts_inside = i > 0, ends_inside = i + 1 < pieces.size();
    if ((starts_inside && (pieces[i].address & kPageMask) != 0) ||
        (ends_inside && ((pieces[i].address + pieces[i].length) & kPageMask) != 0)) {
      *why = kIOReturnNotAligned;
      return nullptr;
    }
  }
  std::unique_ptr<GatheredView> view(new GatheredView);
  view->first_offset_ = pieces.front().address & kPageMask;
  for (const ViewPiece& p : pieces) {
    view->length_ += p.length;
    for (std::uintptr_t a = page_down(p.address); a < page_up(p.address + p.length); a += kPage) {
      view->pages_.push_back(a);
    }
  }

  SharedPages& registry = shared_pages_registry();
  std::lock_guard lock(registry.mu);
  Vmas vmas;
  for (std::uintptr_t page : view->pages_) {
    // Pages some view shows already are shared: the registry knows them.
    if (registry.find(page) == nullptr && !vmas.anonymous_private_rw(page)) {
      *why = kIOReturnNotWritable;
      return nullptr;
    }
  }

  // Share every page (runs of adjacent pages not yet shared move together).
  std::size_t done = 0;
  auto undo = [&](IOReturn reason) {
    registry.release(std::span(view->pages_.data(), done));
    *why = reason;
    return nullptr;
  };
  while (done < view->pages_.size()) {
    if (SharedPage* s = registry.find(view->pages_[done])) {
      ++s->views;
      ++done;
      continue;
    }
    std::size_t end = done + 1;
    while (end < view->pages_.size() && view->pages_[end] == view->pages_[end - 1] + kPage &&
           registry.find(view->pages_[end]) == nullptr) {
      ++end;
    }
    if (!registry.share(view->pages_[done], view->pages_[end - 1] + kPage)) {
      return undo(kIOReturnVMError);
    }
    done = end;
  }

  // Reserve the range, then lay each run of file pages over it.
  view->reserved_ = view->pages_.size() * kPage;
  void* base = mmap(nullptr, view->reserved_, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    return undo(kIOReturnVMError);
  }
  view->base_ = reinterpret_cast<std::uintptr_t>(base);
  const int prot = read_only ? PROT_READ : PROT_READ | PROT_WRITE;
  for (std::size_t i = 0; i < view->pages_.size();) {
    const SharedPage* first = registry.find(view->pages_[i]);
    std::size_t j = i + 1;
    while (j < view->pages_.size()) {
      const SharedPage* s = registry.find(view->pages_[j]);
      if (s->file != first->file || s->offset != first->offset + off_t((j - i) * kPage)) {
        break;
      }
      ++j;
    }
    if (mmap(reinterpret_cast<void*>(view->base_ + i * kPage), (j - i) * kPage, prot,
             MAP_SHARED | MAP_FIXED, first->file->fd, first->offset) == MAP_FAILED) {
      munmap(base, view->reserved_);
      view->base_ = 0;
      return undo(kIOReturnVMError);
    }
    i = j;
  }
  return view.release();
}

GatheredView::~GatheredView() {
  SharedPages& registry = shared_pages_registry();
  std::lock_guard lock(registry.mu);
  if (base_ != 0) {
    munmap(reinterpret_cast<void*>(base_), reserved_);
    registry.release(pages_);
  }
}

std::uint64_t GatheredView::shared_pages() noexcept { return shared_pages_registry().shared(); }

}  // namespace kmbench::kpi::dma
