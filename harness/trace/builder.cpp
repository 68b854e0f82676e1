#include "harness/trace/builder.h"

#include <algorithm>
#include <cmath>

#include "base/errors.h"
#include "harness/trace/spill.h"

namespace kmbench::trace {
namespace {

/// Counts an allocation or a free in the totals of its kind (`counted` is false
/// for DMA, which the totals leave out): a NULL one in `nulls`, any other in
/// `all` and, for a page, in `pages`. Returns whether it has a block to follow.
bool tally(bool null, bool counted, bool page, std::uint64_t& nulls, std::uint64_t& all, std::uint64_t& pages) {
  if (null) {
    if (counted) ++nulls;
    return false;
  }
  if (counted) {
    ++all;
    if (page) ++pages;
  }
  return true;
}

}  // namespace

Builder::Builder(std::string source, std::string capture_tool, const ImportOptions& options) {
  trace_.header.source = std::move(source);
  trace_.header.capture_tool = std::move(capture_tool);
  site_ok_.push_back(-1);
  const ImportFilter& f = options.filter;
  if (!f.site_regex.empty()) {
    try {
      site_re_ = std::make_unique<std::regex>(f.site_regex, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
      throw UsageError("bad --site regex '" + f.site_regex + "': " + e.what());
    }
  }
  task_ = f.task;
  if (f.from_s >= 0) from_ns_ = static_cast<std::uint64_t>(std::llround(f.from_s * 1e9));
  if (f.to_s >= 0) to_ns_ = static_cast<std::uint64_t>(std::llround(f.to_s * 1e9));
  kinds_ = f.kinds;
  spill_ = options.spill;
}

std::uint32_t Builder::intern(std::string_view s) {
  const std::size_t known = trace_.strings.size();
  const std::uint32_t id = ids_.intern(s);
  if (trace_.strings.size() != known) site_ok_.push_back(-1);
  return id;
}

bool Builder::task_selected(std::string_view comm, std::string_view pid) const {
  if (task_.empty()) return true;
  if (task_ == comm || task_ == pid) return true;
  return task_.size() == comm.size() + 1 + pid.size() && task_.compare(0, comm.size(), comm) == 0 &&
         task_[comm.size()] == '-' && task_.compare(comm.size() + 1, pid.size(), pid) == 0;
}

bool Builder::site_selected(std::uint32_t site) {
  if (!site_re_) return true;
  std::int8_t& ok = site_ok_[site];
  if (ok < 0) ok = std::regex_search(trace_.strings[site], *site_re_) ? 1 : 0;
  return ok == 1;
}

void Builder::bad_line(const std::string& message) {
  ++bad_lines_;
  if (bad_lines_ <= kBadLinesKept) set_metadata("import.bad_line." + std::to_string(bad_lines_), message);
}

void Builder::skipped(std::string_view event_name, std::uint64_t n) {
  skipped_ += n;
  const auto it = skipped_by_name_.find(event_name);
  if (it != skipped_by_name_.end()) {
    it->second += n;
  } else {
    skipped_by_name_.emplace(std::string(event_name), n);
  }
}

void Builder::emit(const Event& e, ops::OpKind kind, std::uint32_t object, std::uint64_t size, std::uint32_t tag) {
  if (e.cpu >= stream_of_cpu_.size()) stream_of_cpu_.resize(e.cpu + 1, -1);
  std::int32_t& si = stream_of_cpu_[e.cpu];
  if (si < 0) {
    si = static_cast<std::int32_t>(trace_.streams.size());
    trace_.streams.push_back({e.cpu, {}, {}});
    std::vector<ops::Op>& ops = trace_.streams.back().ops;
    ops.reserve(spilling_ ? spill_->window() : stream_reserve_);
    advise_huge(ops.data(), ops.capacity() * sizeof(ops::Op));
    if (spilling_) spill_->append(static_cast<std::size_t>(si), e.cpu, {}, {});
  }
  if (spill_) {
    if (spilling_ && trace_.streams[static_cast<std::size_t>(si)].ops.size() == spill_->window()) {
      spill_stream(static_cast<std::size_t>(si));
    } else if (!spilling_ && ++held_ > spill_->hold()) {
      start_spilling();
    }
  }
  ops::Stream& stream = trace_.streams[static_cast<std::size_t>(si)];
  std::vector<ops::Op>& s = stream.ops;
  if (e.call != ops::Call::none || !stream.calls.empty()) {
    stream.calls.resize(s.size(), ops::Call::none);  // the ops before the first known call
    stream.calls.push_back(e.call);
  }
  ops::Op op;
  op.time_ns = e.time_ns;
  const std::uint64_t last = !s.empty()  ? s.back().time_ns
                             : spilling_ ? spill_->last_time(static_cast<std::size_t>(si))
                                         : 0;
  if (op.time_ns < last) {
    op.time_ns = last;
    ++clamped_;
  }
  op.size = size;
  op.object = object;
  op.site = e.site;
  op.tag = tag;
  op.kind = kind;
  op.align_log2 = e.align_log2;
  op.node = e.node;
  op.flags = e.flags;
  s.push_back(op);
}

void Builder::add(const Event& e, bool selected) {
  if (e.cpu >= 65536) throw InputError(trace_.header.source, "cpu " + std::to_string(e.cpu) + " is absurd");
  const bool dma = e.ev >= Ev::dma_alloc;
  const bool page = e.ev == Ev::page_alloc || e.ev == Ev::page_free;
  const bool is_alloc = e.ev == Ev::kmalloc || e.ev == Ev::cache_alloc || e.ev == Ev::page_alloc ||
                        e.ev == Ev::dma_alloc || e.ev == Ev::dma_map;
  Map& map = map_for(e.ev);

  if (is_alloc) {
    if (!selected) {
      ++filtered_;
      if (e.null) return;
      bool fresh;
      Live& old = map.try_emplace(e.key, kDroppedBlock, fresh);
      if (!fresh) {
        if (old.kept() && !dma) {
          ++reuse_;
          live_bytes_ -= old.charged;
        }
        old = kDroppedBlock;
      }
      return;
    }
  } else if (!e.null) {
    Live* live = map.find(e.key);
    if (live && !live->kept()) {  // a free follows its (filtered-out) allocation
      ++filtered_;
      map.erase(live);
      return;
    }
    if (!live && !selected) {
      ++filtered_;
      return;
    }
  } else if (!selected) {
    ++filtered_;
    return;
  }

  if (e.time_ns < last_time_) ++out_of_order_;
  last_time_ = e.time_ns;
  min_time_ = std::min(min_time_, e.time_ns);
  if (dma) {
    ++dma_events_;
  } else {
    ++events_;
  }

  if (is_alloc) {
    if (!tally(e.null, !dma, page, failed_, allocs_, page_allocs_)) return;
    if (slack_on_ && (e.ev == Ev::kmalloc || e.ev == Ev::cache_alloc)) {
      std::uint64_t* k = slack_[ops::size_class(e.size, false)];
      ++k[0];
      k[1] += e.size;
      k[2] += e.charged;
    }
    // A mapping of a known DMA buffer is an op on the buffer's object (as a workload's maps are).
    const Live* buffer = e.ev == Ev::dma_map && e.target != 0 ? dma_.find(e.target) : nullptr;
    const bool on_buffer = buffer != nullptr && buffer->kept();
    const std::uint32_t object = on_buffer ? buffer->object : trace_.object_count++;
    if (trace_.object_count == 0) throw InputError(trace_.header.source, "more than 2^32 objects");
    bool fresh;
    Live& slot = map.try_emplace(e.key, Live{e.size, e.charged, object, e.tag}, fresh);
    if (!fresh) {
      if (slot.kept() && !dma) {
        ++reuse_;
        live_bytes_ -= slot.charged;
      }
      slot = Live{e.size, e.charged, object, e.tag};
    }
    if (!dma) {
      live_bytes_ += e.charged;
      peak_live_ = std::max(peak_live_, live_bytes_);
    }
    const ops::OpKind kind = page ? ops::OpKind::page_alloc
                             : e.ev == Ev::dma_alloc ? ops::OpKind::dma_alloc
                             : e.ev == Ev::dma_map   ? ops::OpKind::dma_map
                                                     : ops::OpKind::alloc;
    emit(e, kind, object, e.size, e.tag);
    return;
  }

  if (!tally(e.null, !dma, page, null_frees_, frees_, page_frees_)) return;
  Live* found = map.find(e.key);
  if (!found) {
    if (dma) {
      ++dma_unmatched_;
    } else {
      ++unmatched_;
    }
    return;
  }
  const Live live = *found;
  map.erase(found);
  if (!dma) live_bytes_ -= live.charged;
  const ops::OpKind kind = page ? ops::OpKind::page_free
                           : e.ev == Ev::dma_free  ? ops::OpKind::dma_free
                           : e.ev == Ev::dma_unmap ? ops::OpKind::dma_unmap
                                                   : ops::OpKind::free;
  emit(e, kind, live.object, live.size, live.tag ? live.tag : e.tag);
}

void Builder::spill_stream(std::size_t index) {
  ops::Stream& s = trace_.streams[index];
  spill_->append(index, s.cpu, s.ops, s.calls);
  s.ops.clear();
  s.calls.clear();
}

void Builder::start_spilling() {
  spilling_ = true;
  for (std::size_t i = 0; i < trace_.streams.size(); ++i) {
    spill_stream(i);
    std::vector<ops::Op>& ops = trace_.streams[i].ops;
    std::vector<ops::Op>().swap(ops);  // give the held room back
    ops.reserve(spill_->window());
    std::vector<ops::Call>().swap(trace_.streams[i].calls);
  }
}

ops::Trace Builder::finish() {
  if (spilling_) {
    for (std::size_t i = 0; i < trace_.streams.size(); ++i) spill_stream(i);
  }
  ops::Trace t = std::move(trace_);
  const std::uint64_t base = min_time_ == ~std::uint64_t{0} ? 0 : min_time_;
  t.header.time_base_ns = base;
  std::uint32_t cpus = cpu_hint_;
  for (ops::Stream& s : t.streams) {
    cpus = std::max(cpus, s.cpu + 1);
    for (ops::Op& op : s.ops) op.time_ns -= std::min(op.time_ns, base);
  }
  std::sort(t.streams.begin(), t.streams.end(), [](const ops::Stream& a, const ops::Stream& b) { return a.cpu < b.cpu; });
  t.header.cpu_count = std::max(cpus, 1u);
  std::uint64_t never = 0;
  for (const Map* m : {&slab_, &pages_}) {
    m->for_each([&](std::uint64_t, const Live& v) { never += v.kept() ? 1 : 0; });
  }
  std::uint64_t dma_live = 0;
  for (const Map* m : {&dma_, &maps_}) {
    m->for_each([&](std::uint64_t, const Live& v) { dma_live += v.kept() ? 1 : 0; });
  }
  auto& c = t.counters;
  c["import.events"] = events_;
  c["import.allocs"] = allocs_;
  c["import.frees"] = frees_;
  c["import.null_frees"] = null_frees_;
  c["import.unmatched_frees"] = unmatched_;
  c["import.page_allocs"] = page_allocs_;
  c["import.page_frees"] = page_frees_;
  c["import.never_freed"] = never;
  c["import.peak_live_bytes"] = peak_live_;
  c["import.failed_allocs"] = failed_;
  c["import.pointer_reuse"] = reuse_;
  c["import.out_of_order"] = out_of_order_;
  c["import.clamped_times"] = clamped_;
  c["import.lost_events"] = lost_;
  c["import.lost_markers"] = lost_markers_;
  c["import.dma_events"] = dma_events_;
  c["import.dma_unmatched"] = dma_unmatched_;
  c["import.dma_never_released"] = dma_live;
  c["import.filtered_events"] = filtered_;
  c["import.skipped_events"] = skipped_;
  if (bad_lines_ > 0) c["import.bad_lines"] = bad_lines_;
  for (const auto& [name, n] : skipped_by_name_) c["import.skipped." + name] = n;
  if (slack_on_) {
    for (int k = 0; k < ops::kPagesClass; ++k) {
      for (std::size_t f = 0; f < 3; ++f) c[ops::slab_slack_counter(k, ops::kSlackFields[f])] = slack_[k][f];
    }
  }
  return t;
}

}  // namespace kmbench::trace
