// Linux ftrace text: /sys/kernel/tracing/trace, trace_pipe and `trace-cmd report`.
// A hand-written single pass over the text (no regex, no per-line allocation):
// importing must keep up with `wc -l` within a small factor.
#include <cstring>
#include <string_view>

#include "allocators/errors.h"
#include "harness/trace/builder.h"
#include "harness/trace/ftrace_events.h"

namespace kmbench::trace {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// One line being parsed; errors name the file and line.
struct LineCtx {
  const std::string& name;
  std::uint64_t line;
  [[noreturn]] void fail(const std::string& what) const { throw InputError(name, line, what); }
};

std::uint64_t parse_hex(std::string_view v, const LineCtx& c, const char* field) {
  if (v == "(nil)" || v == "(null)") return 0;
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) v.remove_prefix(2);
  if (v.empty() || v.size() > 16) c.fail(std::string("bad ") + field + " '" + std::string(v) + "'");
  std::uint64_t x = 0;
  for (const char ch : v) {
    const int d = hex_value(ch);
    if (d < 0) c.fail(std::string("bad ") + field + " '" + std::string(v) + "'");
    x = (x << 4) | static_cast<std::uint64_t>(d);
  }
  return x;
}

std::uint64_t parse_uint(std::string_view v, const LineCtx& c, const char* field) {
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) return parse_hex(v, c, field);
  if (v.empty() || v.size() > 19) c.fail(std::string("bad ") + field + " '" + std::string(v) + "'");
  std::uint64_t x = 0;
  for (const char ch : v) {
    if (!is_digit(ch)) c.fail(std::string("bad ") + field + " '" + std::string(v) + "'");
    x = x * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  return x;
}

std::int64_t parse_int(std::string_view v, const LineCtx& c, const char* field) {
  if (!v.empty() && v[0] == '-') return -static_cast<std::int64_t>(parse_uint(v.substr(1), c, field));
  return static_cast<std::int64_t>(parse_uint(v, c, field));
}

/// "285.740306" (seconds) → ns; up to 9 fraction digits.
bool parse_timestamp(std::string_view v, std::uint64_t& ns) {
  std::size_t i = 0;
  std::uint64_t sec = 0;
  while (i < v.size() && is_digit(v[i])) sec = sec * 10 + static_cast<std::uint64_t>(v[i++] - '0');
  if (i == 0 || i > 12) return false;
  std::uint64_t frac = 0;
  int digits = 0;
  if (i < v.size() && v[i] == '.') {
    for (++i; i < v.size() && is_digit(v[i]); ++i) {
      if (digits < 9) {
        frac = frac * 10 + static_cast<std::uint64_t>(v[i] - '0');
        ++digits;
      }
    }
  }
  if (i != v.size()) return false;
  for (; digits < 9; ++digits) frac *= 10;
  ns = sec * 1000000000ull + frac;
  return true;
}

/// The key=value fields of an event line, looked up by name.
struct Fields {
  static constexpr int kMax = 24;
  std::string_view key[kMax], value[kMax];
  std::string_view first_bare;  // the first word without '=' (dma: the device)
  int n = 0;

  void parse(const char* p, const char* e) {
    while (p < e) {
      while (p < e && *p == ' ') ++p;
      const char* w = p;
      const char* eq = nullptr;
      while (p < e && *p != ' ') {
        if (*p == '=' && !eq) eq = p;
        ++p;
      }
      if (w == p) break;
      if (!eq) {
        if (first_bare.empty() && *w != '(') first_bare = std::string_view(w, static_cast<std::size_t>(p - w));
        continue;
      }
      if (n < kMax) {
        key[n] = std::string_view(w, static_cast<std::size_t>(eq - w));
        value[n] = std::string_view(eq + 1, static_cast<std::size_t>(p - eq - 1));
        ++n;
      }
    }
  }
  const std::string_view* find(std::string_view k) const {
    for (int i = 0; i < n; ++i) {
      if (key[i] == k) return &value[i];
    }
    return nullptr;
  }
  std::string_view need(std::string_view k, const LineCtx& c) const {
    const std::string_view* v = find(k);
    if (!v) c.fail("event lacks the field '" + std::string(k) + "'");
    return *v;
  }
};

