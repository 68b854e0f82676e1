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

/// The largest operation size a step takes: page operations are rounded up to
/// whole pages, and the rounded size must stay below kStepSizeLimit.
constexpr std::uint64_t kMaxStepSize = kStepSizeLimit - kPageBytes;

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
  bool placed = false;  // a step of the object is placed (the next on another thread waits for it)
  std::uint32_t last_thread = 0;
  std::uint32_t last_index = 0;
  std::uint32_t maps = 0;
  std::uint32_t lifetime = 0;  // allocations placed so far
  std::uint32_t pending[4] = {0, 0, 0, 0};  // by Class: operations not yet placed
  std::uint32_t site = 0;       // RequestBook slot of the live allocation's call site
  std::uint32_t alloc_cpu = 0;  // recorded CPU of the live allocation
  std::uint16_t tag = 0;
  std::uint8_t align_log2 = 0;
  ops::Call call = ops::Call::none;  // the KPI call of the live allocation (kpi_path.h), else none
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

/// The KPI calls a replay can make again through the KPI: the heap and page
/// families (IOBufferMemoryDescriptor and IODMACommand keep the replay's own paths).
bool kpi_allocation(ops::Call c) noexcept {
  switch (c) {
    case ops::Call::io_malloc:
    case ops::Call::io_malloc_zero:
    case ops::Call::io_malloc_aligned:
    case ops::Call::io_malloc_pageable:
    case ops::Call::io_malloc_contiguous:
    case ops::Call::os_malloc:
    case ops::Call::os_malloc_noblock:
    case ops::Call::os_malloc_nowait:
    case ops::Call::os_object_new:
      return true;
    default:
      return false;
  }
}

std::uint8_t log2_floor(std::uint64_t v) noexcept {
  return static_cast<std::uint8_t>(63 - __builtin_clzll(v));
}

/// Dense tag ids for Counting: trace string index -> 1, 2, ...; tags beyond
/// Counting's table share kOverflowTag.
class TagIds {
 public:
  TagIds(const ops::Trace& trace, std::vector<std::string>& names) : trace_(trace), names_(names) {
    names_.push_back("");
  }

  std::uint16_t operator()(std::uint32_t string_index) {
    if (string_index == 0) return 0;
    auto [it, inserted] = ids_.try_emplace(string_index, 0);
    if (inserted) {
      if (names_.size() < kOverflowTag) {
        it->second = static_cast<std::uint16_t>(names_.size());
        names_.push_back(string_index < trace_.strings.size() ? trace_.strings[string_index]
                                                              : "string#" + std::to_string(string_index));
      } else {
        it->second = static_cast<std::uint16_t>(kOverflowTag);
        if (names_.size() == kOverflowTag) names_.push_back("(other tags)");
      }
    }
    return it->second;
  }

 private:
  const ops::Trace& trace_;
  std::vector<std::string>& names_;
  std::unordered_map<std::uint32_t, std::uint16_t> ids_;
};

/// build_program's phases: fold the streams onto threads, give each operation
/// its object lifetime, then schedule the threads' steps so that every step
/// on an object runs after the one before it.
class ProgramBuilder {
 public:
  ProgramBuilder(const ops::Trace& trace, unsigned threads, const std::string& name)
      : trace_(trace),
        name_(name),
        threads_(threads),
        tags_(trace, prog_.tag_names),
        order_(threads),
        life_(threads),
        objects_(trace.object_count),
        cursor_(threads, 0),
        last_stream_(threads, 0) {
    prog_.threads.resize(threads);
    sites_.resize(threads);
    prog_.handoffs.resize(threads);
    marks_.resize(threads);
    prog_.object_count = trace.object_count;
  }

  Program build() && {
    fold_streams();
    count_pending();
    assign_lifetimes();
    schedule();
    collect_handoffs();
    collect_leftovers();
    std::move(book_).finish(prog_.requests, prog_.sites);
    pack_sites();
    return std::move(prog_);
  }

 private:
  const ops::Op& op_at(const Ref& r) const { return trace_.streams[r.stream].ops[r.index]; }

