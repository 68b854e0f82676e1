// Linux ftrace text: /sys/kernel/tracing/trace, trace_pipe and `trace-cmd report`.
// A hand-written pass over the text (no regex, no per-line allocation):
// importing must keep up with `wc -l` within a small factor. The text is cut
// into chunks of whole lines; threads parse chunks into events while one
// merges them, in the text's order, into the trace (ftrace_chunks.h says how
// the result stays that of one pass). This file reads a chunk line by line;
// ftrace_scan.h tokenises a line, and ftrace_fill.h makes an event of its fields.
#include <sys/mman.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "base/errors.h"
#include "harness/trace/builder.h"
#include "harness/trace/ftrace_events.h"
#include "harness/trace/ftrace_fill.h"
#include "harness/trace/ftrace_chunks.h"
#include "harness/trace/ftrace_scan.h"

namespace kmbench::trace {
namespace ftrace {
namespace {

/// Reads chunks of ftrace text line by line into events. One per parsing
/// thread, kept from chunk to chunk: its caches (the heads of recent lines,
/// the gfp_flags values met) stay warm. It reads the Builder's filters only,
/// which are fixed when it is made, while another thread adds events to it.
class LineParser {
 public:
  LineParser(const std::string& name, const ImportOptions& options, const Builder& filters)
      : name_(name), options_(options), filters_(filters), scan_(nullptr) {}

  /// Parses the lines of text[0, size) into `out`. `last`: the text ends the
  /// capture, so a line without its newline is cut. An error stops the chunk,
  /// kept in `out` with what came before it (LineError numbers lines within
  /// the chunk); with skip_bad_lines, a bad line is counted and passed over.
  void parse(const char* text, std::size_t size, bool last, Chunk& out) {
    out_ = &out;
    filler_.use(*out.strings);
    const char* p = text;
    const char* const end = text + size;
    scan_ = Scan(end);
    std::uint64_t line = 0;
    try {
      for (const char* nl; (nl = scan_.line_end(p)); p = nl + 1) {
        ++line;
        const char* e = nl;
        if (e > p && e[-1] == '\r') --e;
        if (read_line(p, e, line)) out.any_event_line = true;
      }
      committed_ = out.events.size();
      if (p != end && last) {
        const LineError cut(name_, line + 1, "truncated: the last line has no newline");
        if (!options_.skip_bad_lines) throw cut;
        out.bad_lines.push_back({cut.line(), cut.message()});
      }
    } catch (const LineError& bad) {
      out.events.resize(committed_);
      out.fault = Chunk::Fault{bad.line(), bad.message()};
    } catch (...) {
      out.events.resize(committed_);
      out.failure = std::current_exception();
    }
    out.lines = line;
  }

 private:
  /// line_, or with skip_bad_lines, line_ with an unreadable line counted and skipped.
  bool read_line(const char* p, const char* e, std::uint64_t line) {
    committed_ = out_->events.size();
    if (!options_.skip_bad_lines) return line_(p, e, line);
    try {
      return line_(p, e, line);
    } catch (const LineError& bad) {
      out_->events.resize(committed_);  // the line's event, if it had begun one, is not kept
      out_->bad_lines.push_back({bad.line(), bad.message()});
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
      out_->skip(event);
      return true;
    }
    if (!filters_.in_window(ts) || !filters_.kind_selected(known->kind_bit)) {
      ++out_->filtered;
      return true;
    }
    Parsed& parsed = out_->events.emplace_back();  // filled in place: copying it stalled on store forwarding
    Event& x = parsed.e;
    EventFiller::start(x, known->ev, cpu, ts);
    std::string_view site, tag;  // interned once the line is read, site first
    if (filler_.quick(scan_, q, e, x, site, tag)) {
      if (!site.empty()) x.site = out_->strings->intern(site);  // page events name no call site: 0, the empty string
      if (!tag.empty()) x.tag = out_->strings->intern(tag);
    } else {
      EventFiller::start(x, known->ev, cpu, ts);
      Fields f;
      f.parse(scan_, q, e);
      filler_.fill(known->shape, f, x, c);
    }
    parsed.task_kept = true;
    if (filters_.has_task_filter()) {
      const char* t0 = p;
      const char* t1 = br - 1;
      while (t1 > t0 && t1[-1] == ' ') --t1;
      const char* dash = t1;
      while (dash > t0 && dash[-1] != '-') --dash;
      const std::string_view comm(t0, dash > t0 ? static_cast<std::size_t>(dash - 1 - t0) : 0);
      const std::string_view pid(dash, static_cast<std::size_t>(t1 - dash));
      parsed.task_kept = filters_.task_selected(comm, pid);
    }
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
      if (at != std::string_view::npos) out_->cpu_count = cpu_count(whole.substr(at + 3), c, "#P");
      return true;
    }
    // trace-cmd report names an instance's buffer before its lines: "NAME: CPU:0 [...]".
    if (const std::size_t at = whole.find(": CPU:");
        at != std::string_view::npos && whole.substr(0, at).find(' ') == std::string_view::npos) {
      whole.remove_prefix(at + 2);
    }
    // "CPU:1 [LOST 12 EVENTS]" (tracefs), "CPU:0 [232250 EVENTS DROPPED]" or,
    // when the count is not known, "CPU:0 [EVENTS DROPPED]" (trace-cmd).
    if (whole.starts_with("CPU:")) {
      std::size_t i = whole.find('[');
      if (i == std::string_view::npos) c.fail("unrecognised line '" + std::string(whole.substr(0, 80)) + "'");
      ++i;
      if (whole.substr(i).starts_with("LOST ")) i += 5;
      std::size_t j = i;
      while (j < whole.size() && is_digit(whole[j])) ++j;
      if (j == i && !whole.substr(i).starts_with("EVENTS DROPPED]")) {
        c.fail("unrecognised lost-events line '" + std::string(whole.substr(0, 80)) + "'");
      }
      out_->lost += j == i ? 0 : parse_uint(whole.substr(i, j - i), c, "lost count");
      ++out_->lost_markers;
      return true;
    }
    if (whole.starts_with("cpus=")) {
      out_->trace_cmd = true;
      out_->cpu_count = cpu_count(whole.substr(5), c, "cpus");
      return true;
    }
    return whole.starts_with("version = ") || (whole.starts_with("CPU ") && whole.ends_with(" is empty"));
  }

