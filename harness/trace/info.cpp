// `kmbench trace info`: what a user asks first about a trace.
#include <algorithm>
#include <bit>
#include <iomanip>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <unordered_map>

#include "harness/trace/spill.h"
#include "harness/trace/trace.h"
#include "ops/size_classes.h"

namespace kmbench::trace {
namespace {

constexpr const char* kKindNames[ops::kOpKinds] = {"alloc",     "free",     "page_alloc", "page_free",
                                                   "dma_alloc", "dma_free", "dma_map",    "dma_unmap"};

bool is_alloc(ops::OpKind k) { return k == ops::OpKind::alloc || k == ops::OpKind::page_alloc; }
bool is_free(ops::OpKind k) { return k == ops::OpKind::free || k == ops::OpKind::page_free; }

std::vector<std::pair<std::string, std::uint64_t>> top_of(const std::vector<std::uint64_t>& counts,
                                                         const ops::Trace& t, std::size_t top) {
  std::vector<std::pair<std::string, std::uint64_t>> v;
  for (std::size_t i = 1; i < counts.size(); ++i) {
    if (counts[i]) v.emplace_back(t.strings[i], counts[i]);
  }
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  if (v.size() > top) v.resize(top);
  return v;
}

std::uint64_t counter(const ops::Trace& t, const char* key) {
  const auto it = t.counters.find(std::string("import.") + key);
  return it == t.counters.end() ? 0 : it->second;
}

/// An importer's count: its counter is "import.<name>", and `trace info --json` names it <name>.
struct Count {
  const char* name;
  std::uint64_t Info::*field;
};
// The first kOpCounts are found again from the ops of a trace with no importer counters.
constexpr Count kCounts[] = {
    {"events", &Info::events}, {"allocs", &Info::allocs}, {"frees", &Info::frees},
    {"null_frees", &Info::null_frees}, {"unmatched_frees", &Info::unmatched_frees},
    {"page_allocs", &Info::page_allocs}, {"page_frees", &Info::page_frees},
    {"never_freed", &Info::never_freed}, {"peak_live_bytes", &Info::peak_live_bytes},
    {"failed_allocs", &Info::failed_allocs}, {"pointer_reuse", &Info::pointer_reuse},
    {"out_of_order", &Info::out_of_order}, {"lost_events", &Info::lost_events}, {"dma_events", &Info::dma_events},
    {"skipped_events", &Info::skipped_events}, {"filtered_events", &Info::filtered_events},
    {"bad_lines", &Info::bad_lines},
};
constexpr std::size_t kOpCounts = 9;

void read_slab_slack(const ops::Trace& t, Info& info) {
  for (int c = 0; c < ops::kPagesClass; ++c) {
    Info::SlackClass k;
    k.name = ops::kSizeClassNames[static_cast<std::size_t>(c)];
    k.max_bytes = ops::size_class_limit(c);
    std::uint64_t* fields[3] = {&k.allocs, &k.bytes_req, &k.bytes_alloc};
    for (std::size_t f = 0; f < 3; ++f) {
      const auto it = t.counters.find(ops::slab_slack_counter(c, ops::kSlackFields[f]));
      if (it == t.counters.end()) continue;
      info.slab_slack_recorded = true;
      *fields[f] = it->second;
    }
    if (k.allocs > 0) info.slab_slack.push_back(k);
  }
}

nlohmann::json slab_slack_json(const Info& i) {
  if (!i.slab_slack_recorded) return nullptr;
  nlohmann::json classes = nlohmann::json::array();
  std::uint64_t allocs = 0, req = 0, alloc = 0;
  for (const Info::SlackClass& k : i.slab_slack) {
    classes.push_back({{"class", k.name}, {"max_bytes", k.max_bytes ? nlohmann::json(k.max_bytes) : nlohmann::json(nullptr)},
                       {"allocs", k.allocs}, {"bytes_req", k.bytes_req}, {"bytes_alloc", k.bytes_alloc}});
    allocs += k.allocs;
    req += k.bytes_req;
    alloc += k.bytes_alloc;
  }
  return {{"classes", classes}, {"total", {{"allocs", allocs}, {"bytes_req", req}, {"bytes_alloc", alloc}}}};
}

/// What a trace's header and counters tell without its ops: the importer's
/// counts (those kOpCounts found again from the ops are left for the caller
/// when the trace has no importer counters), ops, objects, slack, cut.
Info header_counts(const ops::Trace& t, bool counted) {
  Info info;
  for (std::size_t k = counted ? 0 : kOpCounts; k < std::size(kCounts); ++k) {
    info.*kCounts[k].field = counter(t, kCounts[k].name);
  }
  info.ops = t.op_count();
  info.objects = t.object_count;
  read_slab_slack(t, info);
  if (const auto it = t.header.metadata.find("record.cut"); it != t.header.metadata.end()) info.cut = it->second;
  return info;
}

/// summarize()'s figures, gathered a batch of ops at a time, so a trace
/// decoded as it goes (load with an OpVisitor) is never held whole.
class Summary {
 public:
  explicit Summary(const ops::Trace& t) : t_(&t), counted_(t.counters.count("import.events") != 0) {}

