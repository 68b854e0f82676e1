// Building a profile: two passes over the trace's operations in time order
// (the streams merged), side by side on two threads. One classes every
// allocation and counts how each class's allocations arrive; the other walks
// every object's life and counts, as each ends, what became of it (its
// lifetime, its free, its DMA transfers), and the live-set curve. With call
// sites merged, a class depends on the lifetime: the walk then classes each
// allocation as it ends, and the arrivals are counted after it.
#include <atomic>
#include <cstdio>
#include <exception>
#include <optional>
#include <queue>
#include <stdexcept>
#include <thread>

#include "base/errors.h"
#include "base/spin_lock.h"
#include "harness/profile/classifier.h"
#include "harness/profile/distribution.h"
#include "harness/trace/pages.h"

namespace kmbench::profile {
namespace {

using classing::Classifier;
using classing::kNeverFreed;
using classing::lifetime_decade;
using ops::OpKind;

bool is_alloc(OpKind k) { return k == OpKind::alloc || k == OpKind::page_alloc || k == OpKind::dma_alloc; }
bool is_free(OpKind k) { return k == OpKind::free || k == OpKind::page_free || k == OpKind::dma_free; }

/// A live object, as the walk keeps it by object id: 16 bytes. Its
/// allocation is the trace's own op (which stream it lies in gives the CPU),
/// and what became of it is counted when it is freed, so the table holds only
/// what finds the allocation again. All zero: not live (never allocated, or
/// freed). The table is a profile's one large allocation, and faulting in
/// fresh memory (in a virtual machine above all) cost more than the walk over it.
struct Live {
  const ops::Op* alloc;  // nullptr: not live
  std::uint32_t index;   // the allocation's number among the operations in time order
  std::uint32_t nth;     // ... among the allocations
};
static_assert(sizeof(Live) == 16);

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
  std::uint64_t width = 1;  // t1 - t0 + 1 (at least 1)
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
  return span;
}

/// The time bucket (of kTimeBuckets over the span) of the operations of a
/// walk in time order: bucket b holds the times t with (t - t0) *
/// kTimeBuckets / width rounded down equal to b. It moves on as the time does,
/// without arithmetic per operation.
class BucketClock {
 public:
  explicit BucketClock(const Span& span) {
    using u128 = unsigned __int128;
    for (std::size_t b = 0; b < kTimeBuckets; ++b) {
      const u128 from = (static_cast<u128>(b) * span.width + kTimeBuckets - 1) / kTimeBuckets;  // ceil
      start_[b] = span.t0 + static_cast<std::uint64_t>(from);
    }
    next_ = kTimeBuckets > 1 ? start_[1] : UINT64_MAX;
  }
  /// The bucket of `t`, no earlier than the last one asked for.
  std::uint32_t at(std::uint64_t t) {
    if (t >= next_) [[unlikely]] {
      while (b_ + 1 < kTimeBuckets && t >= start_[b_ + 1]) ++b_;
      next_ = b_ + 1 < kTimeBuckets ? start_[b_ + 1] : UINT64_MAX;
    }
    return b_;
  }
  /// The bucket of any `t` in the span.
  std::uint32_t of(std::uint64_t t) const {
    return static_cast<std::uint32_t>(std::upper_bound(start_.begin() + 1, start_.end(), t) - start_.begin() - 1);
  }

 private:
  std::array<std::uint64_t, kTimeBuckets> start_;
  std::uint64_t next_;  // start_[b_ + 1], or past every time
  std::uint32_t b_ = 0;
};

/// Visits every operation in time order (ties: lower stream first) with its
/// stream's CPU. Before, `soon(far, near)` sees the operations kAhead and
/// kAhead / 2 places further in the same stream, to start loading what their
/// visits will touch in two steps (what `far` names, then what that names).
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
      if (i + kAhead < ops.size()) soon(ops[i + kAhead], ops[i + kAhead / 2]);
      visit(ops[i], trace.streams[s].cpu);
      ++i;
    } while (i < ops.size() && Head{ops[i].time_ns, s} < limit);
    if (i < ops.size()) heads.emplace(ops[i].time_ns, s);
  }
}