  /// The CPU count a heading gives ("#P:2", "cpus=2"): at most 65536, the CPUs a trace can name.
  static std::uint32_t cpu_count(std::string_view text, const LineCtx& c, const char* what) {
    const std::uint64_t n = parse_uint(text, c, what);
    if (n > 65536) c.fail(std::string(what) + " gives " + std::to_string(n) + " CPUs (the most is 65536)");
    return static_cast<std::uint32_t>(n);
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
    if (cpu_end - br > 6) c.fail("absurd cpu number '" + std::string(br + 1, cpu_end) + "' (the most is 65535)");
    cpu = 0;
    for (const char* d = br + 1; d < cpu_end; ++d) cpu = cpu * 10 + static_cast<std::uint32_t>(*d - '0');
    if (cpu >= 65536) c.fail("absurd cpu number " + std::to_string(cpu) + " (the most is 65535)");
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
      const std::string_view stamp(w, static_cast<std::size_t>(q > w ? q - 1 - w : 0));
      if (q[-1] == ':' && parse_timestamp(stamp, ts)) return;
      // Seconds of 11 or more digits, and at most one '.': a timestamp, only too late for 64-bit nanoseconds.
      if (q[-1] == ':' && !stamp.empty() && stamp.find_first_not_of("0123456789.") == std::string_view::npos &&
          stamp.find('.') > 10 && stamp.find('.') == stamp.rfind('.')) {
        c.fail("timestamp " + std::string(stamp) + " is beyond " + std::to_string(kMaxTimestampSeconds) +
               " s (nanoseconds past 64 bits)");
      }
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

  const std::string& name_;
  const ImportOptions& options_;
  const Builder& filters_;
  Scan scan_;
  Chunk* out_ = nullptr;
  std::size_t committed_ = 0;  // events of the chunk before the line being read
  Head heads_[2];
  unsigned newest_ = 0;  // index of the most recent head
  EventFiller filler_;
};

/// An import of ftrace text: chunks read front to back and parsed by
/// `threads` threads while the calling thread merges them, in order, into the
/// trace. With one thread, or text that fits in one chunk, the calling thread
/// reads, parses and merges each chunk in turn.
class FtraceImport {
 public:
  FtraceImport(TextSource source, std::uint64_t text_size, const std::string& name, const ImportOptions& options)
      : reader_(std::move(source), options.chunk_bytes ? options.chunk_bytes : kChunk),
        text_size_(text_size),
        name_(name),
        options_(options),
        b_("ftrace", "tracefs", options) {
    b_.set_stream_reserve(std::min<std::uint64_t>(text_size / 64, std::uint64_t{1} << 24));
    b_.count_slab_slack();
  }

  ops::Trace run() {
    std::string error;
    try {
      const std::size_t chunk = options_.chunk_bytes ? options_.chunk_bytes : kChunk;
      const unsigned threads = options_.threads ? options_.threads : default_threads();
      if (threads <= 1 || text_size_ <= chunk) {
        run_inline();
      } else {
        run_threaded(threads);
      }
      if (!any_event_line_ && lines_ == 0) throw InputError(name_, "empty input");
    } catch (const InputError& e) {
      if (!options_.keep_partial) throw;
      error = e.what();
    }
    ops::Trace t = b_.finish(name_, error);
    if (trace_cmd_) t.header.capture_tool = "trace-cmd report";
    return t;
  }