  /// The trace is now `t` (the one decoded is returned by a move).
  void rebind(const ops::Trace& t) { t_ = &t; }

  void add(const OpBatch& b) {
    if (by_site_.empty()) start();
    if (b.first) {
      if (!b.ops.empty()) info_.cpus.push_back(b.cpu);
      prev_ = {};
    }
    if (!b.ops.empty()) info_.duration_ns = std::max(info_.duration_ns, b.ops.back().time_ns);
    ops_ += b.ops.size();
    for (const ops::Op& op : b.ops) {
      ++kinds_[static_cast<int>(op.kind) & 7];
      if (op.kind == ops::OpKind::alloc || op.kind == ops::OpKind::page_alloc || op.kind == ops::OpKind::dma_alloc) {
        ++by_site_[op.site];
        ++by_tag_[op.tag];
        ++hist_[op.size <= 1 ? 0 : std::bit_width(op.size - 1)];  // the least b with 2^b >= size
      }
      if (!counted_) count_op(op);
    }
    if (!b.calls.empty()) count_calls(b);
  }

  /// The capture counts found from the ops (a trace without importer counters).
  void op_counts(Info& info) {
    if (by_site_.empty()) start();
    std::uint64_t never = 0;
    for (const std::uint8_t l : live_) never += l;
    counts_.never_freed = never;
    std::stable_sort(changes_.begin(), changes_.end(), [](const Change& a, const Change& b) { return a.time < b.time; });
    std::int64_t cur = 0, peak = 0;
    for (const Change& c : changes_) {
      cur += c.bytes;
      peak = std::max(peak, cur);
    }
    counts_.peak_live_bytes = static_cast<std::uint64_t>(peak);
    for (std::size_t k = 0; k < kOpCounts; ++k) info.*kCounts[k].field = counts_.*kCounts[k].field;
  }

