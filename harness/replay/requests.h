// What a program asks of memory, summed up at load time: its distinct
// allocation requests and how often each is made, and, for a trace that
// names its call sites, each site's requests and where its blocks were freed.
// The replay measures the bytes a backend hands out for each request after
// the timed pass (handed_out.h), never inside it.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kmbench::replay {

/// One distinct request: what the backend is asked for, and how many times.
struct Request {
  std::uint64_t size = 0;       // as the step asks (page and DMA allocations: whole pages)
  std::uint8_t align_log2 = 0;
  bool low = false;             // below 4 GiB (dma32)
  bool pages = false;           // a page or DMA allocation (size class "pages")
  std::uint64_t count = 0;
};

/// A call site's allocations. Site 0 of a program is the unnamed one.
struct SiteUse {
  std::string name;
  std::uint64_t allocs = 0, bytes = 0;  // bytes: requested, as the steps ask
  std::uint64_t frees = 0, cross_cpu_frees = 0;  // frees recorded on another CPU than the allocation
  std::vector<std::pair<std::uint32_t, std::uint64_t>> requests;  // (request index, allocations)
};

/// Collects requests and sites while a program is built.
class RequestBook {
 public:
  /// The dense slot of a trace string naming a call site (0: none).
  std::uint32_t site_slot(std::uint32_t string_index, const std::vector<std::string>& strings) {
    if (string_index == 0) return 0;
    auto [it, inserted] = site_slots_.try_emplace(string_index, static_cast<std::uint32_t>(sites_.size()));
    if (inserted) {
      sites_.push_back(named(string_index < strings.size() ? strings[string_index]
                                                           : "string#" + std::to_string(string_index)));
    }
    return it->second;
  }

  void allocated(std::uint64_t size, std::uint8_t align_log2, bool low, bool pages, std::uint32_t site) {
    const Key key{size, static_cast<std::uint32_t>(align_log2) | (low ? 0x100u : 0) | (pages ? 0x200u : 0)};
    auto [it, inserted] = request_ids_.try_emplace(key, static_cast<std::uint32_t>(requests_.size()));
    if (inserted) requests_.push_back({size, align_log2, low, pages, 0});
    ++requests_[it->second].count;
    SiteUse& s = sites_[site];
    ++s.allocs;
    s.bytes += size;
    ++site_requests_[(std::uint64_t{site} << 32) | it->second];
  }

  void freed(std::uint32_t site, bool cross_cpu) {
    ++sites_[site].frees;
    sites_[site].cross_cpu_frees += cross_cpu ? 1 : 0;
  }

  /// The requests; the sites, or none when no allocation names one.
  void finish(std::vector<Request>& requests, std::vector<SiteUse>& sites) && {
    for (const auto& [key, n] : site_requests_) {
      sites_[key >> 32].requests.emplace_back(static_cast<std::uint32_t>(key), n);
    }
    requests = std::move(requests_);
    if (sites_.size() > 1) sites = std::move(sites_);
  }

 private:
  static SiteUse named(std::string name) {
    SiteUse s;
    s.name = std::move(name);
    return s;
  }
  struct Key {
    std::uint64_t size;
    std::uint32_t rest;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept { return k.size * 0x9E3779B97F4A7C15ull ^ k.rest; }
  };
  std::unordered_map<Key, std::uint32_t, KeyHash> request_ids_;
  std::vector<Request> requests_;
  std::unordered_map<std::uint32_t, std::uint32_t> site_slots_;
  std::vector<SiteUse> sites_{named("(no call site)")};
  std::unordered_map<std::uint64_t, std::uint64_t> site_requests_;
};

}  // namespace kmbench::replay