/// One class's counters of what its allocations show in the order they came:
/// how many, from which CPUs, with which flags, how far apart.
struct ArrivalCounters {
  std::array<std::uint32_t, kTimeBuckets> arrivals{};  // by time bucket
  ValueCounter sizes;
  BinCounter interarrival;
  /// (CPU, flags, alignment, node) counted together, one count instead of
  /// four: a class has few such sets.
  KeyCounter<std::uint64_t> traits;
  std::uint64_t count = 0, last_t = 0, stays = 0;
  std::uint32_t last_cpu = 0;
};

std::uint64_t traits_key(const ops::Op& a, std::uint32_t cpu) {
  return std::uint64_t{cpu} << 32 | std::uint64_t{a.flags} << 16 | std::uint64_t{a.align_log2} << 8 |
         static_cast<std::uint8_t>(a.node);
}

/// The shares of each trait from their counts together.
struct TraitShares {
  std::vector<Share> cpus, flags, aligns, nodes;
  explicit TraitShares(const KeyCounter<std::uint64_t>& traits) {
    ShareCounter c, f, a, n;
    for (const auto& [key, count] : traits.counts()) {
      c.add(static_cast<std::int64_t>(key >> 32), count);
      f.add(static_cast<std::int64_t>((key >> 16) & 0xff), count);
      a.add(static_cast<std::int64_t>((key >> 8) & 0xff), count);
      n.add(static_cast<std::int8_t>(key & 0xff), count);
    }
    cpus = c.finish(), flags = f.finish(), aligns = a.finish(), nodes = n.finish();
  }
};

/// One class's counters of what became of its freed objects: sizes,
/// lifetimes, when they came and went, their frees and DMA transfers. What
/// was never freed is what the arrivals counted less what was freed.
struct FateCounters {
  std::array<std::uint32_t, kTimeBuckets> arrivals{};  // of the freed objects, by time bucket
  ValueCounter sizes, map_bytes;
  /// DMA maps per object, counted at each object's end once the trace has
  /// mapped anything (`ended` objects); the others were never mapped.
  ValueCounter maps_per_object;
  std::uint64_t ended = 0;
  BinCounter lifetime_ops, lifetime_ns, map_lifetime;
  ShareCounter map_flags;
  KeyCounter<std::pair<std::uint32_t, std::uint32_t>> departures;
  std::uint64_t frees = 0, remote_frees = 0, free_stays = 0, transfers = 0;
  std::uint32_t last_free_cpu = UINT32_MAX;
};

void count_arrival(const ops::Op& a, std::uint32_t cpu, std::uint32_t bucket, ArrivalCounters& k) {
  ++k.arrivals[bucket];
  k.sizes.add(a.size);
  k.traits.add(traits_key(a, cpu));
  if (k.count > 0) {
    k.interarrival.add(a.time_ns - k.last_t);
    if (cpu == k.last_cpu) ++k.stays;
  }
  ++k.count;
  k.last_t = a.time_ns;
  k.last_cpu = cpu;
}

/// A free of `o`, allocated on `alloc_cpu` in time bucket `alloc_bucket`:
/// the `index`th operation, at `t` in time bucket `bucket`, on `cpu`.
[[gnu::always_inline]] inline void count_free(const Live& o, std::uint32_t alloc_cpu, std::uint32_t alloc_bucket,
                                              std::uint32_t index, std::uint64_t t, std::uint32_t bucket,
                                              std::uint32_t cpu, FateCounters& k) {
  const ops::Op& a = *o.alloc;
  ++k.arrivals[alloc_bucket];
  k.sizes.add(a.size);
  k.departures.add({alloc_bucket, bucket});
  k.lifetime_ops.add(index - o.index);
  k.lifetime_ns.add(t - a.time_ns);
  ++k.frees;
  if (cpu != alloc_cpu) ++k.remote_frees;
  if (cpu == k.last_free_cpu) ++k.free_stays;
  k.last_free_cpu = cpu;
}

