// Linux ftrace text: /sys/kernel/tracing/trace, trace_pipe and `trace-cmd report`.
// A hand-written single pass over the text (no regex, no per-line allocation):
// importing must keep up with `wc -l` within a small factor. This file reads
// the text line by line; ftrace_scan.h tokenises a line, and ftrace_fill.h
// makes an event of its fields.
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "base/errors.h"
#include "harness/trace/builder.h"
#include "harness/trace/ftrace_events.h"
#include "harness/trace/ftrace_fill.h"
#include "harness/trace/ftrace_scan.h"

namespace kmbench::trace {
namespace ftrace {
namespace {

/// Copies the next bytes of the text into dst: up to n, 0 at the end.
using TextSource = std::function<std::size_t(char* dst, std::size_t n)>;

/// One pass over ftrace text, feeding the Builder a few events behind the parse.
/// The text is read a window at a time into a buffer that stays in cache:
/// parsing straight from a mapping of a large file stalled on its page walks.
class FtraceParser {
 public:
  FtraceParser(TextSource source, std::uint64_t text_size, const std::string& name, const ImportOptions& options)
      : source_(std::move(source)),
        text_size_(text_size),
        name_(name),
        options_(options),
        scan_(nullptr),
        b_("ftrace", "tracefs", options),
        filler_(b_) {
    b_.set_stream_reserve(std::min<std::uint64_t>(text_size / 64, std::uint64_t{1} << 24));
    b_.count_slab_slack();
  }

  ops::Trace run() {
    std::uint64_t line = 0;
    bool any_event_line = false;
    std::string error;
    try {
      std::size_t capacity = static_cast<std::size_t>(std::clamp<std::uint64_t>(text_size_ + 1, 4096, kWindow));
      std::unique_ptr<char[]> window(new char[capacity]);
      std::size_t held = 0;  // an unfinished line, moved to the window's front
      for (;;) {
        if (held == capacity) {  // a line longer than the window
          std::unique_ptr<char[]> wider(new char[capacity * 2]);
          std::memcpy(wider.get(), window.get(), held);
          window = std::move(wider);
          capacity *= 2;
        }
        const std::size_t got = source_(window.get() + held, capacity - held);
        if (got == 0) {
          if (held > 0) {
            const InputError cut(name_, line + 1, "truncated: the last line has no newline");
            if (!options_.skip_bad_lines) throw cut;
            b_.bad_line(cut.what());
          }
          break;
        }
        const char* p = window.get();
        const char* end = p + held + got;
        scan_ = Scan(end);
        for (const char* nl; (nl = scan_.line_end(p)); p = nl + 1) {
          ++line;
          const char* e = nl;
          if (e > p && e[-1] == '\r') --e;
          if (read_line(p, e, line)) any_event_line = true;
        }
        held = static_cast<std::size_t>(end - p);
        std::memmove(window.get(), p, held);
      }
      if (!any_event_line && line == 0) throw InputError(name_, "empty input");
    } catch (const InputError& e) {
      if (!options_.keep_partial) throw;
      error = e.what();
    }
    drain();
    b_.set_metadata("input", name_);
    if (!error.empty()) b_.set_metadata("import.error", error);
    ops::Trace t = b_.finish();
    if (trace_cmd_) t.header.capture_tool = "trace-cmd report";
    return t;
  }

 private:
  /// line_, or with skip_bad_lines, line_ with an unreadable line counted and skipped.
  bool read_line(const char* p, const char* e, std::uint64_t line) {
    if (!options_.skip_bad_lines) return line_(p, e, line);
    try {
      return line_(p, e, line);
    } catch (const InputError& bad) {
      b_.bad_line(bad.what());  // no event was committed: the line's slot is taken again by the next
      return false;
    }
  }

