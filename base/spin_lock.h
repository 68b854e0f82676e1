// One spin lock for the short critical sections of the backends and the KPI
// (a zone's lists, a slab depot, a live-table shard), and the pause a spinning
// waiter executes.
#pragma once

#include <atomic>
#include <thread>

namespace kmbench::base {

/// Tells the CPU the thread is spinning (x86 pause): cheaper for the sibling
/// hyperthread and for the memory-order machinery than a tight load loop.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// A test-and-set lock: one atomic exchange to take it, a plain store to drop
/// it. A waiter spins on a plain load with pauses, then yields: a 2-CPU
/// machine is often oversubscribed, and the holder may not be running.
/// try_lock does not spin, so a caller can count a failed try_lock as contention.
class SpinLock {
 public:
  void lock() noexcept {
    if (flag_.exchange(true, std::memory_order_acquire)) [[unlikely]] {
      lock_contended();
    }
  }
  bool try_lock() noexcept {
    return !flag_.load(std::memory_order_relaxed) && !flag_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

 private:
  static constexpr unsigned kSpinsBeforeYield = 128;

  // Out of line, so that a caller's uncontended path stays a leaf.
  [[gnu::noinline]] void lock_contended() noexcept {
    unsigned spins = 0;
    do {
      while (flag_.load(std::memory_order_relaxed)) {
        if (++spins < kSpinsBeforeYield) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    } while (flag_.exchange(true, std::memory_order_acquire));
  }

  std::atomic<bool> flag_{false};
};

}  // namespace kmbench::base