void finish_class(Class& c, const ArrivalCounters& a, FateCounters& f) {
  c.count = a.count;
  c.censored = a.count - f.frees;
  c.arrivals.assign(a.arrivals.begin(), a.arrivals.end());
  c.censored_arrivals.resize(kTimeBuckets);
  for (std::size_t b = 0; b < kTimeBuckets; ++b) c.censored_arrivals[b] = a.arrivals[b] - f.arrivals[b];
  c.sizes = f.sizes.finish(kExactValues);
  for (const auto& [buckets, count] : f.departures.counts())
    c.departures.push_back({buckets.first, buckets.second, count});
  ValueCounter censored_sizes = a.sizes;
  censored_sizes.subtract(f.sizes);
  c.censored_sizes = censored_sizes.finish(kExactValues);
  c.lifetime_ops = f.lifetime_ops.finish();
  c.lifetime_ns = f.lifetime_ns.finish();
  c.interarrival_ns = a.interarrival.finish();
  TraitShares traits(a.traits);
  c.cpu_mix = std::move(traits.cpus);
  c.flag_mix = std::move(traits.flags);
  c.align_mix = std::move(traits.aligns);
  c.node_mix = std::move(traits.nodes);
  c.remote_free_fraction = f.frees == 0 ? 0 : static_cast<double>(f.remote_frees) / static_cast<double>(f.frees);
  c.cpu_stay = c.count < 2 ? 0 : static_cast<double>(a.stays) / static_cast<double>(c.count - 1);
  c.free_cpu_stay = f.frees < 2 ? 0 : static_cast<double>(f.free_stays) / static_cast<double>(f.frees - 1);
  c.maps.count = f.transfers;
  if (c.count > f.ended) f.maps_per_object.add(0, c.count - f.ended);
  c.maps.per_object = f.maps_per_object.finish(kExactValues);
  c.maps.bytes = f.map_bytes.finish(kExactValues);
  c.maps.lifetime_ns = f.map_lifetime.finish();
  c.maps.flag_mix = f.map_flags.finish();
}

int page_order(std::uint64_t bytes, std::uint32_t page_size) {
  const std::uint64_t rounded = bytes + page_size - 1;
  // Pages are a power of two (a shift) but for a hand-made trace's (a division).
  const std::uint64_t pages = std::max<std::uint64_t>(
      1, std::has_single_bit(page_size) ? rounded >> std::countr_zero(page_size) : rounded / page_size);
  return std::bit_width(pages - 1);
}

/// Runs `beside` on a second thread while `here` runs on this one; when both
/// have stopped, rethrows the exception `beside` threw, else the one `here`
/// threw (`here` may have stopped because `beside` did).
template <class Here, class Beside>
void side_by_side(Here&& here, Beside&& beside) {
  std::exception_ptr here_failed, beside_failed;
  std::thread second([&] {
    try {
      beside();
    } catch (...) {
      beside_failed = std::current_exception();
    }
  });
  try {
    here();
  } catch (...) {
    here_failed = std::current_exception();
  }
  second.join();
  if (beside_failed) std::rethrow_exception(beside_failed);
  if (here_failed) std::rethrow_exception(here_failed);
}

/// Each allocation's class (the classifier's number), by the allocation's
/// number in time order. With sites hashed or in clear, an allocation's class
/// is its op's alone, and a second thread finds them while the walk goes on:
/// the walk then waits at a free whose allocation the classing has not
/// reached, which it seldom does (classing an allocation costs less than
/// walking from it to its free).
class AllocClasses {
 public:
  explicit AllocClasses(std::size_t allocs) : pages_(allocs * sizeof(std::uint32_t)), of_(pages_.as<std::uint32_t>()) {}

  /// The classing thread's side: allocation `nth` is of class `c`, the
  /// allocations set in the order of their numbers.
  void set(std::uint32_t nth, std::uint32_t c) {
    of_[nth] = c;
    if ((nth + 1) % kPublish == 0) ready_.store(nth + 1, std::memory_order_release);
  }
  /// Without a classing thread: in any order, then finish().
  void put(std::uint32_t nth, std::uint32_t c) { of_[nth] = c; }
  /// Every allocation is set (the first `count`), or the classing stopped.
  void finish(std::uint32_t count) { ready_.store(count, std::memory_order_release); }
  void abandon() {
    abandoned_.store(true, std::memory_order_relaxed);
    ready_.store(UINT32_MAX, std::memory_order_release);
  }