  // Returns true for an event line.
  bool line_(const char* const line_start, const char* e, std::uint64_t line) {
    const LineCtx c{name_, line};
    const char* p;   // the line's first non-blank byte
    const char* br;  // its '[' before the CPU number
    const char* q;   // past the timestamp's ':'
    std::uint32_t cpu;
    std::uint64_t ts = 0;
    if (const Head* h = known_head(line_start); h && (q = line_start + h->length, quick_timestamp(q, e, ts))) {
      p = line_start + h->blank;
      br = line_start + h->bracket;
      cpu = h->cpu;
    } else {
      p = scan_.skip(line_start, e, ' ');
      while (p < e && (*p == ' ' || *p == '\t')) ++p;
      if (p == e) return false;
      const std::string_view whole(p, static_cast<std::size_t>(e - p));
      if (other_line(whole, c)) return false;
      event_head(line_start, p, e, c, br, cpu, q, ts);
    }
    q = scan_.skip(q, e, ' ');
    const char* ev = q;
    q = scan_.find2(q, e, ':', ' ');
    if (q == e || *q != ':' || q == ev) c.fail("no event name in line '" + excerpt(p, e) + "'");
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
    Event& x = free_slot();  // filled in place: copying it stalled on store forwarding
    EventFiller::start(x, known->ev, cpu, ts);
    std::string_view site, tag;  // interned once the line is read, site first
    if (filler_.quick(scan_, q, e, x, site, tag)) {
      if (!site.empty()) x.site = b_.intern(site);  // page events name no call site: 0, the empty string
      if (!tag.empty()) x.tag = b_.intern(tag);
    } else {
      EventFiller::start(x, known->ev, cpu, ts);
      Fields f;
      f.parse(scan_, q, e);
      filler_.fill(known->shape, f, x, c);
    }
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
    if (selected) selected = b_.site_selected(x.site);
    commit(selected);
    return true;
  }

  static std::string excerpt(const char* p, const char* e) {
    return std::string(p, static_cast<std::size_t>(std::min<std::ptrdiff_t>(e - p, 80)));
  }

  /// Reads the lines that are not events (comments, lost-event markers,
  /// trace-cmd's headings); false for any other line.
  bool other_line(std::string_view whole, const LineCtx& c) {
    if (whole[0] == '#') {
      const std::size_t at = whole.find("#P:");
      if (at != std::string_view::npos) b_.set_cpu_count(static_cast<std::uint32_t>(parse_uint(whole.substr(at + 3), c, "#P")));
      return true;
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
      return true;
    }
    if (whole.starts_with("cpus=")) {
      trace_cmd_ = true;
      b_.set_cpu_count(static_cast<std::uint32_t>(parse_uint(whole.substr(5), c, "cpus")));
      return true;
    }
    return whole.starts_with("version = ") || (whole.starts_with("CPU ") && whole.ends_with(" is empty"));
  }

  /// Reads "TASK-PID [CPU] [FLAGS] TIMESTAMP:" from `p`, the line's first non-blank
  /// byte; `q` ends past the timestamp's ':'. Remembers the line's head up to the
  /// timestamp so the next line can skip it when it repeats (see repeats_head).
  void event_head(const char* line_start, const char* p, const char* e, const LineCtx& c, const char*& br,
                  std::uint32_t& cpu, const char*& q, std::uint64_t& ts) {
    const char* cpu_end = nullptr;
    br = p;
    while (true) {
      br = static_cast<const char*>(std::memchr(br, '[', static_cast<std::size_t>(e - br)));
      if (!br) c.fail("not an ftrace event line: '" + excerpt(p, e) + "'");
      const char* d = br + 1;
      while (d < e && is_digit(*d)) ++d;
      if (d > br + 1 && d < e && *d == ']' && br > p && br[-1] == ' ') {
        cpu_end = d;
        break;
      }
      ++br;
    }
    cpu = 0;
    for (const char* d = br + 1; d < cpu_end; ++d) cpu = cpu * 10 + static_cast<std::uint32_t>(*d - '0');
    if (cpu_end - br > 6) c.fail("absurd cpu number");
    q = cpu_end + 1;
    for (int token = 0;; ++token) {
      q = scan_.skip(q, e, ' ');
      const char* w = q;
      if (token <= 1 && quick_timestamp(q, e, ts)) {
        remember_head(line_start, p, br, w, cpu);
        return;
      }
      q = scan_.find(q, e, ' ');
      if (w == q || token > 1) c.fail("no timestamp in event line '" + excerpt(p, e) + "'");
      if (q[-1] == ':' && parse_timestamp(std::string_view(w, static_cast<std::size_t>(q - 1 - w)), ts)) return;
    }
  }

  // Consecutive lines mostly come from one task on one CPU and repeat the same
  // head up to the timestamp ("            bash-3235    [000] .....  "): when
  // a line starts with a recent event line's head byte for byte, its task,
  // CPU and flags are those already read, and parsing resumes at the
  // timestamp. The two most recent heads are kept (two CPUs' lines
  // interleave); heads longer than kHeadMax are not.
  static constexpr std::size_t kHeadMax = 48;
  struct Head {
    char text[kHeadMax];         // the first bytes of the line that had it
    std::uint32_t length = 0;    // bytes up to the timestamp; 0: none
    std::uint32_t blank = 0, bracket = 0;  // offsets of the first non-blank byte and of '['
    std::uint32_t cpu = 0;
  };

