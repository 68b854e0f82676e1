// The text tools/capture/kmbench.d writes (format in docs/kmt-format.md,
// "DTrace capture format"): one record a line,
//   TIMESTAMP_NS CPU TID PROBE key=value ... exec=EXECNAME
#include <charconv>
#include <cstring>
#include <unordered_map>

#include "base/errors.h"
#include "harness/trace/builder.h"

namespace kmbench::trace {
namespace {

enum class Probe : std::uint8_t { malloc, free, tagalloc, bmd_alloc, bmd_free, dma_prepare, dma_complete };

/// A probe name of kmbench.d and what it records.
struct ProbeInfo {
  std::string_view name;
  Probe probe;
  std::uint8_t flags;
  ops::Call call;  // the KPI call the probe fires on (the *Data variants count as their plain call)
};

constexpr ProbeInfo kProbes[] = {
    {"IOMalloc", Probe::malloc, 0, ops::Call::io_malloc},
    {"IOMallocData", Probe::malloc, 0, ops::Call::io_malloc},
    {"IOMallocZero", Probe::malloc, ops::kOpZero, ops::Call::io_malloc_zero},
    {"IOMallocZeroData", Probe::malloc, ops::kOpZero, ops::Call::io_malloc_zero},
    {"IOMallocAligned", Probe::malloc, 0, ops::Call::io_malloc_aligned},
    {"IOMallocPageable", Probe::malloc, ops::kOpPageable, ops::Call::io_malloc_pageable},
    {"IOMallocContiguous", Probe::malloc, ops::kOpContiguous, ops::Call::io_malloc_contiguous},
    {"OSMalloc", Probe::malloc, 0, ops::Call::os_malloc},
    {"OSMalloc_noblock", Probe::malloc, ops::kOpNoblock, ops::Call::os_malloc_noblock},
    {"OSMalloc_nowait", Probe::malloc, ops::kOpNoblock, ops::Call::os_malloc_nowait},
    {"IOFree", Probe::free, 0, ops::Call::io_free},
    {"IOFreeData", Probe::free, 0, ops::Call::io_free},
    {"IOFreeAligned", Probe::free, 0, ops::Call::io_free_aligned},
    {"IOFreePageable", Probe::free, 0, ops::Call::io_free_pageable},
    {"IOFreeContiguous", Probe::free, 0, ops::Call::io_free_contiguous},
    {"OSFree", Probe::free, 0, ops::Call::os_free},
    {"OSMalloc_Tagalloc", Probe::tagalloc, 0, ops::Call::none},
    {"IOBufferMemoryDescriptor_alloc", Probe::bmd_alloc, 0, ops::Call::io_buffer_alloc},
    {"IOBufferMemoryDescriptor_free", Probe::bmd_free, 0, ops::Call::io_buffer_free},
    {"IODMACommand_prepare", Probe::dma_prepare, 0, ops::Call::dma_prepare},
    {"IODMACommand_complete", Probe::dma_complete, 0, ops::Call::dma_complete},
};

const ProbeInfo* probe_of(std::string_view name) {
  for (const ProbeInfo& q : kProbes) {
    if (q.name == name) return &q;
  }
  return nullptr;
}

constexpr std::uint64_t kAbsurdSize = std::uint64_t{1} << 44;
constexpr std::uint32_t kIOMemoryPhysicallyContiguous = 0x10;
constexpr std::uint32_t kIOMemoryPageable = 0x400;
constexpr std::uint32_t kIODirectionIn = 0x1, kIODirectionOut = 0x2;

/// One pass over a kmbench.d capture, feeding the Builder.
class DtraceParser {
 public:
  DtraceParser(std::string_view text, const std::string& name, const ImportOptions& options)
      : text_(text), name_(name), options_(options), b_("dtrace", "kmbench.d", options) {}

