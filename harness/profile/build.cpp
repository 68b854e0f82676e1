// Building a profile: one walk over the trace's operations in time order
// (streams merged) records each object's life, its DMA transfers and the
// live-set curve; then the objects are grouped into classes and each class's
// distributions are counted.
#include <sys/random.h>

#include <cstdio>
#include <exception>
#include <queue>
#include <stdexcept>
#include <thread>

#include "base/errors.h"
#include "harness/profile/distribution.h"
#include "harness/trace/pages.h"

namespace kmbench::profile {
namespace {

using ops::OpKind;

bool is_alloc(OpKind k) { return k == OpKind::alloc || k == OpKind::page_alloc || k == OpKind::dma_alloc; }
bool is_free(OpKind k) { return k == OpKind::free || k == OpKind::page_free || k == OpKind::dma_free; }

const char* class_kind_name(OpKind k) {
  return k == OpKind::page_alloc ? "page" : k == OpKind::dma_alloc ? "dma" : "alloc";
}

/// One object's life as the walk finds it. Its allocation is the trace's own
/// op, so the table holds only what the walk adds: 32 bytes, two to a cache
/// line. The table is a profile's one large allocation, and faulting in fresh
/// memory (in a virtual machine above all) cost more than the walk over it.
/// All zero: never allocated.
struct Object {
  const ops::Op* alloc;  // the (last) allocation
  std::uint64_t ops;     // live: the allocation's index in time order; freed: operations from it to the free
  std::uint64_t t_free;
  std::uint32_t cpu;     // the allocation's
  bool freed, remote_free;
  std::uint16_t free_cpu;  // the free's (CPUs past 65535 share the last number)

  bool live() const { return alloc != nullptr && !freed; }
};
static_assert(sizeof(Object) == 32);

/// An object's DMA transfers: how many so far, and the one in flight.
struct Mapping {
  std::uint64_t t = 0, bytes = 0;
  std::uint32_t count = 0;
  std::uint8_t flags = 0;
  bool in_flight = false;
};

/// The first and the last operation's times.
struct Span {
  std::uint64_t t0 = 0, t1 = 0;
  std::uint64_t width = 1;      // t1 - t0 + 1 (at least 1)
  double buckets_per_ns = 0;    // kTimeBuckets / width
};

Span span_of(const ops::Trace& trace) {
  Span span;
  bool first = true;
  for (const ops::Stream& s : trace.streams) {
    if (s.ops.empty()) continue;
    span.t0 = first ? s.ops.front().time_ns : std::min(span.t0, s.ops.front().time_ns);
    span.t1 = first ? s.ops.back().time_ns : std::max(span.t1, s.ops.back().time_ns);
    first = false;
  }
  span.width = std::max<std::uint64_t>(1, span.t1 - span.t0 + 1);
  span.buckets_per_ns = static_cast<double>(kTimeBuckets) / static_cast<double>(span.width);
  return span;
}

/// The time bucket (of kTimeBuckets over the span) of `t`: (t - t0) *
/// kTimeBuckets / width, rounded down. Estimated in floating point, then made
/// exact by a step either way: a 64-bit division per object was a fifth of
/// the counting.
std::size_t time_bucket(const Span& span, std::uint64_t t) {
  using u128 = unsigned __int128;
  const u128 x = static_cast<u128>(t - span.t0) * kTimeBuckets;
  auto q = static_cast<std::uint64_t>(static_cast<double>(t - span.t0) * span.buckets_per_ns);
  while (q > 0 && static_cast<u128>(q) * span.width > x) --q;
  while (static_cast<u128>(q + 1) * span.width <= x) ++q;
  return static_cast<std::size_t>(q);
}

struct Transfer {
  std::uint32_t object;
  std::uint64_t bytes, ns;
  std::uint8_t flags;
};

/// Object ids on zero-filled pages of their own (transparent huge pages): a
/// vector's fresh 4 KiB pages took a fault each, and on a virtual machine the
/// faults cost more than the writes. Room for `capacity` ids is reserved, and
/// only what is written is ever faulted in.
class Ids {
 public:
  explicit Ids(std::size_t capacity = 0)
      : pages_(capacity * sizeof(std::uint32_t)), ids_(pages_.as<std::uint32_t>()), capacity_(capacity) {}
  void push_back(std::uint32_t id) {
    if (size_ == capacity_) throw std::length_error("profile: more object ids than reserved");
    ids_[size_++] = id;
  }
  std::uint32_t operator[](std::size_t i) const { return ids_[i]; }
  std::size_t size() const { return size_; }
  const std::uint32_t* begin() const { return ids_; }
  const std::uint32_t* end() const { return ids_ + size_; }