constexpr std::uint64_t kAbsurdSize = std::uint64_t{1} << 44;  // 16 TiB

class FtraceParser {
 public:
  FtraceParser(std::string_view text, const std::string& name, const ImportOptions& options)
      : text_(text), name_(name), options_(options), b_("ftrace", "tracefs", options) {}

  ops::Trace run() {
    const char* p = text_.data();
    const char* end = p + text_.size();
    std::uint64_t line = 0;
    bool any_event_line = false;
    std::string error;
    try {
      while (p < end) {
        const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
        ++line;
        if (!nl) {
          throw InputError(name_, line, "truncated: the last line has no newline");
        }
        const char* e = nl;
        if (e > p && e[-1] == '\r') --e;
        if (line_(p, e, line)) any_event_line = true;
        p = nl + 1;
      }
      if (!any_event_line && line == 0) throw InputError(name_, "empty input");
    } catch (const InputError& e) {
      if (!options_.keep_partial) throw;
      error = e.what();
    }
    b_.set_metadata("input", name_);
    if (!error.empty()) b_.set_metadata("import.error", error);
    ops::Trace t = b_.finish();
    if (trace_cmd_) t.header.capture_tool = "trace-cmd report";
    return t;
  }

 private:
  // Returns true for an event line.
  bool line_(const char* p, const char* e, std::uint64_t line) {
    const LineCtx c{name_, line};
    while (p < e && (*p == ' ' || *p == '\t')) ++p;
    if (p == e) return false;
    const std::string_view whole(p, static_cast<std::size_t>(e - p));
    if (*p == '#') {
      const std::size_t at = whole.find("#P:");
      if (at != std::string_view::npos) b_.set_cpu_count(static_cast<std::uint32_t>(parse_uint(whole.substr(at + 3), c, "#P")));
      return false;
    }
    if (whole.starts_with("CPU:")) {  // "CPU:1 [LOST 12 EVENTS]" or "CPU:0 [232250 EVENTS DROPPED]"
      std::size_t i = whole.find('[');
      if (i == std::string_view::npos) c.fail("unrecognised line '" + std::string(whole.substr(0, 80)) + "'");
      ++i;
      if (whole.substr(i).starts_with("LOST ")) i += 5;
      std::size_t j = i;
      while (j < whole.size() && is_digit(whole[j])) ++j;
      if (j == i) c.fail("unrecognised lost-events line '" + std::string(whole.substr(0, 80)) + "'");
      b_.lost(parse_uint(whole.substr(i, j - i), c, "lost count"));
      return false;
    }
    if (whole.starts_with("cpus=")) {
      trace_cmd_ = true;
      b_.set_cpu_count(static_cast<std::uint32_t>(parse_uint(whole.substr(5), c, "cpus")));
      return false;
    }
    if (whole.starts_with("version = ") || (whole.starts_with("CPU ") && whole.ends_with(" is empty"))) return false;

    // TASK-PID [CPU] [FLAGS] TIMESTAMP: EVENT: FIELDS
    const char* br = p;
    const char* cpu_end = nullptr;
    while (true) {
      br = static_cast<const char*>(std::memchr(br, '[', static_cast<std::size_t>(e - br)));
      if (!br) c.fail("not an ftrace event line: '" + std::string(whole.substr(0, 80)) + "'");
      const char* q = br + 1;
      while (q < e && is_digit(*q)) ++q;
      if (q > br + 1 && q < e && *q == ']' && br > p && br[-1] == ' ') {
        cpu_end = q;
        break;
      }
      ++br;
    }
    std::uint32_t cpu = 0;
    for (const char* q = br + 1; q < cpu_end; ++q) cpu = cpu * 10 + static_cast<std::uint32_t>(*q - '0');
    if (cpu_end - br > 6) c.fail("absurd cpu number");
    const char* q = cpu_end + 1;
    std::uint64_t ts = 0;
    for (int token = 0;; ++token) {
      while (q < e && *q == ' ') ++q;
      const char* w = q;
      while (q < e && *q != ' ') ++q;
      if (w == q || token > 1) c.fail("no timestamp in event line '" + std::string(whole.substr(0, 80)) + "'");
      if (q[-1] == ':' && parse_timestamp(std::string_view(w, static_cast<std::size_t>(q - 1 - w)), ts)) break;
    }
    while (q < e && *q == ' ') ++q;
    const char* ev = q;
    while (q < e && *q != ':' && *q != ' ') ++q;
    if (q == e || *q != ':' || q == ev) c.fail("no event name in line '" + std::string(whole.substr(0, 80)) + "'");
    const std::string_view event(ev, static_cast<std::size_t>(q - ev));
    ++q;

    const FtraceEvent* known = find_ftrace_event(event);
    if (!known) {
      if (options_.strict) c.fail("unknown event '" + std::string(event) + "' (--strict)");
      b_.skipped(event);
      return true;
    }
    if (!b_.in_window(ts) || !b_.kind_selected(known->kind_bit)) {
      b_.filtered();
      return true;
    }
    Fields f;
    f.parse(q, e);
    Event x;
    x.ev = known->ev;
    x.cpu = cpu;
    x.time_ns = ts;
    bool selected = true;
    if (b_.has_task_filter()) {
      const char* t0 = p;
      const char* t1 = br - 1;
      while (t1 > t0 && t1[-1] == ' ') --t1;
      const char* dash = t1;
      while (dash > t0 && dash[-1] != '-') --dash;
      const std::string_view comm(t0, dash > t0 ? static_cast<std::size_t>(dash - 1 - t0) : 0);
      const std::string_view pid(dash, static_cast<std::size_t>(t1 - dash));
      selected = b_.task_selected(comm, pid);
    }
    fill(known->shape, f, x, c);
    if (selected && x.site) selected = b_.site_selected(x.site);
    b_.add(x, selected);
    return true;
  }

