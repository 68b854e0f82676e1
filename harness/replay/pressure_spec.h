// A memory pressure schedule (--pressure SPEC, a matrix's `pressure`): how
// much of each node's memory the simulated machine's balloon leaves the run,
// over the timed pass. docs/pressure.md has the grammar:
//
//   SPEC    := CLAUSE (';' CLAUSE)*
//   CLAUSE  := cap=AMOUNT [,node=N]                   the whole pass
//            | take=AMOUNT [,at=WHEN] [,for=SPAN] [,node=N]
//            | balloon=AMOUNT ,period=SPAN [,node=N]  taken for half of each period
//   AMOUNT  := BYTES (64m, 1g) | PERCENT% (cap: of the stream's peak live
//              bytes; take and balloon: of the node's RAM)
//   WHEN, SPAN := DURATION (250ms, 2s, 500us) | COUNT ops (5000ops)
//
// Each clause, while in force, limits the memory available on its node (every
// node when it names none); the limit of a node is the smallest in force.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "allocators/backend.h"

namespace kmbench::replay {

/// A point or span of the timed pass: nanoseconds from its start, or operations (all threads' steps).
struct PassTime {
  enum class Unit : std::uint8_t { none, ns, ops };
  Unit unit = Unit::none;
  std::uint64_t value = 0;
  bool set() const { return unit != Unit::none; }
};

struct PressureClause {
  enum class Kind : std::uint8_t { cap, take, balloon };
  Kind kind = Kind::cap;
  bool percent = false;  // amount is a percentage (of peak live bytes for cap, of node RAM otherwise)
  double amount = 0;     // bytes, or percent
  PassTime at;           // take: when it begins (unset: at the start)
  PassTime lasts;        // take: how long (unset: to the end)
  PassTime period;       // balloon
  NodeId node = kAnyNode;
  std::string text;      // the clause as given (for errors)
};

struct PressureSpec {
  std::string text;  // as given
  std::vector<PressureClause> clauses;
  bool empty() const { return clauses.empty(); }
};

/// Parses SPEC; "" and "none" give an empty spec. Throws UsageError naming the
/// clause and the part of it that is wrong.
PressureSpec parse_pressure(const std::string& text);

/// Where the pass is when a schedule is evaluated.
struct PassPoint {
  std::uint64_t ns = 0;
  std::uint64_t ops = 0;
};

/// Bytes the schedule leaves available on `node` (whose RAM is node_ram_bytes)
/// at `now`; node_ram_bytes when no clause is in force there.
std::uint64_t available_bytes(const PressureSpec& spec, NodeId node, std::uint64_t node_ram_bytes,
                              std::uint64_t peak_live_bytes, PassPoint now);

}  // namespace kmbench::replay
