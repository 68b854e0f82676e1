// From a profile back to an operation stream. Each class's allocations follow
// its arrival curve (bucket counts times the scale); within a bucket they are
// spaced by gaps drawn from the class's inter-arrival distribution, so bursts
// stay bursts. A freed object's lifetime is drawn from the class's lifetimes
// that fit before the end (the capture could only see those), the censored
// ones are never freed, and DMA transfers are laid out one after another
// within the object's life.
#include <unistd.h>

#include <cmath>
#include <sstream>

#include "base/errors.h"
#include "base/proc.h"
#include "harness/profile/distribution.h"

namespace kmbench::profile {
namespace {

using ops::OpKind;

/// x times the scale as a whole number: the fraction decides by chance.
std::uint64_t scaled(std::uint64_t x, double scale, workloads::Rng& rng) {
  const double v = static_cast<double>(x) * scale;
  const double whole = std::floor(v);
  return static_cast<std::uint64_t>(whole) + (rng.chance(v - whole) ? 1 : 0);
}

/// The bytes the kernel reports as available (MemAvailable), else physical memory.
std::uint64_t available_bytes() {
  const std::uint64_t available = base::available_memory_bytes();
  if (available != 0) return available;
  return static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

std::string gib(double bytes) {
  std::ostringstream s;
  s.precision(3);
  s << bytes / (1024.0 * 1024 * 1024) << " GiB";
  return s.str();
}

/// What every class's generation shares.
struct Context {
  workloads::Builder& out;
  workloads::Rng& rng;
  double scale;
  double duration;  // ns, at least 1
  std::uint32_t page_size;
};

/// The draws of one class.
struct ClassSamplers {
  explicit ClassSamplers(const Class& c)
      : sizes(c.sizes), censored_sizes(c.censored_sizes), lifetimes(c.lifetime_ns), gaps(c.interarrival_ns), maps(c.maps.per_object),
        map_bytes(c.maps.bytes), map_lifetimes(c.maps.lifetime_ns), cpus(c.cpu_mix), flags(c.flag_mix),
        aligns(c.align_mix), nodes(c.node_mix), map_flags(c.maps.flag_mix) {}
  Sampler sizes, censored_sizes, lifetimes, gaps, maps, map_bytes, map_lifetimes;
  ShareSampler cpus, flags, aligns, nodes, map_flags;
};

OpKind free_kind(OpKind k) {
  return k == OpKind::page_alloc ? OpKind::page_free : k == OpKind::dma_alloc ? OpKind::dma_free : OpKind::free;
}

/// A page allocation's size: whole pages, a power of two of them (an order).
std::uint64_t page_size_of(std::uint64_t bytes, std::uint32_t page) {
  const std::uint64_t pages = std::max<std::uint64_t>(1, (bytes + page - 1) / page);
  return std::uint64_t{page} << std::bit_width(pages - 1);
}

/// A lifetime that ends before `horizon` ns: drawn again a few times, then
/// uniform (for an arrival whose bucket recorded no free).
std::uint64_t lifetime_within(const ClassSamplers& s, std::uint64_t horizon, workloads::Rng& rng) {
  for (int tries = 0; tries < 8; ++tries) {
    const std::uint64_t l = s.lifetimes.draw(rng);
    if (l <= horizon) return std::max<std::uint64_t>(1, l);
  }
  return std::max<std::uint64_t>(1, rng.between(0, horizon));
}

/// Transfers over one object, one after another from its allocation (at
/// `start`) to before `end` (its free, or the end of the stream).
void emit_maps(Context& cx, const ClassSamplers& s, unsigned cpu, std::uint32_t object, std::uint64_t size,
               std::uint64_t start, std::uint64_t end, workloads::OpArgs args) {
  const std::uint64_t n = s.maps.draw(cx.rng);
  if (n == 0) return;
  const double slot = static_cast<double>(end - start) / static_cast<double>(n);
  for (std::uint64_t j = 0; j < n; ++j) {
    const std::uint64_t from = start + static_cast<std::uint64_t>(slot * static_cast<double>(j));
    const std::uint64_t to = std::max(from, std::min(from + s.map_lifetimes.draw(cx.rng), end - 1));
    args.flags = static_cast<std::uint8_t>(s.map_flags.draw(cx.rng, 0));
    const std::uint64_t bytes = std::min(size, std::max<std::uint64_t>(1, s.map_bytes.draw(cx.rng)));
    cx.out.op(cpu, static_cast<double>(from), OpKind::dma_map, object, bytes, args);
    cx.out.op(cpu, static_cast<double>(to), OpKind::dma_unmap, object, bytes, args);
  }
}

/// `n` arrival times in [from, from + width), whole nanoseconds, spaced by
/// gaps drawn from the class's. When they fit in the bucket they keep their
/// lengths and start at a random place in it, so a burst stays as dense as it
/// was (stretched to fill the bucket, a burst in a quiet bucket would spread
/// over all of it); when they do not fit, they are scaled down to fill it.
std::vector<std::uint64_t> arrival_times(Context& cx, const ClassSamplers& s, std::uint64_t n, double from,
                                         double width) {
  const bool drawn = !s.gaps.empty();
  auto gap = [&] { return drawn ? static_cast<double>(s.gaps.draw(cx.rng)) + 1e-3 : cx.rng.exponential(1.0); };
  std::vector<double> sums(n);
  double sum = 0;
  for (std::uint64_t i = 0; i < n; ++i) sums[i] = sum += gap();
  sum += gap();
  double start = from, stretch = width / sum;
  if (drawn && sum < width) {
    start = from + cx.rng.unit() * (width - sum);
    stretch = 1;
  }
  std::vector<std::uint64_t> t(n);
  for (std::uint64_t i = 0; i < n; ++i) t[i] = static_cast<std::uint64_t>(start + stretch * sums[i]);
  return t;
}

/// When a class's freed objects go: per arrival bucket, the buckets their
/// frees fall in (cumulative counts), and the lifetimes that land there.
class Departures {
 public:
  Departures(const Class& c, double width, std::uint64_t last) : rows_(kTimeBuckets), width_(width), last_(last) {
    for (const Class::Flow& f : c.departures) {
      if (f.count == 0) continue;  // a row of none is no row: an empty one draws a lifetime instead
      auto& row = rows_[f.from];
      row.emplace_back((row.empty() ? 0 : row.back().first) + f.count, f.to);
    }
  }

  /// The free time of an object allocated at t in bucket `from`.
  std::uint64_t free_time(const ClassSamplers& s, std::size_t from, std::uint64_t t, workloads::Rng& rng) const {
    const auto& row = rows_[from];
    if (row.empty()) return t + lifetime_within(s, last_ > t ? last_ - t : 0, rng);
    const std::uint64_t r = rng.below(row.back().first);
    const std::uint32_t to = std::upper_bound(row.begin(), row.end(), r, [](std::uint64_t x, const auto& e) {
                               return x < e.first;
                             })->second;
    // At least 1 ns after t: a free on another stream must come after its allocation.
    const std::uint64_t lo = std::max(t + 1, static_cast<std::uint64_t>(std::ceil(width_ * to)));
    const std::uint64_t hi = std::max(lo, to + 1 == kTimeBuckets ? last_ : static_cast<std::uint64_t>(width_ * (to + 1)) - 1);
    for (int tries = 0; tries < 16; ++tries) {
      const std::uint64_t end = t + s.lifetimes.draw(rng);
      if (lo <= end && end <= hi) return end;
    }
    return rng.between(lo, hi);
  }

 private:
  std::vector<std::vector<std::pair<std::uint64_t, std::uint32_t>>> rows_;
  double width_;
  std::uint64_t last_;
};

/// The CPUs of a class's allocations: each stays on the one before with the
/// chance that makes "same CPU as the allocation before" as frequent as
/// cpu_stay says, else is drawn from cpu_mix (which keeps the mix: a draw
/// from it lands on the CPU before by chance too).
class CpuChain {
 public:
  CpuChain(const Class& c, const ShareSampler& mix) : mix_(mix) {
    const double by_chance = chance_same(c.cpu_mix);
    if (by_chance < 1) stay_ = std::clamp((c.cpu_stay - by_chance) / (1 - by_chance), 0.0, 1.0);
  }
  unsigned next(workloads::Rng& rng, unsigned streams) {
    if (!started_ || !rng.chance(stay_)) cpu_ = static_cast<unsigned>(mix_.draw(rng, 0)) % streams;
    started_ = true;
    return cpu_;
  }

 private:
  const ShareSampler& mix_;
  double stay_ = 0;
  unsigned cpu_ = 0;
  bool started_ = false;
};

/// A chance that keeps a running share on target: `target` while on it,
/// more while behind, less while ahead (never below 0 or above 1).
double on_target(double target, std::uint64_t done, std::uint64_t hits) {
  return std::clamp(target * static_cast<double>(done + 1) - static_cast<double>(hits), 0.0, 1.0);
}

/// The CPUs of a class's frees, chosen in the order of the frees. A free
/// stays on the CPU of the free before as often as free_cpu_stay says, and is
/// on another CPU than its allocation's as often as remote_free_fraction says.
/// Both shares are steered as the frees go; the remote share comes first: a
/// stay is not taken when it would take the remote frees more than 1% of the
/// class's frees (or one free) from their share.
class FreeCpus {
 public:
  FreeCpus(const Class& c, OpKind kind) : kind_(kind), stay_(c.free_cpu_stay), remote_(c.remote_free_fraction) {}

  void add(std::uint64_t t, std::uint32_t object, unsigned alloc_cpu, std::uint64_t size, workloads::OpArgs args) {
    frees_.push_back({t, object, alloc_cpu, size, args});
  }

  void emit(Context& cx, unsigned streams) {
    std::stable_sort(frees_.begin(), frees_.end(), [](const Free& a, const Free& b) { return a.t < b.t; });
    std::uint64_t n = 0, stays = 0, remote = 0;
    unsigned before = 0;
    // The remote share may stray this far (in frees) for a stay.
    const double slack = std::max(1.0, static_cast<double>(frees_.size()) / 100);
    for (const Free& f : frees_) {
      const double ahead = static_cast<double>(remote) - remote_ * static_cast<double>(n);  // remote frees over the share
      const bool stay_remote = before != f.alloc_cpu;
      const bool stay = n > 0 && (stay_remote ? ahead + 1 <= slack : ahead - remote_ >= -slack) &&
                        cx.rng.chance(on_target(stay_, n - 1, stays));
      unsigned cpu = f.alloc_cpu;
      if (stay) {
        cpu = before;
      } else if (streams > 1 && cx.rng.chance(on_target(remote_, n, remote))) {
        cpu = (f.alloc_cpu + 1 + static_cast<unsigned>(cx.rng.below(streams - 1))) % streams;
      }
      if (n > 0 && cpu == before) ++stays;
      if (cpu != f.alloc_cpu) ++remote;
      ++n;
      before = cpu;
      cx.out.op(cpu, static_cast<double>(f.t), kind_, f.object, f.size, f.args);
    }
  }

 private:
  struct Free {
    std::uint64_t t;
    std::uint32_t object;
    unsigned alloc_cpu;
    std::uint64_t size;
    workloads::OpArgs args;
  };
  OpKind kind_;
  double stay_, remote_;
  std::vector<Free> frees_;
};

void synth_class(Context& cx, const Class& c, unsigned streams) {
  const ClassSamplers s(c);
  workloads::OpArgs base;
  base.site = cx.out.str(c.id);
  base.tag = c.cache.empty() ? 0 : cx.out.str(c.cache);
  const double width = cx.duration / static_cast<double>(kTimeBuckets);
  const auto last = static_cast<std::uint64_t>(cx.duration);
  const Departures departures(c, width, last);
  CpuChain cpus(c, s.cpus);
  FreeCpus frees(c, free_kind(c.kind));
  for (std::size_t k = 0; k < kTimeBuckets; ++k) {
    if (c.arrivals[k] == 0) continue;
    const std::uint64_t n = scaled(c.arrivals[k], cx.scale, cx.rng);
    std::uint64_t censored = std::min(
        n, scaled(c.censored_arrivals[k], static_cast<double>(n) / static_cast<double>(c.arrivals[k]), cx.rng));
    const std::vector<std::uint64_t> times = arrival_times(cx, s, n, width * static_cast<double>(k), width);
    for (std::uint64_t i = 0; i < n; ++i) {
      const bool never_freed = cx.rng.below(n - i) < censored;  // a uniform subset of `censored` arrivals
      censored -= never_freed ? 1 : 0;
      workloads::OpArgs a = base;
      a.flags = static_cast<std::uint8_t>(s.flags.draw(cx.rng, 0));
      a.flags = c.cache.empty() ? (a.flags & ~ops::kOpCache) : (a.flags | ops::kOpCache);
      a.align_log2 = static_cast<std::uint8_t>(s.aligns.draw(cx.rng, 0));
      a.node = static_cast<std::int8_t>(s.nodes.draw(cx.rng, -1));
      const unsigned cpu = cpus.next(cx.rng, streams);
      std::uint64_t size = (never_freed ? s.censored_sizes : s.sizes).draw(cx.rng);
      if (c.kind == OpKind::page_alloc) size = page_size_of(size, cx.page_size);
      const std::uint32_t object = cx.out.object();
      const std::uint64_t t = times[i];
      cx.out.op(cpu, static_cast<double>(t), c.kind, object, size, a);
      if (never_freed) {
        emit_maps(cx, s, cpu, object, size, t, std::max(t, last) + 1, base);
        continue;
      }
      const std::uint64_t end = departures.free_time(s, k, t, cx.rng);
      emit_maps(cx, s, cpu, object, size, t, end, base);
      frees.add(end, object, cpu, size, a);
    }
  }
  frees.emit(cx, streams);
}

unsigned stream_count(const Profile& p) {
  std::int64_t top = 0;
  for (const Share& s : p.cpu_mix) top = std::max(top, s.key);
  for (const Class& c : p.classes) {
    for (const Share& s : c.cpu_mix) top = std::max(top, s.key);
  }
  return static_cast<unsigned>(std::min<std::int64_t>(top, 1023) + 1);
}

}  // namespace

std::uint64_t synth_bytes(const Profile& p, double scale) {
  double ops = 0;
  for (const Class& c : p.classes) {
    ops += static_cast<double>(c.count) * scale * 2 + static_cast<double>(c.maps.count) * scale * 2;
  }
  // Each operation is 32 bytes in the stream; sorting it and the replay's
  // program of steps hold as much again, and the object table ~48 bytes an object.
  const double objects = static_cast<double>(p.allocs) * scale;
  return static_cast<std::uint64_t>(ops * 32 * 2 + objects * 48);
}

ops::Trace synthesize(const Profile& p, const SynthOptions& options) {
  if (!(options.scale > 0) || !std::isfinite(options.scale)) {
    throw UsageError("synth: --scale must be a positive number");
  }
  const std::uint64_t need = synth_bytes(p, options.scale), have = available_bytes();
  if (need > have) {
    throw UsageError("synth: --scale " + std::to_string(options.scale) + " would need about " +
                     gib(static_cast<double>(need)) + " for the operation stream and its replay; " +
                     gib(static_cast<double>(have)) + " is available (largest scale that fits: about " +
                     std::to_string(options.scale * static_cast<double>(have) / static_cast<double>(need)) + ")");
  }
  const unsigned streams = stream_count(p);
  workloads::Builder out("synth", streams);
  workloads::Rng rng(options.seed);
  Context cx{out, rng, options.scale, std::max(1.0, static_cast<double>(p.duration_ns)), p.page_size};
  for (const Class& c : p.classes) synth_class(cx, c, streams);
  ops::Trace t = out.finish();
  t.header.page_size = p.page_size;
  t.header.node_count = std::max<std::uint32_t>(1, p.node_count);
  t.header.metadata["profile.source"] = p.source;
  t.header.metadata["profile.sites"] = sites_name(p.sites);
  std::ostringstream scale;
  scale << options.scale;
  t.header.metadata["param.scale"] = scale.str();
  t.header.metadata["seed"] = std::to_string(options.seed);
  return t;
}

}  // namespace kmbench::profile
