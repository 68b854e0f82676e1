// The profile's JSON form (docs/profile-format.md), and reading it back with
// every field checked: an error names the JSON path of the bad field.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/errors.h"
#include "base/json_nesting.h"
#include "harness/profile/distribution.h"
#include "harness/profile/json_text.h"

namespace kmbench::profile {
namespace {

using Json = nlohmann::ordered_json;

/// The largest allocation or transfer a profile may hold: the 48-bit address
/// space (256 TiB). Sizes beyond it are no allocator's, and synthesis rounds
/// page allocations up without overflow below it.
constexpr std::uint64_t kMaxBytes = (std::uint64_t{1} << 48) - 1;
/// The longest capture a profile may describe: 2^53 ns (104 days), so that
/// every time is exact as a double, as synthesis lays times out.
constexpr std::uint64_t kMaxDuration = std::uint64_t{1} << 53;
/// How deep a profile's JSON may nest (its own values go six deep).
constexpr std::size_t kMaxNesting = 64;

/// What bounds a class's values: the profile's duration and operation count.
struct Limits {
  std::uint64_t duration_ns = 0, ops = 0;
};

void distribution_json(JsonText& j, const Distribution& d) {
  j.open_object();
  j.key("exact");
  j.open_array();
  for (const auto& [value, count] : d.exact) j.row(value, count);
  j.close();
  j.key("tail");
  j.open_array();
  for (const Distribution::Bin& b : d.tail) j.row(b.lo, b.hi, b.count);
  j.close();
  j.close();
}

/// [[key, share], ...]; flag keys as their names.
void shares_json(JsonText& j, const std::vector<Share>& shares, bool flags = false) {
  j.open_array();
  for (const Share& s : shares) {
    if (flags) {
      j.row(flag_names(static_cast<std::uint8_t>(s.key)), s.share);
    } else {
      j.row(s.key, s.share);
    }
  }
  j.close();
}

void mix_json(JsonText& j, const std::vector<Share>& shares) { shares_json(j, shares); }
void flag_mix_json(JsonText& j, const std::vector<Share>& shares) { shares_json(j, shares, true); }

void counts_json(JsonText& j, const std::vector<std::uint64_t>& counts) {
  j.open_array();
  for (const std::uint64_t n : counts) j.value(n);
  j.close();
}

void departures_json(JsonText& j, const std::vector<Class::Flow>& flows) {
  j.open_array();
  for (const Class::Flow& f : flows) j.row(f.from, f.to, f.count);
  j.close();
}

/// A distribution, mix or count list as a member.
template <class Write, class T>
void member(JsonText& j, std::string_view name, Write write, const T& v) {
  j.key(name);
  write(j, v);
}

void class_json(JsonText& j, const Class& c) {
  j.open_object();
  j.member("id", c.id);
  j.member("kind", c.kind == ops::OpKind::page_alloc ? "page" : c.kind == ops::OpKind::dma_alloc ? "dma" : "alloc");
  j.member("cache", c.cache);
  j.member("count", c.count);
  j.member("censored", c.censored);
  member(j, "sizes", distribution_json, c.sizes);
  member(j, "censored_sizes", distribution_json, c.censored_sizes);
  member(j, "lifetime_ops", distribution_json, c.lifetime_ops);
  member(j, "lifetime_ns", distribution_json, c.lifetime_ns);
  member(j, "interarrival_ns", distribution_json, c.interarrival_ns);
  member(j, "arrivals", counts_json, c.arrivals);
  member(j, "censored_arrivals", counts_json, c.censored_arrivals);
  member(j, "departures", departures_json, c.departures);
  member(j, "cpu_mix", mix_json, c.cpu_mix);
  j.member("cpu_stay", c.cpu_stay);
  j.member("remote_free_fraction", c.remote_free_fraction);
  j.member("free_cpu_stay", c.free_cpu_stay);
  member(j, "flag_mix", flag_mix_json, c.flag_mix);
  member(j, "align_mix", mix_json, c.align_mix);
  member(j, "node_mix", mix_json, c.node_mix);
  j.key("maps");
  j.open_object();
  j.member("count", c.maps.count);
  member(j, "per_object", distribution_json, c.maps.per_object);
  member(j, "bytes", distribution_json, c.maps.bytes);
  member(j, "lifetime_ns", distribution_json, c.maps.lifetime_ns);
  member(j, "flag_mix", flag_mix_json, c.maps.flag_mix);
  j.close();
  j.close();
}

/// Reads one JSON value, checking it; errors name the file and the value's path.
class Reader {
 public:
  explicit Reader(std::string name) : name_(std::move(name)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw InputError(name_, path + ": " + what);
  }