  std::uint8_t gfp_flags(std::string_view v, const LineCtx& c) {
    for (const auto& [k, flags] : gfp_cache_) {
      if (k == v) return flags;
    }
    std::uint8_t f = gfp_to_flags(v);
    if (v.size() > 2 && v[0] == '0' && v[1] == 'x') f = gfp_bits_to_flags(parse_hex(v, c, "gfp_flags"));
    if (gfp_cache_.size() < 64) gfp_cache_.emplace_back(std::string(v), f);
    return f;
  }

  void fill(Shape shape, const Fields& f, Event& x, const LineCtx& c) {
    switch (shape) {
      case Shape::slab_alloc: {
        const std::string_view ptr = f.need("ptr", c);
        x.key = parse_hex(ptr, c, "ptr");
        x.null = x.key == 0;
        x.size = parse_uint(f.need("bytes_req", c), c, "bytes_req");
        const std::string_view* ba = f.find("bytes_alloc");
        x.charged = ba ? parse_uint(*ba, c, "bytes_alloc") : x.size;
        if (x.size > kAbsurdSize || x.charged > kAbsurdSize) c.fail("absurd allocation size " + std::to_string(std::max(x.size, x.charged)));
        if (const std::string_view* g = f.find("gfp_flags")) x.flags = gfp_flags(*g, c);
        if (const std::string_view* n = f.find("node")) x.node = node(*n, c);
        x.site = b_.intern(f.need("call_site", c));
        if (x.ev == Ev::cache_alloc) {
          x.flags |= ops::kOpCache;
          if (const std::string_view* n = f.find("name")) x.tag = b_.intern(*n);
        }
        break;
      }
      case Shape::slab_free: {
        x.key = parse_hex(f.need("ptr", c), c, "ptr");
        x.null = x.key == 0;
        x.site = b_.intern(f.need("call_site", c));
        if (x.ev == Ev::cache_free) {
          x.flags |= ops::kOpCache;
          if (const std::string_view* n = f.find("name")) x.tag = b_.intern(*n);
        }
        break;
      }
      case Shape::page_alloc:
      case Shape::page_free: {
        const std::string_view* pfn = f.find("pfn");
        const std::string_view* page = f.find("page");
        if (!pfn && !page) c.fail("page event lacks pfn= and page=");
        const std::uint64_t page_v = page ? parse_hex(*page, c, "page") : 1;
        x.key = pfn ? parse_uint(*pfn, c, "pfn") : page_v;
        x.null = page_v == 0;
        std::uint64_t order = 0;
        if (const std::string_view* o = f.find("order")) order = parse_uint(*o, c, "order");
        if (order > 20) c.fail("absurd page order " + std::to_string(order));
        x.size = x.charged = std::uint64_t{4096} << order;
        x.flags = ops::kOpContiguous;
        if (shape == Shape::page_alloc) {
          if (const std::string_view* g = f.find("gfp_flags")) x.flags |= gfp_flags(*g, c);
        }
        break;
      }
      case Shape::dma_alloc:
      case Shape::dma_free:
      case Shape::dma_map:
      case Shape::dma_unmap: {
        if (!f.first_bare.empty()) x.tag = b_.intern(f.first_bare);
        if (const std::string_view* d = f.find("dir")) x.flags = dir_flags(*d);
        if (known_sg(x, f, c)) break;
        x.key = parse_hex(f.need("dma_addr", c), c, "dma_addr");
        if (const std::string_view* s = f.find("size")) x.size = parse_uint(*s, c, "size");
        if (x.size > kAbsurdSize) c.fail("absurd DMA size " + std::to_string(x.size));
        x.charged = x.size;
        if (shape == Shape::dma_alloc) {
          x.flags |= ops::kOpContiguous;
          if (const std::string_view* g = f.find("flags")) x.flags |= gfp_flags(*g, c);
        }
        break;
      }
    }
  }

