// An import whose ops go to temporary files (OpSpill, trace::import_to_file)
// must write the .kmt an import held in memory writes, byte for byte: with
// any hold and window, any chunks and threads, filters, lost events, a
// damaged capture kept partial, and streams whose time unit only the whole
// capture decides.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "base/errors.h"
#include "harness/trace/spill.h"
#include "harness/trace/trace.h"
#include "tests/support/temp_files.h"

namespace kmbench::trace {
namespace {

const std::string kData = KMBENCH_TRACE_TEST_DATA;

using test_support::read_file;
using test_support::temp_dir;

std::string temp_path(const std::string& name) { return test_support::temp_path("spill", name); }
std::string write_text(const std::string& name, const std::string& text) {
  return test_support::write_file(temp_path(name), text);
}

/// The .kmt written through a spill of `hold` and `window` ops.
std::string spilled(const std::string& capture, ImportOptions o, std::size_t hold, std::size_t window) {
  OpSpill spill(temp_dir(), hold, window);
  o.spill = &spill;
  const ops::Trace head = import_file(capture, o);
  const std::string out = temp_path("spilled.kmt");
  if (spill.empty()) {
    save(head, out);
  } else {
    EXPECT_EQ(head.op_count(), 0u) << "a spilled import holds no ops";
    save(head, spill, out);
  }
  std::string bytes = read_file(out);
  std::remove(out.c_str());
  return bytes;
}

/// Checks holds of none, some and all of the capture, windows of 1 op to
/// the default, on one thread and on three with small chunks. A format read
/// by one thread whatever the options (trace.dat) is checked at fewer holds
/// and windows (`few`): each import of one costs a second under ASan.
void expect_spills_write_what_memory_writes(const std::string& capture, ImportOptions o, const std::string& what,
                                            bool few = false) {
  const std::string whole = encode(import_file(capture, o));
  using Case = std::tuple<std::size_t, std::size_t, unsigned>;
  const std::vector<Case> every = {{0, 1, 1},
                                   {0, 7, 3},
                                   {1000, 64, 1},
                                   {5000, 4096, 3},
                                   {OpSpill::kHold, OpSpill::kWindow, 0},
                                   {0, OpSpill::kWindow, 0}};
  const std::vector<Case> some = {{0, 7, 0}, {1000, 64, 0}, {0, OpSpill::kWindow, 0}};
  for (const auto& [hold, window, threads] : few ? some : every) {
    o.threads = threads;
    o.chunk_bytes = threads > 1 ? 4096 : 0;
    const std::string bytes = spilled(capture, o, hold, window);
    EXPECT_EQ(bytes.size(), whole.size()) << what << ": hold " << hold << ", window " << window;
    EXPECT_TRUE(bytes == whole) << what << ": hold " << hold << ", window " << window << ", " << threads << " threads";
  }
}

TEST(OpSpill, ARealCaptureWritesTheSameBytesAsAnImportInMemory) {
  expect_spills_write_what_memory_writes(kData + "/ftrace-sample.txt.xz", {}, "sample");
  ImportOptions o;
  o.filter.site_regex = "alloc_skb|kmem_cache";
  o.filter.kinds = kKindKmalloc | kKindCache;
  expect_spills_write_what_memory_writes(kData + "/ftrace-sample.txt.xz", o, "sample, filtered");
}

TEST(OpSpill, AnImperfectFtraceCaptureWritesTheSameBytes) {
  expect_spills_write_what_memory_writes(kData + "/imperfect.ftrace", {}, "imperfect ftrace");
}

TEST(OpSpill, ADtraceCaptureWritesTheSameBytes) {
  expect_spills_write_what_memory_writes(kData + "/sample.dtrace", {}, "dtrace");
}

TEST(OpSpill, ATraceDatCaptureWritesTheSameBytes) {
  expect_spills_write_what_memory_writes(kData + "/small-trace.dat", {}, "trace.dat", true);
}

TEST(OpSpill, ATraceDatCapturesInstanceBufferWritesTheSameBytes) {
  expect_spills_write_what_memory_writes(kData + "/instance-trace.dat", {}, "trace.dat, instance buffer", true);
}

TEST(OpSpill, AStreamsTimeUnitCountsItsFirstTimeFromTheWholeCapturesStart) {
  // CPU 1's times step by 6 us but start 3 us after CPU 0's first event: its
  // unit is 3 us, which neither its steps nor its own start say alone; CPU 2
  // steps by 1 ns.
  const std::string text =
      "# tracer: nop\n"
      "   a-1 [000] ..... 1.000000: kmalloc: call_site=f+0x1 ptr=0x10 "
      "bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL\n"
      "   a-1 [001] ..... 1.000003: kmalloc: call_site=f+0x1 ptr=0x20 "
      "bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL\n"
      "   a-1 [001] ..... 1.000009: kfree: call_site=g+0x1 ptr=0x20\n"
      "   a-1 [001] ..... 1.000015: kmalloc: call_site=f+0x1 ptr=0x30 "
      "bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL\n"
      "   a-1 [002] ..... 1.000015001: kfree: call_site=g+0x1 ptr=0x30\n"
      "   a-1 [002] ..... 1.000015002: kfree: call_site=g+0x1 ptr=0x10\n";
  const std::string path = write_text("units.txt", text);
  expect_spills_write_what_memory_writes(path, {}, "units");
  std::remove(path.c_str());
}

TEST(OpSpill, ADamagedCaptureKeptPartialWritesTheSameBytes) {
  std::string text(Input(kData + "/ftrace-sample.txt.xz").bytes());
  text.insert(text.find('\n', text.size() / 2) + 1, "this is not an event line\n");
  const std::string path = write_text("damaged.txt", text);
  ImportOptions o;
  o.keep_partial = true;
  expect_spills_write_what_memory_writes(path, o, "kept partial");
  o.keep_partial = false;
  o.skip_bad_lines = true;
  expect_spills_write_what_memory_writes(path, o, "bad lines skipped");
  std::remove(path.c_str());
}

TEST(OpSpill, ASpilledTraceSummarizesAsTheTraceInMemory) {
  const std::string capture = kData + "/ftrace-sample.txt.xz";
  const ops::Trace t = import_file(capture);
  const std::string want = info_json(t, summarize(t, 1000));
  for (const std::size_t window : {std::size_t{1}, std::size_t{100}, OpSpill::kWindow}) {
    OpSpill spill(temp_dir(), 0, window);
    ImportOptions o;
    o.spill = &spill;
    const ops::Trace head = import_file(capture, o);
    EXPECT_EQ(info_json(head, summarize(head, spill, 1000)), want) << "window " << window;
  }
  ops::Trace header;
  EXPECT_EQ(info_json(header, summarize_capture(capture, {}, header, 1000)), want);
}

TEST(OpSpill, ImportToFileWritesWhatSaveWritesAndCountsTheOps) {
  const std::string capture = kData + "/ftrace-sample.txt.xz";
  const ops::Trace t = import_file(capture);
  const std::string out = temp_path("to-file.kmt");
  const ImportedFile f = import_to_file(capture, {}, out);
  EXPECT_EQ(f.ops, t.op_count());
  EXPECT_EQ(f.head.counters, t.counters);
  EXPECT_TRUE(read_file(out) == encode(t));
  // A .kmt in is a .kmt out.
  const std::string again = temp_path("again.kmt");
  EXPECT_EQ(import_to_file(out, {}, again).ops, t.op_count());
  EXPECT_TRUE(read_file(again) == encode(t));
  std::remove(out.c_str());
  std::remove(again.c_str());
}

TEST(OpSpill, AFolderThatCannotHoldTheSpillIsNamed) {
  ImportOptions o;
  OpSpill spill("/nonexistent-kmbench-folder", 0, 16);
  o.spill = &spill;
  try {
    import_file(kData + "/ftrace-sample.txt.xz", o);
    FAIL() << "no error";
  } catch (const RunError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-kmbench-folder: cannot "
                                         "create a temporary file for the "
                                         "import's operations"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace kmbench::trace