  const Json& field(const Json& obj, const std::string& path, const char* key) const {
    if (!obj.is_object()) fail(path, "is not an object");
    const auto it = obj.find(key);
    if (it == obj.end()) fail(path + "." + key, "is missing");
    return *it;
  }

  /// Every key of obj must be one of `known`.
  void only(const Json& obj, const std::string& path, std::initializer_list<const char*> known) const {
    for (const auto& [key, value] : obj.items()) {
      bool ok = false;
      for (const char* k : known) ok = ok || key == k;
      if (!ok) fail(path + "." + key, "is not a field of this object");
    }
  }

  std::uint64_t count(const Json& v, const std::string& path) const {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer()) fail(path, std::to_string(v.get<std::int64_t>()) + " is negative");
    fail(path, "is not a whole number");
  }
  std::int64_t integer(const Json& v, const std::string& path) const {
    if (v.is_number_integer()) return v.get<std::int64_t>();
    fail(path, "is not a whole number");
  }
  double fraction(const Json& v, const std::string& path) const {
    if (!v.is_number()) fail(path, "is not a number");
    const double x = v.get<double>();
    if (!(x >= 0 && x <= 1)) fail(path, "is " + v.dump() + ", not between 0 and 1");
    return x;
  }
  std::string text(const Json& v, const std::string& path) const {
    if (!v.is_string()) fail(path, "is not a string");
    return v.get<std::string>();
  }
  const Json& array(const Json& v, const std::string& path) const {
    if (!v.is_array()) fail(path, "is not an array");
    return v;
  }
  std::uint64_t count_of(const Json& obj, const std::string& path, const char* key) const {
    return count(field(obj, path, key), path + "." + key);
  }
  /// `v`, the value at `path`, must be at most `most` (`why` says what bounds it).
  void at_most(std::uint64_t v, std::uint64_t most, const std::string& path, const char* why) const {
    if (v > most) fail(path, std::to_string(v) + " is more than " + std::to_string(most) + " (" + why + ")");
  }
  /// A count at most `most`.
  std::uint64_t count_of(const Json& obj, const std::string& path, const char* key, std::uint64_t most,
                         const char* why) const {
    const std::uint64_t n = count_of(obj, path, key);
    at_most(n, most, path + "." + key, why);
    return n;
  }
  /// a + b, which must not pass 2^64 - 1 (counts that wrap around could add up to anything).
  std::uint64_t add(std::uint64_t a, std::uint64_t b, const std::string& path) const {
    std::uint64_t sum;
    if (__builtin_add_overflow(a, b, &sum)) fail(path, "counts add up to more than 2^64 - 1");
    return sum;
  }
  std::uint64_t sum(const std::vector<std::uint64_t>& v, const std::string& path) const {
    std::uint64_t n = 0;
    for (std::uint64_t x : v) n = add(n, x, path);
    return n;
  }

