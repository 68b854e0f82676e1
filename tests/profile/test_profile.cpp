// Trace profiles: what build() counts on a trace whose answers are known, the
// JSON round trip and its refusals, privacy on a real capture, and what
// synthesize() makes of a profile.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "base/errors.h"
#include "harness/profile/distribution.h"
#include "harness/profile/profile.h"
#include "harness/trace/trace.h"
#include "tests/support/make_op.h"

namespace kmbench::profile {
namespace {

using ops::OpKind;

ops::Op op(std::uint64_t t, OpKind kind, std::uint32_t object, std::uint64_t size, std::uint32_t site = 0,
           std::uint8_t flags = 0) {
  return test_support::make_op(t, kind, object, size, {site, 0, flags});
}

/// Two CPUs. Site 1 ("rx_alloc"): objects 0..3 of 64, 64, 64, 256 bytes;
/// 0 and 1 freed on CPU 0 after 100 ns, 2 freed on CPU 1 (remote) after 300 ns,
/// 3 never freed. Site 2 ("page_pool"): object 4, a 2-page allocation freed
/// after 1000 ns, mapped twice (512 bytes, then all of it).
ops::Trace known_trace() {
  ops::Trace t;
  t.header.source = "ftrace";
  t.header.cpu_count = 2;
  t.strings = {"", "rx_alloc", "page_pool"};
  t.object_count = 5;
  t.streams.resize(2);
  t.streams[0].cpu = 0;
  t.streams[1].cpu = 1;
  auto& a = t.streams[0].ops;
  auto& b = t.streams[1].ops;
  a.push_back(op(0, OpKind::alloc, 0, 64, 1));
  a.push_back(op(10, OpKind::alloc, 1, 64, 1, ops::kOpZero));
  a.push_back(op(20, OpKind::alloc, 2, 64, 1));
  a.push_back(op(30, OpKind::page_alloc, 4, 8192, 2));
  a.push_back(op(40, OpKind::dma_map, 4, 512));
  a.push_back(op(60, OpKind::dma_unmap, 4, 512));
  a.push_back(op(100, OpKind::free, 0, 64));
  a.push_back(op(110, OpKind::free, 1, 64));
  b.push_back(op(200, OpKind::alloc, 3, 256, 1));
  b.push_back(op(320, OpKind::free, 2, 64));
  b.push_back(op(500, OpKind::dma_map, 4, 0));
  b.push_back(op(900, OpKind::dma_unmap, 4, 0));
  b.push_back(op(1030, OpKind::page_free, 4, 8192));
  return t;
}

const Class& class_named(const Profile& p, const std::string& id) {
  for (const Class& c : p.classes) {
    if (c.id == id) return c;
  }
  throw std::runtime_error("no class " + id);
}

std::uint64_t count_of(const Distribution& d, std::uint64_t value) {
  for (const auto& [v, n] : d.exact) {
    if (v == value) return n;
  }
  std::uint64_t n = 0;
  for (const auto& b : d.tail) {
    if (b.lo <= value && value <= b.hi) n += b.count;
  }
  return n;
}

TEST(Profile, SipHashMatchesTheReferenceVector) {
  // The SipHash paper's test vector: key 00..0f, message 00..0e.
  std::array<std::uint8_t, 16> key{};
  for (int i = 0; i < 16; ++i) key[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i);
  std::string msg;
  for (int i = 0; i < 15; ++i) msg.push_back(static_cast<char>(i));
  EXPECT_EQ(siphash(key, msg), 0xa129ca6149be45e5ull);
}

TEST(Profile, LogBinsCoverEveryValueOnce) {
  for (std::uint64_t v : {0ull, 1ull, 3ull, 4ull, 5ull, 7ull, 8ull, 9ull, 63ull, 64ull, 1000ull, 4096ull,
                          (1ull << 40) + 12345, ~0ull}) {
    const int b = log_bin(v);
    EXPECT_LE(log_bin_lo(b), v) << v;
    EXPECT_GE(log_bin_hi(b), v) << v;
  }
  for (int b = 0; b + 1 < kLogBins; ++b) EXPECT_EQ(log_bin_hi(b) + 1, log_bin_lo(b + 1)) << b;
}

TEST(Profile, BuildCountsAKnownTrace) {
  const Profile p = build(known_trace(), {Sites::clear, "fixed"});
  EXPECT_EQ(p.allocs, 5u);
  EXPECT_EQ(p.frees, 4u);
  EXPECT_EQ(p.ops, 13u);
  EXPECT_EQ(p.duration_ns, 1030u);
  // Live bytes peak at t = 200: object 2, the pages and object 3 (0 and 1 are gone).
  EXPECT_EQ(p.peak_live_bytes, 64 + 8192 + 256u);
  EXPECT_EQ(p.live_set_bytes.front(), 64u);           // at t = 0, after the first allocation
  EXPECT_EQ(p.live_set_bytes.back(), 256u);           // at the end only object 3 is live
  const Class& rx = class_named(p, "rx_alloc/64B");
  EXPECT_EQ(rx.count, 3u);
  EXPECT_EQ(rx.censored, 0u);
  EXPECT_EQ(count_of(rx.sizes, 64), 3u);
  const Class& rx256 = class_named(p, "rx_alloc/256B");  // a size band of its own, never freed
  EXPECT_EQ(rx256.censored, 1u);
  EXPECT_EQ(count_of(rx256.sizes, 256), 0u);
  EXPECT_EQ(count_of(rx256.censored_sizes, 256), 1u);
  EXPECT_EQ(rx256.censored_arrivals[200 * kTimeBuckets / 1031], 1u);
  EXPECT_EQ(count_of(rx.lifetime_ns, 100), 2u);
  EXPECT_EQ(count_of(rx.lifetime_ns, 300), 1u);
  EXPECT_DOUBLE_EQ(rx.remote_free_fraction, 1.0 / 3);
  ASSERT_EQ(rx.cpu_mix.size(), 1u);
  ASSERT_EQ(rx.flag_mix.size(), 2u);  // none and zero
  EXPECT_DOUBLE_EQ(rx.flag_mix[1].share, 1.0 / 3);
  EXPECT_EQ(rx.arrivals[0], 2u);  // buckets of 1031/64 ns: t = 0 and 10; t = 20 is in the next
  EXPECT_EQ(rx.arrivals[1], 1u);
  // Lifetimes in operations: objects 0 and 1 are ops 0 and 1, their frees ops 6 and 7.
  EXPECT_EQ(count_of(rx.lifetime_ops, 6), 2u);
  const Class& pages = class_named(p, "page:page_pool/8192B");
  EXPECT_EQ(pages.kind, OpKind::page_alloc);
  EXPECT_EQ(pages.maps.count, 2u);
  EXPECT_EQ(count_of(pages.maps.per_object, 2), 1u);
  EXPECT_EQ(count_of(pages.maps.bytes, 512), 1u);
  EXPECT_EQ(count_of(pages.maps.bytes, 8192), 1u);  // size 0: the whole object
  EXPECT_EQ(count_of(pages.maps.lifetime_ns, 20), 1u);
  EXPECT_EQ(count_of(pages.maps.lifetime_ns, 400), 1u);
  ASSERT_EQ(p.page_order_mix.size(), 1u);
  EXPECT_EQ(p.page_order_mix[0].key, 1);
  EXPECT_DOUBLE_EQ(p.remote_free_fraction, 2.0 / 4);  // object 2 and the page
}

TEST(Profile, AnObjectAllocatedAgainWhileLiveLeavesTheFirstAllocationNeverFreed) {
  ops::Trace t;
  t.strings = {"", "rx_alloc"};
  t.object_count = 1;
  t.streams.resize(1);
  t.streams[0].ops = {op(0, OpKind::alloc, 0, 64, 1), op(10, OpKind::alloc, 0, 64, 1), op(50, OpKind::free, 0, 64)};
  for (Sites s : {Sites::clear, Sites::hashed, Sites::merged}) {
    const Profile p = build(t, {s, "fixed"});
    EXPECT_EQ(p.allocs, 2u);
    EXPECT_EQ(p.frees, 1u);
    EXPECT_EQ(p.peak_live_bytes, 128u);  // the first allocation's bytes are never given back
    std::uint64_t count = 0, censored = 0, freed_64 = 0, censored_64 = 0, lived_40 = 0;
    for (const Class& c : p.classes) {
      count += c.count, censored += c.censored;
      freed_64 += count_of(c.sizes, 64), censored_64 += count_of(c.censored_sizes, 64);
      lived_40 += count_of(c.lifetime_ns, 40);
    }
    EXPECT_EQ(count, 2u);
    EXPECT_EQ(censored, 1u);
    EXPECT_EQ(freed_64, 1u);
    EXPECT_EQ(censored_64, 1u);
    EXPECT_EQ(lived_40, 1u);  // the free ends the second allocation
  }
}

/// A trace of `streams` CPUs whose objects, of 4 sites and 3 sizes, live a
/// random number of operations (a tenth never freed), some freed on another
/// CPU, some mapped for DMA; operations tie in time across streams.
ops::Trace random_trace(std::uint32_t streams, std::uint32_t objects, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  ops::Trace t;
  t.header.page_size = 4096;
  t.strings = {"", "a", "b", "c", "d"};
  t.object_count = objects;
  t.streams.resize(streams);
  for (std::uint32_t s = 0; s < streams; ++s) t.streams[s].cpu = s * 2;  // CPUs 0, 2, 4, ...
  std::vector<std::uint64_t> clock(streams, 0);
  const auto add = [&](std::uint32_t s, ops::Op o) {
    clock[s] += rng() % 3;  // 0: a tie with the operation before
    o.time_ns = clock[s];
    t.streams[s].ops.push_back(o);
  };
  struct Pending {
    std::uint64_t at;
    std::uint32_t object, stream;
    std::uint64_t size;
  };
  std::vector<Pending> pending;
  for (std::uint32_t id = 0; id < objects; ++id) {
    const std::uint32_t s = static_cast<std::uint32_t>(rng() % streams);
    const std::uint64_t size = std::uint64_t{16} << (rng() % 3);
    const bool page = rng() % 8 == 0;
    add(s, op(0, page ? OpKind::page_alloc : OpKind::alloc, id, page ? 8192 : size, 1 + rng() % 4));
    if (rng() % 6 == 0) add(s, op(0, OpKind::dma_map, id, 0));
    if (rng() % 10 != 0) {
      const std::uint32_t to = rng() % 4 == 0 ? static_cast<std::uint32_t>(rng() % streams) : s;
      pending.push_back({clock[s] + rng() % 2000, id, to, page ? 8192 : size});
    }
    // Free what is due, on its own stream, later in time than its allocation.
    for (std::size_t k = 0; k < pending.size();) {
      Pending& f = pending[k];
      if (f.at > clock[s]) {
        ++k;
        continue;
      }
      clock[f.stream] = std::max(clock[f.stream], f.at);
      const bool page_free = f.size == 8192;
      add(f.stream, op(0, page_free ? OpKind::page_free : OpKind::free, f.object, f.size));
      f = pending.back();
      pending.pop_back();
    }
  }
  return t;
}

/// Counts the same things as build() by the plainest means: every operation
/// sorted by (time, stream), each object's allocation remembered in a map.
struct Naive {
  std::uint64_t ops = 0, allocs = 0, frees = 0, remote = 0, never_freed = 0, peak = 0;
  std::map<std::string, std::uint64_t> count, censored;  // by "<site>/<band>"

