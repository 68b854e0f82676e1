#include "harness/replay/pressure_spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <string_view>

#include "base/errors.h"
#include "base/units.h"

namespace kmbench::replay {
namespace {

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  for (std::size_t at = 0;;) {
    const std::size_t next = text.find(sep, at);
    parts.push_back(text.substr(at, next == std::string_view::npos ? std::string_view::npos : next - at));
    if (next == std::string_view::npos) return parts;
    at = next + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

const char* kind_name(PressureClause::Kind k) {
  switch (k) {
    case PressureClause::Kind::cap:
      return "cap";
    case PressureClause::Kind::take:
      return "take";
    case PressureClause::Kind::balloon:
      return "balloon";
  }
  return "?";
}

/// Throws the UsageError that names the clause and says why, in pieces.
[[noreturn]] void bad(std::string_view clause, std::initializer_list<std::string_view> why) {
  std::string message = "--pressure: clause '";
  message.append(clause).append("': ");
  for (std::string_view part : why) message.append(part);
  message.append(" (docs/pressure.md)");
  throw UsageError(message);
}

/// "30%" or a byte count.
void read_amount(std::string_view clause, std::string_view v, PressureClause& c) {
  if (v.ends_with('%')) {
    v.remove_suffix(1);
    double pct = -1;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), pct);
    if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(pct) || pct < 0 ||
        (c.kind != PressureClause::Kind::cap && pct > 100)) {
      bad(clause, {"'", v, "%' is not a percentage",
                   c.kind == PressureClause::Kind::cap ? " (0 or more)" : " from 0 to 100"});
    }
    c.percent = true;
    c.amount = pct;
    return;
  }
  const std::optional<std::uint64_t> bytes = base::parse_bytes(v);
  if (!bytes) bad(clause, {"'", v, "' is neither a size (64m, 1g) nor a percentage (50%)"});
  c.amount = static_cast<double>(*bytes);
}

/// "250ms", "2s", "500us", "1000ns" or "5000ops".
PassTime read_time(std::string_view clause, std::string_view key, std::string_view v) {
  static constexpr std::pair<std::string_view, std::uint64_t> kUnits[] = {
      {"ops", 0}, {"ns", 1}, {"us", 1'000}, {"ms", 1'000'000}, {"s", 1'000'000'000}};
  for (const auto& [suffix, ns] : kUnits) {
    if (!v.ends_with(suffix)) continue;
    const std::string_view digits = v.substr(0, v.size() - suffix.size());
    double x = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), x);
    if (ec != std::errc() || end != digits.data() + digits.size() || !std::isfinite(x) || x < 0 ||
        (ns == 0 && x != std::floor(x))) {
      break;
    }
    if (ns == 0) return {PassTime::Unit::ops, static_cast<std::uint64_t>(x)};
    return {PassTime::Unit::ns, static_cast<std::uint64_t>(std::llround(x * static_cast<double>(ns)))};
  }
  bad(clause, {key, "='", v, "' is not a time (250ms, 2s) or a count of operations (5000ops)"});
}

PressureClause read_clause(std::string_view clause) {
  PressureClause c;
  c.text = std::string(clause);
  const std::vector<std::string_view> fields = split(clause, ',');
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const std::string_view f = trim(fields[i]);
    const std::size_t eq = f.find('=');
    if (eq == std::string_view::npos) bad(clause, {"'", f, "' is not KEY=VALUE"});
    const std::string_view key = trim(f.substr(0, eq)), value = trim(f.substr(eq + 1));
    if (i == 0) {
      if (key == "cap") c.kind = PressureClause::Kind::cap;
      else if (key == "take") c.kind = PressureClause::Kind::take;
      else if (key == "balloon") c.kind = PressureClause::Kind::balloon;
      else bad(clause, {"'", key, "' is not cap, take or balloon"});
      read_amount(clause, value, c);
    } else if (key == "node") {
      int node = -1;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), node);
      if (ec != std::errc() || end != value.data() + value.size() || node < 0) {
        bad(clause, {"node='", value, "' is not a node number"});
      }
      c.node = static_cast<NodeId>(node);
    } else if (key == "at" && c.kind == PressureClause::Kind::take) {
      c.at = read_time(clause, key, value);
    } else if (key == "for" && c.kind == PressureClause::Kind::take) {
      c.lasts = read_time(clause, key, value);
    } else if (key == "period" && c.kind == PressureClause::Kind::balloon) {
      c.period = read_time(clause, key, value);
      if (c.period.value < 2) bad(clause, {"a period must be at least 2 ns or 2 ops"});
    } else {
      bad(clause, {"'", key, "' is not a setting of ", kind_name(c.kind),
                   " (cap: node; take: at, for, node; balloon: period, node)"});
    }
  }
  if (c.kind == PressureClause::Kind::balloon && !c.period.set()) bad(clause, {"a balloon needs period="});
  return c;
}

/// The pass point in `unit`.
std::uint64_t in_unit(PassPoint now, PassTime::Unit unit) {
  return unit == PassTime::Unit::ops ? now.ops : now.ns;
}

bool in_force(const PressureClause& c, PassPoint now) {
  switch (c.kind) {
    case PressureClause::Kind::cap:
      return true;
    case PressureClause::Kind::take: {
      const std::uint64_t begin = c.at.set() ? c.at.value : 0;
      const PassTime::Unit unit = c.at.set() ? c.at.unit : c.lasts.unit;
      const std::uint64_t pos = in_unit(now, unit);
      if (pos < begin) return false;
      if (!c.lasts.set()) return true;
      // A span in the other unit than the start is measured from the pass's start.
      return c.lasts.unit == unit ? pos - begin < c.lasts.value : in_unit(now, c.lasts.unit) < c.lasts.value;
    }
    case PressureClause::Kind::balloon:
      return in_unit(now, c.period.unit) % c.period.value < c.period.value / 2;
  }
  return false;
}

}  // namespace

PressureSpec parse_pressure(const std::string& text) {
  PressureSpec spec;
  spec.text = text;
  const std::string_view all = trim(text);
  if (all.empty() || all == "none") return spec;
  for (std::string_view clause : split(all, ';')) {
    clause = trim(clause);
    if (clause.empty()) bad(all, {"an empty clause"});
    spec.clauses.push_back(read_clause(clause));
  }
  return spec;
}

std::uint64_t available_bytes(const PressureSpec& spec, NodeId node, std::uint64_t node_ram_bytes,
                              std::uint64_t peak_live_bytes, PassPoint now) {
  std::uint64_t available = node_ram_bytes;
  for (const PressureClause& c : spec.clauses) {
    if ((c.node != kAnyNode && c.node != node) || !in_force(c, now)) continue;
    double limit = 0;
    if (c.kind == PressureClause::Kind::cap) {
      limit = c.percent ? c.amount / 100.0 * static_cast<double>(peak_live_bytes) : c.amount;
    } else {
      const double taken = c.percent ? c.amount / 100.0 * static_cast<double>(node_ram_bytes) : c.amount;
      limit = static_cast<double>(node_ram_bytes) - std::min(taken, static_cast<double>(node_ram_bytes));
    }
    // A cap far above the node's RAM (1e99% of the peak) leaves it all: a double beyond 2^64 has no integer.
    if (limit < static_cast<double>(available)) available = static_cast<std::uint64_t>(std::max(0.0, limit));
  }
  return available;
}

}  // namespace kmbench::replay