 private:
  /// Bytes of text a chunk holds at least: small enough that its text and
  /// events stay in the cache between the read, the parse and the merge.
  static constexpr std::size_t kChunk = std::size_t{1} << 19;
  /// Events the merge runs ahead of Builder::add, so the table slots are in cache.
  static constexpr std::size_t kAhead = 16;

  /// One parsing thread per core but the merging one's, and two on two cores:
  /// there each of the three threads takes about a third of the work, and a
  /// parsing thread idles while it waits for a slot, so two keep both cores busy.
  static unsigned default_threads() {
    const unsigned cores = std::thread::hardware_concurrency();
    return cores > 2 ? cores - 1 : 1 + (cores == 2);
  }

  void run_inline() {
    LineParser parser(name_, options_, b_);
    Text text;
    Chunk chunk;
    bool last = false;
    while (!last && reader_.next(text, last)) {
      parser.parse(text.data.get(), text.size, last, chunk);
      merge(chunk);
      chunk.reset();
    }
  }

  /// A chunk between its read and its merge.
  struct Slot {
    Text text;
    bool last = false;
    Chunk chunk;
    bool parsed = false;
  };

  void run_threaded(unsigned threads) {
    slots_.resize(2 * threads + 2);
    for (auto& s : slots_) s = std::make_unique<Slot>();
    std::vector<std::thread> workers;
    // The workers stop, and are joined, however the merge ends.
    struct Join {
      FtraceImport& self;
      std::vector<std::thread>& workers;
      ~Join() {
        {
          const std::lock_guard lock(self.m_);
          self.stop_ = true;
        }
        self.to_workers_.notify_all();
        for (std::thread& w : workers) w.join();
      }
    } join{*this, workers};
    for (unsigned i = 0; i < threads; ++i) workers.emplace_back([this] { work(); });

    for (std::uint64_t seq = 0;; ++seq) {
      Slot* s;
      {
        std::unique_lock lock(m_);
        to_merger_.wait(lock, [&] { return slots_[seq % slots_.size()]->parsed || (read_all_ && seq >= chunks_); });
        s = slots_[seq % slots_.size()].get();
        if (!s->parsed) return;  // every chunk merged
      }
      merge(s->chunk);
      s->chunk.reset();
      {
        const std::lock_guard lock(m_);
        s->parsed = false;
        merged_ = seq + 1;
        ask_fault_ahead();
      }
      to_workers_.notify_all();
    }
  }

  /// A parsing thread: takes the next chunk of the text (reading it, in turn
  /// with the others) while fewer than slots_.size() wait for the merge, and parses it.
  void work() {
    LineParser parser(name_, options_, b_);
    for (;;) {
      Slot* s;
      {
        const std::lock_guard reading(read_m_);  // chunks are read in the order of their numbers
        std::uint64_t seq;
        {
          std::unique_lock lock(m_);
          to_workers_.wait(lock, [&] { return stop_ || read_all_ || next_read_ - merged_ < slots_.size(); });
          if (stop_ || read_all_) return;
          seq = next_read_++;
        }
        s = slots_[seq % slots_.size()].get();
        bool got;
        try {
          got = reader_.next(s->text, s->last);
        } catch (...) {  // the input's own error (a cut compressed stream): merged in its turn
          s->chunk.failure = std::current_exception();
          s->text.size = 0;
          got = s->last = true;
        }
        if (!got || s->last) {
          {
            const std::lock_guard lock(m_);
            read_all_ = true;
            chunks_ = got ? seq + 1 : seq;
          }
          to_workers_.notify_all();
          to_merger_.notify_all();
          if (!got) return;
        }
      }
      if (!s->chunk.failure) parser.parse(s->text.data.get(), s->text.size, s->last, s->chunk);
      std::vector<Room> fault;
      {
        const std::lock_guard lock(m_);
        s->parsed = true;
        fault.swap(fault_ahead_);
      }
      to_merger_.notify_all();
      fault_in(fault);
    }
  }

