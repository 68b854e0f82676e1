#include "harness/replay/option_table.h"

#include <charconv>
#include <iterator>
#include <cstdio>

#include "base/errors.h"
#include "base/units.h"

namespace kmbench::replay {
namespace {

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Each choice list is in its enum's order: the enum's value is the index.
constexpr std::string_view kModes[] = {"fast", "paced"};
constexpr std::string_view kPlacements[] = {"local", "remote", "interleaved"};
constexpr std::string_view kTouches[] = {"none", "first", "pages"};
constexpr std::string_view kReallocs[] = {"backend", "copy", "split"};
constexpr std::string_view kVias[] = {"auto", "backend", "kpi"};
constexpr std::string_view kKpiModes[] = {"strict", "xnu"};

template <class E, std::size_t N>
E enum_of(const std::string& checked, const std::string_view (&names)[N]) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == checked) return static_cast<E>(i);
  }
  return static_cast<E>(0);  // unreachable: checked against the same names
}

std::vector<OptionSpec> make_table() {
  using T = OptionType;
  std::vector<OptionSpec> t;
  t.push_back({.key = "mode", .flag = "--mode", .type = T::choice,
               .help = "fast: as fast as possible; paced: honour the stream's inter-arrival times",
               .choices = {std::begin(kModes), std::end(kModes)}, .per_entry = false,
               .set = [](Options& o, const std::string& v) { o.mode = enum_of<Mode>(v, kModes); },
               .get = [](const Options& o) { return std::string(name_of(o.mode)); }});
  t.push_back({.key = "speed", .flag = "--speed", .type = T::number,
               .help = "Paced mode: trace time divided by this factor", .lo = 1e-6, .hi = 1e9,
               .set = [](Options& o, const std::string& v) { o.speed = std::stod(v); },
               .get = [](const Options& o) { return number_text(o.speed); }});
  t.push_back({.key = "threads", .flag = "--threads", .type = T::integer,
               .help = "Replay threads (0: one per stream; streams fold onto threads)", .lo = 0, .hi = 256,
               .per_entry = false,
               .set = [](Options& o, const std::string& v) { o.threads = static_cast<unsigned>(std::stoul(v)); },
               .get = [](const Options& o) { return std::to_string(o.threads); }});
  t.push_back({.key = "warmup", .flag = "--warmup", .type = T::integer,
               .help = "Untimed passes over the stream before the timed one, each starting from the "
                       "allocator state the last left (0: the cold figure)",
               .lo = 0, .hi = 100,
               .set = [](Options& o, const std::string& v) { o.warmup = static_cast<unsigned>(std::stoul(v)); },
               .get = [](const Options& o) { return std::to_string(o.warmup); }});
  t.push_back({.key = "settle", .flag = "--settle", .type = T::integer,
               .help = "Warm-up passes at most while the backend still tunes itself (slab's magazine "
                       "sizes, zones' per-CPU caching): a pass that changed them is followed by another; "
                       "at least --warmup",
               .lo = 0, .hi = 100,
               .set = [](Options& o, const std::string& v) { o.settle = static_cast<unsigned>(std::stoul(v)); },
               .get = [](const Options& o) { return std::to_string(o.settle); }});
  t.push_back({.key = "memory", .flag = "--memory", .type = T::bytes,
               .help = "Simulated RAM per node, e.g. 4g (default: sized from the stream's peak demand)",
               .set = [](Options& o, const std::string& v) { o.node_bytes = std::stoull(v); }});
  t.push_back({.key = "node", .flag = "--node", .type = T::integer,
               .help = "Pin threads to this NUMA node's CPUs (-1: the process's CPUs)", .lo = -1, .hi = 1023,
               .set = [](Options& o, const std::string& v) { o.node = static_cast<NodeId>(std::stoi(v)); },
               .get = [](const Options& o) { return std::to_string(o.node); }});
  t.push_back({.key = "placement", .flag = "--placement", .type = T::choice,
               .help = "Memory relative to --node: local, remote or interleaved",
               .choices = {std::begin(kPlacements), std::end(kPlacements)}, .per_entry = false,
               .set = [](Options& o, const std::string& v) { o.placement = enum_of<Placement>(v, kPlacements); },
               .get = [](const Options& o) { return std::string(name_of(o.placement)); }});
  t.push_back({.key = "topology", .flag = "--topology", .type = T::text,
               .help = "real, synthetic:<hwloc synthetic string> (e.g. \"synthetic:pack:2 [numa] pu:1\") "
                       "or xml:<lstopo export>: the simulated machine the backends' pages come from",
               .per_entry = false,
               .set = [](Options& o, const std::string& v) { o.topology = v; },
               .get = [](const Options& o) { return o.topology; }});
  t.push_back({.key = "drain", .flag = "--drain", .type = T::flag,
               .help = "Free every live block at the end and check that accounting reads zero",
               .set = [](Options& o, const std::string& v) { o.drain = v == "true"; },
               .get = [](const Options& o) { return std::string(o.drain ? "true" : "false"); }});
  t.push_back({.key = "touch", .flag = "--touch", .type = T::choice,
               .help = "After each allocation write: none; first (first byte, every page of page/DMA buffers); "
                       "pages (every page)",
               .choices = {std::begin(kTouches), std::end(kTouches)},
               .set = [](Options& o, const std::string& v) { o.touch = enum_of<Touch>(v, kTouches); },
               .get = [](const Options& o) { return std::string(name_of(o.touch)); }});
  t.push_back({.key = "realloc", .flag = "--realloc", .type = T::choice,
               .help = "A recorded realloc: backend (the backend's own realloc where it has one, else "
                       "allocate, copy, free); copy (allocate, copy, free everywhere); split (a free, then an "
                       "allocation, nothing copied)",
               .choices = {std::begin(kReallocs), std::end(kReallocs)},
               .set = [](Options& o, const std::string& v) { o.realloc = enum_of<Realloc>(v, kReallocs); },
               .get = [](const Options& o) { return std::string(name_of(o.realloc)); }});
  t.push_back({.key = "via", .flag = "--via", .type = T::choice,
               .help = "A KPI recording's allocations and frees: kpi (the KPI call each was made by, on this "
                       "backend lent to the KPI); backend (the backend's own calls); auto (kpi for a stream with "
                       "KPI calls, else backend)",
               .choices = {std::begin(kVias), std::end(kVias)},
               .set = [](Options& o, const std::string& v) { o.via = enum_of<Via>(v, kVias); },
               .get = [](const Options& o) { return std::string(name_of(o.via)); }});
  t.push_back({.key = "kpi_mode", .flag = "--kpi-mode", .type = T::choice,
               .help = "Through the KPI, its mode: xnu (checks and bookkeeping as XNU's own, what a driver "
                       "pays there); strict (kmbench's record of every block, which names each misuse: a "
                       "driver's test run, not what XNU costs)",
               .choices = {std::begin(kKpiModes), std::end(kKpiModes)},
               .set = [](Options& o, const std::string& v) { o.kpi_mode = enum_of<kpi::Mode>(v, kKpiModes); },
               .get = [](const Options& o) { return std::string(name_of(o.kpi_mode)); }});
  t.push_back({.key = "pressure",
               .flag = "--pressure",
               .type = T::text,
               .help = "Memory pressure over the timed pass, through the machine's balloon: cap=SIZE|P% "
                       "(P% of the stream's peak live bytes), take=SIZE|P%[,at=WHEN][,for=SPAN], "
                       "balloon=SIZE|P%,period=SPAN, each with [,node=N]; clauses joined by ';'; times as "
                       "250ms or 5000ops (docs/pressure.md). none: no pressure",
               .set = [](Options& o, const std::string& v) { o.pressure = parse_pressure(v); },
               .get = [](const Options& o) { return o.pressure.empty() ? std::string("none") : o.pressure.text; }});
  t.push_back({.key = "latency", .flag = "--no-latency", .type = T::flag,
               .help = "Do not time each operation", .negated = true,
               .set = [](Options& o, const std::string& v) { o.latency = v == "true"; },
               .get = [](const Options& o) { return std::string(o.latency ? "true" : "false"); }});
  t.push_back({.key = "sample_ms", .flag = "--sample-ms", .type = T::integer,
               .help = "Footprint sampling interval in ms (0: about 100 samples over the timed pass, from "
                       "the warm-up pass's duration, 1-10 ms; 10 ms without warm-up)",
               .lo = 0, .hi = 60'000,
               .set = [](Options& o, const std::string& v) { o.sample_ms = static_cast<unsigned>(std::stoul(v)); },
               .get = [](const Options& o) { return std::to_string(o.sample_ms); }});
  t.push_back({.key = "iommu", .flag = "--iommu", .type = T::integer,
               .help = "DMA maps go through a simulated IOMMU (the KPI's system IOMapper) with this many "
                       "I/O address bits, 20..36 (0: no IOMMU)",
               .lo = 20, .hi = 36, .zero_is_off = true,
               .set = [](Options& o, const std::string& v) {
                 const unsigned bits = static_cast<unsigned>(std::stoul(v));
                 o.iommu = bits != 0;
                 if (o.iommu) o.iommu_bits = bits;
               },
               .get = [](const Options& o) { return std::to_string(o.iommu ? o.iommu_bits : 0); }});
  return t;
}