  Distribution distribution(const Json& v, const std::string& path) const {
    only(v, path, {"exact", "tail"});
    Distribution d;
    const Json& exact = array(field(v, path, "exact"), path + ".exact");
    std::set<std::uint64_t> seen;
    for (std::size_t i = 0; i < exact.size(); ++i) {
      const std::string at = path + ".exact[" + std::to_string(i) + "]";
      if (!exact[i].is_array() || exact[i].size() != 2) fail(at, "is not a [value, count] pair");
      const std::uint64_t value = count(exact[i][0], at + "[0]");
      if (!seen.insert(value).second) fail(at, "repeats the value " + std::to_string(value));
      d.exact.emplace_back(value, count(exact[i][1], at + "[1]"));
    }
    const Json& tail = array(field(v, path, "tail"), path + ".tail");
    for (std::size_t i = 0; i < tail.size(); ++i) {
      const std::string at = path + ".tail[" + std::to_string(i) + "]";
      if (!tail[i].is_array() || tail[i].size() != 3) fail(at, "is not a [lo, hi, count] bin");
      Distribution::Bin b{count(tail[i][0], at + "[0]"), count(tail[i][1], at + "[1]"), count(tail[i][2], at + "[2]")};
      if (b.hi < b.lo) fail(at, "ends before it starts");
      const int bin = log_bin(b.lo);
      if (log_bin_lo(bin) != b.lo || log_bin_hi(bin) != b.hi) {
        fail(at, "is not a log bin (four per power of two: this lo's bin is [" + std::to_string(log_bin_lo(bin)) +
                     ", " + std::to_string(log_bin_hi(bin)) + "])");
      }
      if (!d.tail.empty() && b.lo <= d.tail.back().hi) fail(at, "overlaps or precedes the bin before it");
      d.tail.push_back(b);
    }
    return d;
  }

  /// Shares that sum to 1 (or none); keys are integers, or flag names when `flags`.
  std::vector<Share> shares(const Json& v, const std::string& path, bool flags = false) const {
    std::vector<Share> out;
    double sum = 0;
    for (std::size_t i = 0; i < array(v, path).size(); ++i) {
      const std::string at = path + "[" + std::to_string(i) + "]";
      if (!v[i].is_array() || v[i].size() != 2) fail(at, "is not a [key, share] pair");
      Share s;
      if (flags) {
        std::uint8_t bits = 0;
        if (!v[i][0].is_string() || !parse_flag_names(v[i][0].get<std::string>(), bits)) {
          fail(at + "[0]", "is not a flag set (names joined by '|': zero, noblock, pageable, cache, dma32, "
                           "contiguous, in, out; or none)");
        }
        s.key = bits;
      } else {
        s.key = integer(v[i][0], at + "[0]");
      }
      s.share = fraction(v[i][1], at + "[1]");
      sum += s.share;
      out.push_back(s);
    }
    if (!out.empty() && std::fabs(sum - 1) > 1e-6) {
      std::ostringstream m;
      m.precision(9);
      m << "shares sum to " << sum << ", not 1";
      fail(path, m.str());
    }
    return out;
  }

  std::vector<std::uint64_t> counts(const Json& v, const std::string& path, std::size_t n) const {
    if (array(v, path).size() != n) fail(path, "has " + std::to_string(v.size()) + " entries, not " + std::to_string(n));
    std::vector<std::uint64_t> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(count(v[i], path + "[" + std::to_string(i) + "]"));
    return out;
  }

  /// A distribution whose counts must add up to `expected` (what it describes)
  /// and whose values are at most `most` (a bin may start there).
  Distribution distribution_of(const Json& obj, const std::string& path, const char* key, std::uint64_t expected,
                               const char* of, std::uint64_t most, const char* why) const {
    const std::string at = path + "." + key;
    Distribution d = distribution(field(obj, path, key), at);
    std::uint64_t total = 0;
    for (const auto& [value, n] : d.exact) total = add(total, n, at);
    for (const Distribution::Bin& b : d.tail) total = add(total, b.count, at);
    if (total != expected) {
      fail(at, "counts " + std::to_string(total) + " values, but " + of + " is " + std::to_string(expected));
    }
    for (std::size_t i = 0; i < d.exact.size(); ++i) {
      at_most(d.exact[i].first, most, at + ".exact[" + std::to_string(i) + "][0]", why);
    }
    for (std::size_t i = 0; i < d.tail.size(); ++i) {
      at_most(d.tail[i].lo, most, at + ".tail[" + std::to_string(i) + "][0]", why);
    }
    return d;
  }

