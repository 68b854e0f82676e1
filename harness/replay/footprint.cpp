#include "harness/replay/footprint.h"

#include <unistd.h>

#include <cstdio>

namespace kmbench::replay {

std::uint64_t process_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) {
    return 0;
  }
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

FootprintSampler::FootprintSampler(std::function<FootprintSample()> snapshot,
                                   std::chrono::microseconds interval, std::size_t max_samples)
    : snapshot_(std::move(snapshot)),
      interval_(interval.count() > 0 ? interval : std::chrono::microseconds(100)),
      max_samples_(max_samples < 4 ? 4 : max_samples) {}

FootprintSampler::~FootprintSampler() {
  if (thread_.joinable()) {
    stop();
  }
}

void FootprintSampler::start() {
  start_ = std::chrono::steady_clock::now();
  take();
  thread_ = std::thread([this] { loop(); });
}

void FootprintSampler::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  take();
}

void FootprintSampler::take() {
  FootprintSample s = snapshot_();
  s.t_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_)
          .count());
  ++taken_;
  if (timeline_.size() >= max_samples_) {
    // Keep every other sample (the first stays) and sample half as often.
    std::size_t kept = 0;
    for (std::size_t i = 0; i < timeline_.size(); i += 2) {
      timeline_[kept++] = timeline_[i];
    }
    timeline_.resize(kept);
    interval_ *= 2;
  }
  timeline_.push_back(s);
}

void FootprintSampler::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (cv_.wait_for(lock, interval_, [this] { return stop_; })) {
      break;
    }
    lock.unlock();
    take();
    lock.lock();
  }
}

}  // namespace kmbench::replay
