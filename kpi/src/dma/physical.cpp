#include "physical.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "../core.h"
#include "allocators/physmem/physmem.h"

namespace kmbench::kpi::dma {
namespace {

/// Frames lent to foreign pages, both ways. A mutex is enough: lending happens
/// when descriptors are made and freed, not per byte moved.
class LentFrames {
 public:
  bool lend(std::uintptr_t page) {
    std::lock_guard lock(mu_);
    auto [it, fresh] = by_page_.try_emplace(page, Entry{});
    if (fresh) {
      // An odd multiplier is a bijection modulo 2^28: unique, far-apart frames.
      const std::uint64_t frame = (next_++ * 0x9E3779B1ull) & ((1ull << 28) - 1);
      it->second.pa = kLentFrameBase + frame * kPage;
      by_frame_.emplace(it->second.pa, page);
    }
    ++it->second.refs;
    return true;
  }
  void give_back(std::uintptr_t page) noexcept {
    std::lock_guard lock(mu_);
    auto it = by_page_.find(page);
    if (it == by_page_.end() || --it->second.refs > 0) {
      return;
    }
    by_frame_.erase(it->second.pa);
    by_page_.erase(it);
  }
  std::uint64_t pa_of(std::uintptr_t page) const noexcept {
    std::lock_guard lock(mu_);
    auto it = by_page_.find(page);
    return it == by_page_.end() ? 0 : it->second.pa;
  }
  std::uintptr_t page_of(std::uint64_t frame_pa) const noexcept {
    std::lock_guard lock(mu_);
    auto it = by_frame_.find(frame_pa);
    return it == by_frame_.end() ? 0 : it->second;
  }
  std::uint64_t size() const noexcept {
    std::lock_guard lock(mu_);
    return by_page_.size();
  }

 private:
  struct Entry {
    std::uint64_t pa = 0;
    std::uint32_t refs = 0;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::uintptr_t, Entry> by_page_;
  std::unordered_map<std::uint64_t, std::uintptr_t> by_frame_;
  std::uint64_t next_ = 1;
};

LentFrames& lent() {
  static LentFrames* frames = new LentFrames;  // outlives every static descriptor
  return *frames;
}

inline std::uintptr_t page_of(const void* va) {
  return reinterpret_cast<std::uintptr_t>(va) & ~std::uintptr_t{kPage - 1};
}

}  // namespace

physmem::Machine& machine() noexcept { return detail::page_machine(); }

std::uint64_t phys_of(const void* va) noexcept {
  physmem::Machine& m = machine();
  if (m.owns(va)) {
    return m.phys_of(va);
  }
  const std::uint64_t frame = lent().pa_of(page_of(va));
  return frame == 0 ? 0 : frame + (reinterpret_cast<std::uintptr_t>(va) & (kPage - 1));
}

void* virt_of(std::uint64_t pa) noexcept {
  if (pa >= kLentFrameBase) {
    const std::uintptr_t page = lent().page_of(pa & ~(kPage - 1));
    return page == 0 ? nullptr : reinterpret_cast<void*>(page + (pa & (kPage - 1)));
  }
  return machine().virt_of(pa);
}

bool lend_frames(const void* va, std::uint64_t length) {
  if (length == 0) {
    return false;
  }
  physmem::Machine& m = machine();
  bool any = false;
  const auto begin = page_of(va);
  const auto end = reinterpret_cast<std::uintptr_t>(va) + length;
  for (std::uintptr_t page = begin; page < end; page += kPage) {
    if (!m.owns(reinterpret_cast<const void*>(page))) {
      any = lent().lend(page);
    }
  }
  return any;
}

void return_frames(const void* va, std::uint64_t length) noexcept {
  if (length == 0) {
    return;
  }
  physmem::Machine& m = machine();
  const auto begin = page_of(va);
  const auto end = reinterpret_cast<std::uintptr_t>(va) + length;
  for (std::uintptr_t page = begin; page < end; page += kPage) {
    if (!m.owns(reinterpret_cast<const void*>(page))) {
      lent().give_back(page);
    }
  }
}

std::uint64_t lent_pages() noexcept { return lent().size(); }

std::uint64_t copy_from_phys(void* dst, std::uint64_t pa, std::uint64_t length) noexcept {
  std::uint64_t done = 0;
  while (done < length) {
    const std::uint64_t chunk = std::min(length - done, kPage - ((pa + done) & (kPage - 1)));
    const void* src = virt_of(pa + done);
    if (src == nullptr) {
      break;
    }
    std::memcpy(static_cast<char*>(dst) + done, src, chunk);
    done += chunk;
  }
  return done;
}

std::uint64_t copy_to_phys(std::uint64_t pa, const void* src, std::uint64_t length) noexcept {
  std::uint64_t done = 0;
  while (done < length) {
    const std::uint64_t chunk = std::min(length - done, kPage - ((pa + done) & (kPage - 1)));
    void* dst = virt_of(pa + done);
    if (dst == nullptr) {
      break;
    }
    std::memcpy(dst, static_cast<const char*>(src) + done, chunk);
    done += chunk;
  }
  return done;
}

}  // namespace kmbench::kpi::dma
