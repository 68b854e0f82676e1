// Footprint over time: a low-rate sampler thread that records the backend's
// mapped and resident bytes, the live bytes callers hold and the process's
// RSS. Samples come from its thread every interval and from whoever calls
// take_now() (a replay thread every so many steps), one at a time. The
// timeline stays bounded: when full, every other sample is dropped and the
// interval doubles.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kmbench::replay {

struct FootprintSample {
  std::uint64_t t_ns = 0;
  std::uint64_t mapped_bytes = 0;
  std::uint64_t resident_bytes = 0;
  std::int64_t live_bytes = 0;
  std::uint64_t rss_bytes = 0;
};

/// This process's resident set, from /proc/self/statm (0 if unreadable).
/// Allocates nothing, so that a replay thread may call it.
std::uint64_t process_rss_bytes();

class FootprintSampler {
 public:
  /// snapshot fills every field but t_ns; it is called from the sampler
  /// thread or take_now()'s caller, never from two at once.
  FootprintSampler(std::function<FootprintSample()> snapshot, std::chrono::microseconds interval,
                   std::size_t max_samples = 2048);
  ~FootprintSampler();
  FootprintSampler(const FootprintSampler&) = delete;
  FootprintSampler& operator=(const FootprintSampler&) = delete;

  /// Takes the first sample and starts the thread; t_ns counts from here.
  void start();
  /// Stops the thread and takes a last sample. post: timeline() is final.
  void stop();
  /// Takes a sample now, on the calling thread, after any sample in progress.
  /// Allocates nothing. pre: between start() and stop().
  void take_now() { take(); }
  const std::vector<FootprintSample>& timeline() const { return timeline_; }
  std::uint64_t samples_taken() const { return taken_; }

 private:
  void take();
  void loop();

  std::function<FootprintSample()> snapshot_;
  std::chrono::microseconds interval_;
  std::size_t max_samples_;
  std::chrono::steady_clock::time_point start_;
  std::vector<FootprintSample> timeline_;
  std::uint64_t taken_ = 0;
  std::mutex take_mu_;  // one sample at a time: snapshot_, timeline_, taken_
  std::mutex mu_;       // stop_, interval_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kmbench::replay