  explicit Naive(const ops::Trace& t) {
    struct At {
      std::uint64_t time;
      std::size_t stream, index;
      bool operator<(const At& o) const { return std::tie(time, stream, index) < std::tie(o.time, o.stream, o.index); }
    };
    std::vector<At> order;
    for (std::size_t s = 0; s < t.streams.size(); ++s) {
      for (std::size_t i = 0; i < t.streams[s].ops.size(); ++i) order.push_back({t.streams[s].ops[i].time_ns, s, i});
    }
    std::sort(order.begin(), order.end());
    struct Alloc {
      std::uint32_t cpu;
      std::uint64_t size;
      std::string cls;
    };
    std::map<std::uint32_t, Alloc> live;
    std::uint64_t live_bytes = 0;
    for (const At& at : order) {
      const ops::Op& o = t.streams[at.stream].ops[at.index];
      const std::uint32_t cpu = t.streams[at.stream].cpu;
      ++ops;
      if (o.kind == OpKind::alloc || o.kind == OpKind::page_alloc) {
        std::string cls = (o.kind == OpKind::page_alloc ? "page:" : "") + t.strings[o.site] + "/" +
                          std::to_string(std::uint64_t{1} << (std::bit_width(o.size) - 1)) + "B";
        ++allocs, ++count[cls];
        live[o.object] = {cpu, o.size, cls};
        live_bytes += o.size, peak = std::max(peak, live_bytes);
      } else if (o.kind == OpKind::free || o.kind == OpKind::page_free) {
        const auto it = live.find(o.object);
        if (it == live.end()) continue;
        ++frees;
        if (it->second.cpu != cpu) ++remote;
        live_bytes -= it->second.size;
        live.erase(it);
      }
    }
    for (const auto& [id, a] : live) ++never_freed, ++censored[a.cls];
  }
};

TEST(Profile, BuildCountsAsANaiveWalkDoesAcrossStreamsAndModes) {
  // Thousands of allocations over five streams: the classing thread runs far
  // ahead of and behind the walk, which waits for it at frees.
  const ops::Trace t = random_trace(5, 40000, 7);
  const Naive naive(t);
  ASSERT_GT(naive.never_freed, 0u);
  for (Sites s : {Sites::clear, Sites::hashed, Sites::merged}) {
    const Profile p = build(t, {s, "fixed"});
    EXPECT_EQ(p.ops, naive.ops);
    EXPECT_EQ(p.allocs, naive.allocs);
    EXPECT_EQ(p.frees, naive.frees);
    EXPECT_EQ(p.peak_live_bytes, naive.peak);
    EXPECT_DOUBLE_EQ(p.remote_free_fraction, static_cast<double>(naive.remote) / static_cast<double>(naive.frees));
    std::uint64_t count = 0, censored = 0, lifetimes = 0;
    for (const Class& c : p.classes) {
      count += c.count, censored += c.censored;
      for (const auto& b : c.lifetime_ns.tail) lifetimes += b.count;
      for (const auto& [v, n] : c.lifetime_ns.exact) lifetimes += n;
    }
    EXPECT_EQ(count, naive.allocs);
    EXPECT_EQ(censored, naive.never_freed);
    EXPECT_EQ(lifetimes, naive.frees);
  }
  // With sites in clear, every class's counts.
  const Profile p = build(t, {Sites::clear, "fixed"});
  ASSERT_EQ(p.classes.size(), naive.count.size());
  for (const auto& [id, n] : naive.count) {
    const Class& c = class_named(p, id);
    EXPECT_EQ(c.count, n) << id;
    EXPECT_EQ(c.censored, naive.censored.count(id) ? naive.censored.at(id) : 0u) << id;
  }
}

TEST(Profile, JsonRoundTripsExactly) {
  for (Sites s : {Sites::hashed, Sites::merged, Sites::clear}) {
    const std::string text = to_json(build(known_trace(), {s, "fixed"}));
    EXPECT_EQ(to_json(from_json(text, "p.json")), text);
  }
}

/// The error from_json gives for `text` with `from` replaced by `to` (once).
std::string error_of(std::string text, const std::string& from, const std::string& to) {
  const std::size_t at = text.find(from);
  if (at == std::string::npos) return "pattern not found: " + from;
  text.replace(at, from.size(), to);
  try {
    from_json(text, "bad.kprof.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(Profile, BadProfilesAreRefusedNamingTheField) {
  const std::string text = to_json(build(known_trace(), {Sites::clear, "fixed"}));
  EXPECT_EQ(error_of(text, "\"version\": 2", "\"version\": 3"),
            "bad.kprof.json: $.version: is 3; this build reads versions 1 and 2");
  EXPECT_EQ(error_of(text, "\"count\": 3", "\"count\": -3"), "bad.kprof.json: $.classes[0].count: -3 is negative");
  EXPECT_NE(error_of(text, "\"cpu_mix\": [\n  [\n   0,\n   0.8", "\"cpu_mix\": [\n  [\n   0,\n   0.9")
                .find("$.cpu_mix: shares sum to 1.1"),
            std::string::npos);
  EXPECT_EQ(error_of(text, "\"sites\": \"clear\"", "\"sites\": \"secret\""),
            "bad.kprof.json: $.sites: is 'secret', not hashed, merged or clear");
  EXPECT_EQ(error_of(text, "\"kind\": \"page\"", "\"kind\": \"slab\""),
            "bad.kprof.json: $.classes[1].kind: is 'slab', not alloc, page or dma");
  EXPECT_EQ(error_of(text, "\"censored\": 0", "\"censored\": 9"),
            "bad.kprof.json: $.classes[0].censored: is more than the class's count");
  EXPECT_EQ(error_of(text, "\"frees\": 4", "\"frees\": 4, \"pid\": 7"), "bad.kprof.json: $.pid: is not a field of this object");
  EXPECT_NE(error_of(text, "{", "[").find("bad.kprof.json: not JSON"), std::string::npos);
}

/// The error from_json gives for the profile `j` (or "accepted").
std::string error_of(const nlohmann::json& j) {
  try {
    from_json(j.dump(1), "bad.kprof.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(Profile, AVersion1ProfileIsReadWithCpusDrawnOneByOne) {
  nlohmann::json j = nlohmann::json::parse(to_json(build(known_trace(), {Sites::clear, "fixed"})));
  ASSERT_EQ(error_of(j), "accepted");
  j["version"] = 1;
  for (nlohmann::json& c : j["classes"]) c.erase("cpu_stay"), c.erase("free_cpu_stay");
  const Profile p = from_json(j.dump(1), "v1.kprof.json");
  // rx_alloc/64B allocates on CPU 0 only: drawn one by one, every allocation and free stays on it.
  const Class& rx = class_named(p, "rx_alloc/64B");
  EXPECT_DOUBLE_EQ(rx.cpu_stay, 1.0);
  EXPECT_DOUBLE_EQ(rx.free_cpu_stay, 1.0);
  // It is written back as version 2, which reads again; a version 2 field in version 1 is refused.
  EXPECT_NO_THROW(from_json(to_json(p), "again.kprof.json"));
  j["classes"][0]["cpu_stay"] = 0.5;
  EXPECT_EQ(error_of(j), "bad.kprof.json: $.classes[0].cpu_stay: is not a field of this object");
  j["version"] = 2;
  j["classes"][0]["cpu_stay"] = 1.5;
  EXPECT_EQ(error_of(j), "bad.kprof.json: $.classes[0].cpu_stay: is 1.5, not between 0 and 1");
  j["classes"][0].erase("cpu_stay");
  EXPECT_EQ(error_of(j), "bad.kprof.json: $.classes[0].cpu_stay: is missing");
}

// A profile is shared, so it is outside input: what would make a synthesis
// loop for ever, overflow, or lay out an invalid stream is refused too.
TEST(Profile, ProfilesThatWouldMisleadTheSynthesisAreRefused) {
  const std::string text = to_json(build(known_trace(), {Sites::clear, "fixed"}));
  EXPECT_EQ(error_of(text, "\"version\": 2", "\"version\": 3e93734"),
            "bad.kprof.json: not JSON: [json.exception.out_of_range.406] number overflow parsing '3e93734'");

  const nlohmann::json good = nlohmann::json::parse(text);
  ASSERT_EQ(error_of(good), "accepted");
  ASSERT_EQ(good["classes"][0]["id"], "rx_alloc/64B");
  ASSERT_EQ(good["classes"][1]["id"], "page:page_pool/8192B");
  const auto refused = [&](const std::function<void(nlohmann::json&)>& change) {
    nlohmann::json j = good;
    change(j);
    return error_of(j);
  };
  // Counts that wrap around 2^64 to add up to what they should.
  EXPECT_EQ(refused([](nlohmann::json& j) {
              for (int b : {0, 1}) {
                auto& a = j["classes"][0]["arrivals"][b];
                a = a.get<std::uint64_t>() + (std::uint64_t{1} << 63);
              }
            }),
            "bad.kprof.json: $.classes[0].arrivals: counts add up to more than 2^64 - 1");
  // A bin as wide as one likes: a draw from [256, 2^60] could be anything.
  EXPECT_EQ(refused([](nlohmann::json& j) { j["classes"][0]["lifetime_ns"]["tail"][1][1] = 400; }),
            "bad.kprof.json: $.classes[0].lifetime_ns.tail[1]: is not a log bin (four per power of two: this lo's "
            "bin is [256, 319])");
  // Values no capture can have.
  EXPECT_EQ(refused([](nlohmann::json& j) { j["classes"][0]["sizes"]["exact"][0][0] = std::uint64_t{1} << 60; }),
            "bad.kprof.json: $.classes[0].sizes.exact[0][0]: 1152921504606846976 is more than 281474976710655 (256 "
            "TiB, the address space)");
  EXPECT_EQ(refused([](nlohmann::json& j) {
              j["classes"][0]["lifetime_ns"]["tail"][1] = nlohmann::json::array({2048, 2559, 1});
            }),
            "bad.kprof.json: $.classes[0].lifetime_ns.tail[1][0]: 2048 is more than 1030 (the profile's duration_ns)");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["duration_ns"] = std::uint64_t{1} << 60; }),
            "bad.kprof.json: $.duration_ns: 1152921504606846976 is more than 9007199254740992 (104 days)");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["page_size"] = std::uint64_t{1} << 33; }),
            "bad.kprof.json: $.page_size: 8589934592 is more than 1073741824 (a 1 GiB page)");
  // Keys that name no CPU, alignment or node.
  EXPECT_EQ(refused([](nlohmann::json& j) {
              j["classes"][0]["cpu_mix"] = nlohmann::json::array({{-1, 1.0}});
            }),
            "bad.kprof.json: $.classes[0].cpu_mix[0][0]: -1 is not within 0 and 65535 (a CPU)");
  EXPECT_EQ(refused([](nlohmann::json& j) {
              j["classes"][0]["align_mix"] = nlohmann::json::array({{200, 1.0}});
            }),
            "bad.kprof.json: $.classes[0].align_mix[0][0]: 200 is not within 0 and 63 (a log2 alignment)");
  EXPECT_EQ(refused([](nlohmann::json& j) {
              j["classes"][0]["node_mix"] = nlohmann::json::array({{300, 1.0}});
            }),
            "bad.kprof.json: $.classes[0].node_mix[0][0]: 300 is not within -1 and 127 (a node; -1: any)");
  // Maps per object that make more (or fewer) maps than the class had: each
  // synthesized object draws its maps from them.
  EXPECT_EQ(refused([](nlohmann::json& j) { j["classes"][1]["maps"]["count"] = 3; }),
            "bad.kprof.json: $.classes[1].maps.per_object: makes 2 maps, but maps.count is 3");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["classes"][1]["maps"]["per_object"]["exact"][0][0] = 1000; }),
            "bad.kprof.json: $.classes[1].maps.per_object.exact[0][0]: 1000 is more than 2 (maps.count: all its maps)");
}