  void remember_head(const char* line_start, const char* p, const char* br, const char* stamp, std::uint32_t cpu) {
    // A head starting "CPU " could be trace-cmd's "CPU 3 is empty", told apart only by the line's end.
    const std::size_t length = static_cast<std::size_t>(stamp - line_start);
    if (length > kHeadMax || !scan_.room(line_start, kHeadMax) || std::string_view(p, 4) == "CPU ") return;
    newest_ ^= 1;
    Head& h = heads_[newest_];
    std::memcpy(h.text, line_start, kHeadMax);
    h.length = static_cast<std::uint32_t>(length);
    h.blank = static_cast<std::uint32_t>(p - line_start);
    h.bracket = static_cast<std::uint32_t>(br - line_start);
    h.cpu = cpu;
  }

  /// The remembered head the line at `s` starts with, the most recent first; or null.
  const Head* known_head(const char* s) {
    if (!scan_.room(s, kHeadMax)) return nullptr;
    if (repeats(s, heads_[newest_])) return &heads_[newest_];
    if (repeats(s, heads_[newest_ ^ 1])) {
      newest_ ^= 1;
      return &heads_[newest_];
    }
    return nullptr;
  }
  /// pre: kHeadMax bytes from `s` lie within the text.
  static bool repeats(const char* s, const Head& h) {
    if (h.length == 0) return false;
#if defined(__SSE2__)
    const auto same16 = [&](std::size_t at) -> std::uint64_t {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h.text + at));
      return static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(a, b)))) << at;
    };
    const std::uint64_t same = same16(0) | same16(16) | same16(32);
    const std::uint64_t need = (std::uint64_t{1} << h.length) - 1;
    return (same & need) == need;
#else
    return std::memcmp(s, h.text, h.length) == 0;
#endif
  }

  // Events wait in a short queue so their hash-table slots are in cache when added.
  Event& free_slot() {
    if (pending_n_ == kAhead) {
      const Pending& p = pending_[pending_head_];
      b_.add(p.e, p.selected);
      --pending_n_;
      pending_head_ = (pending_head_ + 1) % kAhead;
    }
    return pending_[(pending_head_ + pending_n_) % kAhead].e;
  }
  void commit(bool selected) {
    Pending& p = pending_[(pending_head_ + pending_n_) % kAhead];
    p.selected = selected;
    b_.prefetch(p.e);
    ++pending_n_;
  }
  void drain() {
    for (; pending_n_; --pending_n_, pending_head_ = (pending_head_ + 1) % kAhead) {
      b_.add(pending_[pending_head_].e, pending_[pending_head_].selected);
    }
  }

  struct Pending {
    Event e;
    bool selected;
  };
  static constexpr std::size_t kAhead = 16;

  /// Bytes of text read per window: small enough to stay in the cache.
  static constexpr std::size_t kWindow = std::size_t{1} << 19;
  TextSource source_;
  std::uint64_t text_size_;  // expected; the window grows for a longer line
  const std::string& name_;
  const ImportOptions& options_;
  Scan scan_;
  Builder b_;
  Pending pending_[kAhead];
  std::size_t pending_head_ = 0, pending_n_ = 0;
  bool trace_cmd_ = false;
  Head heads_[2];
  unsigned newest_ = 0;  // index of the most recent head
  EventFiller filler_;
};

}  // namespace
}  // namespace ftrace

ops::Trace import_ftrace(std::string_view text, const std::string& name, const ImportOptions& options) {
  std::size_t at = 0;
  const auto source = [&](char* dst, std::size_t n) {
    n = std::min(n, text.size() - at);
    if (n > 0) std::memcpy(dst, text.data() + at, n);
    at += n;
    return n;
  };
  return ftrace::FtraceParser(source, text.size(), name, options).run();
}

ops::Trace import_ftrace(const Input& in, const ImportOptions& options) {
  std::uint64_t at = 0;
  const auto source = [&](char* dst, std::size_t n) {
    n = in.read(at, dst, n);
    at += n;
    return n;
  };
  return ftrace::FtraceParser(source, in.size_hint(), in.name(), options).run();
}

}  // namespace kmbench::trace
