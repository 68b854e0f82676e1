#include "harness/replay/footprint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace kmbench::replay {

std::uint64_t process_rss_bytes() {
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return 0;
  }
  char buf[128];
  const ssize_t got = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (got <= 0) {
    return 0;
  }
  buf[got] = '\0';
  unsigned long long size = 0, resident = 0;
  const int n = std::sscanf(buf, "%llu %llu", &size, &resident);
  return n == 2 ? resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

FootprintSampler::FootprintSampler(std::function<FootprintSample()> snapshot,
                                   std::chrono::microseconds interval, std::size_t max_samples)
    : snapshot_(std::move(snapshot)),
      interval_(interval.count() > 0 ? interval : std::chrono::microseconds(100)),
      max_samples_(max_samples < 4 ? 4 : max_samples) {
  timeline_.reserve(max_samples_);  // take() allocates nothing
}

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
  std::lock_guard<std::mutex> one_at_a_time(take_mu_);
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
    std::lock_guard<std::mutex> lock(mu_);
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
