#include "harness/replay/program.h"

#include <algorithm>
#include <bit>
#include <functional>
#include <queue>
#include <limits>
#include <tuple>
#include <unordered_map>

#include "allocators/counting.h"
#include "base/errors.h"

namespace kmbench::replay {
namespace {

using ops::OpKind;

enum class Class : std::uint8_t { alloc, free, map, unmap };

Class class_of(OpKind k) noexcept {
  switch (k) {
    case OpKind::alloc:
    case OpKind::page_alloc:
    case OpKind::dma_alloc:
      return Class::alloc;
    case OpKind::free:
    case OpKind::page_free:
    case OpKind::dma_free:
      return Class::free;
    case OpKind::dma_map:
      return Class::map;
    case OpKind::dma_unmap:
      return Class::unmap;
  }
  return Class::alloc;
}

struct Ref {
  std::uint32_t stream;
  std::uint32_t index;
};

/// What the load-time simulation knows about one object.
struct Object {
  std::uint64_t size = 0;
  std::uint32_t ordinal = 0;
  std::uint32_t last_thread = 0;
  std::uint32_t last_index = 0;
  std::uint32_t maps = 0;
  std::uint32_t lifetime = 0;  // allocations placed so far
  std::uint32_t pending[4] = {0, 0, 0, 0};  // by Class: operations not yet placed
  std::uint16_t tag = 0;
  std::uint8_t align_log2 = 0;
  bool live = false;
  bool low = false;  // the live allocation is below 4 GiB
};

enum class Verdict { run, wait, drop };

struct Decision {
  Verdict verdict;
  const char* reason;  // for drop
};

/// May an operation of lifetime `life` (0: none) and class c run on o now?
Decision decide(const Object& o, Class c, std::uint32_t life) noexcept {
  constexpr Decision kRun{Verdict::run, nullptr}, kWait{Verdict::wait, nullptr};
  auto pending = [&](Class k) { return o.pending[static_cast<int>(k)] > 0; };
  const bool current = o.live && life == o.lifetime;
  const bool unreachable = life > o.lifetime && !pending(Class::alloc);  // its allocation was dropped
  switch (c) {
    case Class::alloc:
      if (life == o.lifetime + 1) {
        if (!o.live) return kRun;
        return pending(Class::free) ? kWait : Decision{Verdict::drop, "alloc_of_live_object"};
      }
      return kWait;
    case Class::free:
      if (life == 0 || life < o.lifetime || (life == o.lifetime && !o.live) || unreachable) {
        return {Verdict::drop, "free_without_alloc"};
      }
      if (!current) return kWait;
      return o.maps > 0 && pending(Class::unmap) ? kWait : kRun;
    case Class::map:
      if (life == 0 || life < o.lifetime || (life == o.lifetime && !o.live) || unreachable) {
        return {Verdict::drop, "map_without_buffer"};
      }
      return current ? kRun : kWait;
    case Class::unmap:
      if (life == 0 || life < o.lifetime || (life == o.lifetime && !o.live) || unreachable) {
        return {Verdict::drop, "unmap_without_map"};
      }
      if (!current) return kWait;
      if (o.maps > 0) return kRun;
      return pending(Class::map) ? kWait : Decision{Verdict::drop, "unmap_without_map"};
  }
  return {Verdict::drop, "unknown_kind"};
}

std::uint8_t log2_floor(std::uint64_t v) noexcept {
  return static_cast<std::uint8_t>(63 - __builtin_clzll(v));
}

}  // namespace

bool is_alloc(ops::OpKind k) noexcept { return class_of(k) == Class::alloc; }
bool is_free(ops::OpKind k) noexcept { return class_of(k) == Class::free; }

Program build_program(const ops::Trace& trace, unsigned threads) {
  Program prog;
  prog.threads.resize(threads);
  prog.object_count = trace.object_count;

  // Fold streams onto threads, each thread's operations in time order.
  std::vector<std::vector<Ref>> order(threads);
  std::uint64_t t0 = std::numeric_limits<std::uint64_t>::max();
  for (std::uint32_t s = 0; s < trace.streams.size(); ++s) {
    const auto& ops_of = trace.streams[s].ops;
    auto& dst = order[s % threads];
    for (std::uint32_t i = 0; i < ops_of.size(); ++i) {
      const ops::Op& op = ops_of[i];
      if (op.object >= trace.object_count) {
        throw InputError("trace", "stream " + std::to_string(s) + " operation " +
                                      std::to_string(i) + ": object " + std::to_string(op.object) +
                                      " is not below the object count " +
                                      std::to_string(trace.object_count));
      }
      if (static_cast<unsigned>(op.kind) >= ops::kOpKinds) {
        throw InputError("trace", "stream " + std::to_string(s) + " operation " +
                                      std::to_string(i) + ": unknown kind " +
                                      std::to_string(static_cast<unsigned>(op.kind)));
      }
      t0 = std::min(t0, op.time_ns);
      dst.push_back({s, i});
    }
  }
  auto op_at = [&](const Ref& r) -> const ops::Op& { return trace.streams[r.stream].ops[r.index]; };
  for (auto& refs : order) {
    std::stable_sort(refs.begin(), refs.end(), [&](const Ref& a, const Ref& b) {
      return op_at(a).time_ns < op_at(b).time_ns;
    });
  }
  if (t0 == std::numeric_limits<std::uint64_t>::max()) {
    t0 = 0;
  }

  // Dense tag ids for Counting: trace string index -> 1, 2, ...
  std::unordered_map<std::uint32_t, std::uint16_t> tag_ids;
  prog.tag_names.push_back("");
  auto tag_of = [&](std::uint32_t string_index) -> std::uint16_t {
    if (string_index == 0) return 0;
    auto [it, inserted] = tag_ids.try_emplace(string_index, 0);
    if (inserted) {
      if (prog.tag_names.size() < kOverflowTag) {
        it->second = static_cast<std::uint16_t>(prog.tag_names.size());
        prog.tag_names.push_back(string_index < trace.strings.size()
                                     ? trace.strings[string_index]
                                     : "string#" + std::to_string(string_index));
      } else {
        it->second = static_cast<std::uint16_t>(kOverflowTag);
        if (prog.tag_names.size() == kOverflowTag) prog.tag_names.push_back("(other tags)");
      }
    }
    return it->second;
  };

  std::vector<Object> objects(trace.object_count);
  std::uint64_t remaining = 0;
  for (const auto& refs : order) {
    for (const Ref& r : refs) {
      const ops::Op& op = op_at(r);
      ++objects[op.object].pending[static_cast<int>(class_of(op.kind))];
    }
    remaining += refs.size();
  }

  // Each operation's lifetime: the k-th allocation of an object and its k-th
  // free (in time order) are one lifetime, whatever the clocks of the CPUs
  // say about their order; maps and unmaps belong to the latest allocation
  // before them (the first when none is). Frees beyond the allocations, the
  // earliest first, belong to none (allocated before the capture).
  std::vector<std::vector<std::uint32_t>> life(threads);
  {
    struct Entry {
      std::uint64_t time;
      std::uint8_t rank;
      std::uint32_t thread, index;
    };
    std::vector<std::uint32_t> start(trace.object_count + 1, 0);
    for (const auto& refs : order) {
      for (const Ref& r : refs) ++start[op_at(r).object + 1];
    }
    for (std::uint32_t o = 0; o < trace.object_count; ++o) start[o + 1] += start[o];
    std::vector<Entry> entries(start[trace.object_count]);
    std::vector<std::uint32_t> fill(start.begin(), start.end() - 1);
    for (unsigned t = 0; t < threads; ++t) {
      life[t].assign(order[t].size(), 0);
      for (std::uint32_t i = 0; i < order[t].size(); ++i) {
        const ops::Op& op = op_at(order[t][i]);
        entries[fill[op.object]++] = {op.time_ns, static_cast<std::uint8_t>(class_of(op.kind)), t, i};
      }
    }
    for (std::uint32_t o = 0; o < trace.object_count; ++o) {
      auto first = entries.begin() + start[o], last = entries.begin() + start[o + 1];
      std::sort(first, last, [](const Entry& a, const Entry& b) {
        return std::tie(a.time, a.rank, a.thread, a.index) < std::tie(b.time, b.rank, b.thread, b.index);
      });
      const Object& obj = objects[o];
      const std::uint32_t allocs = obj.pending[static_cast<int>(Class::alloc)];
      const std::uint32_t frees = obj.pending[static_cast<int>(Class::free)];
      std::uint32_t unmatched = frees > allocs ? frees - allocs : 0;
      std::uint32_t seen_allocs = 0, seen_frees = 0;
      for (auto it = first; it != last; ++it) {
        std::uint32_t l = 0;
        switch (static_cast<Class>(it->rank)) {
          case Class::alloc:
            l = ++seen_allocs;
            break;
          case Class::free:
            if (unmatched > 0) {
              --unmatched;
            } else {
              l = ++seen_frees;
            }
            break;
          default:
            l = allocs == 0 ? 0 : std::max<std::uint32_t>(seen_allocs, 1);
            break;
        }
        life[it->thread][it->index] = l;
      }
    }
  }

  std::vector<std::size_t> cursor(threads, 0);
  auto place = [&](unsigned t, const ops::Op& op) {
    Object& o = objects[op.object];
    const Class c = class_of(op.kind);
    Step s;
    s.time_ns = op.time_ns - t0;
    s.object = op.object;
    s.kind = op.kind;
    s.node = op.node;
    s.flags = op.flags;
    s.ordinal = o.ordinal++;
    if (op.kind == OpKind::dma_map) ++prog.dma_maps;
    if (s.ordinal > 0 && o.last_thread != t) {
      s.ctl |= kStepWait;
      prog.threads[o.last_thread][o.last_index].ctl |= kStepPublish;
      ++prog.cross_thread_waits;
    }
    switch (c) {
      case Class::alloc: {
        const bool paged = op.kind != OpKind::alloc;
        std::uint8_t align = std::max<std::uint8_t>(op.align_log2, log2_floor(kMinAlign));
        s.size = op.size;
        if (paged) {
          s.size = (op.size + kPageBytes - 1) & ~(kPageBytes - 1);
          align = std::max<std::uint8_t>(align, log2_floor(kPageBytes));
        }
        s.align_log2 = align;
        s.tag = tag_of(op.tag);
        prog.alloc_bytes += s.size;
        o.low = (op.flags & ops::kOpDma32) != 0;
        if (o.low) s.ctl |= kStepLow;
        o.live = true;
        ++o.lifetime;
        o.maps = 0;
        o.size = s.size;
        o.tag = s.tag;
        o.align_log2 = align;
        break;
      }
      case Class::free:
        s.size = o.size;
        s.tag = o.tag;
        s.align_log2 = o.align_log2;
        if (o.low) s.ctl |= kStepLow;
        o.live = false;
        o.maps = 0;
        break;
      case Class::map:
      case Class::unmap:
        s.size = op.size == 0 ? o.size : std::min(op.size, o.size);
        s.tag = o.tag;
        if (c == Class::map) {
          ++o.maps;
        } else {
          --o.maps;
        }
        break;
    }
    o.last_thread = t;
    o.last_index = static_cast<std::uint32_t>(prog.threads[t].size());
    prog.threads[t].push_back(s);
    prog.duration_ns = std::max(prog.duration_ns, s.time_ns);
  };
  auto consume = [&](unsigned t, const ops::Op& op) {
    --objects[op.object].pending[static_cast<int>(class_of(op.kind))];
    ++cursor[t];
    --remaining;
  };

  while (remaining > 0) {
    bool progressed = false;
    for (unsigned t = 0; t < threads; ++t) {
      while (cursor[t] < order[t].size()) {
        const ops::Op& op = op_at(order[t][cursor[t]]);
        const Decision d = decide(objects[op.object], class_of(op.kind), life[t][cursor[t]]);
        if (d.verdict == Verdict::wait) {
          break;
        }
        if (d.verdict == Verdict::run) {
          place(t, op);
        } else {
          ++prog.dropped[d.reason];
        }
        consume(t, op);
        progressed = true;
      }
    }
    if (!progressed) {
      // Every thread waits on another: the trace's clocks disagree beyond
      // repair. Drop the earliest waiting operation and go on.
      unsigned victim = threads;
      for (unsigned t = 0; t < threads; ++t) {
        if (cursor[t] < order[t].size() &&
            (victim == threads ||
             op_at(order[t][cursor[t]]).time_ns < op_at(order[victim][cursor[victim]]).time_ns)) {
          victim = t;
        }
      }
      ++prog.dropped["unorderable"];
      consume(victim, op_at(order[victim][cursor[victim]]));
    }
  }
  for (const auto& steps : prog.threads) {
    prog.steps += steps.size();
  }
  prog.leftovers.resize(threads);
  for (std::uint32_t id = 0; id < trace.object_count; ++id) {
    const Object& o = objects[id];
    if (o.live || o.maps > 0) {
      prog.leftovers[o.last_thread].push_back({o.size, id, o.tag, o.live, o.low});
    }
  }
  return prog;
}

namespace {

std::uint64_t page_run_bytes(std::uint64_t size) noexcept {
  const std::uint64_t pages = (std::max<std::uint64_t>(size, 1) + kPageBytes - 1) / kPageBytes;
  constexpr std::uint64_t kMaxOrderPages = 1024;  // 4 MiB: beyond, whole pages
  return (pages <= kMaxOrderPages ? std::bit_ceil(pages) : pages) * kPageBytes;
}

}  // namespace

MemoryDemand memory_demand(const Program& program) {
  MemoryDemand d;
  struct Cursor {
    std::uint64_t time;
    unsigned thread;
    std::size_t index;
    bool operator>(const Cursor& o) const noexcept {
      return time != o.time ? time > o.time : thread > o.thread;
    }
  };
  std::priority_queue<Cursor, std::vector<Cursor>, std::greater<>> next;
  for (unsigned t = 0; t < program.threads.size(); ++t) {
    if (!program.threads[t].empty()) next.push({program.threads[t][0].time_ns, t, 0});
  }
  std::vector<std::uint32_t> mapped(program.object_count, 0);  // 32-bit transfers in flight
  std::vector<bool> low(program.object_count, false);
  std::uint64_t live = 0, pages = 0, low_pages = 0, bounce = 0;
  while (!next.empty()) {
    const Cursor c = next.top();
    next.pop();
    const Step& s = program.threads[c.thread][c.index];
    if (c.index + 1 < program.threads[c.thread].size()) {
      next.push({program.threads[c.thread][c.index + 1].time_ns, c.thread, c.index + 1});
    }
    const std::uint64_t run = page_run_bytes(s.size);
    if (is_alloc(s.kind)) {
      live += s.size;
      pages += run;
      low[s.object] = (s.ctl & kStepLow) != 0;
      if (low[s.object]) low_pages += run;
      d.largest_block = std::max(d.largest_block, s.size);
    } else if (is_free(s.kind)) {
      live -= s.size;
      pages -= run;
      if (low[s.object]) low_pages -= run;
    } else if ((s.flags & ops::kOpDma32) != 0 && !low[s.object]) {
      const std::uint64_t bytes = (s.size + kPageBytes - 1) / kPageBytes * kPageBytes;
      if (s.kind == ops::OpKind::dma_map) {
        bounce += bytes;
        ++mapped[s.object];
      } else if (mapped[s.object] > 0) {
        bounce -= std::min(bounce, bytes);
        --mapped[s.object];
      }
    }
    d.peak_live_bytes = std::max(d.peak_live_bytes, live);
    d.peak_page_bytes = std::max(d.peak_page_bytes, pages);
    d.peak_low_bytes = std::max(d.peak_low_bytes, low_pages);
    d.peak_bounce_bytes = std::max(d.peak_bounce_bytes, bounce);
  }
  return d;
}

}  // namespace kmbench::replay