/// What the capture names that a profile must not: pointers, tasks, pids, sites, caches, times.
struct Secrets {
  std::set<std::string> substrings, tokens;
};

Secrets secrets_of_capture(const std::string& text) {
  Secrets s;
  const std::regex line(R"(^\s*(.+)-(\d+)\s+\[\d+\]\s+\S+\s+(\d+\.\d+): \w+: (.*)$)");
  const std::regex field(R"((call_site|ptr|name)=(\S+))");
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    std::smatch m;
    if (!std::regex_match(l, m, line)) continue;
    const std::string task = m[1], pid = m[2];
    (task.size() >= 4 ? s.substrings : s.tokens).insert(task);
    s.substrings.insert(task + "-" + pid);
    s.substrings.insert(m[3]);  // the timestamp
    const std::string rest = m[4];
    for (auto it = std::sregex_iterator(rest.begin(), rest.end(), field); it != std::sregex_iterator(); ++it) {
      std::string v = (*it)[2];
      if ((*it)[1] == "ptr") {
        if (v.find_first_not_of('0') == std::string::npos) continue;
        s.substrings.insert(v);
        s.substrings.insert(std::to_string(std::stoull(v, nullptr, 16)));
        continue;
      }
      v = v.substr(0, v.find('+'));
      (v.size() >= 4 ? s.substrings : s.tokens).insert(v);
    }
  }
  return s;
}