  /// Streams onto threads (stream s on thread s mod threads), each thread's
  /// operations in time order; checks every operation's object and kind.
  void fold_streams() {
    for (std::uint32_t s = 0; s < trace_.streams.size(); ++s) {
      const auto& ops_of = trace_.streams[s].ops;
      auto& dst = order_[s % threads_];
      for (std::uint32_t i = 0; i < ops_of.size(); ++i) {
        const ops::Op& op = ops_of[i];
        if (op.object >= trace_.object_count) {
          throw InputError(name_, "stream " + std::to_string(s) + " operation " + std::to_string(i) + ": object " +
                                      std::to_string(op.object) + " is not below the object count " +
                                      std::to_string(trace_.object_count));
        }
        if (static_cast<unsigned>(op.kind) >= ops::kOpKinds) {
          throw InputError(name_, "stream " + std::to_string(s) + " operation " + std::to_string(i) +
                                      ": unknown kind " + std::to_string(static_cast<unsigned>(op.kind)));
        }
        if (op.size > kMaxStepSize) {
          throw InputError(name_, "stream " + std::to_string(s) + " operation " + std::to_string(i) + ": size " +
                                      std::to_string(op.size) + " is beyond the largest a replay takes (" +
                                      std::to_string(kMaxStepSize) + " bytes)");
        }
        t0_ = std::min(t0_, op.time_ns);
        dst.push_back({s, i});
      }
    }
    for (auto& refs : order_) {
      std::stable_sort(refs.begin(), refs.end(),
                       [&](const Ref& a, const Ref& b) { return op_at(a).time_ns < op_at(b).time_ns; });
    }
    if (t0_ == std::numeric_limits<std::uint64_t>::max()) {
      t0_ = 0;
    }
    for (unsigned t = 0; t < threads_; ++t) {
      if (!order_[t].empty() && op_at(order_[t].back()).time_ns - t0_ >= kStepTimeLimit) {
        const Ref& r = order_[t].back();
        throw InputError(name_, "stream " + std::to_string(r.stream) + " operation " + std::to_string(r.index) +
                                    ": it comes " + std::to_string(op_at(r).time_ns - t0_) +
                                    " ns after the first, beyond the 2^56 ns a replay spans");
      }
      prog_.threads[t].reserve(order_[t].size());  // a step an operation, less those dropped
      sites_[t].reserve(order_[t].size());
    }
  }

  void count_pending() {
    for (const auto& refs : order_) {
      for (const Ref& r : refs) {
        const ops::Op& op = op_at(r);
        ++objects_[op.object].pending[static_cast<int>(class_of(op.kind))];
      }
      remaining_ += refs.size();
    }
  }

