// The pieces every part of a profile shares: log bins, counting into a
// Distribution, sampling from one, shares of categories, and the keyed hash
// that stands in for call sites.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "harness/profile/profile.h"
#include "workloads/builder.h"

namespace kmbench::profile {

/// Log bins, four per power of two; 0..3 have a bin each.
inline constexpr int kLogBins = 4 + 62 * 4;

inline int log_bin(std::uint64_t v) {
  if (v < 4) return static_cast<int>(v);
  const int e = std::bit_width(v) - 1;  // >= 2
  const int m = static_cast<int>((v >> (e - 2)) & 3);
  return 4 + (e - 2) * 4 + m;
}
inline std::uint64_t log_bin_lo(int bin) {
  if (bin < 4) return static_cast<std::uint64_t>(bin);
  const int e = (bin - 4) / 4 + 2, m = (bin - 4) % 4;
  return static_cast<std::uint64_t>(4 + m) << (e - 2);
}
inline std::uint64_t log_bin_hi(int bin) {
  if (bin < 4) return static_cast<std::uint64_t>(bin);
  const int e = (bin - 4) / 4 + 2;
  return log_bin_lo(bin) + (std::uint64_t{1} << (e - 2)) - 1;
}

/// Counts values into log bins only (lifetimes, gaps): at most 2^32 - 1 of
/// them, as a profile numbers its operations in 32 bits. A kilobyte, not two:
/// a class has four of these.
class BinCounter {
 public:
  void add(std::uint64_t v) { ++bins_[static_cast<std::size_t>(log_bin(v))]; }
  Distribution finish() const {
    Distribution d;
    for (int b = 0; b < kLogBins; ++b) {
      if (bins_[static_cast<std::size_t>(b)] != 0) d.tail.push_back({log_bin_lo(b), log_bin_hi(b), bins_[static_cast<std::size_t>(b)]});
    }
    return d;
  }

 private:
  std::array<std::uint32_t, kLogBins> bins_{};
};

/// Counts values exactly; finish() keeps the most frequent `exact` of them and bins the rest.
/// A run of one value (a cache's object size, "no DMA maps") is counted in
/// line and enters the table once.
class ValueCounter {
 public:
  void add(std::uint64_t v, std::uint64_t n = 1) {
    if (run_ != 0 && v == run_value_) {
      run_ += n;
      return;
    }
    if (run_ != 0) counts_[run_value_] += run_;
    run_value_ = v;
    run_ = n;
  }
  /// Takes away what `part` counted, which this counter counted too.
  void subtract(const ValueCounter& part);
  /// Calls f(value, count) for every value counted (in no order).
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [v, n] : counts_) {
      if (run_ != 0 && v == run_value_) continue;
      f(v, n);
    }
    if (run_ != 0) {
      const auto it = counts_.find(run_value_);
      f(run_value_, run_ + (it == counts_.end() ? 0 : it->second));
    }
  }
  Distribution finish(std::size_t exact) const;

 private:
  std::unordered_map<std::uint64_t, std::uint64_t> counts_;
  std::uint64_t run_value_ = 0, run_ = 0;  // the current run, not yet in counts_
};

/// Counts the keys of a small set (CPUs, flag sets, pairs of time buckets): a
/// vector sorted by key, tried first at the key counted last, which most
/// calls repeat. A std::map's node walk per object cost more than the rest
/// of the count.
template <class K>
class KeyCounter {
 public:
  void add(const K& key, std::uint64_t n = 1) {
    if (last_ >= counts_.size() || !(counts_[last_].first == key)) [[unlikely]] find(key);
    counts_[last_].second += n;
  }
  /// (key, count), ascending by key.
  const std::vector<std::pair<K, std::uint64_t>>& counts() const { return counts_; }

 private:
  /// Makes `key`'s entry the last counted (a new one: with count 0).
  [[gnu::noinline]] void find(const K& key) {
    auto it = std::lower_bound(counts_.begin(), counts_.end(), key,
                               [](const auto& entry, const K& k) { return entry.first < k; });
    if (it == counts_.end() || !(it->first == key)) it = counts_.insert(it, {key, 0});
    last_ = static_cast<std::size_t>(it - counts_.begin());
  }

  std::vector<std::pair<K, std::uint64_t>> counts_;
  std::size_t last_ = 0;
};

/// Counts categories; finish() gives their shares, by key.
class ShareCounter {
 public:
  void add(std::int64_t key, std::uint64_t n = 1) { counts_.add(key, n); }
  std::vector<Share> finish() const;

 private:
  KeyCounter<std::int64_t> counts_;
};

/// The chance that two independent draws from `shares` give the same key:
/// how often a CPU chosen afresh from a class's mix is the one before.
inline double chance_same(const std::vector<Share>& shares) {
  double p = 0;
  for (const Share& s : shares) p += s.share * s.share;
  return p;
}

/// Draws values from a Distribution: a point for an exact value, uniform within a bin.
class Sampler {
 public:
  explicit Sampler(const Distribution& d);
  bool empty() const { return total_ == 0; }
  std::uint64_t draw(workloads::Rng& rng) const;

 private:
  struct Piece {
    std::uint64_t lo, hi, upto;  // values in [lo, hi]; cumulative count through this piece
  };
  std::vector<Piece> pieces_;
  std::uint64_t total_ = 0;
};

/// Draws a key by its share.
class ShareSampler {
 public:
  explicit ShareSampler(const std::vector<Share>& shares);
  /// `fallback` when there are no shares.
  std::int64_t draw(workloads::Rng& rng, std::int64_t fallback) const;

 private:
  std::vector<std::pair<double, std::int64_t>> upto_;  // cumulative share, key
};

/// SipHash-2-4 of `data` under a 16-byte key.
std::uint64_t siphash(const std::array<std::uint8_t, 16>& key, std::string_view data);

/// OpFlag bits as names joined by '|' ("none" for 0), and back (nullopt-free:
/// returns false on an unknown name).
std::string flag_names(std::uint8_t flags);
bool parse_flag_names(std::string_view text, std::uint8_t& flags);

}  // namespace kmbench::profile