  /// Shares whose keys lie in [lo, hi] (what the key names: a CPU, a node, ...).
  std::vector<Share> shares_within(const Json& v, const std::string& path, std::int64_t lo, std::int64_t hi,
                                   const char* what) const {
    std::vector<Share> out = shares(v, path);
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (out[i].key < lo || out[i].key > hi) {
        fail(path + "[" + std::to_string(i) + "][0]", std::to_string(out[i].key) + " is not within " +
                                                          std::to_string(lo) + " and " + std::to_string(hi) + " (" +
                                                          what + ")");
      }
    }
    return out;
  }

  Class class_at(const Json& v, const std::string& path, int version, const Limits& limits) const;

  /// Maps per object, over the objects, make the maps: exactly, or within
  /// the bins' bounds where values are binned. A synthesis draws each
  /// object's maps from this distribution, so it must not promise more.
  void maps_add_up(const Distribution& per_object, std::uint64_t maps, const std::string& path) const {
    unsigned __int128 least = 0, most = 0;
    for (const auto& [value, n] : per_object.exact) {
      least += static_cast<unsigned __int128>(value) * n;
      most += static_cast<unsigned __int128>(value) * n;
    }
    for (const Distribution::Bin& b : per_object.tail) {
      least += static_cast<unsigned __int128>(b.lo) * b.count;
      most += static_cast<unsigned __int128>(b.hi) * b.count;
    }
    const auto text = [](unsigned __int128 v) {
      return v > UINT64_MAX ? std::string("more than 2^64 - 1") : std::to_string(static_cast<std::uint64_t>(v));
    };
    if (maps < least || maps > most) {
      fail(path, "makes " + (least == most ? text(least) : text(least) + " to " + text(most)) +
                     " maps, but maps.count is " + std::to_string(maps));
    }
  }

  /// [from, to, count] triples, ascending, from <= to < kTimeBuckets; each
  /// row adds up to the bucket's freed arrivals.
  std::vector<Class::Flow> departures(const Json& v, const std::string& path, const Class& c) const {
    std::vector<Class::Flow> out;
    std::vector<std::uint64_t> rows(kTimeBuckets, 0);
    for (std::size_t i = 0; i < array(v, path).size(); ++i) {
      const std::string at = path + "[" + std::to_string(i) + "]";
      if (!v[i].is_array() || v[i].size() != 3) fail(at, "is not a [from, to, count] triple");
      Class::Flow f;
      const std::uint64_t from = count(v[i][0], at + "[0]"), to = count(v[i][1], at + "[1]");
      if (to >= kTimeBuckets || from > to) fail(at, "does not name buckets from <= to < " + std::to_string(kTimeBuckets));
      f.from = static_cast<std::uint32_t>(from);
      f.to = static_cast<std::uint32_t>(to);
      f.count = count(v[i][2], at + "[2]");
      if (!out.empty() && std::pair(f.from, f.to) <= std::pair(out.back().from, out.back().to)) {
        fail(at, "is not after the triple before it");
      }
      rows[f.from] = add(rows[f.from], f.count, path);
      out.push_back(f);
    }
    for (std::size_t b = 0; b < kTimeBuckets; ++b) {
      if (rows[b] != c.arrivals[b] - c.censored_arrivals[b]) {
        fail(path, "frees allocations of bucket " + std::to_string(b) + " " + std::to_string(rows[b]) +
                       " times, but it has " + std::to_string(c.arrivals[b] - c.censored_arrivals[b]) +
                       " freed arrivals");
      }
    }
    return out;
  }

 private:
  std::string name_;
};