  /// Each operation's lifetime: the k-th allocation of an object and its k-th
  /// free (in time order) are one lifetime, whatever the clocks of the CPUs
  /// say about their order; maps and unmaps belong to the latest allocation
  /// before them (the first when none is). Frees beyond the allocations, the
  /// earliest first, belong to none (allocated before the capture).
  void assign_lifetimes() {
    struct Entry {
      std::uint64_t time;
      std::uint8_t rank;
      std::uint32_t thread, index;
    };
    // The operations bucketed by object (a counting sort), then each bucket in time order.
    std::vector<std::uint32_t> start(trace_.object_count + 1, 0);
    for (const auto& refs : order_) {
      for (const Ref& r : refs) ++start[op_at(r).object + 1];
    }
    for (std::uint32_t o = 0; o < trace_.object_count; ++o) start[o + 1] += start[o];
    std::vector<Entry> entries(start[trace_.object_count]);
    std::vector<std::uint32_t> fill(start.begin(), start.end() - 1);
    for (unsigned t = 0; t < threads_; ++t) {
      life_[t].assign(order_[t].size(), 0);
      for (std::uint32_t i = 0; i < order_[t].size(); ++i) {
        const ops::Op& op = op_at(order_[t][i]);
        entries[fill[op.object]++] = {op.time_ns, static_cast<std::uint8_t>(class_of(op.kind)), t, i};
      }
    }
    for (std::uint32_t o = 0; o < trace_.object_count; ++o) {
      auto first = entries.begin() + start[o], last = entries.begin() + start[o + 1];
      std::sort(first, last, [](const Entry& a, const Entry& b) {
        return std::tie(a.time, a.rank, a.thread, a.index) < std::tie(b.time, b.rank, b.thread, b.index);
      });
      const Object& obj = objects_[o];
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
        life_[it->thread][it->index] = l;
      }
    }
  }

  /// Runs the threads' operations in turn while each may run; when every
  /// thread waits on another, the trace's clocks disagree beyond repair: the
  /// earliest waiting operation is dropped and the schedule goes on.
  void schedule() {
    while (remaining_ > 0) {
      bool progressed = false;
      for (unsigned t = 0; t < threads_; ++t) {
        while (cursor_[t] < order_[t].size()) {
          const ops::Op& op = op_at(order_[t][cursor_[t]]);
          const Decision d = decide(objects_[op.object], class_of(op.kind), life_[t][cursor_[t]]);
          if (d.verdict == Verdict::wait) {
            break;
          }
          if (d.verdict == Verdict::run) {
            const Ref& ref = order_[t][cursor_[t]];
            cpu_ = trace_.streams[ref.stream].cpu;
            stream_ = ref.stream;
            place(t, op, call_of(ref));
          } else {
            ++prog_.dropped[d.reason];
          }
          consume(t, op);
          progressed = true;
        }
      }
      if (!progressed) {
        unsigned victim = threads_;
        for (unsigned t = 0; t < threads_; ++t) {
          if (cursor_[t] < order_[t].size() &&
              (victim == threads_ ||
               op_at(order_[t][cursor_[t]]).time_ns < op_at(order_[victim][cursor_[victim]]).time_ns)) {
            victim = t;
          }
        }
        ++prog_.dropped["unorderable"];
        consume(victim, op_at(order_[victim][cursor_[victim]]));
      }
    }
    for (auto& steps : prog_.threads) {
      prog_.steps += steps.size();
      if (!steps.empty()) steps.back().ctl &= ~kStepReallocFrom;  // no allocation followed it
    }
  }

  ops::Call call_of(const Ref& r) const {
    const auto& calls = trace_.streams[r.stream].calls;
    return r.index < calls.size() ? calls[r.index] : ops::Call::none;
  }

  /// A realloc's two steps become one when the allocation directly follows the
  /// free on the thread, from the same stream at the same time, and neither
  /// is below 4 GiB or differently aligned; else they stay a free and an allocation.
  void join_realloc(unsigned t, ops::Call call, Step& s) {
    std::vector<Step>& steps = prog_.threads[t];
    Step* before = steps.empty() ? nullptr : &steps.back();
    const bool pending = before != nullptr && (before->ctl & kStepReallocFrom) != 0;
    if (pending && call == ops::Call::realloc && s.kind == OpKind::alloc && last_stream_[t] == stream_ &&
        before->time_ns() == s.time_ns() && (s.ctl & kStepLow) == 0 && before->align_log2 == s.align_log2) {
      s.ctl |= kStepReallocTo;
      ++prog_.realloc_pairs;
      return;
    }
    if (pending) before->ctl &= ~kStepReallocFrom;
    if (call == ops::Call::realloc && s.kind == OpKind::free && (s.ctl & kStepLow) == 0) {
      s.ctl |= kStepReallocFrom;
    }
  }

  void consume(unsigned t, const ops::Op& op) {
    --objects_[op.object].pending[static_cast<int>(class_of(op.kind))];
    ++cursor_[t];
    --remaining_;
  }

  /// Appends op to thread t as a step; a step that follows another thread's
  /// step on the same object waits for it, which publishes.
  void place(unsigned t, const ops::Op& op, ops::Call call) {
    Object& o = objects_[op.object];
    Step s;
    s.set_time_ns(op.time_ns - t0_);
    s.object = op.object;
    s.kind = op.kind;
    s.node = op.node;
    s.flags = op.flags;
    if (op.kind == OpKind::dma_map) ++prog_.dma_maps;
    if (o.placed && o.last_thread != t) {
      if (prog_.cross_thread_waits == std::numeric_limits<std::uint32_t>::max()) {
        throw InputError(name_, "more than 2^32 - 1 operations wait for another thread's on their object");
      }
      const auto handoff = static_cast<std::uint32_t>(prog_.cross_thread_waits++);
      s.ctl |= kStepWait;
      marks_[t].push_back({static_cast<std::uint32_t>(prog_.threads[t].size()), false, handoff});
      prog_.threads[o.last_thread][o.last_index].ctl |= kStepPublish;
      marks_[o.last_thread].push_back({o.last_index, true, handoff});
    }
    o.placed = true;
    switch (class_of(op.kind)) {
      case Class::alloc:
        place_allocation(op, o, s);
        o.call = s.call = op.kind == OpKind::alloc && kpi_allocation(call) ? call : ops::Call::none;
        prog_.kpi_steps += s.call != ops::Call::none ? 1 : 0;
        break;
      case Class::free:
        s.set_size(o.size);
        s.tag = o.tag;
        s.align_log2 = o.align_log2;
        s.call = o.call;  // a KPI block goes back through the free of its own family
        prog_.kpi_steps += o.call != ops::Call::none ? 1 : 0;
        if (o.low) s.ctl |= kStepLow;
        book_.freed(o.site, o.alloc_cpu != cpu_);
        o.live = false;
        o.maps = 0;
        break;
      case Class::map:
      case Class::unmap:
        s.set_size(op.size == 0 ? o.size : std::min(op.size, o.size));
        s.tag = o.tag;
        if (op.kind == OpKind::dma_map) {
          ++o.maps;
        } else {
          --o.maps;
        }
        break;
    }
    join_realloc(t, call, s);
    last_stream_[t] = stream_;
    o.last_thread = t;
    o.last_index = static_cast<std::uint32_t>(prog_.threads[t].size());
    prog_.threads[t].push_back(s);
    sites_[t].push_back(o.site);
    prog_.duration_ns = std::max(prog_.duration_ns, s.time_ns());
  }

  /// An allocation's size and alignment (whole pages for page and DMA
  /// allocations), its dense tag; the object becomes live.
  void place_allocation(const ops::Op& op, Object& o, Step& s) {
    std::uint8_t align = std::max<std::uint8_t>(op.align_log2, log2_floor(kMinAlign));
    std::uint64_t size = op.size;
    if (op.kind != OpKind::alloc) {
      size = (op.size + kPageBytes - 1) & ~(kPageBytes - 1);
      align = std::max<std::uint8_t>(align, log2_floor(kPageBytes));
    }
    s.set_size(size);
    s.align_log2 = align;
    s.tag = tags_(op.tag);
    prog_.alloc_bytes += size;
    o.low = (op.flags & ops::kOpDma32) != 0;
    if (o.low) s.ctl |= kStepLow;
    o.live = true;
    ++o.lifetime;
    o.maps = 0;
    o.size = size;
    o.tag = s.tag;
    o.align_log2 = align;
    o.site = book_.site_slot(op.site, trace_.strings);
    o.alloc_cpu = cpu_;
    book_.allocated(size, align, o.low, op.kind != OpKind::alloc, o.site);
  }

  /// Each thread's handoffs in the order its steps take them: by step, a
  /// step's wait before its publish.
  void collect_handoffs() {
    for (unsigned t = 0; t < threads_; ++t) {
      std::vector<Mark>& marks = marks_[t];
      std::sort(marks.begin(), marks.end(), [](const Mark& a, const Mark& b) {
        return std::tie(a.index, a.publish) < std::tie(b.index, b.publish);
      });
      std::vector<std::uint32_t>& out = prog_.handoffs[t];
      out.reserve(marks.size());
      for (const Mark& m : marks) out.push_back(m.handoff);
      std::vector<Mark>().swap(marks);
    }
  }

  /// Each thread's sites as the program keeps them: one word a step, two
  /// beyond 65,536 sites; none when no allocation names a site.
  void pack_sites() {
    if (prog_.sites.empty()) return;
    const std::size_t words = prog_.wide_sites() ? 2 : 1;
    prog_.step_sites.resize(threads_);
    for (unsigned t = 0; t < threads_; ++t) {
      std::vector<std::uint16_t>& out = prog_.step_sites[t];
      out.reserve(sites_[t].size() * words);
      for (const std::uint32_t site : sites_[t]) {
        out.push_back(static_cast<std::uint16_t>(site));
        if (words == 2) out.push_back(static_cast<std::uint16_t>(site >> 16));
      }
      std::vector<std::uint32_t>().swap(sites_[t]);
    }
  }

  /// What is still allocated or mapped at the end, on the thread that last touched it.
  void collect_leftovers() {
    prog_.leftovers.resize(threads_);
    std::vector<std::size_t> count(threads_, 0);
    for (const Object& o : objects_) count[o.last_thread] += o.live || o.maps > 0 ? 1 : 0;
    for (unsigned t = 0; t < threads_; ++t) prog_.leftovers[t].reserve(count[t]);
    for (std::uint32_t id = 0; id < trace_.object_count; ++id) {
      const Object& o = objects_[id];
      if (o.live || o.maps > 0) {
        prog_.leftovers[o.last_thread].push_back(Leftover::of(o.size, id, o.tag, o.live, o.low, o.call));
      }
    }
  }

  const ops::Trace& trace_;
  const std::string name_;  // the trace's, for errors
  const unsigned threads_;
  Program prog_;
  TagIds tags_;
  std::vector<std::vector<Ref>> order_;           // by thread: the operations in time order
  std::vector<std::vector<std::uint32_t>> life_;  // by thread, like order_: each operation's lifetime
  std::vector<Object> objects_;
  struct Mark {
    std::uint32_t index;  // of a step on the thread that waits or publishes
    bool publish;         // the step publishes the handoff (else waits for it)
    std::uint32_t handoff;
  };
  std::vector<std::vector<Mark>> marks_;          // by thread, in no order
  std::vector<std::vector<std::uint32_t>> sites_;  // by thread, parallel to its steps: each one's site slot
  std::vector<std::size_t> cursor_;               // by thread: the next operation to place
  std::uint64_t remaining_ = 0;
  std::uint32_t cpu_ = 0;                         // recorded CPU of the operation being placed
  std::uint32_t stream_ = 0;                      // stream of the operation being placed
  std::vector<std::uint32_t> last_stream_;        // by thread: stream of its last step
  RequestBook book_;
  std::uint64_t t0_ = std::numeric_limits<std::uint64_t>::max();
};

}  // namespace