/// The whole text as a T, or false.
template <class T>
bool parse_all(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size() && !text.empty();
}

}  // namespace

std::string_view name_of(Mode m) { return kModes[static_cast<int>(m)]; }
std::string_view name_of(Touch t) { return kTouches[static_cast<int>(t)]; }
std::string_view name_of(Placement p) { return kPlacements[static_cast<int>(p)]; }
std::string_view name_of(Realloc r) { return kReallocs[static_cast<int>(r)]; }
std::string_view name_of(Via v) { return kVias[static_cast<int>(v)]; }
std::string_view name_of(kpi::Mode m) { return kKpiModes[static_cast<int>(m)]; }

const std::vector<OptionSpec>& option_table() {
  static const std::vector<OptionSpec> table = make_table();
  return table;
}

const OptionSpec* option_by_key(std::string_view key) {
  for (const OptionSpec& s : option_table()) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

const OptionSpec* option_by_flag(std::string_view flag) {
  for (const OptionSpec& s : option_table()) {
    if (s.flag == flag) return &s;
  }
  return nullptr;
}

std::string what_it_takes(const OptionSpec& spec) {
  switch (spec.type) {
    case OptionType::flag:
      return "true or false";
    case OptionType::choice: {
      std::string out;
      for (std::size_t i = 0; i < spec.choices.size(); ++i) {
        out += (i == 0 ? "" : i + 1 == spec.choices.size() ? " or " : ", ") + std::string(spec.choices[i]);
      }
      return out;
    }
    case OptionType::integer:
      return (spec.zero_is_off ? "0 or " : "") + std::string("an integer in ") + number_text(spec.lo) + ".." +
             number_text(spec.hi);
    case OptionType::number:
      return "a number above " + number_text(spec.lo) + " and at most " + number_text(spec.hi);
    case OptionType::bytes:
      return "a byte count (digits with an optional k, m, g or t)";
    case OptionType::text:
      return "text";
  }
  return "";
}

std::string check_option(const OptionSpec& spec, std::string_view text, std::string_view spelling) {
  bool ok = false;
  std::string canonical(text);
  switch (spec.type) {
    case OptionType::flag:
      ok = text == "true" || text == "false";
      break;
    case OptionType::choice:
      for (std::string_view c : spec.choices) ok = ok || c == text;
      break;
    case OptionType::integer: {
      long long v = 0;
      ok = parse_all(text, v) && ((v >= spec.lo && v <= spec.hi) || (spec.zero_is_off && v == 0));
      if (ok) canonical = std::to_string(v);
      break;
    }
    case OptionType::number: {
      double v = 0;
      ok = parse_all(text, v) && v > spec.lo && v <= spec.hi;
      break;
    }
    case OptionType::bytes: {
      const auto v = base::parse_bytes(text);
      ok = v.has_value();
      if (ok) canonical = std::to_string(*v);
      break;
    }
    case OptionType::text:
      ok = !text.empty();
      if (ok) {
        Options scratch;  // the option's own setter names what is wrong (a pressure clause)
        spec.set(scratch, canonical);
      }
      break;
  }
  if (!ok) {
    throw UsageError(std::string(spelling) + " '" + std::string(text) + "' is not " + what_it_takes(spec));
  }
  return canonical;
}

void set_option(Options& o, const OptionSpec& spec, std::string_view text, std::string_view spelling) {
  spec.set(o, check_option(spec, text, spelling));
}

}  // namespace kmbench::replay