/// The ranges of a mix's keys.
constexpr std::int64_t kMaxCpu = 65535;     // as the importers take them
constexpr std::int64_t kMaxNode = 127;      // an op's node is a signed byte; -1: any
constexpr std::int64_t kMaxAlignLog2 = 63;  // alignment 1 << key

Class Reader::class_at(const Json& v, const std::string& path, int version, const Limits& limits) const {
  if (version == 1) {
    only(v, path, {"id", "kind", "cache", "count", "censored", "sizes", "censored_sizes", "lifetime_ops", "lifetime_ns",
                   "interarrival_ns", "arrivals", "censored_arrivals", "departures", "cpu_mix", "remote_free_fraction",
                   "flag_mix", "align_mix", "node_mix", "maps"});
  } else {
    only(v, path, {"id", "kind", "cache", "count", "censored", "sizes", "censored_sizes", "lifetime_ops", "lifetime_ns",
                   "interarrival_ns", "arrivals", "censored_arrivals", "departures", "cpu_mix", "cpu_stay",
                   "remote_free_fraction", "free_cpu_stay", "flag_mix", "align_mix", "node_mix", "maps"});
  }
  Class c;
  c.id = text(field(v, path, "id"), path + ".id");
  const std::string kind = text(field(v, path, "kind"), path + ".kind");
  if (kind == "alloc") {
    c.kind = ops::OpKind::alloc;
  } else if (kind == "page") {
    c.kind = ops::OpKind::page_alloc;
  } else if (kind == "dma") {
    c.kind = ops::OpKind::dma_alloc;
  } else {
    fail(path + ".kind", "is '" + kind + "', not alloc, page or dma");
  }
  c.cache = text(field(v, path, "cache"), path + ".cache");
  c.count = count_of(v, path, "count");
  c.censored = count_of(v, path, "censored");
  if (c.censored > c.count) fail(path + ".censored", "is more than the class's count");
  const char* const size_limit = "256 TiB, the address space";
  const char* const time_limit = "the profile's duration_ns";
  c.sizes = distribution_of(v, path, "sizes", c.count - c.censored, "count - censored", kMaxBytes, size_limit);
  c.censored_sizes = distribution_of(v, path, "censored_sizes", c.censored, "censored", kMaxBytes, size_limit);
  c.lifetime_ops = distribution_of(v, path, "lifetime_ops", c.count - c.censored, "count - censored", limits.ops,
                                   "the profile's ops");
  c.lifetime_ns =
      distribution_of(v, path, "lifetime_ns", c.count - c.censored, "count - censored", limits.duration_ns, time_limit);
  c.interarrival_ns = distribution_of(v, path, "interarrival_ns", c.count == 0 ? 0 : c.count - 1, "count - 1",
                                      limits.duration_ns, time_limit);
  c.arrivals = counts(field(v, path, "arrivals"), path + ".arrivals", kTimeBuckets);
  const std::uint64_t arrived = sum(c.arrivals, path + ".arrivals");
  if (arrived != c.count) fail(path + ".arrivals", "adds up to " + std::to_string(arrived) + ", not count");
  c.censored_arrivals = counts(field(v, path, "censored_arrivals"), path + ".censored_arrivals", kTimeBuckets);
  for (std::size_t b = 0; b < kTimeBuckets; ++b) {
    if (c.censored_arrivals[b] > c.arrivals[b]) {
      fail(path + ".censored_arrivals[" + std::to_string(b) + "]", "is more than arrivals[" + std::to_string(b) + "]");
    }
  }
  if (sum(c.censored_arrivals, path + ".censored_arrivals") != c.censored) {
    fail(path + ".censored_arrivals", "does not add up to censored");
  }
  c.departures = departures(field(v, path, "departures"), path + ".departures", c);
  c.cpu_mix = shares_within(field(v, path, "cpu_mix"), path + ".cpu_mix", 0, kMaxCpu, "a CPU");
  if (version >= 2) {
    c.cpu_stay = fraction(field(v, path, "cpu_stay"), path + ".cpu_stay");
  } else {
    c.cpu_stay = chance_same(c.cpu_mix);  // independent draws
  }
  c.remote_free_fraction = fraction(field(v, path, "remote_free_fraction"), path + ".remote_free_fraction");
  if (version >= 2) {
    c.free_cpu_stay = fraction(field(v, path, "free_cpu_stay"), path + ".free_cpu_stay");
  } else {
    c.free_cpu_stay = chance_same(c.cpu_mix);  // no runs: free CPUs chosen one by one
  }
  c.flag_mix = shares(field(v, path, "flag_mix"), path + ".flag_mix", true);
  c.align_mix = shares_within(field(v, path, "align_mix"), path + ".align_mix", 0, kMaxAlignLog2, "a log2 alignment");
  c.node_mix = shares_within(field(v, path, "node_mix"), path + ".node_mix", -1, kMaxNode, "a node; -1: any");
  const std::string mp = path + ".maps";
  const Json& m = field(v, path, "maps");
  only(m, mp, {"count", "per_object", "bytes", "lifetime_ns", "flag_mix"});
  c.maps.count = count_of(m, mp, "count");
  c.maps.per_object =
      distribution_of(m, mp, "per_object", c.count, "the class's count", c.maps.count, "maps.count: all its maps");
  maps_add_up(c.maps.per_object, c.maps.count, mp + ".per_object");
  c.maps.bytes = distribution_of(m, mp, "bytes", c.maps.count, "maps.count", kMaxBytes, size_limit);
  c.maps.lifetime_ns =
      distribution_of(m, mp, "lifetime_ns", c.maps.count, "maps.count", limits.duration_ns, time_limit);
  c.maps.flag_mix = shares(field(m, mp, "flag_mix"), mp + ".flag_mix", true);
  return c;
}

}  // namespace