  // The merge writes the trace's ops into memory the kernel must zero on
  // first touch; in a virtual machine those faults took a third of the merging
  // thread's time. The parsing threads, which wait on the merge, fault in the
  // next kFaultAhead bytes of each stream's reserved room instead. Faulting in
  // (MADV_POPULATE_WRITE) changes no byte: a range a stream has left since
  // (grown elsewhere) is harmless to fault in, or refused if unmapped.
  static constexpr std::size_t kFaultAhead = std::size_t{4} << 20;
  struct Room {
    char* from;
    std::size_t bytes;
  };
  /// Under m_: the room each stream will write next and no one has faulted in.
  void ask_fault_ahead() {
    std::size_t i = 0;
    b_.for_each_stream([&](const ops::Op* data, std::size_t size, std::size_t capacity) {
      if (i == faulted_.size()) faulted_.push_back({nullptr, 0});
      auto& [base, done] = faulted_[i++];
      char* const first = reinterpret_cast<char*>(const_cast<ops::Op*>(data));
      if (first != base) base = first, done = 0;  // a new stream, or one moved as it grew
      const std::size_t written = size * sizeof(ops::Op);
      const std::size_t want = std::min(capacity * sizeof(ops::Op), written + kFaultAhead);
      if (done < written) done = written;
      if (want >= done + kFaultAhead / 2) {
        fault_ahead_.push_back({first + done, want - done});
        done = want;
      }
    });
  }
  static void fault_in(const std::vector<Room>& rooms) {
#ifdef MADV_POPULATE_WRITE
    for (const Room& r : rooms) {
      const auto page = reinterpret_cast<std::uintptr_t>(r.from) & ~std::uintptr_t{4095};
      ::madvise(reinterpret_cast<void*>(page), r.bytes + (reinterpret_cast<std::uintptr_t>(r.from) - page),
                MADV_POPULATE_WRITE);
    }
#else
    (void)rooms;
#endif
  }

  /// Adds a parsed chunk to the trace; throws the error that stopped it, if any.
  void merge(Chunk& c) {
    const std::vector<std::string>& local = c.strings->strings;
    ids_.resize(local.size());
    ids_[0] = 0;
    for (std::size_t i = 1; i < local.size(); ++i) ids_[i] = b_.intern(local[i]);
    if (c.lost_markers > 0) b_.lost(c.lost, c.lost_markers);
    if (c.filtered > 0) b_.filtered(c.filtered);
    for (const auto& [event, n] : c.skipped) b_.skipped(event, n);
    for (const Chunk::Fault& f : c.bad_lines) b_.bad_line(InputError(name_, lines_ + f.line, f.message).what());
    if (c.cpu_count) b_.set_cpu_count(*c.cpu_count);
    trace_cmd_ = trace_cmd_ || c.trace_cmd;
    any_event_line_ = any_event_line_ || c.any_event_line;

    const std::size_t n = c.events.size();
    Parsed* const events = c.events.data();
    for (std::size_t i = 0; i < std::min(n, kAhead); ++i) b_.prefetch(events[i].e);
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kAhead < n) b_.prefetch(events[i + kAhead].e);
      Event& e = events[i].e;
      e.site = ids_[e.site];
      e.tag = ids_[e.tag];
      b_.add(e, events[i].task_kept && b_.site_selected(e.site));
    }
    const std::uint64_t first = lines_;
    lines_ += c.lines;
    if (c.fault) throw InputError(name_, first + c.fault->line, c.fault->message);
    if (c.failure) std::rethrow_exception(c.failure);
  }

  ChunkReader reader_;
  std::uint64_t text_size_;  // expected
  const std::string& name_;
  const ImportOptions& options_;
  Builder b_;
  std::vector<std::uint32_t> ids_;  // the trace's string ids by the merged chunk's own
  std::uint64_t lines_ = 0;         // lines merged
  bool any_event_line_ = false, trace_cmd_ = false;

  // Shared with the parsing threads, under m_ (the slots' chunks pass from
  // the thread that parsed them to the merge with `parsed`).
  std::mutex m_, read_m_;
  std::condition_variable to_workers_, to_merger_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::uint64_t next_read_ = 0, merged_ = 0, chunks_ = 0;
  std::vector<Room> fault_ahead_;                      // rooms to fault in, for the next parsing thread
  std::vector<std::pair<char*, std::size_t>> faulted_;  // per stream: its ops, bytes faulted in or asked for
  bool read_all_ = false, stop_ = false;
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
  return ftrace::FtraceImport(source, text.size(), name, options).run();
}

ops::Trace import_ftrace(const std::function<std::size_t(char* dst, std::size_t n)>& read, std::uint64_t size_hint,
                         const std::string& name, const ImportOptions& options) {
  return ftrace::FtraceImport(read, size_hint, name, options).run();
}

ops::Trace import_ftrace(const Input& in, const ImportOptions& options) {
  std::uint64_t at = 0;
  const auto source = [&](char* dst, std::size_t n) {
    n = in.read(at, dst, n);
    at += n;
    return n;
  };
  return ftrace::FtraceImport(source, in.size_hint(), in.name(), options).run();
}

}  // namespace kmbench::trace
