// Choosing an importer: format names, detection by content, kind filters.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/errors.h"
#include "base/file_io.h"
#include "harness/trace/spill.h"
#include "harness/trace/trace.h"

namespace kmbench::trace {
namespace {

constexpr std::string_view kTraceDatMagic("\x17\x08\x44tracing", 10);

/// A file libtracecmd can open, removed when done.
struct TempFile {
  std::string path;
  ~TempFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

}  // namespace

Format parse_format(const std::string& name) {
  if (name == "auto") return Format::auto_detect;
  if (name == "kmt") return Format::kmt;
  if (name == "ftrace") return Format::ftrace;
  if (name == "tracedat") return Format::tracedat;
  if (name == "dtrace") return Format::dtrace;
  if (name == "text") return Format::text;
  if (name == "kpirec") return Format::kpi_record;
  throw UsageError("unknown trace format '" + name + "' (auto, kmt, ftrace, tracedat, dtrace, text, kpirec)");
}

const char* format_name(Format f) {
  switch (f) {
    case Format::auto_detect: return "auto";
    case Format::kmt: return "kmt";
    case Format::ftrace: return "ftrace";
    case Format::tracedat: return "tracedat";
    case Format::dtrace: return "dtrace";
    case Format::text: return "text";
    case Format::kpi_record: return "kpirec";
  }
  return "?";
}

std::uint32_t parse_kinds(const std::string& list) {
  std::uint32_t bits = 0;
  std::size_t p = 0;
  while (p <= list.size()) {
    std::size_t comma = list.find(',', p);
    if (comma == std::string::npos) comma = list.size();
    const std::string k = list.substr(p, comma - p);
    if (k == "kmalloc") {
      bits |= kKindKmalloc;
    } else if (k == "cache") {
      bits |= kKindCache;
    } else if (k == "page") {
      bits |= kKindPage;
    } else if (k == "dma") {
      bits |= kKindDma;
    } else if (k == "all") {
      bits |= kKindAll;
    } else {
      throw UsageError("unknown event kind '" + k + "' (kmalloc, cache, page, dma, all)");
    }
    p = comma + 1;
  }
  return bits;
}

Format detect_format(std::string_view head) {
  if (head.starts_with("KMBTRACE")) return Format::kmt;
  if (head.starts_with("KMBKPIRC")) return Format::kpi_record;
  if (head.starts_with(kTraceDatMagic)) return Format::tracedat;
  std::size_t p = 0;
  while (p < head.size() && (head[p] == ' ' || head[p] == '\n' || head[p] == '\r' || head[p] == '\t')) ++p;
  const std::string_view s = head.substr(p);
  if (s.starts_with("kmt-text")) return Format::text;
  if (s.starts_with("#kmbench-dtrace") || s.starts_with("# kmbench-dtrace")) return Format::dtrace;
  return Format::ftrace;
}

ops::Trace import_file(const std::string& path, const ImportOptions& options) {
  const Input in(path);
  return import_file(in, path, options);
}

ops::Trace import_file(const Input& in, const std::string& path, const ImportOptions& options) {
  Format f = options.format;
  if (f == Format::auto_detect) f = detect_format(in.head(4096));
  switch (f) {
    case Format::kmt: return decode(in.bytes().data(), in.bytes().size(), in.name());
    case Format::text: return undump(in.bytes(), in.name());
    case Format::ftrace: return import_ftrace(in, options);
    case Format::dtrace: return import_dtrace(in.bytes(), in.name(), options);
    case Format::kpi_record: return import_kpi_record(in.bytes(), in.name(), options);
    case Format::tracedat: {
      if (!in.compressed() && in.is_file()) return import_tracedat(path, in.name(), options);
      TempFile tmp;  // libtracecmd reads a file: give it the (decompressed) bytes
      std::string name = "/tmp/kmbench-tracedat.XXXXXX";
      const int fd = ::mkstemp(name.data());
      if (fd < 0) throw RunError(std::string("cannot create a temporary file: ") + std::strerror(errno));
      tmp.path = name;
      const std::string_view b = in.bytes();
      if (!base::write_all(fd, b.data(), b.size())) {
        const int err = errno;
        ::close(fd);
        throw RunError(std::string("cannot write a temporary file: ") + std::strerror(err));
      }
      ::close(fd);
      return import_tracedat(tmp.path, in.name(), options);
    }
    case Format::auto_detect: break;
  }
  throw UsageError("no format");
}

ImportedFile import_to_file(const std::string& path, const ImportOptions& options, const std::string& out) {
  const std::size_t slash = out.rfind('/');
  OpSpill spill(slash == std::string::npos ? "." : slash == 0 ? "/" : out.substr(0, slash));
  ImportOptions o = options;
  o.spill = &spill;
  ImportedFile f{import_file(path, o), 0};
  if (spill.empty()) {  // read whole: a .kmt, the text form, or a trace of no ops
    save(f.head, out);
    f.ops = f.head.op_count();
  } else {
    save(f.head, spill, out);
    f.ops = spill.op_count();
  }
  return f;
}

Info summarize_capture(const std::string& path, const ImportOptions& options, ops::Trace& header, std::size_t top) {
  const char* tmp = std::getenv("TMPDIR");
  OpSpill spill(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp");
  ImportOptions o = options;
  o.spill = &spill;
  header = import_file(path, o);
  // Held in memory, or a .kmt or text form read whole: nothing was spilled.
  return spill.empty() ? summarize(header, top) : summarize(header, spill, top);
}

}  // namespace kmbench::trace
