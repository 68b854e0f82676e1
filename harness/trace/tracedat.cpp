// trace-cmd's binary trace.dat: libtracecmd formats each kmem/dma record as
// a `trace-cmd report` line (tracedat_reader.c) and the ftrace text importer
// reads those, so both paths apply the same rules.
#include <string>

#include "allocators/errors.h"
#include "harness/trace/trace.h"
#include "harness/trace/tracedat_reader.h"

namespace kmbench::trace {

ops::Trace import_tracedat(const std::string& path, const std::string& name, const ImportOptions& options) {
  std::string text;
  int cpus = 0;
  char err[256] = {};
  const auto append = [](void* ctx, const char* line, std::size_t len) {
    auto* out = static_cast<std::string*>(ctx);
    out->append(line, len);
    out->push_back('\n');
  };
  if (kmb_tracedat_read(path.c_str(), append, &text, &cpus, err, sizeof err) != 0) {
    throw InputError(name, err);
  }
  text.insert(0, "cpus=" + std::to_string(cpus > 0 ? cpus : 1) + "\n");
  ops::Trace t = import_ftrace(text, name, options);
  t.header.capture_tool = "trace-cmd trace.dat (libtracecmd)";
  return t;
}

}  // namespace kmbench::trace