bool is_alloc(ops::OpKind k) noexcept { return class_of(k) == Class::alloc; }
bool is_free(ops::OpKind k) noexcept { return class_of(k) == Class::free; }

Program build_program(const ops::Trace& trace, unsigned threads, const std::string& name) {
  return ProgramBuilder(trace, threads, name).build();
}

namespace {

std::uint64_t page_run_bytes(std::uint64_t size) noexcept {
  const std::uint64_t pages = (std::max<std::uint64_t>(size, 1) + kPageBytes - 1) / kPageBytes;
  constexpr std::uint64_t kMaxOrderPages = 1024;  // 4 MiB: beyond, whole pages
  return (pages <= kMaxOrderPages ? std::bit_ceil(pages) : pages) * kPageBytes;
}

}  // namespace

std::uint64_t program_bytes(const Program& program) {
  std::uint64_t n = sizeof(Program);
  for (const auto& t : program.threads) n += t.capacity() * sizeof(Step);
  for (const auto& t : program.step_sites) n += t.capacity() * sizeof(std::uint16_t);
  for (const auto& t : program.handoffs) n += t.capacity() * sizeof(std::uint32_t);
  for (const auto& t : program.leftovers) n += t.capacity() * sizeof(Leftover);
  n += program.requests.capacity() * sizeof(Request);
  for (const SiteUse& s : program.sites) {
    n += sizeof(SiteUse) + s.name.capacity() + s.requests.capacity() * sizeof(s.requests[0]);
  }
  for (const std::string& name : program.tag_names) n += sizeof(std::string) + name.capacity();
  return n;
}

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
    if (!program.threads[t].empty()) next.push({program.threads[t][0].time_ns(), t, 0});
  }
  std::vector<std::uint32_t> mapped(program.object_count, 0);  // 32-bit transfers in flight
  std::vector<bool> low(program.object_count, false);
  std::uint64_t live = 0, pages = 0, low_pages = 0, bounce = 0;
  while (!next.empty()) {
    const Cursor c = next.top();
    next.pop();
    const Step& s = program.threads[c.thread][c.index];
    if (c.index + 1 < program.threads[c.thread].size()) {
      next.push({program.threads[c.thread][c.index + 1].time_ns(), c.thread, c.index + 1});
    }
    const std::uint64_t size = s.size();
    const std::uint64_t run = page_run_bytes(size);
    if (is_alloc(s.kind)) {
      live += size;
      pages += run;
      low[s.object] = (s.ctl & kStepLow) != 0;
      if (low[s.object]) low_pages += run;
      d.largest_block = std::max(d.largest_block, size);
    } else if (is_free(s.kind)) {
      live -= size;
      pages -= run;
      if (low[s.object]) low_pages -= run;
    } else if ((s.flags & ops::kOpDma32) != 0 && !low[s.object]) {
      const std::uint64_t bytes = (size + kPageBytes - 1) / kPageBytes * kPageBytes;
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