  // dma_map_sg / dma_unmap_sg: keyed by the first physical address; size is the sum of lengths.
  bool known_sg(Event& x, const Fields& f, const LineCtx& c) {
    if (f.find("dma_addr")) return false;
    const std::string_view* phys = f.find("phys_addrs");
    if (!phys) c.fail("DMA event lacks dma_addr= and phys_addrs=");
    std::string_view v = *phys;
    while (!v.empty() && (v[0] == '{' || v[0] == '[')) v.remove_prefix(1);
    std::size_t cut = v.find_first_of(",}]");
    if (cut == std::string_view::npos) cut = v.size();
    x.key = cut ? parse_hex(v.substr(0, cut), c, "phys_addrs") : 0;
    const std::string_view* lens = f.find("sizes");
    if (!lens) lens = f.find("lengths");
    if (lens) {
      std::string_view l = *lens;
      std::uint64_t total = 0;
      while (!l.empty()) {
        while (!l.empty() && (l[0] == '{' || l[0] == '[' || l[0] == ',' || l[0] == '}' || l[0] == ']')) l.remove_prefix(1);
        std::size_t n = l.find_first_of(",}]");
        if (n == std::string_view::npos) n = l.size();
        if (n) total += parse_uint(l.substr(0, n), c, "sizes");
        if (total > kAbsurdSize) c.fail("absurd DMA size");
        l.remove_prefix(n);
      }
      x.size = x.charged = total;
    }
    return true;
  }

  static std::uint8_t dir_flags(std::string_view d) {
    if (d == "TO_DEVICE") return ops::kOpDirOut;
    if (d == "FROM_DEVICE") return ops::kOpDirIn;
    if (d == "BIDIRECTIONAL") return ops::kOpDirIn | ops::kOpDirOut;
    return 0;
  }

  static std::int8_t node(std::string_view v, const LineCtx& c) {
    const std::int64_t n = parse_int(v, c, "node");
    if (n < -1 || n > 127) c.fail("absurd node " + std::to_string(n));
    return static_cast<std::int8_t>(n);
  }

  std::string_view text_;
  const std::string& name_;
  const ImportOptions& options_;
  Builder b_;
  bool trace_cmd_ = false;
  std::vector<std::pair<std::string, std::uint8_t>> gfp_cache_;
};

}  // namespace

ops::Trace import_ftrace(std::string_view text, const std::string& name, const ImportOptions& options) {
  return FtraceParser(text, name, options).run();
}

}  // namespace kmbench::trace
