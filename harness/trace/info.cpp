// `kmbench trace info`: what a user asks first about a trace.
#include <algorithm>
#include <bit>
#include <iomanip>
#include <iterator>
#include <nlohmann/json.hpp>
#include <ostream>
#include <unordered_map>

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

/// Capture counts from the ops alone (a trace without importer counters).
void count_from_ops(const ops::Trace& t, Info& info) {
  struct Change {
    std::uint64_t time;
    std::int64_t bytes;
  };
  std::vector<Change> changes;
  std::vector<std::uint8_t> live(t.object_count);
  std::uint64_t never = 0;
  for (const ops::Stream& s : t.streams) {
    for (const ops::Op& op : s.ops) {
      if (!is_alloc(op.kind) && !is_free(op.kind)) continue;
      ++info.events;
      const bool page = op.kind == ops::OpKind::page_alloc || op.kind == ops::OpKind::page_free;
      if (is_alloc(op.kind)) {
        ++info.allocs;
        info.page_allocs += page;
        live[op.object] = 1;
        changes.push_back({op.time_ns, static_cast<std::int64_t>(op.size)});
      } else {
        ++info.frees;
        info.page_frees += page;
        if (live[op.object]) {
          live[op.object] = 0;
          changes.push_back({op.time_ns, -static_cast<std::int64_t>(op.size)});
        } else {
          ++info.unmatched_frees;
        }
      }
    }
  }
  for (const std::uint8_t l : live) never += l;
  info.never_freed = never;
  std::stable_sort(changes.begin(), changes.end(), [](const Change& a, const Change& b) { return a.time < b.time; });
  std::int64_t cur = 0, peak = 0;
  for (const Change& c : changes) {
    cur += c.bytes;
    peak = std::max(peak, cur);
  }
  info.peak_live_bytes = static_cast<std::uint64_t>(peak);
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

}  // namespace

/// Ops per KPI call and per KPI family, when the streams know their calls.
void count_calls(const ops::Trace& t, Info& info) {
  std::uint64_t by_call[ops::kCalls] = {};
  std::map<std::string, Info::FamilyOps> by_family;
  std::map<std::string, std::uint64_t> by_class;
  for (const ops::Stream& s : t.streams) {
    for (std::size_t i = 0; i < s.calls.size(); ++i) {
      const ops::Call c = s.calls[i];
      if (c == ops::Call::none) continue;
      ++by_call[static_cast<int>(c)];
      const ops::Op& op = s.ops[i];
      if (c == ops::Call::os_object_new) ++by_class[op.tag != 0 ? t.strings[op.tag] : "(unknown class)"];
      if (c == ops::Call::realloc && op.kind == ops::OpKind::alloc) {
        ++info.realloc_blocks;
        // A realloc of a live block: its free, then its allocation at the same time (as the replay joins them).
        const bool joined = i > 0 && s.calls[i - 1] == ops::Call::realloc && s.ops[i - 1].kind == ops::OpKind::free &&
                            s.ops[i - 1].time_ns == op.time_ns;
        info.realloc_of_live += joined ? 1 : 0;
      }
      const std::string family(ops::call_family(c, (op.flags & ops::kOpPageable) != 0));
      Info::FamilyOps& f = by_family[family];
      f.family = family;
      const bool allocates = op.kind == ops::OpKind::alloc || op.kind == ops::OpKind::page_alloc ||
                             op.kind == ops::OpKind::dma_alloc || op.kind == ops::OpKind::dma_map;
      ++(allocates ? f.allocs : f.frees);
    }
  }
  for (int c = 1; c < ops::kCalls; ++c) {
    if (by_call[c] != 0) info.calls.emplace_back(ops::call_name(static_cast<ops::Call>(c)), by_call[c]);
  }
  for (auto& [name, f] : by_family) info.families.push_back(std::move(f));
  info.classes.assign(by_class.begin(), by_class.end());
  std::stable_sort(info.classes.begin(), info.classes.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
}

Info summarize_counts(const ops::Trace& t) {
  Info info;
  const bool counted = t.counters.count("import.events") != 0;
  if (!counted) count_from_ops(t, info);
  for (std::size_t k = counted ? 0 : kOpCounts; k < std::size(kCounts); ++k) {
    info.*kCounts[k].field = counter(t, kCounts[k].name);
  }
  info.ops = t.op_count();
  info.objects = t.object_count;
  read_slab_slack(t, info);
  if (const auto it = t.header.metadata.find("record.cut"); it != t.header.metadata.end()) info.cut = it->second;
  return info;
}

Info summarize(const ops::Trace& t, std::size_t top) {
  Info info = summarize_counts(t);

  std::vector<std::uint64_t> by_site(t.strings.size()), by_tag(t.strings.size());
  std::vector<std::uint64_t> hist(65);
  std::uint64_t kinds[ops::kOpKinds] = {};
  for (const ops::Stream& s : t.streams) {
    if (!s.ops.empty()) {
      info.cpus.push_back(s.cpu);
      info.duration_ns = std::max(info.duration_ns, s.ops.back().time_ns);
    }
    for (const ops::Op& op : s.ops) {
      ++kinds[static_cast<int>(op.kind) & 7];
      if (op.kind == ops::OpKind::alloc || op.kind == ops::OpKind::page_alloc || op.kind == ops::OpKind::dma_alloc) {
        ++by_site[op.site];
        ++by_tag[op.tag];
        ++hist[op.size <= 1 ? 0 : std::bit_width(op.size - 1)];  // the least b with 2^b >= size
      }
    }
  }
  for (int k = 0; k < ops::kOpKinds; ++k) {
    if (kinds[k]) info.ops_by_kind[kKindNames[k]] = kinds[k];
  }
  for (int b = 0; b < 65; ++b) {
    if (hist[b]) info.size_histogram.emplace_back(b == 64 ? ~std::uint64_t{0} : std::uint64_t{1} << b, hist[b]);
  }
  info.top_sites = top_of(by_site, t, top);
  info.top_tags = top_of(by_tag, t, top);
  count_calls(t, info);
  return info;
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