  ops::Trace run() {
    std::size_t pos = 0;
    bool header = false;
    std::string error;
    try {
    while (pos < text_.size()) {
      std::size_t nl = text_.find('\n', pos);
      ++line_;
      if (nl == std::string_view::npos) {
        if (!options_.skip_bad_lines) fail("truncated: the last line has no newline");
        b_.bad_line(InputError(name_, line_, "truncated: the last line has no newline").what());
        break;
      }
      std::string_view l = text_.substr(pos, nl - pos);
      pos = nl + 1;
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      while (!l.empty() && (l[0] == ' ' || l[0] == '\t')) l.remove_prefix(1);
      if (l.empty()) continue;
      if (l[0] == '#') {
        if (l.starts_with("#kmbench-dtrace") || l.starts_with("# kmbench-dtrace")) {
          header = true;
          read_header(l);
        }
        continue;
      }
      if (!header) fail("no '#kmbench-dtrace 1' header before the first record");
      if (!options_.skip_bad_lines) {
        record(l);
        continue;
      }
      try {
        record(l);
      } catch (const InputError& bad) {
        b_.bad_line(bad.what());
      }
    }
    if (!header) throw InputError(name_, line_, "no '#kmbench-dtrace 1' header: not a kmbench.d capture");
    } catch (const InputError& e) {
      if (!options_.keep_partial) throw;
      error = e.what();
    }
    ops::Trace t = b_.finish(name_, error);
    t.counters["import.size_mismatches"] = size_mismatch_;
    return t;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw InputError(name_, line_, what); }

  static std::string_view next_word(std::string_view& l) {
    while (!l.empty() && l[0] == ' ') l.remove_prefix(1);
    std::size_t n = l.find(' ');
    if (n == std::string_view::npos) n = l.size();
    const std::string_view w = l.substr(0, n);
    l.remove_prefix(n);
    return w;
  }

  std::uint64_t number(std::string_view v, const char* what) const {
    std::uint64_t x = 0;
    int base = 10;
    if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
      v.remove_prefix(2);
      base = 16;
    }
    const auto r = std::from_chars(v.data(), v.data() + v.size(), x, base);
    if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size()) {
      fail(std::string("bad ") + what + " '" + std::string(v) + "'");
    }
    return x;
  }

  void read_header(std::string_view l) {
    next_word(l);
    const std::string_view version = next_word(l);
    if (number(version, "format version") != 1) fail("kmbench-dtrace format version " + std::string(version) + " is not 1");
    while (!l.empty()) {
      const std::string_view w = next_word(l);
      const std::size_t eq = w.find('=');
      if (eq != std::string_view::npos) b_.set_metadata(std::string(w.substr(0, eq)), std::string(w.substr(eq + 1)));
    }
  }