/// The sample capture, imported once for every test that reads it.
const ops::Trace& sample() {
  static const ops::Trace t = trace::import_file(KMBENCH_PROFILE_TEST_CAPTURE);
  return t;
}

std::string capture_text() {
  trace::Input in(KMBENCH_PROFILE_TEST_CAPTURE);
  return std::string(in.bytes());
}

TEST(ProfilePrivacy, DefaultProfileHoldsNothingOfTheCapture) {
  const std::string capture = capture_text();
  const Secrets secrets = secrets_of_capture(capture);
  ASSERT_GT(secrets.substrings.size(), 1000u);
  for (Sites sites : {Sites::hashed, Sites::merged}) {
    const std::string json = to_json(build(sample(), {sites, ""}));
    for (const std::string& s : secrets.substrings) EXPECT_EQ(json.find(s), std::string::npos) << s;
    for (const std::string& s : secrets.tokens) EXPECT_EQ(json.find("\"" + s + "\""), std::string::npos) << s;
  }
  // The trace itself does name them: the test would see a leak.
  const std::string clear = to_json(build(sample(), {Sites::clear, ""}));
  EXPECT_NE(clear.find("copy_process"), std::string::npos);
}

TEST(ProfilePrivacy, TwoProfilesOfOneCaptureShareNoSiteHash) {
  const ops::Trace& t = sample();
  const Profile a = build(t), b = build(t);
  std::set<std::string> ids;
  for (const Class& c : a.classes) {
    ids.insert(c.id);
    if (!c.cache.empty()) ids.insert(c.cache);
  }
  ASSERT_GT(ids.size(), 50u);
  for (const Class& c : b.classes) {
    EXPECT_EQ(ids.count(c.id), 0u) << c.id;
    EXPECT_EQ(ids.count(c.cache), 0u) << c.cache;
  }
}