std::string to_json(const Profile& p) {
  JsonText j;
  j.reserve(16384 + 8192 * p.classes.size());  // a class takes 4-7 KB in the shipped captures' profiles
  j.open_object();
  j.member("format", kFormat);
  j.member("version", p.version);
  j.member("sites", sites_name(p.sites));
  j.member("source", p.source);
  j.member("page_size", p.page_size);
  j.member("cpu_count", p.cpu_count);
  j.member("node_count", p.node_count);
  j.member("duration_ns", p.duration_ns);
  j.member("ops", p.ops);
  j.member("allocs", p.allocs);
  j.member("frees", p.frees);
  j.member("objects", p.objects);
  j.member("peak_live_bytes", p.peak_live_bytes);
  member(j, "interarrival_ns", distribution_json, p.interarrival_ns);
  member(j, "cpu_mix", mix_json, p.cpu_mix);
  j.member("remote_free_fraction", p.remote_free_fraction);
  member(j, "page_order_mix", mix_json, p.page_order_mix);
  member(j, "flag_mix", flag_mix_json, p.flag_mix);
  member(j, "live_set_bytes", counts_json, p.live_set_bytes);
  j.key("classes");
  j.open_array();
  for (const Class& c : p.classes) class_json(j, c);
  j.close();
  j.close();
  return j.finish();
}