  /// Starts loading allocation `nth`'s class (the walk's side, soon to get it).
  void prefetch(std::uint32_t nth) const { __builtin_prefetch(&of_[nth]); }

  /// The walk's side: the class of allocation `nth`, once it is set.
  std::uint32_t get(std::uint32_t nth) {
    if (nth >= known_) wait_for(nth);
    return of_[nth];
  }

 private:
  static constexpr std::uint32_t kPublish = 256;  // allocations set between two stores of `ready_`
  void wait_for(std::uint32_t nth) {
    for (int spins = 0; (known_ = ready_.load(std::memory_order_acquire)) <= nth; ++spins) {
      if (spins < 64) {
        base::cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
    if (abandoned_.load(std::memory_order_relaxed)) throw std::runtime_error("profile: the classing stopped");
  }

  trace::ZeroedPages pages_;
  std::uint32_t* of_;
  // The classing thread stores, the walk loads: lines of their own.
  alignas(64) std::atomic<std::uint32_t> ready_{0};
  std::atomic<bool> abandoned_{false};
  alignas(64) std::uint32_t known_ = 0;  // the walk's last look at ready_
};

/// Makes `by_class` `n` long, with room for a few hundred classes at once:
/// moving counters of kilobytes to fresh pages whenever a class came was
/// about a seventh of the walk's own time (perf record, loopback capture).
template <class Counters>
void grow_to(std::vector<Counters>& by_class, std::size_t n) {
  if (n > by_class.capacity()) by_class.reserve(std::max<std::size_t>(256, 2 * n));
  by_class.resize(n);
}

/// What the arrival pass counts: by the classifier's numbers, and over all
/// allocations.
struct Arrivals {
  std::vector<ArrivalCounters> by_class;
  std::vector<std::uint32_t> order;  // by class: its place among the classes by first allocation
  std::uint32_t met = 0;             // classes placed so far
  std::uint32_t allocs = 0;
  std::uint64_t last_t = 0;
  BinCounter gaps;

  /// Counts allocation `a`, on `cpu` in time bucket `bucket`, of class `c`.
  /// (What all allocations share of CPUs, flags and page orders is summed
  /// from the classes' counts at the end.)
  void add(const ops::Op& a, std::uint32_t cpu, std::uint32_t bucket, std::uint32_t c) {
    if (c >= by_class.size()) [[unlikely]]
      grow_to(by_class, std::size_t{c} + 1), order.resize(std::size_t{c} + 1, UINT32_MAX);
    if (order[c] == UINT32_MAX) order[c] = met++;
    count_arrival(a, cpu, bucket, by_class[c]);
    if (allocs++ > 0) gaps.add(a.time_ns - last_t);
    last_t = a.time_ns;
  }
};

/// What the walk counts: by the classifier's numbers, and over the trace.
struct Fates {
  std::vector<FateCounters> by_class;
  std::uint64_t ops = 0, allocs = 0, frees = 0, remote_frees = 0, peak_live = 0;
  std::vector<std::uint64_t> live_set;

  FateCounters& of(std::uint32_t c) {
    if (c >= by_class.size()) [[unlikely]]
      grow(c);
    return by_class[c];
  }
  [[gnu::noinline]] void grow(std::uint32_t c) { grow_to(by_class, std::size_t{c} + 1); }
};

/// The allocations in time order, of the class `class_of(op, nth)` gives,
/// counted into `n`.
template <class ClassOf>
void count_arrivals(const ops::Trace& trace, const Span& span, Arrivals& n, ClassOf&& class_of) {
  std::uint32_t nth = 0;
  BucketClock clock(span);
  for_each_in_time_order(
      trace, [](const ops::Op&, const ops::Op&) {},
      [&](const ops::Op& a, std::uint32_t cpu) {
        if (is_alloc(a.kind)) n.add(a, cpu, clock.at(a.time_ns), class_of(a, nth++));
      });
}

/// The walk: every operation in time order, each object's life and DMA
/// transfers counted into its class as it ends, and the live-set curve.
class Walker {
 public:
  Walker(const ops::Trace& trace, const Span& span, const AllocClasses& classes, Fates& n)
      : trace_(trace),
        span_(span),
        classes_(classes),
        n_(n),
        clock_(span),
        table_(std::size_t{trace.object_count} * sizeof(Live)),
        objects_(table_.as<Live>()) {
    // Faulted in at once: taken one by one, the faults cost the walk about a quarter of its time.
    table_.populate();
    for (const ops::Stream& s : trace.streams) {
      if (!s.ops.empty()) streams_.push_back({reinterpret_cast<std::uintptr_t>(s.ops.data()), s.cpu});
    }
    std::sort(streams_.begin(), streams_.end());
  }

  /// Walks the trace. `class_at_end(o, t)` is the class of live object `o`'s
  /// allocation, which ends with a free at `t`, or never (t: nullopt).
  template <class ClassAtEnd>
  void walk(ClassAtEnd&& class_at_end) {
    std::array<std::uint64_t, kLiveSetPoints> point_time;
    for (std::size_t k = 0; k < kLiveSetPoints; ++k) {
      point_time[k] = span_.t0 + static_cast<std::uint64_t>(static_cast<unsigned __int128>(span_.t1 - span_.t0) * k /
                                                            (kLiveSetPoints - 1));
    }
    n_.live_set.assign(kLiveSetPoints, 0);
    std::size_t point = 0;
    std::uint64_t next_point = point_time[0];
    std::uint64_t live = 0;
    std::uint32_t nth = 0;
    BucketClock clock = clock_;
    // A free's object is anywhere in the table, and its allocation anywhere
    // in the trace (a cache miss each): they are loaded a few operations early.
    const auto soon = [&](const ops::Op& far, const ops::Op& near) {
      __builtin_prefetch(&objects_[far.object], 1);
      if (is_free(near.kind) && objects_[near.object].alloc != nullptr) {
        __builtin_prefetch(objects_[near.object].alloc);
        classes_.prefetch(objects_[near.object].nth);
      }
    };
    for_each_in_time_order(trace_, soon, [&](const ops::Op& op, std::uint32_t cpu) {
      if (op.time_ns > next_point) [[unlikely]] {
        while (point < kLiveSetPoints && point_time[point] < op.time_ns) n_.live_set[point++] = live;
        next_point = point < kLiveSetPoints ? point_time[point] : UINT64_MAX;
      }
      const auto i = static_cast<std::uint32_t>(n_.ops++);
      Live& o = objects_[op.object];
      if (is_alloc(op.kind)) {
        // An allocation of an object still live: the one before is never freed.
        if (o.alloc != nullptr) end(op.object, o, class_at_end(o, std::nullopt), std::nullopt);
        o = Live{&op, i, nth++};
        live += op.size;
        n_.peak_live = std::max(n_.peak_live, live);
      } else if (is_free(op.kind)) {
        if (o.alloc == nullptr) return;
        live -= o.alloc->size;
        const std::uint32_t c = class_at_end(o, op.time_ns);
        const std::uint32_t alloc_cpu = cpu_of(o.alloc);
        ++n_.frees;
        if (cpu != alloc_cpu) ++n_.remote_frees;
        count_free(o, alloc_cpu, clock_.of(o.alloc->time_ns), i, op.time_ns, clock.at(op.time_ns), cpu, n_.of(c));
        if (!maps_.empty()) end(op.object, o, c, op.time_ns);
        o.alloc = nullptr;
      } else if (o.alloc != nullptr) {
        // Any other operation on it (a map, an unmap) completes the transfer in flight.
        if (!maps_.empty() && maps_[op.object].in_flight) {
          Mapping& m = maps_[op.object];
          done_.push_back({o.nth, m.bytes, op.time_ns - m.t, m.flags});
          m.in_flight = false;
        }
        if (op.kind == OpKind::dma_map) {
          if (maps_.empty()) maps_.resize(trace_.object_count);
          Mapping& m = maps_[op.object];
          m.in_flight = true, m.t = op.time_ns, m.flags = op.flags;
          m.bytes = op.size == 0 ? o.alloc->size : std::min(op.size, o.alloc->size);
          ++m.count;
        }
      }
    });
    while (point < kLiveSetPoints) n_.live_set[point++] = live;
    n_.allocs = nth;
  }

  /// Whether any object was mapped for DMA.
  bool mapped() const { return !maps_.empty(); }

  /// After the walk, the objects still live, which are never freed: their
  /// classes, when the walk finds them (sites merged), and their DMA
  /// transfers. What else they count is the arrivals less the frees.
  template <class ClassAtEnd>
  void end_live(ClassAtEnd&& class_at_end) {
    for (std::uint32_t id = 0; id < trace_.object_count; ++id) {
      Live& o = objects_[id];
      if (o.alloc != nullptr) end(id, o, class_at_end(o, std::nullopt), std::nullopt);
    }
  }

  /// Then, with every allocation classed (`class_of(nth)`), the transfers a map completed.
  template <class ClassOf>
  void count_completed_transfers(ClassOf&& class_of) {
    for (const Done& d : done_) count_transfer(n_.of(class_of(d.nth)), d.bytes, d.ns, d.flags);
  }

 private:
  /// A transfer a map completed, counted once its object's class is known.
  struct Done {
    std::uint32_t nth;  // the object's allocation
    std::uint64_t bytes, ns;
    std::uint8_t flags;
  };

  static void count_transfer(FateCounters& k, std::uint64_t bytes, std::uint64_t ns, std::uint8_t flags) {
    k.map_bytes.add(bytes);
    k.map_lifetime.add(ns);
    k.map_flags.add(flags);
    ++k.transfers;
  }

  /// The CPU of the stream `op` lies in.
  std::uint32_t cpu_of(const ops::Op* op) const {
    const auto at = reinterpret_cast<std::uintptr_t>(op);
    const auto next = std::upper_bound(streams_.begin(), streams_.end(), std::pair{at, UINT32_MAX});
    return std::prev(next)->second;
  }

  /// The end of `o`'s life, of class `c`, by a free at `t` or never: the
  /// transfer it had in flight ends with it (at the capture's end if never
  /// freed), and its maps are counted.
  void end(std::uint32_t id, Live& o, std::uint32_t c, std::optional<std::uint64_t> t) {
    if (!maps_.empty()) {
      Mapping& m = maps_[id];
      FateCounters& k = n_.of(c);
      if (m.in_flight) count_transfer(k, m.bytes, t.value_or(span_.t1) - m.t, m.flags);
      k.maps_per_object.add(m.count);
      ++k.ended;
      m = Mapping{};
    }
    o.alloc = nullptr;
  }

  const ops::Trace& trace_;
  const Span& span_;
  const AllocClasses& classes_;
  Fates& n_;
  const BucketClock clock_;
  std::vector<std::pair<std::uintptr_t, std::uint32_t>> streams_;  // (first op's address, CPU), by address
  trace::ZeroedPages table_;
  Live* objects_;              // by object id
  std::vector<Mapping> maps_;  // by object id; empty when the trace maps nothing
  std::vector<Done> done_;
};

/// The number of operations, which numbers fit in 32 bits.
std::size_t op_count(const ops::Trace& trace) {
  std::size_t n = 0;
  for (const ops::Stream& s : trace.streams) n += s.ops.size();
  if (n >= UINT32_MAX)
    throw RunError("trace profile: more than 2^32 - 1 operations; profile the capture in parts (--from, --to)");
  return n;
}

/// Everything a profile counts, by the classifier's numbers.
struct Counts {
  alignas(64) Arrivals arrivals;  // the classing thread's, when there is one
  alignas(64) Fates fates;        // the walk's
};

/// Counts everything. With sites merged, an allocation's class needs its
/// lifetime: the walk classes each allocation at its end, and the arrivals
/// are counted after. Otherwise a second thread classes the allocations and
/// counts their arrivals while this one walks.
void count(const ops::Trace& trace, const Span& span, Classifier& classifier, Sites sites, Counts& n) {
  AllocClasses classes(op_count(trace));
  Walker walker(trace, span, classes, n.fates);
  const auto class_of = [&](std::uint32_t nth) { return classes.get(nth); };
  if (sites == Sites::merged) {
    const auto class_at_end = [&](const Live& o, std::optional<std::uint64_t> t) {
      const std::uint32_t c = classifier.classify(*o.alloc, t ? lifetime_decade(*t - o.alloc->time_ns) : kNeverFreed);
      classes.put(o.nth, c);
      return c;
    };
    walker.walk(class_at_end);
    walker.end_live(class_at_end);
    classes.finish(static_cast<std::uint32_t>(n.fates.allocs));
    walker.count_completed_transfers(class_of);
    count_arrivals(trace, span, n.arrivals, [&](const ops::Op&, std::uint32_t nth) { return class_of(nth); });
    return;
  }
  const auto class_at_end = [&](const Live& o, std::optional<std::uint64_t>) { return classes.get(o.nth); };
  side_by_side([&] { walker.walk(class_at_end); },
               [&] {
                 try {
                   count_arrivals(trace, span, n.arrivals, [&](const ops::Op& a, std::uint32_t nth) {
                     const std::uint32_t c = classifier.classify(a, 0);
                     classes.set(nth, c);
                     return c;
                   });
                   classes.finish(n.arrivals.allocs);
                 } catch (...) {
                   classes.abandon();
                   throw;
                 }
               });
  if (walker.mapped()) walker.end_live(class_at_end);
  walker.count_completed_transfers(class_of);
}

}  // namespace

Profile build(const ops::Trace& trace, const BuildOptions& options) {
  const Span span = span_of(trace);
  Classifier classifier(trace, options);
  Counts n;
  count(trace, span, classifier, options.sites, n);
  Profile p;
  p.sites = options.sites;
  p.source = trace.header.source;
  p.page_size = trace.header.page_size;
  p.cpu_count = trace.header.cpu_count;
  p.node_count = trace.header.node_count;
  p.duration_ns = span.t1 - span.t0;
  p.ops = n.fates.ops;
  p.allocs = n.fates.allocs;
  p.frees = n.fates.frees;
  p.objects = trace.object_count;
  p.peak_live_bytes = n.fates.peak_live;
  p.live_set_bytes = n.fates.live_set;

  // The classes in the order their first allocations came.
  std::vector<Class>& met = classifier.classes();
  const Arrivals& a = n.arrivals;
  std::vector<Class> classes(a.met);
  KeyCounter<std::uint64_t> traits;
  ShareCounter page_orders;
  for (std::uint32_t c = 0; c < a.order.size(); ++c) {
    Class& out = classes[a.order[c]];
    out = std::move(met[c]);
    const ArrivalCounters& k = a.by_class[c];
    finish_class(out, k, n.fates.of(c));
    for (const auto& [key, count] : k.traits.counts()) traits.add(key, count);
    if (out.kind == OpKind::page_alloc) {
      k.sizes.for_each(
          [&](std::uint64_t size, std::uint64_t count) { page_orders.add(page_order(size, p.page_size), count); });
    }
  }
  std::stable_sort(classes.begin(), classes.end(), [](const Class& x, const Class& y) { return x.count > y.count; });
  p.classes = std::move(classes);
  p.interarrival_ns = a.gaps.finish();
  TraitShares shares(traits);
  p.cpu_mix = std::move(shares.cpus);
  p.flag_mix = std::move(shares.flags);
  p.page_order_mix = page_orders.finish();
  p.remote_free_fraction =
      n.fates.frees == 0 ? 0 : static_cast<double>(n.fates.remote_frees) / static_cast<double>(n.fates.frees);
  return p;
}

}  // namespace kmbench::profile