TEST(ProfileSynth, SynthesisHasTheProfilesStatistics) {
  const ops::Trace& real = sample();
  const Profile p = build(real, {Sites::hashed, "fixed"});
  const ops::Trace synth = synthesize(p, {1.0, 7});
  EXPECT_NO_THROW(trace::validate(synth, "synth"));
  const Profile q = build(synth, {Sites::hashed, "fixed"});
  const Distance d = distance(p, q);
  EXPECT_NEAR(d.allocs_ratio, 1.0, 0.02);
  EXPECT_LT(d.ks_size, 0.05);
  EXPECT_LT(d.ks_lifetime_ns, 0.10);
  EXPECT_NEAR(d.peak_live_ratio, 1.0, 0.10);
  EXPECT_NEAR(q.remote_free_fraction, p.remote_free_fraction, 0.03);
  EXPECT_GT(d.class_overlap, 0.95);  // synthesized sites keep the class ids
  // Every class and its censored count come back.
  EXPECT_EQ(q.classes.size(), p.classes.size());

  const Profile twice = build(synthesize(p, {2.0, 7}), {Sites::hashed, "fixed"});
  EXPECT_NEAR(static_cast<double>(twice.allocs) / static_cast<double>(p.allocs), 2.0, 0.04);
}

/// Two CPUs, one class. 64 batches: a task on one CPU (the batches take
/// turns) allocates 32 objects 1 µs apart; another task frees them, 1 to 3 ms
/// later, on the other CPU for every other batch.
ops::Trace batch_trace() {
  ops::Trace t;
  t.header.source = "ftrace";
  t.header.cpu_count = 2;
  t.strings = {"", "inode_alloc"};
  t.streams.resize(2);
  t.streams[0].cpu = 0;
  t.streams[1].cpu = 1;
  workloads::Rng rng(5);
  std::uint32_t object = 0;
  for (std::uint64_t b = 0; b < 64; ++b) {
    const std::uint64_t start = b * 5'000'000, gone = start + 1'000'000 + rng.between(0, 2'000'000);
    auto& allocs = t.streams[b % 2].ops;
    auto& frees = t.streams[b % 4 == 1 ? 0 : b % 2].ops;
    for (std::uint64_t i = 0; i < 32; ++i) allocs.push_back(op(start + i * 1000, OpKind::alloc, object + i, 600, 1));
    for (std::uint64_t i = 0; i < 32; ++i) frees.push_back(op(gone + i * 100, OpKind::free, object + (i * 7) % 32, 600));
    object += 32;
  }
  for (ops::Stream& s : t.streams) {
    std::stable_sort(s.ops.begin(), s.ops.end(), [](const ops::Op& a, const ops::Op& b) { return a.time_ns < b.time_ns; });
  }
  t.object_count = object;
  return t;
}

