// Traces on disk: the .kmt format (docs/kmt-format.md), its text form, the
// importers for real captures and the figures `kmbench trace info` prints.
//
// Everything here produces or reads an ops::Trace (ops/ops.h); the
// replay and the matrix only need load() and save().
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ops/ops.h"

namespace kmbench::trace {

/// The newest .kmt format version this build reads and the one it writes.
inline constexpr std::uint32_t kFormatVersion = 1;

// ---- .kmt files -----------------------------------------------------------

/// Reads a .kmt file (memory-mapped). Throws InputError naming the file and
/// the byte offset on truncation, a bad checksum, a newer version or bad data.
ops::Trace load(const std::string& path);

/// Writes `trace` as .kmt atomically (temp file in the same folder + rename).
/// pre: every op's object < object_count, site/tag < strings.size(), strings[0] == "".
void save(const ops::Trace& trace, const std::string& path);

/// The .kmt bytes of `trace` (what save() writes).
std::string encode(const ops::Trace& trace);

/// Decodes .kmt bytes; `name` is the file named in errors.
ops::Trace decode(const void* data, std::size_t size, const std::string& name);
/// A run of one stream's ops, as a streaming decode hands them over.
struct OpBatch {
  std::uint32_t cpu;
  std::span<const ops::Op> ops;
  std::span<const ops::Call> calls;  // each op's KPI call; empty when the stream has none
  bool first;                        // the stream's first batch (a stream of no ops has one, empty)
};
/// Called with each batch of ops as they are decoded, stream after stream;
/// the trace's header, strings and counters are read by then.
using OpVisitor = std::function<void(const ops::Trace& trace, const OpBatch& batch)>;
/// Decodes .kmt bytes a batch of ops at a time: each batch goes to `visit`,
/// then is dropped, so memory holds one batch (and the decoder's per-object
/// sizes); the trace returned has no streams. Checks what decode() checks.
ops::Trace decode(const void* data, std::size_t size, const std::string& name, const OpVisitor& visit);
/// The same for a .kmt file (memory-mapped).
ops::Trace load(const std::string& path, const OpVisitor& visit);

/// Checks what save() requires; throws InputError(name, ...) on the first violation.
void validate(const ops::Trace& trace, const std::string& name);

// ---- the text form ----------------------------------------------------------

/// The readable text form (one op a line), accepted back by undump().
void dump(const ops::Trace& trace, std::ostream& out);

/// Parses the text form; errors name `name` and the line.
ops::Trace undump(std::string_view text, const std::string& name);

// ---- importing captures ------------------------------------------------------

enum class Format { auto_detect, kmt, ftrace, tracedat, dtrace, text, kpi_record };

/// "auto", "kmt", "ftrace", "tracedat", "dtrace", "text", "kpirec"; throws UsageError otherwise.
Format parse_format(const std::string& name);
const char* format_name(Format f);

/// Capture event kinds, for filtering at import (`--kinds`).
enum EventKindBit : std::uint32_t {
  kKindKmalloc = 1u << 0,     // kmalloc, kmalloc_node, kfree; IOMalloc*/IOFree*, OSMalloc*/OSFree; malloc family
  kKindCache = 1u << 1,       // kmem_cache_alloc(_node), kmem_cache_free
  kKindPage = 1u << 2,        // mm_page_alloc, mm_page_free(_batched); anonymous mmap/munmap
  kKindDma = 1u << 3,         // dma:*; IOBufferMemoryDescriptor, IODMACommand
  kKindAll = 0xf,
};
/// Parses a comma list of "kmalloc,cache,page,dma" into EventKindBit bits; throws UsageError.
std::uint32_t parse_kinds(const std::string& list);

/// What to keep of a capture. Allocations are selected; a free follows its
/// allocation (kept exactly when the allocation was), whatever its own site or task.
struct ImportFilter {
  std::string site_regex;          // ECMAScript regex searched in the call site ("" = all)
  std::string task;                // comm, comm-pid or pid ("" = all)
  double from_s = -1, to_s = -1;   // capture clock window in seconds (-1 = open)
  std::uint32_t kinds = kKindAll;  // EventKindBit
};

class OpSpill;  // harness/trace/spill.h

/// How to import: format, filters, strictness.
struct ImportOptions {
  Format format = Format::auto_detect;
  ImportFilter filter;
  bool strict = false;  // unknown event names are errors instead of being skipped and counted
  /// On bad input, stop there and return what came before (metadata "import.error"
  /// holds the message) instead of throwing.
  bool keep_partial = false;
  /// A line that cannot be read (a ring-buffer overrun cuts lines) is skipped
  /// and counted ("import.bad_lines"); the first kBadLinesKept messages, each
  /// naming file:line, are kept in metadata "import.bad_line.1" ... (ftrace
  /// text and DTrace output). Without it the first bad line stops the import.
  bool skip_bad_lines = false;
  /// KPI recordings: name call sites from the recorded objects' symbol tables
  /// (function+offset); false leaves them as object+offset (`--no-symbols`).
  bool symbols = true;
  /// Threads parsing ftrace text, besides the one merging what they parse; 0:
  /// one per core but one (one on two cores). The trace is the same for any.
  unsigned threads = 0;
  /// Bytes of ftrace text a thread takes at a time; 0: 512 KiB (tests cut finer).
  std::size_t chunk_bytes = 0;
  /// Where the ops go instead of the trace's streams (import_to_file); the
  /// trace returned then has streams with their cpu alone. null: in memory.
  OpSpill* spill = nullptr;
};
inline constexpr int kBadLinesKept = 10;

class Decompressor;

/// An input: a file, or "-" for stdin; gzip, xz and zstd are recognised by
/// their magic bytes. A plain file is read in pieces by read(), or
/// memory-mapped whole on the first call of bytes(); a compressed one is
/// decompressed as read() goes, or whole on the first call of bytes(). Bad or
/// truncated compressed data throws InputError (with the byte offset) from
/// whichever call meets it. Stdin (or a pipe), compressed or not, is read as
/// read() goes, front to back once, or whole on a first call of bytes() before
/// any read() past its first 64 KiB (decoded).
class Input {
 public:
  explicit Input(const std::string& path);
  ~Input();
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  /// The whole input, decompressed.
  std::string_view bytes() const;
  /// The first bytes, at most n, without reading the input whole (n <= 64 KiB).
  std::string_view head(std::size_t n) const;
  /// Copies up to n bytes from `offset` on into dst; returns how many, 0 at the end.
  /// A plain file is read with pread(2); a compressed input is decoded straight
  /// into dst while the offsets follow each other, and whole otherwise.
  std::size_t read(std::uint64_t offset, char* dst, std::size_t n) const;
  /// Bytes of the input (a compressed one is decoded whole to know).
  std::uint64_t size() const;
  /// size() where it is known without decoding (a plain file; the size a
  /// zstd or gzip stream declares), else a guess (8x the compressed size).
  std::uint64_t size_hint() const;
  /// size_hint() of a pipe, whose size is known only at its end.
  static constexpr std::uint64_t kPipeGuess = std::uint64_t{1} << 30;
  const std::string& name() const { return name_; }
  bool compressed() const { return compressed_; }
  /// A regular file, read in place (not stdin, a pipe or a device).
  bool is_file() const { return fd_ >= 0; }

