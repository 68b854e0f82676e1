// `kmbench trace`: import captures into .kmt, inspect, dump and undump traces.
#include <cmath>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "base/errors.h"
#include "base/file_io.h"
#include "harness/cli/command.h"
#include "harness/cli/import_options.h"
#include "harness/trace/trace.h"

namespace kmbench::cli {

void add_import_options(CLI::App* cmd, ImportArgs& a) {
  cmd->add_option("--format", a.format, "Input format: auto, ftrace, tracedat, dtrace, kmt, text, kpirec")
      ->capture_default_str();
  cmd->add_option("--site", a.site, "Keep allocations whose call site matches this regex (frees follow)");
  cmd->add_option("--task", a.task, "Keep allocations by this task: comm, comm-pid or pid (frees follow)");
  cmd->add_option("--from", a.from, "Drop events before this capture time (seconds)");
  cmd->add_option("--to", a.to, "Drop events after this capture time (seconds)");
  cmd->add_option("--kinds", a.kinds, "Event kinds to keep: kmalloc,cache,page,dma or all")->capture_default_str();
  cmd->add_flag("--strict", a.strict, "Unknown event names are errors instead of being skipped and counted");
  cmd->add_flag("--skip-bad-lines", a.skip_bad_lines,
                "Skip and count lines that cannot be read (a ring-buffer overrun cuts lines) instead of stopping "
                "there; the first ten are reported with file:line");
  cmd->add_flag("--no-symbols", a.no_symbols,
                "KPI recordings: leave call sites as object+offset instead of naming their functions");
  cmd->add_option("--threads", a.threads,
                  "ftrace text and trace.dat: threads parsing it beside the one merging their work (0: one per "
                  "core, less one where there are more than two; for a trace.dat, less one more for its reading "
                  "process, and none beside the merging one on two or three cores); the trace is the same for any "
                  "number")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
}

trace::ImportOptions to_options(const ImportArgs& a) {
  trace::ImportOptions o;
  o.format = trace::parse_format(a.format);
  o.filter.site_regex = a.site;
  o.filter.task = a.task;
  o.filter.from_s = a.from;
  o.filter.to_s = a.to;
  o.filter.kinds = trace::parse_kinds(a.kinds);
  o.strict = a.strict;
  o.skip_bad_lines = a.skip_bad_lines;
  o.symbols = !a.no_symbols;
  o.threads = a.threads;
  for (const auto& [flag, v] : {std::pair{"--from", a.from}, std::pair{"--to", a.to}}) {
    if (!std::isfinite(v) || (v < 0 && v != -1)) {  // NaN passed every comparison: the window was silently ignored
      throw UsageError(std::string(flag) + " " + std::to_string(v) + " is not a time in seconds from 0");
    }
  }
  if (a.from >= 0 && a.to >= 0 && a.to < a.from) throw UsageError("--to is before --from");
  return o;
}

namespace {

void print_counts(const ops::Trace& t, std::uint64_t ops, const std::string& out) {
  const trace::Info i = trace::summarize_counts(t);
  std::cerr << "kmbench trace: " << out << ": " << ops << " ops, " << i.objects << " objects, " << t.streams.size()
            << " streams; " << i.events << " events (" << i.unmatched_frees << " unmatched frees, " << i.null_frees
            << " NULL frees, " << i.never_freed << " never freed, " << i.lost_events << " lost, "
            << i.skipped_events << " skipped, " << i.filtered_events << " filtered)\n";
  if (i.bad_lines == 0) return;
  std::cerr << "kmbench trace: " << i.bad_lines << " bad lines skipped";
  std::cerr << (i.bad_lines > static_cast<std::uint64_t>(trace::kBadLinesKept) ? "; the first ten:\n" : ":\n");
  for (int n = 1; n <= trace::kBadLinesKept; ++n) {
    const auto it = t.header.metadata.find("import.bad_line." + std::to_string(n));
    if (it != t.header.metadata.end()) std::cerr << "  " << it->second << "\n";
  }
}

}  // namespace

void add_trace_command(CLI::App& app) {
  auto* trace_cmd = app.add_subcommand("trace", "Import captures into .kmt traces; inspect, dump and undump them");
  trace_cmd->require_subcommand(1);

  {
    auto args = std::make_shared<ImportArgs>();
    auto in = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto keep = std::make_shared<bool>(false);
    auto quiet = std::make_shared<bool>(false);
    auto* cmd = trace_cmd->add_subcommand(
        "import", "Convert a capture (ftrace text, trace.dat, kmbench.d output; .gz/.xz/.zst or '-' for stdin) to .kmt");
    cmd->add_option("input", *in, "Capture file, or - for stdin")->required();
    cmd->add_option("-o,--output", *out, "Output .kmt file")->required();
    add_import_options(cmd, *args);
    cmd->add_flag("--keep-partial", *keep, "On bad input, still write what was read before the error (exit 2)");
    cmd->add_flag("-q,--quiet", *quiet, "Do not print the summary line");
    cmd->callback([=] {
      base::refuse_output_over_input(*out, *in);
      trace::ImportOptions o = to_options(*args);
      o.keep_partial = *keep;
      const trace::ImportedFile f = trace::import_to_file(*in, o, *out);
      const ops::Trace& t = f.head;
      const auto err = t.header.metadata.find("import.error");
      if (err != t.header.metadata.end()) {
        throw InputError(err->second + " (partial trace kept in " + *out + ")");  // names the file
      }
      if (!*quiet) print_counts(t, f.ops, *out);
    });
  }
  {
    auto args = std::make_shared<ImportArgs>();
    auto in = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    auto top = std::make_shared<std::size_t>(10);
    auto* cmd = trace_cmd->add_subcommand("info", "Events by kind, size histogram, peak live bytes, top call sites, "
                                                  "CPUs, duration and the capture's imperfections");
    cmd->add_option("input", *in, "A .kmt trace or a raw capture (- for stdin)")->required();
    cmd->add_flag("--json", *json, "Print one JSON object");
    cmd->add_option("--top", *top, "How many call sites and tags to list")->capture_default_str();
    add_import_options(cmd, *args);
    cmd->callback([=] {
      const trace::ImportOptions o = to_options(*args);
      ops::Trace t;
      trace::Info i;
      const auto plain_kmt = [&] {
        if (*in == "-" || (o.format != trace::Format::kmt && o.format != trace::Format::auto_detect)) return false;
        const trace::Input probe(*in);
        return !probe.compressed() && trace::detect_format(probe.head(4096)) == trace::Format::kmt;
      };
      if (plain_kmt()) {
        i = trace::summarize_file(*in, t, *top);  // a batch of ops at a time: never the whole trace in memory
      } else {
        i = trace::summarize_capture(*in, o, t, *top);  // ops spilled to $TMPDIR once they outgrow memory's share
      }
      if (*json) {
        std::cout << trace::info_json(t, i) << "\n";
      } else {
        trace::print_info(t, i, std::cout);
      }
    });
  }
  {
    auto args = std::make_shared<ImportArgs>();
    auto in = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto* cmd = trace_cmd->add_subcommand("dump", "Print a trace (or a capture, imported) in the readable text form");
    cmd->add_option("input", *in, "A .kmt trace or a raw capture (- for stdin)")->required();
    cmd->add_option("-o,--output", *out, "Write the text here instead of stdout");
    add_import_options(cmd, *args);
    cmd->callback([=] {
      if (!out->empty()) base::refuse_output_over_input(*out, *in);
      const ops::Trace t = trace::import_file(*in, to_options(*args));
      if (out->empty()) {
        trace::dump(t, std::cout);
        return;
      }
      std::ostringstream text;
      trace::dump(t, text);
      base::write_file_atomic(*out, text.str());
    });
  }
  {
    auto in = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto* cmd = trace_cmd->add_subcommand("undump", "Convert the text form (from `trace dump`) back to .kmt");
    cmd->add_option("input", *in, "Text form file, or - for stdin")->required();
    cmd->add_option("-o,--output", *out, "Output .kmt file")->required();
    cmd->callback([=] {
      base::refuse_output_over_input(*out, *in);
      trace::Input text(*in);
      const ops::Trace t = trace::undump(text.bytes(), text.name());
      trace::save(t, *out);
    });
  }
  add_profile_commands(trace_cmd);
}

}  // namespace kmbench::cli