Profile from_json(std::string_view text, const std::string& name) {
  if (const auto at = base::json_nested_beyond(text, kMaxNesting)) {
    throw InputError(name, "byte " + std::to_string(*at) + ": not a profile: JSON nested more than " +
                               std::to_string(kMaxNesting) + " deep");
  }
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {  // a syntax error, or a number beyond a double (out_of_range)
    throw InputError(name, std::string("not JSON: ") + e.what());
  }
  const Reader r(name);
  if (!j.is_object()) r.fail("$", "is not an object");
  if (!j.contains("format") || j["format"] != kFormat) r.fail("$.format", "is not \"kmbench-profile\"");
  const std::int64_t version = r.integer(r.field(j, "$", "version"), "$.version");
  if (version != 1 && version != kVersion) {
    r.fail("$.version", "is " + std::to_string(version) + "; this build reads versions 1 and " + std::to_string(kVersion));
  }
  r.only(j, "$", {"format", "version", "sites", "source", "page_size", "cpu_count", "node_count", "duration_ns", "ops",
                  "allocs", "frees", "objects", "peak_live_bytes", "interarrival_ns", "cpu_mix",
                  "remote_free_fraction", "page_order_mix", "flag_mix", "live_set_bytes", "classes"});
  Profile p;
  const std::string sites = r.text(r.field(j, "$", "sites"), "$.sites");
  if (sites == "hashed") {
    p.sites = Sites::hashed;
  } else if (sites == "merged") {
    p.sites = Sites::merged;
  } else if (sites == "clear") {
    p.sites = Sites::clear;
  } else {
    r.fail("$.sites", "is '" + sites + "', not hashed, merged or clear");
  }
  p.source = r.text(r.field(j, "$", "source"), "$.source");
  p.page_size = static_cast<std::uint32_t>(r.count_of(j, "$", "page_size", std::uint64_t{1} << 30, "a 1 GiB page"));
  if (p.page_size == 0 || (p.page_size & (p.page_size - 1)) != 0) r.fail("$.page_size", "is not a power of two");
  p.cpu_count = static_cast<std::uint32_t>(r.count_of(j, "$", "cpu_count", kMaxCpu + 1, "CPUs the importers take"));
  p.node_count = static_cast<std::uint32_t>(r.count_of(j, "$", "node_count", kMaxNode + 1, "nodes an op can name"));
  p.duration_ns = r.count_of(j, "$", "duration_ns", kMaxDuration, "104 days");
  p.ops = r.count_of(j, "$", "ops");
  p.allocs = r.count_of(j, "$", "allocs");
  p.frees = r.count_of(j, "$", "frees");
  p.objects = r.count_of(j, "$", "objects");
  p.peak_live_bytes = r.count_of(j, "$", "peak_live_bytes");
  if (p.frees > p.allocs) r.fail("$.frees", "is more than $.allocs");
  p.interarrival_ns = r.distribution_of(j, "$", "interarrival_ns", p.allocs == 0 ? 0 : p.allocs - 1, "$.allocs - 1",
                                       p.duration_ns, "the profile's duration_ns");
  p.cpu_mix = r.shares_within(r.field(j, "$", "cpu_mix"), "$.cpu_mix", 0, kMaxCpu, "a CPU");
  p.remote_free_fraction = r.fraction(r.field(j, "$", "remote_free_fraction"), "$.remote_free_fraction");
  p.page_order_mix = r.shares_within(r.field(j, "$", "page_order_mix"), "$.page_order_mix", 0, 63, "a page order");
  p.flag_mix = r.shares(r.field(j, "$", "flag_mix"), "$.flag_mix", true);
  p.live_set_bytes = r.counts(r.field(j, "$", "live_set_bytes"), "$.live_set_bytes", kLiveSetPoints);
  const Json& classes = r.array(r.field(j, "$", "classes"), "$.classes");
  std::uint64_t allocs = 0;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < classes.size(); ++i) {
    const std::string at = "$.classes[" + std::to_string(i) + "]";
    p.classes.push_back(r.class_at(classes[i], at, static_cast<int>(version), {p.duration_ns, p.ops}));
    if (!ids.insert(p.classes.back().id).second) r.fail(at + ".id", "repeats '" + p.classes.back().id + "'");
    allocs = r.add(allocs, p.classes.back().count, "$.classes");
  }
  if (allocs != p.allocs) {
    r.fail("$.classes", "hold " + std::to_string(allocs) + " allocations, but $.allocs is " + std::to_string(p.allocs));
  }
  return p;
}

Profile load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  return from_json(text.str(), path);
}

}  // namespace kmbench::profile