  void record(std::string_view l) {
    Event x;
    x.time_ns = number(next_word(l), "timestamp");
    const std::uint64_t cpu = number(next_word(l), "cpu");
    if (cpu >= 65536) fail("absurd cpu " + std::to_string(cpu));
    x.cpu = static_cast<std::uint32_t>(cpu);
    const std::string_view tid = next_word(l);
    number(tid, "tid");
    const std::string_view probe_name = next_word(l);
    const ProbeInfo* p = probe_of(probe_name);
    if (!p) {
      if (options_.strict || probe_name.empty()) fail("unknown probe '" + std::string(probe_name) + "'");
      b_.skipped(probe_name);
      return;
    }
    std::string_view exec;
    std::unordered_map<std::string_view, std::string_view> f;
    while (!l.empty()) {
      while (!l.empty() && l[0] == ' ') l.remove_prefix(1);
      if (l.starts_with("exec=")) {
        exec = l.substr(5);
        break;
      }
      const std::string_view w = next_word(l);
      const std::size_t eq = w.find('=');
      if (eq == std::string_view::npos) fail("expected key=value, got '" + std::string(w) + "'");
      f[w.substr(0, eq)] = w.substr(eq + 1);
    }
    const auto need = [&](std::string_view k) {
      const auto it = f.find(k);
      if (it == f.end()) fail(std::string(probe_name) + " lacks the field '" + std::string(k) + "'");
      return number(it->second, std::string(k).c_str());
    };
    const auto site = [&]() -> std::uint32_t {
      const auto it = f.find("site");
      return it == f.end() ? 0 : b_.intern(it->second);
    };

    if (p->probe == Probe::tagalloc) {
      const auto it = f.find("name");
      if (it != f.end()) tag_names_[need("tag")] = b_.intern(it->second);
      return;
    }
    const bool dma = p->probe >= Probe::bmd_alloc;
    if (!b_.kind_selected(dma ? kKindDma : kKindKmalloc) || !b_.in_window(x.time_ns)) {
      b_.filtered();
      return;
    }
    x.flags = p->flags;
    x.call = p->call;
    x.site = site();
    switch (p->probe) {
      case Probe::malloc: {
        x.ev = Ev::kmalloc;
        x.size = x.charged = need("size");
        x.key = need("ptr");
        x.null = x.key == 0;
        if (f.count("align")) {
          const std::uint64_t a = need("align");
          if (a & (a - 1)) fail("alignment " + std::to_string(a) + " is not a power of two");
          while (a > 1 && (std::uint64_t{1} << x.align_log2) < a) ++x.align_log2;
        }
        if (f.count("tag")) x.tag = tag_id(need("tag"));
        break;
      }
      case Probe::free: {
        x.ev = Ev::kfree;
        x.key = need("ptr");
        x.null = x.key == 0;
        if (f.count("size")) x.size = need("size");
        if (f.count("tag")) x.tag = tag_id(need("tag"));
        if (!x.null && f.count("size")) {
          const auto it = sizes_.find(x.key);
          if (it != sizes_.end() && it->second != x.size) ++size_mismatch_;
          if (it != sizes_.end()) sizes_.erase(it);
        }
        break;
      }
      case Probe::bmd_alloc: {
        x.ev = Ev::dma_alloc;
        x.key = need("obj");
        x.null = x.key == 0;
        x.size = x.charged = need("capacity");
        const std::uint64_t options = f.count("options") ? need("options") : 0;
        if (options & kIOMemoryPhysicallyContiguous) x.flags |= ops::kOpContiguous;
        if (options & kIOMemoryPageable) x.flags |= ops::kOpPageable;
        if (options & kIODirectionIn) x.flags |= ops::kOpDirIn;
        if (options & kIODirectionOut) x.flags |= ops::kOpDirOut;
        if (f.count("mask") && need("mask") != 0 && need("mask") <= 0xffffffffull) x.flags |= ops::kOpDma32;
        if (f.count("align")) {
          const std::uint64_t a = need("align");
          while (a > 1 && x.align_log2 < 63 && (std::uint64_t{1} << x.align_log2) < a) ++x.align_log2;
        }
        break;
      }
      case Probe::bmd_free:
        x.ev = Ev::dma_free;
        x.key = need("obj");
        x.null = x.key == 0;
        break;
      case Probe::dma_prepare:
        x.ev = Ev::dma_map;
        x.key = need("obj");
        x.size = x.charged = f.count("length") ? need("length") : 0;
        break;
      case Probe::dma_complete:
        x.ev = Ev::dma_unmap;
        x.key = need("obj");
        break;
      case Probe::tagalloc: break;
    }
    if (x.size > kAbsurdSize) fail("absurd size " + std::to_string(x.size));
    if (x.ev == Ev::kmalloc && !x.null) sizes_[x.key] = x.size;
    bool selected = true;
    if (b_.has_task_filter()) selected = b_.task_selected(exec, tid);
    if (selected) selected = b_.site_selected(x.site);
    b_.add(x, selected);
  }

  std::uint32_t tag_id(std::uint64_t tag) {
    const auto it = tag_names_.find(tag);
    if (it != tag_names_.end()) return it->second;
    char buf[32];
    const int n = std::snprintf(buf, sizeof buf, "tag@0x%llx", static_cast<unsigned long long>(tag));
    return tag_names_[tag] = b_.intern(std::string_view(buf, static_cast<std::size_t>(n)));
  }

  std::string_view text_;
  const std::string& name_;
  const ImportOptions& options_;
  Builder b_;
  std::uint64_t line_ = 0;
  std::uint64_t size_mismatch_ = 0;
  std::unordered_map<std::uint64_t, std::uint32_t> tag_names_;
  std::unordered_map<std::uint64_t, std::uint64_t> sizes_;
};

}  // namespace

ops::Trace import_dtrace(std::string_view text, const std::string& name, const ImportOptions& options) {
  return DtraceParser(text, name, options).run();
}

}  // namespace kmbench::trace