 private:
  static constexpr std::size_t kHead = std::size_t{1} << 16;
  static std::size_t fill(Decompressor& d, char* dst, std::size_t n);
  std::string_view raw_bytes() const;
  std::size_t read_raw(std::uint64_t offset, char* dst, std::size_t n) const;
  void release();
  void open_pipe(int fd);
  void release_consumed() const;
  static constexpr std::size_t kReleaseStep = std::size_t{1} << 20;

  std::string name_;
  int fd_ = -1;                 // a plain file's, open until the destructor
  std::uint64_t raw_size_ = 0;  // bytes of the file (compressed or not)
  mutable void* map_ = nullptr;  // the file, once mapped
  mutable std::string head_;    // the first bytes (decoded)
  bool compressed_ = false;
  bool piped_stream_ = false;   // compressed, from a pipe: decoded once, as it is read
  std::uint64_t declared_size_ = 0;  // what the compressed stream says it decodes to (0: unsaid)
  std::unique_ptr<Decompressor> stream_;  // decodes what read() asks for next
  mutable std::uint64_t streamed_ = 0;  // bytes it decoded after head_
  mutable std::size_t released_ = 0;    // bytes of the mapped compressed file given back
  mutable std::string plain_;   // the whole decoded input, once asked for
  mutable bool whole_ = false;
  int pipe_ = -1;               // an uncompressed pipe's, read as read() goes (head_: its first bytes)
  bool owns_pipe_ = false;      // closed by the destructor (stdin is not)
  mutable std::uint64_t piped_ = 0;  // bytes read from it after head_
};

/// Guesses the format from the first bytes.
Format detect_format(std::string_view head);

/// Reads any supported input (a .kmt too) into a trace.
ops::Trace import_file(const std::string& path, const ImportOptions& options = {});
/// import_file() of an input already open (`path` is the one it was opened
/// with): a caller that looked at its head first (standard input cannot be opened twice).
ops::Trace import_file(const Input& in, const std::string& path, const ImportOptions& options = {});

/// A capture imported into a .kmt file: the trace without its ops, and their count.
struct ImportedFile {
  ops::Trace head;
  std::uint64_t ops = 0;
};
/// import_file() then save() to `out`, without holding the ops: each stream's
/// ops go to a temporary file beside `out` a window at a time, and are encoded
/// from there, so memory follows the capture's live objects, not its length.
/// Writes the same bytes as save(import_file(path, options), out). A .kmt or
/// the text form is read whole, as import_file() reads it.
ImportedFile import_to_file(const std::string& path, const ImportOptions& options, const std::string& out);

/// Parsers by format; `name` is the file named in errors.
ops::Trace import_ftrace(std::string_view text, const std::string& name, const ImportOptions& options);
/// The same, reading `in` front to back a window at a time.
ops::Trace import_ftrace(const Input& in, const ImportOptions& options);
/// The same, reading the text as `read` gives it: up to n bytes into dst, how
/// many it gave, 0 at the end. `size_hint` guesses the text's size.
ops::Trace import_ftrace(const std::function<std::size_t(char* dst, std::size_t n)>& read, std::uint64_t size_hint,
                         const std::string& name, const ImportOptions& options);
ops::Trace import_dtrace(std::string_view text, const std::string& name, const ImportOptions& options);
ops::Trace import_tracedat(const std::string& path, const std::string& name, const ImportOptions& options);
/// A KPI record log (KMBENCH_RECORD, ops/kpi_record.h); one cut short by a crash
/// reads up to its last whole block, and metadata "record.cut" says where and why.
ops::Trace import_kpi_record(std::string_view bytes, const std::string& name, const ImportOptions& options);

// ---- what `trace info` prints --------------------------------------------------

/// Figures over a trace. The capture counts (events .. peak_live_bytes) come from
/// the importer's counters when present ("import.*", counted over the capture's
/// events in file order), else from the ops.
struct Info {
  std::uint64_t events = 0, allocs = 0, frees = 0, null_frees = 0, unmatched_frees = 0;
  std::uint64_t page_allocs = 0, page_frees = 0, never_freed = 0, peak_live_bytes = 0;
  std::uint64_t failed_allocs = 0, pointer_reuse = 0, out_of_order = 0, lost_events = 0;
  std::uint64_t dma_events = 0, skipped_events = 0, filtered_events = 0, bad_lines = 0;
  std::uint64_t ops = 0, objects = 0, duration_ns = 0;
  std::vector<std::uint32_t> cpus;
  std::map<std::string, std::uint64_t> ops_by_kind;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> size_histogram;  // (upper bound, allocs)
  std::vector<std::pair<std::string, std::uint64_t>> top_sites;         // by allocations
  std::vector<std::pair<std::string, std::uint64_t>> top_tags;
  /// The kernel's own slack, from an ftrace capture's bytes_req and bytes_alloc
  /// ("import.slab_slack.*" counters); not recorded for other sources and older .kmt files.
  struct SlackClass {
    std::string name;        // ops::kSizeClassNames
    std::uint64_t max_bytes = 0;  // 0: unbounded
    std::uint64_t allocs = 0, bytes_req = 0, bytes_alloc = 0;
  };
  bool slab_slack_recorded = false;
  std::vector<SlackClass> slab_slack;  // classes with allocations, smallest first
  /// KPI calls, for traces that know them (ops::Stream::calls): ops per call,
  /// in ops::Call order, and per KPI family its allocating and freeing ops.
  std::vector<std::pair<std::string, std::uint64_t>> calls;
  struct FamilyOps {
    std::string family;
    std::uint64_t allocs = 0, frees = 0;
  };
  std::vector<FamilyOps> families;
  /// The C library's reallocs (LD_PRELOAD recordings): calls that returned a
  /// block (an allocation op each), and of those, the ones that moved or
  /// resized a live block (its free right before, at the same time), which
  /// the replay runs as one realloc.
  std::uint64_t realloc_blocks = 0, realloc_of_live = 0;
  /// OSObject allocations by class (the tag of an OSObject::operator new op), most first.
  std::vector<std::pair<std::string, std::uint64_t>> classes;
  /// A KPI recording cut short (metadata "record.cut"): where and why; "" otherwise.
  std::string cut;
};

Info summarize(const ops::Trace& trace, std::size_t top = 10);
/// The counts of summarize() alone (no walk over the ops when the importer counted them).
Info summarize_counts(const ops::Trace& trace);
/// summarize() of a .kmt file, decoded a batch of ops at a time and never held
/// whole (`trace info` on a .kmt); `header` gets the trace without its streams.
Info summarize_file(const std::string& path, ops::Trace& header, std::size_t top = 10);
/// summarize() of a capture (any format import_file() reads), imported with
/// its ops spilled to a temporary folder ($TMPDIR, else /tmp) once they
/// outgrow memory's share, as import_to_file() spills them, and summarized
/// from there; `header` gets the trace without its ops.
Info summarize_capture(const std::string& path, const ImportOptions& options, ops::Trace& header, std::size_t top = 10);
std::string info_json(const ops::Trace& trace, const Info& info);
void print_info(const ops::Trace& trace, const Info& info, std::ostream& out);

}  // namespace kmbench::trace