TEST(ProfileSynth, RunsOnOneCpuComeBack) {
  const Profile p = build(batch_trace(), {Sites::hashed, "fixed"});
  ASSERT_EQ(p.classes.size(), 1u);
  const Class& real = p.classes[0];
  EXPECT_NEAR(real.cpu_stay, 1 - 63.0 / 2047, 1e-9);  // only a batch's first allocation changes CPU
  EXPECT_DOUBLE_EQ(real.remote_free_fraction, 0.25);   // batches 1, 5, 9, ... are freed on CPU 0
  const Class q = build(synthesize(p, {1.0, 7}), {Sites::hashed, "fixed"}).classes.at(0);
  // As version 1 had it: CPUs drawn one by one.
  Profile v1 = p;
  v1.classes[0].cpu_stay = v1.classes[0].free_cpu_stay = 0.5;
  const Class r = build(synthesize(v1, {1.0, 7}), {Sites::hashed, "fixed"}).classes.at(0);
  std::printf("cpu_stay: capture %.3f, synthesis %.3f, drawn one by one %.3f\n", real.cpu_stay, q.cpu_stay, r.cpu_stay);
  std::printf("free_cpu_stay: capture %.3f, synthesis %.3f, drawn one by one %.3f\n", real.free_cpu_stay,
              q.free_cpu_stay, r.free_cpu_stay);
  EXPECT_NEAR(q.cpu_stay, real.cpu_stay, 0.03);
  EXPECT_NEAR(r.cpu_stay, 0.5, 0.05);
  EXPECT_NEAR(q.remote_free_fraction, real.remote_free_fraction, 0.01);
  EXPECT_NEAR(r.remote_free_fraction, real.remote_free_fraction, 0.01);
  EXPECT_NEAR(q.free_cpu_stay, real.free_cpu_stay, 0.05);
  EXPECT_LT(r.free_cpu_stay, 0.7);
}

