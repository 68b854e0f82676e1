#include "harness/profile/distribution.h"

#include <stdexcept>

#include <cstring>

namespace kmbench::profile {

std::uint64_t Distribution::total() const {
  std::uint64_t n = 0;
  for (const auto& [value, count] : exact) n += count;
  for (const Bin& b : tail) n += b.count;
  return n;
}

const char* sites_name(Sites s) {
  switch (s) {
    case Sites::hashed:
      return "hashed";
    case Sites::merged:
      return "merged";
    case Sites::clear:
      return "clear";
  }
  return "?";
}

void ValueCounter::subtract(const ValueCounter& part) {
  if (run_ != 0) counts_[run_value_] += run_;
  run_ = 0;
  const auto take = [&](std::uint64_t v, std::uint64_t n) {
    const auto it = counts_.find(v);
    if (it == counts_.end() || it->second < n) throw std::logic_error("ValueCounter::subtract: not a part");
    if ((it->second -= n) == 0) counts_.erase(it);
  };
  for (const auto& [v, n] : part.counts_) take(v, n);
  if (part.run_ != 0) take(part.run_value_, part.run_);
}

Distribution ValueCounter::finish(std::size_t exact) const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> all(counts_.begin(), counts_.end());
  if (run_ != 0) {
    const auto it = std::find_if(all.begin(), all.end(), [&](const auto& e) { return e.first == run_value_; });
    if (it == all.end()) {
      all.emplace_back(run_value_, run_);
    } else {
      it->second += run_;
    }
  }
  // Most frequent first; equal counts by value, so the result does not depend on hashing.
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  Distribution d;
  const std::size_t keep = std::min(exact, all.size());
  d.exact.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(keep));
  std::array<std::uint64_t, kLogBins> bins{};
  for (std::size_t i = keep; i < all.size(); ++i) bins[static_cast<std::size_t>(log_bin(all[i].first))] += all[i].second;
  for (int b = 0; b < kLogBins; ++b) {
    if (bins[static_cast<std::size_t>(b)] != 0) d.tail.push_back({log_bin_lo(b), log_bin_hi(b), bins[static_cast<std::size_t>(b)]});
  }
  return d;
}

std::vector<Share> ShareCounter::finish() const {
  std::uint64_t total = 0;
  for (const auto& [key, count] : counts_.counts()) total += count;
  std::vector<Share> out;
  for (const auto& [key, count] : counts_.counts()) {
    out.push_back({key, static_cast<double>(count) / static_cast<double>(total)});
  }
  return out;
}

Sampler::Sampler(const Distribution& d) {
  for (const auto& [value, count] : d.exact) {
    if (count == 0) continue;
    total_ += count;
    pieces_.push_back({value, value, total_});
  }
  for (const Distribution::Bin& b : d.tail) {
    if (b.count == 0) continue;
    total_ += b.count;
    pieces_.push_back({b.lo, b.hi, total_});
  }
}

std::uint64_t Sampler::draw(workloads::Rng& rng) const {
  if (total_ == 0) return 0;
  const std::uint64_t r = rng.below(total_);
  const auto it = std::upper_bound(pieces_.begin(), pieces_.end(), r,
                                   [](std::uint64_t x, const Piece& p) { return x < p.upto; });
  return it->lo == it->hi ? it->lo : rng.between(it->lo, it->hi);
}

ShareSampler::ShareSampler(const std::vector<Share>& shares) {
  double upto = 0;
  for (const Share& s : shares) {
    if (s.share <= 0) continue;
    upto += s.share;
    upto_.emplace_back(upto, s.key);
  }
}

std::int64_t ShareSampler::draw(workloads::Rng& rng, std::int64_t fallback) const {
  if (upto_.empty()) return fallback;
  const double r = rng.unit() * upto_.back().first;
  for (const auto& [upto, key] : upto_) {
    if (r < upto) return key;
  }
  return upto_.back().second;
}

namespace {

std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

void sip_round(std::uint64_t& v0, std::uint64_t& v1, std::uint64_t& v2, std::uint64_t& v3) {
  v0 += v1;
  v1 = rotl(v1, 13);
  v1 ^= v0;
  v0 = rotl(v0, 32);
  v2 += v3;
  v3 = rotl(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = rotl(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = rotl(v1, 17);
  v1 ^= v2;
  v2 = rotl(v2, 32);
}

std::uint64_t load_le(const std::uint8_t* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

std::uint64_t siphash(const std::array<std::uint8_t, 16>& key, std::string_view data) {
  const std::uint64_t k0 = load_le(key.data(), 8), k1 = load_le(key.data() + 8, 8);
  std::uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
  std::uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
  const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
  const std::size_t n = data.size(), whole = n - n % 8;
  for (std::size_t i = 0; i < whole; i += 8) {
    const std::uint64_t m = load_le(p + i, 8);
    v3 ^= m;
    sip_round(v0, v1, v2, v3);
    sip_round(v0, v1, v2, v3);
    v0 ^= m;
  }
  const std::uint64_t last = (static_cast<std::uint64_t>(n) << 56) | load_le(p + whole, n - whole);
  v3 ^= last;
  sip_round(v0, v1, v2, v3);
  sip_round(v0, v1, v2, v3);
  v0 ^= last;
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) sip_round(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

namespace {
constexpr std::pair<std::uint8_t, std::string_view> kFlagNames[] = {
    {ops::kOpZero, "zero"},       {ops::kOpNoblock, "noblock"}, {ops::kOpPageable, "pageable"},
    {ops::kOpCache, "cache"},     {ops::kOpDma32, "dma32"},     {ops::kOpContiguous, "contiguous"},
    {ops::kOpDirIn, "in"},        {ops::kOpDirOut, "out"},
};
}  // namespace

std::string flag_names(std::uint8_t flags) {
  if (flags == 0) return "none";
  std::string out;
  for (const auto& [bit, name] : kFlagNames) {
    if ((flags & bit) == 0) continue;
    if (!out.empty()) out += '|';
    out += name;
  }
  return out;
}

bool parse_flag_names(std::string_view text, std::uint8_t& flags) {
  flags = 0;
  if (text == "none") return true;
  while (!text.empty()) {
    const std::size_t bar = text.find('|');
    const std::string_view word = text.substr(0, bar);
    bool known = false;
    for (const auto& [bit, name] : kFlagNames) {
      if (word == name) {
        flags |= bit;
        known = true;
      }
    }
    if (!known) return false;
    if (bar == std::string_view::npos) break;
    text.remove_prefix(bar + 1);
  }
  return true;
}

}  // namespace kmbench::profile
