// Internal to harness/profile (build.cpp): how a profile groups allocations
// into classes and names them, with call sites hashed, in clear, or merged by
// size and lifetime.
#pragma once

#include <sys/random.h>

#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/errors.h"
#include "harness/profile/distribution.h"
#include "harness/profile/profile.h"
#include "ops/ops.h"

namespace kmbench::profile::classing {

using ops::OpKind;

inline const char* class_kind_name(OpKind k) {
  return k == OpKind::page_alloc ? "page" : k == OpKind::dma_alloc ? "dma" : "alloc";
}

inline std::array<std::uint8_t, 16> hash_key(const std::string& salt) {
  std::array<std::uint8_t, 16> key{};
  if (salt.empty()) {
    if (getrandom(key.data(), key.size(), 0) != static_cast<ssize_t>(key.size())) {
      throw RunError("trace profile: getrandom failed; cannot make the site hash key");
    }
    return key;
  }
  for (std::size_t i = 0; i < salt.size(); ++i) key[i % key.size()] ^= static_cast<std::uint8_t>(salt[i] + i / 16);
  return key;
}

inline std::string hex16(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

/// Lifetime bin of the merged classes: the decade of nanoseconds (0..18), or
/// kNeverFreed.
inline constexpr int kNeverFreed = 19;
inline int lifetime_decade(std::uint64_t ns) {
  int e = 0;
  for (std::uint64_t decade = 10; e < 18 && ns >= decade; decade *= 10) ++e;
  return e;
}

inline std::string lifetime_label(int d) {
  return d == kNeverFreed ? std::string("live") : "1e" + std::to_string(d) + "ns";
}

/// Groups objects into classes and names them.
class Classifier {
 public:
  Classifier(const ops::Trace& trace, const BuildOptions& options)
      : trace_(trace), sites_(options.sites), key_(hash_key(options.salt)) {}

  /// The class of allocation `a`, in the order classes were first met; `life`
  /// is its lifetime decade, read only when sites are merged.
  std::uint32_t classify(const ops::Op& a, int life) {
    const bool cached = (a.flags & ops::kOpCache) != 0 && a.tag != 0;
    // A site's objects of one power-of-two size band: lifetimes depend on the size
    // (a site's short-lived large buffers, its long-lived small ones).
    const auto band = static_cast<std::uint8_t>(std::bit_width(a.size));
    const Key k = sites_ == Sites::merged
                      ? Key::of(a.kind, static_cast<std::uint8_t>(life), band, 0, cached ? a.tag : 0)
                      : Key::of(a.kind, 0, band, a.site, cached ? a.tag : 0);
    Recent& recent = recent_[KeyHash{}(k) % recent_.size()];
    if (recent.used && recent.key == k) [[likely]]
      return recent.id;
    return classify_again(k, a, cached, life, recent);
  }

  /// The classes met so far, each with its id, kind and cache, by the number classify() gave.
  std::vector<Class>& classes() { return classes_; }

 private:
  /// Kind, lifetime decade and size band in one word, site and tag in the
  /// other: a lookup is two compares, and the miss path is out of line.
  struct Key {
    std::uint32_t traits;  // kind << 16 | life << 8 | band
    std::uint64_t site_tag;
    static Key of(OpKind kind, std::uint8_t life, std::uint8_t band, std::uint32_t site, std::uint32_t tag) {
      return {std::uint32_t{static_cast<std::uint8_t>(kind)} << 16 | std::uint32_t{life} << 8 | band,
              std::uint64_t{site} << 32 | tag};
    }
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      const std::uint64_t x = k.site_tag ^ k.traits * 0x9e3779b97f4a7c15ull;
      return static_cast<std::size_t>(x ^ (x >> 29));
    }
  };

  /// Keys met lately, by hash: most lookups end here. The unordered_map's
  /// division and bucket walk per object were the largest cost of counting.
  struct Recent {
    Key key{};
    std::uint32_t id = 0;
    bool used = false;
  };

  /// A key not met lately: found among all, or a new class.
  [[gnu::noinline]] std::uint32_t classify_again(const Key& k, const ops::Op& a, bool cached, int life,
                                                 Recent& recent) {
    auto [it, inserted] = index_.try_emplace(k, static_cast<std::uint32_t>(classes_.size()));
    if (inserted) {
      Class c;
      c.kind = a.kind;
      c.cache = cached ? cache_name(a.tag) : "";
      c.id = class_id(a, cached, life);
      classes_.push_back(std::move(c));
    }
    recent = {k, it->second, true};
    return it->second;
  }

  std::string cache_name(std::uint32_t tag) const {
    const std::string& name = trace_.strings[tag];
    if (sites_ == Sites::clear) return name;
    std::string id = "c-";
    id += hex16(siphash(key_, "cache\n" + name));
    return id;
  }

  /// "<kind>:<site>|<cache>/<band>" in clear, "s-<hash>/<band>" hashed,
  /// "m-<kind>-<band>-<lifetime>[-<cache hash>]" merged; <band> is the size
  /// band's lower bound ("512B": sizes 512..1023).
  std::string class_id(const ops::Op& a, bool cached, int life) const {
    const std::string kind = class_kind_name(a.kind);
    const std::string& site = trace_.strings[a.site];
    const std::string cache = cached ? trace_.strings[a.tag] : "";
    const std::uint64_t lo = a.size == 0 ? 0 : std::uint64_t{1} << (std::bit_width(a.size) - 1);
    const std::string band = std::to_string(lo) + "B";
    std::string id;
    switch (sites_) {
      case Sites::clear:
        if (a.kind != OpKind::alloc) id += kind + ":";
        id += site.empty() ? "(no site)" : site;
        if (cached) id += "|" + cache;
        id += "/" + band;
        return id;
      case Sites::merged:
        id = "m-";
        id += kind + "-" + band + "-" + lifetime_label(life);
        if (cached) id += "-" + cache_name(a.tag);
        return id;
      case Sites::hashed:
        break;
    }
    id = "s-";
    id += hex16(siphash(key_, kind + "\n" + site + "\n" + cache)) + "/" + band;
    return id;
  }

  const ops::Trace& trace_;
  Sites sites_;
  std::array<std::uint8_t, 16> key_;
  std::unordered_map<Key, std::uint32_t, KeyHash> index_;
  std::array<Recent, 256> recent_{};
  std::vector<Class> classes_;  // by id: what classify() returns
};

}  // namespace kmbench::profile::classing