 private:
  trace::ZeroedPages pages_;
  std::uint32_t* ids_;
  std::size_t capacity_, size_ = 0;
};

/// What the walk over the operations found.
struct Walk {
  Object* objects = nullptr;               // by object id, all zero at the start
  std::vector<Mapping> maps;               // by object id; empty when the trace maps nothing
  Ids alloc_order;  // objects in allocation order
  Ids free_order;   // freed objects in the order of their frees
  std::vector<Transfer> transfers;
  std::uint64_t ops = 0, frees = 0, peak_live = 0;
  std::vector<std::uint64_t> live_set;
};

/// Visits every operation in time order (ties: lower stream first) with its
/// stream's CPU; `soon` sees the operation kAhead places further in the same
/// stream first, to start loading what its visit will touch.
template <class Soon, class Visit>
void for_each_in_time_order(const ops::Trace& trace, Soon&& soon, Visit&& visit) {
  constexpr std::size_t kAhead = 16;
  using Head = std::pair<std::uint64_t, std::size_t>;  // (time, stream)
  std::priority_queue<Head, std::vector<Head>, std::greater<>> heads;
  std::vector<std::size_t> next(trace.streams.size(), 0);
  for (std::size_t s = 0; s < trace.streams.size(); ++s) {
    if (!trace.streams[s].ops.empty()) heads.emplace(trace.streams[s].ops[0].time_ns, s);
  }
  while (!heads.empty()) {
    const std::size_t s = heads.top().second;
    heads.pop();
    const auto& ops = trace.streams[s].ops;
    // Stay on this stream while it is not later than the next one's head.
    const Head limit = heads.empty() ? Head{UINT64_MAX, SIZE_MAX} : heads.top();
    std::size_t& i = next[s];
    do {
      if (i + kAhead < ops.size()) soon(ops[i + kAhead]);
      visit(ops[i], trace.streams[s].cpu);
      ++i;
    } while (i < ops.size() && Head{ops[i].time_ns, s} < limit);
    if (i < ops.size()) heads.emplace(ops[i].time_ns, s);
  }
}

void close_transfer(Walk& w, std::uint32_t id, std::uint64_t now) {
  if (w.maps.empty() || !w.maps[id].in_flight) return;
  Mapping& m = w.maps[id];
  w.transfers.push_back({id, m.bytes, now - m.t, m.flags});
  m.in_flight = false;
}

Walk walk(const ops::Trace& trace, const Span& span, Object* objects) {
  Walk w;
  w.objects = objects;
  std::size_t op_count = 0;
  for (const ops::Stream& s : trace.streams) op_count += s.ops.size();
  w.alloc_order = Ids(op_count);
  w.free_order = Ids(op_count);
  // The live set is sampled before the first operation later than each point.
  std::array<std::uint64_t, kLiveSetPoints> point_time;
  for (std::size_t k = 0; k < kLiveSetPoints; ++k) {
    point_time[k] = span.t0 + static_cast<std::uint64_t>(static_cast<unsigned __int128>(span.t1 - span.t0) * k /
                                                         (kLiveSetPoints - 1));
  }
  w.live_set.assign(kLiveSetPoints, 0);
  std::size_t point = 0;
  std::uint64_t live = 0;
  // A free's object is anywhere in the table (a cache miss each): it is loaded a few operations early.
  const auto soon = [&](const ops::Op& op) { __builtin_prefetch(&w.objects[op.object], 1); };
  for_each_in_time_order(trace, soon, [&](const ops::Op& op, std::uint32_t cpu) {
    while (point < kLiveSetPoints && point_time[point] < op.time_ns) w.live_set[point++] = live;
    const std::uint64_t i = w.ops++;
    Object& o = w.objects[op.object];
    if (is_alloc(op.kind)) {
      o = Object{&op, i, 0, cpu, false, false, 0};
      if (!w.maps.empty()) w.maps[op.object] = Mapping{};
      w.alloc_order.push_back(op.object);
      live += op.size;
      w.peak_live = std::max(w.peak_live, live);
    } else if (is_free(op.kind)) {
      if (!o.live()) return;
      close_transfer(w, op.object, op.time_ns);
      o.ops = i - o.ops, o.t_free = op.time_ns, o.remote_free = cpu != o.cpu, o.freed = true;
      o.free_cpu = static_cast<std::uint16_t>(std::min<std::uint32_t>(cpu, UINT16_MAX));
      w.free_order.push_back(op.object);
      live -= o.alloc->size;
      ++w.frees;
    } else if (o.live()) {
      close_transfer(w, op.object, op.time_ns);  // a map completes the transfer before it
      if (op.kind == OpKind::dma_map) {
        if (w.maps.empty()) w.maps.resize(trace.object_count);
        Mapping& m = w.maps[op.object];
        m.in_flight = true, m.t = op.time_ns, m.flags = op.flags;
        m.bytes = op.size == 0 ? o.alloc->size : std::min(op.size, o.alloc->size);
        ++m.count;
      }
    }
  });
  while (point < kLiveSetPoints) w.live_set[point++] = live;
  for (std::uint32_t id = 0; id < w.maps.size(); ++id) close_transfer(w, id, span.t1);
  return w;
}

std::array<std::uint8_t, 16> hash_key(const std::string& salt) {
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

std::string hex16(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

/// Lifetime bin of the merged classes: the decade of nanoseconds (0..18), or 19: never freed.
int lifetime_decade(const Object& o) {
  if (!o.freed) return 19;
  const std::uint64_t ns = o.t_free - o.alloc->time_ns;
  int e = 0;
  for (std::uint64_t decade = 10; e < 18 && ns >= decade; decade *= 10) ++e;
  return e;
}

std::string lifetime_label(int d) {
  return d == 19 ? std::string("live") : "1e" + std::to_string(d) + "ns";
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
    Key k{static_cast<std::uint8_t>(a.kind), 0, static_cast<std::uint8_t>(std::bit_width(a.size)), a.site,
          cached ? a.tag : 0};
    if (sites_ == Sites::merged) {
      k.life = static_cast<std::uint8_t>(life);
      k.site = 0;
    }
    Recent& recent = recent_[KeyHash{}(k) % recent_.size()];
    if (recent.used && recent.key == k) return recent.id;
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

  /// The classes met so far, each with its id, kind and cache, by the number classify() gave.
  std::vector<Class>& classes() { return classes_; }

 private:
  struct Key {
    std::uint8_t kind, life, band;
    std::uint32_t site, tag;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      const std::uint64_t x = (std::uint64_t{k.site} << 32 | k.tag) ^
                              (std::uint64_t{k.kind} << 16 | std::uint64_t{k.life} << 8 | k.band) * 0x9e3779b97f4a7c15ull;
      return static_cast<std::size_t>(x ^ (x >> 29));
    }
  };

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
  /// Keys met lately, by hash: most lookups end here. The unordered_map's
  /// division and bucket walk per object were the largest cost of counting.
  struct Recent {
    Key key{};
    std::uint32_t id = 0;
    bool used = false;
  };
  std::array<Recent, 256> recent_{};
  std::vector<Class> classes_;  // by id: what classify() returns
};

/// One class's counters while the objects are gone through.
struct ClassCounters {
  ValueCounter sizes, censored_sizes, maps_per_object, map_bytes;
  BinCounter lifetime_ops, lifetime_ns, interarrival, map_lifetime;
  ShareCounter cpus, flags, aligns, nodes, map_flags;
  KeyCounter<std::pair<std::uint32_t, std::uint32_t>> departures;
  std::uint64_t frees = 0, remote_frees = 0, last_t = 0, stays = 0, free_stays = 0;
  std::uint32_t last_cpu = 0, last_free_cpu = UINT32_MAX;
  bool seen = false;
};

void count_object(const Span& span, const Object& o, std::uint32_t maps, Class& c, ClassCounters& k) {
  const ops::Op& a = *o.alloc;
  ++c.count;
  k.cpus.add(o.cpu);
  k.flags.add(a.flags);
  k.aligns.add(a.align_log2);
  k.nodes.add(a.node);
  k.maps_per_object.add(maps);
  if (k.seen) {
    k.interarrival.add(a.time_ns - k.last_t);
    if (o.cpu == k.last_cpu) ++k.stays;
  }
  k.seen = true;
  k.last_t = a.time_ns;
  k.last_cpu = o.cpu;
  const std::size_t b = time_bucket(span, a.time_ns);
  ++c.arrivals[b];
  if (!o.freed) {
    ++c.censored;
    ++c.censored_arrivals[b];
    k.censored_sizes.add(a.size);
    return;
  }
  k.sizes.add(a.size);
  k.departures.add({static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(time_bucket(span, o.t_free))});
  k.lifetime_ops.add(o.ops);
  k.lifetime_ns.add(o.t_free - a.time_ns);
  ++k.frees;
  if (o.remote_free) ++k.remote_frees;
}

void finish_class(Class& c, const ClassCounters& k) {
  c.sizes = k.sizes.finish(kExactValues);
  for (const auto& [buckets, count] : k.departures.counts()) c.departures.push_back({buckets.first, buckets.second, count});
  c.censored_sizes = k.censored_sizes.finish(kExactValues);
  c.lifetime_ops = k.lifetime_ops.finish();
  c.lifetime_ns = k.lifetime_ns.finish();
  c.interarrival_ns = k.interarrival.finish();
  c.cpu_mix = k.cpus.finish();
  c.flag_mix = k.flags.finish();
  c.align_mix = k.aligns.finish();
  c.node_mix = k.nodes.finish();
  c.remote_free_fraction = k.frees == 0 ? 0 : static_cast<double>(k.remote_frees) / static_cast<double>(k.frees);
  c.cpu_stay = c.count < 2 ? 0 : static_cast<double>(k.stays) / static_cast<double>(c.count - 1);
  c.free_cpu_stay = k.frees < 2 ? 0 : static_cast<double>(k.free_stays) / static_cast<double>(k.frees - 1);
  c.maps.per_object = k.maps_per_object.finish(kExactValues);
  c.maps.bytes = k.map_bytes.finish(kExactValues);
  c.maps.lifetime_ns = k.map_lifetime.finish();
  c.maps.flag_mix = k.map_flags.finish();
}

int page_order(std::uint64_t bytes, std::uint32_t page_size) {
  const std::uint64_t pages = std::max<std::uint64_t>(1, (bytes + page_size - 1) / page_size);
  return std::bit_width(pages - 1);
}

/// The walk, and every allocation's class. With sites hashed or in clear an
/// allocation's class is its op's alone, so another thread finds them while
/// this one walks; it first faults in the walk's object table, which the walk
/// would otherwise stop to zero page by page.
struct Found {
  /// By object id, zero-filled on pages of its own (transparent huge pages).
  trace::ZeroedPages object_pages;
  Walk walk;
  /// By object id: 1 + the classifier's number for the object's one
  /// allocation, or kAgain for an object allocated more than once.
  trace::ZeroedPages early_pages;
  static constexpr std::uint32_t kAgain = UINT32_MAX;

  /// The classifier's number for object `id`'s (last) allocation.
  std::uint32_t class_of(std::uint32_t id, const Object& o, Classifier& classifier, Sites sites) const {
    if (sites == Sites::merged) return classifier.classify(*o.alloc, lifetime_decade(o));
    const std::uint32_t early = early_pages.as<std::uint32_t>()[id];
    return early == kAgain ? classifier.classify(*o.alloc, 0) : early - 1;
  }
};

Found walk_and_classify(const ops::Trace& trace, const Span& span, Classifier& classifier, Sites sites) {
  Found f;
  f.object_pages = trace::ZeroedPages(std::size_t{trace.object_count} * sizeof(Object));
  if (sites == Sites::merged) {
    f.walk = walk(trace, span, f.object_pages.as<Object>());
    return f;
  }
  f.early_pages = trace::ZeroedPages(std::size_t{trace.object_count} * sizeof(std::uint32_t));
  std::exception_ptr failed;
  std::thread classify([&] {
    try {
      f.object_pages.populate();
      std::uint32_t* early = f.early_pages.as<std::uint32_t>();
      for (const ops::Stream& s : trace.streams) {
        for (const ops::Op& op : s.ops) {
          if (!is_alloc(op.kind)) continue;
          std::uint32_t& e = early[op.object];
          e = e == 0 ? classifier.classify(op, 0) + 1 : Found::kAgain;
        }
      }
    } catch (...) {
      failed = std::current_exception();
    }
  });
  try {
    f.walk = walk(trace, span, f.object_pages.as<Object>());
  } catch (...) {
    classify.join();
    throw;
  }
  classify.join();
  if (failed) std::rethrow_exception(failed);
  return f;
}

}  // namespace

Profile build(const ops::Trace& trace, const BuildOptions& options) {
  const Span span = span_of(trace);
  Classifier classifier(trace, options);
  const Found found = walk_and_classify(trace, span, classifier, options.sites);
  const Walk& w = found.walk;
  Profile p;
  p.sites = options.sites;
  p.source = trace.header.source;
  p.page_size = trace.header.page_size;
  p.cpu_count = trace.header.cpu_count;
  p.node_count = trace.header.node_count;
  p.duration_ns = span.t1 - span.t0;
  p.ops = w.ops;
  p.allocs = w.alloc_order.size();
  p.frees = w.frees;
  p.objects = trace.object_count;
  p.peak_live_bytes = w.peak_live;
  p.live_set_bytes = w.live_set;

  // Classes in the order their first allocation came (the classifier numbers
  // them in the order it met them), with their counters.
  std::vector<Class>& met = classifier.classes();
  constexpr std::uint32_t kUnseen = UINT32_MAX;
  std::vector<std::uint32_t> order;  // by classifier number
  std::vector<Class> classes;
  std::vector<ClassCounters> counters;
  BinCounter gaps;
  ShareCounter cpus, flags, orders;
  std::uint64_t frees = 0, remote = 0, last_t = 0;
  // Each object's class, for its transfers and its free.
  trace::ZeroedPages class_pages(std::size_t{trace.object_count} * sizeof(std::uint32_t));
  std::uint32_t* class_of = class_pages.as<std::uint32_t>();
  for (std::size_t n = 0; n < w.alloc_order.size(); ++n) {
    const std::uint32_t id = w.alloc_order[n];
    const Object& o = w.objects[id];
    const ops::Op& a = *o.alloc;
    const std::uint32_t k = found.class_of(id, o, classifier, options.sites);
    if (k >= order.size()) order.resize(met.size(), kUnseen);
    std::uint32_t& c = order[k];
    if (c == kUnseen) {
      c = static_cast<std::uint32_t>(classes.size());
      classes.push_back(std::move(met[k]));
      counters.emplace_back();
      classes[c].arrivals.assign(kTimeBuckets, 0);
      classes[c].censored_arrivals.assign(kTimeBuckets, 0);
    }
    class_of[id] = c;
    count_object(span, o, w.maps.empty() ? 0 : w.maps[id].count, classes[c], counters[c]);
    if (n > 0) gaps.add(a.time_ns - last_t);
    last_t = a.time_ns;
    cpus.add(o.cpu);
    flags.add(a.flags);
    if (a.kind == OpKind::page_alloc) orders.add(page_order(a.size, p.page_size));
    if (o.freed) ++frees, remote += o.remote_free ? 1 : 0;
  }
  // Frees in their order: on the CPU of the class's free before?
  for (const std::uint32_t id : w.free_order) {
    ClassCounters& k = counters[class_of[id]];
    const std::uint16_t cpu = w.objects[id].free_cpu;
    if (cpu == k.last_free_cpu) ++k.free_stays;
    k.last_free_cpu = cpu;
  }
  for (const Transfer& t : w.transfers) {
    const std::uint32_t c = class_of[t.object];
    counters[c].map_bytes.add(t.bytes);
    counters[c].map_lifetime.add(t.ns);
    counters[c].map_flags.add(t.flags);
    ++classes[c].maps.count;
  }
  for (std::size_t c = 0; c < classes.size(); ++c) finish_class(classes[c], counters[c]);
  std::stable_sort(classes.begin(), classes.end(), [](const Class& a, const Class& b) { return a.count > b.count; });
  p.classes = std::move(classes);
  p.interarrival_ns = gaps.finish();
  p.cpu_mix = cpus.finish();
  p.flag_mix = flags.finish();
  p.page_order_mix = orders.finish();
  p.remote_free_fraction = frees == 0 ? 0 : static_cast<double>(remote) / static_cast<double>(frees);
  return p;
}

}  // namespace kmbench::profile
