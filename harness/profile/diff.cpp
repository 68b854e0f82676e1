// How far apart two profiles are: Kolmogorov–Smirnov distances of their
// distributions (all classes together), the ratio of their live-set peaks and
// the share of allocations in classes both have.
#include <map>
#include <set>

#include "harness/profile/distribution.h"

namespace kmbench::profile {
namespace {

/// A distribution's CDF, piecewise linear: an exact value is a step at the
/// value, a bin spreads its count evenly over [lo, hi].
class Cdf {
 public:
  void add(const Distribution& d) {
    for (const auto& [value, count] : d.exact) add_piece(value, value, count);
    for (const Distribution::Bin& b : d.tail) add_piece(b.lo, b.hi, b.count);
  }
  long double total() const { return total_; }

  /// The positions where the CDF's slope changes.
  void positions(std::set<long double>& out) const {
    for (const auto& [pos, e] : events_) out.insert(pos);
  }

  /// F(x) at each of `xs` (ascending), as a fraction of the total.
  std::vector<long double> at(const std::set<long double>& xs) const {
    std::vector<long double> out;
    out.reserve(xs.size());
    long double slope = 0, intercept = 0;
    auto e = events_.begin();
    for (long double x : xs) {
      for (; e != events_.end() && e->first <= x; ++e) slope += e->second.slope, intercept += e->second.intercept;
      out.push_back(total_ == 0 ? 0 : (slope * x + intercept) / total_);
    }
    return out;
  }

 private:
  struct Event {
    long double slope = 0, intercept = 0;
  };
  // The count rises linearly from lo - 1 to hi: s*x - s*(lo-1) in between, count after.
  void add_piece(std::uint64_t lo, std::uint64_t hi, std::uint64_t count) {
    if (count == 0) return;
    const long double w = static_cast<long double>(count), start = static_cast<long double>(lo) - 1;
    const long double s = w / (static_cast<long double>(hi) - start);
    events_[start].slope += s;
    events_[start].intercept -= s * start;
    events_[static_cast<long double>(hi)].slope -= s;
    events_[static_cast<long double>(hi)].intercept += w + s * start;
    total_ += w;
  }
  std::map<long double, Event> events_;
  long double total_ = 0;
};

double ks(const Cdf& a, const Cdf& b) {
  if (a.total() == 0 || b.total() == 0) return a.total() == b.total() ? 0 : 1;
  std::set<long double> xs;
  a.positions(xs);
  b.positions(xs);
  const std::vector<long double> fa = a.at(xs), fb = b.at(xs);
  long double d = 0;
  for (std::size_t i = 0; i < fa.size(); ++i) d = std::max(d, fa[i] > fb[i] ? fa[i] - fb[i] : fb[i] - fa[i]);
  return static_cast<double>(d);
}

template <class... Member>
double ks_over_classes(const Profile& a, const Profile& b, Member... member) {
  Cdf ca, cb;
  for (const Class& c : a.classes) (ca.add(c.*member), ...);
  for (const Class& c : b.classes) (cb.add(c.*member), ...);
  return ks(ca, cb);
}

/// The value with the most count: an exact value, or a bin's lower bound.
std::uint64_t mode_of(const Distribution& freed, const Distribution& censored) {
  std::map<std::uint64_t, std::uint64_t> counts;
  for (const Distribution* d : {&freed, &censored}) {
    for (const auto& [v, count] : d->exact) counts[v] += count;
    for (const Distribution::Bin& bin : d->tail) counts[bin.lo] += bin.count;
  }
  std::uint64_t best = 0, value = 0;
  for (const auto& [v, count] : counts) {
    if (count > best) best = count, value = v;
  }
  return value;
}

std::string match_key(const Class& c, bool by_id) {
  if (by_id) return c.id;
  return std::to_string(static_cast<int>(c.kind)) + (c.cache.empty() ? "/" : "/cache/") +
         std::to_string(mode_of(c.sizes, c.censored_sizes));
}

}  // namespace

Distance distance(const Profile& a, const Profile& b) {
  Distance d;
  d.ks_size = ks_over_classes(a, b, &Class::sizes, &Class::censored_sizes);
  d.ks_lifetime_ns = ks_over_classes(a, b, &Class::lifetime_ns);
  d.ks_lifetime_ops = ks_over_classes(a, b, &Class::lifetime_ops);
  Cdf ga, gb;
  ga.add(a.interarrival_ns);
  gb.add(b.interarrival_ns);
  d.ks_interarrival = ks(ga, gb);
  d.peak_live_ratio = a.peak_live_bytes == 0 ? 0 : static_cast<double>(b.peak_live_bytes) / static_cast<double>(a.peak_live_bytes);
  d.allocs_ratio = a.allocs == 0 ? 0 : static_cast<double>(b.allocs) / static_cast<double>(a.allocs);

  std::set<std::string> ids;
  for (const Class& c : a.classes) ids.insert(c.id);
  for (const Class& c : b.classes) d.classes_by_id = d.classes_by_id || ids.count(c.id) != 0;
  // Shares compared as exact fractions: the same profile overlaps itself by exactly 1.
  std::map<std::string, std::uint64_t> count_a, count_b;
  for (const Class& c : a.classes) count_a[match_key(c, d.classes_by_id)] += c.count;
  for (const Class& c : b.classes) count_b[match_key(c, d.classes_by_id)] += c.count;
  d.classes_a = count_a.size();
  d.classes_b = count_b.size();
  const auto na = static_cast<unsigned __int128>(std::max<std::uint64_t>(1, a.allocs));
  const auto nb = static_cast<unsigned __int128>(std::max<std::uint64_t>(1, b.allocs));
  unsigned __int128 shared = 0;
  for (const auto& [key, ca] : count_a) {
    const auto it = count_b.find(key);
    if (it == count_b.end()) continue;
    ++d.classes_shared;
    shared += std::min(ca * nb, it->second * na);
  }
  d.class_overlap = static_cast<double>(static_cast<long double>(shared) / static_cast<long double>(na * nb));
  return d;
}

}  // namespace kmbench::profile