TEST(ProfileSynth, SameSeedSameStream) {
  const Profile p = build(sample(), {Sites::hashed, "fixed"});
  EXPECT_EQ(trace::encode(synthesize(p, {1.0, 3})), trace::encode(synthesize(p, {1.0, 3})));
  EXPECT_NE(trace::encode(synthesize(p, {1.0, 3})), trace::encode(synthesize(p, {1.0, 4})));
}

TEST(ProfileDiff, AProfileIsAtNoDistanceFromItself) {
  const Profile p = build(sample(), {Sites::hashed, "fixed"});
  const Distance d = distance(p, p);
  EXPECT_EQ(d.ks_size, 0);
  EXPECT_EQ(d.ks_lifetime_ns, 0);
  EXPECT_DOUBLE_EQ(d.peak_live_ratio, 1);
  EXPECT_NEAR(d.class_overlap, 1, 1e-9);
  EXPECT_TRUE(d.classes_by_id);
  // Two hashings of one capture share no id: classes are matched by kind and size.
  const Distance e = distance(p, build(sample()));
  EXPECT_FALSE(e.classes_by_id);
  EXPECT_EQ(e.ks_size, 0);
  EXPECT_GT(e.class_overlap, 0.9);
}

TEST(ProfileSynth, ScaleThatCannotFitIsRefusedWithTheMemoryNeeded) {
  const Profile p = build(known_trace(), {Sites::hashed, "fixed"});
  try {
    synthesize(p, {1e15, 1});
    FAIL() << "accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("would need about"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is available"), std::string::npos) << e.what();
  }
  EXPECT_THROW(synthesize(p, {0, 1}), UsageError);
  EXPECT_THROW(synthesize(p, {-1, 1}), UsageError);
}

TEST(ProfileSynth, FreesFollowTheirAllocationsAndMapsStayInsideTheLife) {
  const Profile p = build(known_trace(), {Sites::clear, "fixed"});
  const ops::Trace t = synthesize(p, {50.0, 1});
  EXPECT_NO_THROW(trace::validate(t, "synth"));
  std::map<std::uint32_t, std::uint64_t> born, died;
  for (const ops::Stream& s : t.streams) {
    for (const ops::Op& o : s.ops) {
      if (o.kind == OpKind::alloc || o.kind == OpKind::page_alloc) born[o.object] = o.time_ns;
      if (o.kind == OpKind::free || o.kind == OpKind::page_free) died[o.object] = o.time_ns;
    }
  }
  for (const auto& [object, t_free] : died) EXPECT_LT(born.at(object), t_free) << object;
  for (const ops::Stream& s : t.streams) {
    for (const ops::Op& o : s.ops) {
      if (o.kind != OpKind::dma_map && o.kind != OpKind::dma_unmap) continue;
      EXPECT_LE(born.at(o.object), o.time_ns);
      if (died.count(o.object) != 0) {
        EXPECT_LT(o.time_ns, died.at(o.object));
      }
    }
  }
}

}  // namespace
}  // namespace kmbench::profile