  Info finish(std::size_t top) {
    if (by_site_.empty()) start();
    Info info = header_counts(*t_, counted_);
    if (!counted_) op_counts(info);
    info.ops = ops_;
    info.cpus = std::move(info_.cpus);
    info.duration_ns = info_.duration_ns;
    for (int k = 0; k < ops::kOpKinds; ++k) {
      if (kinds_[k]) info.ops_by_kind[kKindNames[k]] = kinds_[k];
    }
    for (int b = 0; b < 65; ++b) {
      if (hist_[b]) info.size_histogram.emplace_back(b == 64 ? ~std::uint64_t{0} : std::uint64_t{1} << b, hist_[b]);
    }
    info.top_sites = top_of(by_site_, *t_, top);
    info.top_tags = top_of(by_tag_, *t_, top);
    for (int c = 1; c < ops::kCalls; ++c) {
      if (by_call_[c] != 0) info.calls.emplace_back(ops::call_name(static_cast<ops::Call>(c)), by_call_[c]);
    }
    for (auto& [name, f] : by_family_) info.families.push_back(std::move(f));
    info.classes.assign(by_class_.begin(), by_class_.end());
    std::stable_sort(info.classes.begin(), info.classes.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    info.realloc_blocks = realloc_blocks_;
    info.realloc_of_live = realloc_of_live_;
    return info;
  }

 private:
  void start() {
    by_site_.assign(t_->strings.size(), 0);
    by_tag_.assign(t_->strings.size(), 0);
    if (!counted_) live_.assign(t_->object_count, 0);
  }

  /// Capture counts from the ops alone (a trace without importer counters).
  void count_op(const ops::Op& op) {
    if (!is_alloc(op.kind) && !is_free(op.kind)) return;
    ++counts_.events;
    const bool page = op.kind == ops::OpKind::page_alloc || op.kind == ops::OpKind::page_free;
    if (is_alloc(op.kind)) {
      ++counts_.allocs;
      counts_.page_allocs += page;
      live_[op.object] = 1;
      changes_.push_back({op.time_ns, static_cast<std::int64_t>(op.size)});
    } else {
      ++counts_.frees;
      counts_.page_frees += page;
      if (live_[op.object]) {
        live_[op.object] = 0;
        changes_.push_back({op.time_ns, -static_cast<std::int64_t>(op.size)});
      } else {
        ++counts_.unmatched_frees;
      }
    }
  }

  /// Ops per KPI call and per KPI family, when the streams know their calls.
  void count_calls(const OpBatch& b) {
    for (std::size_t i = 0; i < b.calls.size(); ++i) {
      const ops::Call c = b.calls[i];
      const ops::Op& op = b.ops[i];
      const Prev before = prev_;
      prev_ = {c, op.kind, op.time_ns};
      if (c == ops::Call::none) continue;
      ++by_call_[static_cast<int>(c)];
      if (c == ops::Call::os_object_new) ++by_class_[op.tag != 0 ? t_->strings[op.tag] : "(unknown class)"];
      if (c == ops::Call::realloc && op.kind == ops::OpKind::alloc) {
        ++realloc_blocks_;
        // A realloc of a live block: its free, then its allocation at the same time (as the replay joins them).
        realloc_of_live_ += before.call == ops::Call::realloc && before.kind == ops::OpKind::free && before.time == op.time_ns;
      }
      const std::string family(ops::call_family(c, (op.flags & ops::kOpPageable) != 0));
      Info::FamilyOps& f = by_family_[family];
      f.family = family;
      const bool allocates = op.kind == ops::OpKind::alloc || op.kind == ops::OpKind::page_alloc ||
                             op.kind == ops::OpKind::dma_alloc || op.kind == ops::OpKind::dma_map;
      ++(allocates ? f.allocs : f.frees);
    }
  }

  struct Change {
    std::uint64_t time;
    std::int64_t bytes;
  };
  /// The stream's op before the one being counted (realloc pairs span batches);
  /// none at a stream's start.
  struct Prev {
    ops::Call call = ops::Call::none;
    ops::OpKind kind = ops::OpKind::alloc;
    std::uint64_t time = 0;
  };

  const ops::Trace* t_;  // its header, strings and counters
  const bool counted_;  // the importer counted the capture ("import.*")
  Info info_, counts_;
  std::uint64_t ops_ = 0;
  std::vector<std::uint64_t> by_site_, by_tag_;
  std::uint64_t hist_[65] = {};
  std::uint64_t kinds_[ops::kOpKinds] = {};
  std::vector<std::uint8_t> live_;
  std::vector<Change> changes_;
  std::uint64_t by_call_[ops::kCalls] = {};
  std::map<std::string, Info::FamilyOps> by_family_;
  std::map<std::string, std::uint64_t> by_class_;
  std::uint64_t realloc_blocks_ = 0, realloc_of_live_ = 0;
  Prev prev_;
};

}  // namespace

Info summarize_counts(const ops::Trace& t) {
  const bool counted = t.counters.count("import.events") != 0;
  Info info = header_counts(t, counted);
  if (!counted) {
    Summary from_ops(t);
    for (const ops::Stream& s : t.streams) from_ops.add(OpBatch{s.cpu, s.ops, s.calls, true});
    from_ops.op_counts(info);
  }
  return info;
}

Info summarize(const ops::Trace& t, std::size_t top) {
  Summary summary(t);
  for (const ops::Stream& s : t.streams) summary.add(OpBatch{s.cpu, s.ops, s.calls, true});
  return summary.finish(top);
}

Info summarize_file(const std::string& path, ops::Trace& header, std::size_t top) {
  std::unique_ptr<Summary> summary;
  header = load(path, [&](const ops::Trace& t, const OpBatch& b) {
    if (!summary) summary = std::make_unique<Summary>(t);
    summary->add(b);
  });
  if (!summary) summary = std::make_unique<Summary>(header);
  summary->rebind(header);
  return summary->finish(top);
}

Info summarize(const ops::Trace& head, const OpSpill& spill, std::size_t top) {
  Summary summary(head);
  for (const ops::Stream& s : head.streams) {
    spill.visit(*spill.find(s.cpu), head.header.time_base_ns,
                [&](std::span<const ops::Op> ops, std::span<const ops::Call> calls, bool first) {
                  summary.add(OpBatch{s.cpu, ops, calls, first});
                });
  }
  return summary.finish(top);
}

std::string info_json(const ops::Trace& t, const Info& i) {
  nlohmann::json j;
  j["schema"] = "kmbench.trace-info/1";
  j["source"] = t.header.source;
  j["capture_tool"] = t.header.capture_tool;
  for (const Count& c : kCounts) j[c.name] = i.*c.field;
  j["ops"] = i.ops;
  j["objects"] = i.objects;
  j["duration_ns"] = i.duration_ns;
  j["cpus"] = i.cpus;
  j["cpu_count"] = t.header.cpu_count;
  j["page_size"] = t.header.page_size;
  j["ops_by_kind"] = i.ops_by_kind;
  j["size_histogram"] = nlohmann::json::array();
  for (const auto& [ub, n] : i.size_histogram) j["size_histogram"].push_back({ub, n});
  j["top_sites"] = nlohmann::json::array();
  for (const auto& [name, n] : i.top_sites) j["top_sites"].push_back({{"site", name}, {"allocs", n}});
  j["top_tags"] = nlohmann::json::array();
  for (const auto& [name, n] : i.top_tags) j["top_tags"].push_back({{"tag", name}, {"allocs", n}});
  j["slab_slack"] = slab_slack_json(i);
  j["calls"] = nlohmann::json::object();
  for (const auto& [name, n] : i.calls) j["calls"][name] = n;
  if (i.realloc_blocks + i.realloc_of_live > 0) {
    j["reallocs"] = {{"returned_blocks", i.realloc_blocks}, {"of_live_blocks", i.realloc_of_live}};
  }
  j["call_families"] = nlohmann::json::array();
  for (const Info::FamilyOps& f : i.families) {
    j["call_families"].push_back({{"family", f.family}, {"allocs", f.allocs}, {"frees", f.frees}});
  }
  j["classes"] = nlohmann::json::object();
  for (const auto& [name, n] : i.classes) j["classes"][name] = n;
  j["record_cut"] = i.cut.empty() ? nlohmann::json(nullptr) : nlohmann::json(i.cut);
  j["counters"] = t.counters;
  j["metadata"] = t.header.metadata;
  return j.dump(2);
}

void print_info(const ops::Trace& t, const Info& i, std::ostream& out) {
  out << "source        " << t.header.source << " (" << t.header.capture_tool << ")\n";
  out << "cpus          " << i.cpus.size() << " with ops of " << t.header.cpu_count << "; page size "
      << t.header.page_size << "\n";
  out << "duration      " << std::fixed << std::setprecision(6) << static_cast<double>(i.duration_ns) / 1e9 << " s\n";
  out << "events        " << i.events << " (allocs " << i.allocs << ", frees " << i.frees << ", NULL frees "
      << i.null_frees << "; pages: " << i.page_allocs << " allocs, " << i.page_frees << " frees)\n";
  out << "dma events    " << i.dma_events << "\n";
  out << "ops           " << i.ops << " over " << i.objects << " objects:";
  for (const auto& [k, n] : i.ops_by_kind) out << " " << k << "=" << n;
  out << "\npeak live     " << i.peak_live_bytes << " bytes\n";
  out << "imperfections unmatched frees " << i.unmatched_frees << ", never freed " << i.never_freed
      << ", pointer reuse " << i.pointer_reuse << ", failed allocs " << i.failed_allocs << ", out of order "
      << i.out_of_order << ", lost events " << i.lost_events << "\n";
  out << "skipped       " << i.skipped_events << " other events; filtered out " << i.filtered_events << "\n";
  if (i.bad_lines > 0) {
    out << "bad lines     " << i.bad_lines << " skipped (--skip-bad-lines)";
    for (int n = 1; n <= kBadLinesKept; ++n) {
      const auto it = t.header.metadata.find("import.bad_line." + std::to_string(n));
      if (it != t.header.metadata.end()) out << "\n  " << it->second;
    }
    out << "\n";
  }
  if (i.slab_slack_recorded) {
    std::uint64_t req = 0, alloc = 0, n = 0;
    for (const Info::SlackClass& k : i.slab_slack) {
      req += k.bytes_req;
      alloc += k.bytes_alloc;
      n += k.allocs;
    }
    out << "kernel slack  " << alloc - req << " bytes: bytes_alloc " << alloc << " for bytes_req " << req
        << " over " << n << " slab allocations\n";
    for (const Info::SlackClass& k : i.slab_slack) {
      out << "  " << std::setw(8) << k.name << " " << std::setw(9) << k.allocs << " allocs, bytes_req "
          << std::setw(11) << k.bytes_req << ", bytes_alloc " << std::setw(11) << k.bytes_alloc << "\n";
    }
  } else {
    out << "kernel slack  not recorded (no bytes_alloc in the capture, or a .kmt written before it was kept)\n";
  }
  if (!i.cut.empty()) {
    out << "recording     CUT SHORT at " << i.cut << ": the program stopped without ending it; "
        << "everything before its last whole block is here\n";
  }
  if (!i.calls.empty()) {
    out << "calls        ";
    for (const auto& [name, n] : i.calls) out << " " << name << "=" << n;
    out << "\n";
    if (i.realloc_blocks + i.realloc_of_live > 0) {
      out << "reallocs      " << i.realloc_blocks << " returned a block, " << i.realloc_of_live
          << " of them by moving or resizing a live block (the replay runs each as one realloc)\n";
    }
    out << "call families (allocating / freeing ops):\n";
    for (const Info::FamilyOps& f : i.families) {
      out << "  " << std::setw(26) << std::left << f.family << std::right << " " << std::setw(9) << f.allocs
          << " / " << f.frees << "\n";
    }
  }
  if (!i.classes.empty()) {
    out << "OSObject classes (allocations):";
    for (const auto& [name, n] : i.classes) out << " " << name << "=" << n;
    out << "\n";
  }
  out << "sizes (allocations by size, bytes <=):\n";
  std::uint64_t most = 1;
  for (const auto& [ub, n] : i.size_histogram) most = std::max(most, n);
  for (const auto& [ub, n] : i.size_histogram) {
    out << "  " << std::setw(12) << ub << " " << std::setw(9) << n << " "
        << std::string(static_cast<std::size_t>(40 * n / most), '#') << "\n";
  }
  out << "top call sites (allocations):\n";
  for (const auto& [s, n] : i.top_sites) out << "  " << std::setw(9) << n << "  " << s << "\n";
  out << "top tags/caches (allocations):\n";
  for (const auto& [s, n] : i.top_tags) out << "  " << std::setw(9) << n << "  " << s << "\n";
}

}  // namespace kmbench::trace
