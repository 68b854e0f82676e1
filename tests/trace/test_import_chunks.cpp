// The ftrace text importer cuts the text into chunks that threads parse apart
// and one merges in order. Whatever the chunks and threads, the trace must be
// the one a single pass over the whole text gives, byte for byte, and so must
// every error, with its line number.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <utility>

#include "base/errors.h"
#include "harness/trace/trace.h"
#include "tests/support/temp_files.h"

namespace kmbench::trace {
namespace {

const std::string kData = KMBENCH_TRACE_TEST_DATA;

/// The encoded trace, or "error: " and the message.
std::string outcome(const std::string& text, ImportOptions o) {
  try {
    const ops::Trace t = import_ftrace(text, "t.txt", o);
    return encode(t);
  } catch (const InputError& e) {
    return std::string("error: ") + e.what();
  }
}

/// Checks cuts of `text` into chunks of 1 byte (one line each) to 64 KiB, on
/// 2 and 3 parsing threads, against one chunk on one thread.
void expect_any_cut_reads_as_one(const std::string& text, ImportOptions o, const std::string& what) {
  o.threads = 1;
  o.chunk_bytes = text.size() + 1;
  const std::string whole = outcome(text, o);
  const std::pair<unsigned, std::size_t> cuts[] = {{3, 1}, {2, 97}, {3, 4096}, {2, 65536}};
  for (const auto& [threads, chunk] : cuts) {
    o.threads = threads;
    o.chunk_bytes = chunk;
    const std::string cut = outcome(text, o);
    EXPECT_EQ(cut.size(), whole.size()) << what << ": " << threads << " threads, chunks of " << chunk;
    EXPECT_TRUE(cut == whole) << what << ": " << threads << " threads, chunks of " << chunk << "\n"
                              << cut.substr(0, 300) << "\nwant\n" << whole.substr(0, 300);
  }
}

std::string sample() { return std::string(Input(kData + "/ftrace-sample.txt.xz").bytes()); }

TEST(FtraceChunks, ARealCaptureReadsTheSameInAnyChunks) {
  const std::string text = sample();
  expect_any_cut_reads_as_one(text, {}, "sample");
  // The trace holds what every chunk met: call sites and cache names by
  // first appearance, counters, the slab slack table.
  ImportOptions o;
  o.threads = 3;
  o.chunk_bytes = 1000;
  const ops::Trace t = import_ftrace(text, "t.txt", o);
  EXPECT_GT(t.op_count(), 19000u);
  EXPECT_GT(t.strings.size(), 50u);
}

TEST(FtraceChunks, FiltersReadTheSameInAnyChunks) {
  ImportOptions o;
  o.filter.site_regex = "alloc_skb|kmem_cache";
  expect_any_cut_reads_as_one(sample(), o, "site filter");
  o = {};
  o.filter.kinds = kKindPage | kKindCache;
  o.filter.from_s = 0.5;
  expect_any_cut_reads_as_one(sample(), o, "kinds and window");
}

TEST(FtraceChunks, CrlfLinesAndALineLongerThanAChunk) {
  const std::string text = sample();
  std::string crlf;
  for (const char ch : text) {
    if (ch == '\n') crlf += '\r';
    crlf += ch;
  }
  expect_any_cut_reads_as_one(crlf, {}, "CRLF");
  // A comment line of 200 KiB: longer than several chunks, it makes one of its own.
  const std::string huge = text.substr(0, 100000) + "# " + std::string(200 * 1024, 'x') + "\n" + text.substr(100000);
  expect_any_cut_reads_as_one(huge, {}, "one huge line");
}

std::string damaged() {
  const std::string text = sample();
  std::string out;
  std::size_t n = 0;
  for (std::size_t p = 0; p < text.size();) {
    const std::size_t nl = text.find('\n', p);
    std::string l = text.substr(p, nl - p);
    p = nl + 1;
    if (++n % 211 == 0) l.resize(l.size() / 2);  // cut as a ring-buffer overrun cuts
    out += l + "\n";
  }
  return out;
}

TEST(FtraceChunks, ErrorsNameTheSameLineInAnyChunks) {
  const std::string bad = damaged();
  ASSERT_EQ(outcome(bad, {}).rfind("error: t.txt:211: ", 0), 0u) << outcome(bad, {});
  expect_any_cut_reads_as_one(bad, {}, "stops at the first bad line");
  ImportOptions o;
  o.skip_bad_lines = true;
  expect_any_cut_reads_as_one(bad, o, "skips bad lines");  // the first ten messages name the same lines
  o = {};
  o.keep_partial = true;
  expect_any_cut_reads_as_one(bad, o, "keeps what came before");
  // A last line without its newline, in the last of many chunks.
  const std::string cut = sample() + "   bash-1 [000] .....   9.0: kmal";
  expect_any_cut_reads_as_one(cut, {}, "cut last line");
  o = {};
  o.skip_bad_lines = true;
  expect_any_cut_reads_as_one(cut, o, "cut last line, skipped");
}

TEST(FtraceChunks, LinesThatAreNotEventsAreCountedOnce) {
  // Lost-event markers, unknown events and "#P:" met in different chunks; the
  // last "#P:" holds (the sample's own header says 2).
  std::string text;
  const std::string s = sample();
  text += s.substr(0, s.find('\n', 30000) + 1);
  text += "# entries-in-buffer/entries-written: 1/1   #P:4\n";
  text += "CPU:1 [LOST 12 EVENTS]\nCPU:0 [232250 EVENTS DROPPED]\n";
  // trace-cmd report: an instance's buffer named first, and a loss of unknown size.
  text += "kmbench-test: CPU:1 [7 EVENTS DROPPED]\nCPU:0 [EVENTS DROPPED]\n";
  text += "   bash-1 [000] .....   9.000001: some_unknown_event: x=1\n";
  text += s.substr(s.find('\n', 30000) + 1);
  text += "CPU:3 [LOST 5 EVENTS]\n";
  expect_any_cut_reads_as_one(text, {}, "markers");
  ImportOptions o;
  o.threads = 2;
  o.chunk_bytes = 512;
  const ops::Trace t = import_ftrace(text, "t.txt", o);
  EXPECT_EQ(t.counters.at("import.lost_events"), 12u + 232250u + 7u + 5u);
  EXPECT_EQ(t.counters.at("import.lost_markers"), 5u);
  EXPECT_EQ(t.counters.at("import.skipped.some_unknown_event"), 1u);
  EXPECT_EQ(t.header.cpu_count, 4u);
}

TEST(FtraceChunks, EmptyAndTinyInputs) {
  for (const std::string text : {"", "\n", "# only a comment\n", "junk"}) {
    expect_any_cut_reads_as_one(text, {}, "'" + text + "'");
    ImportOptions o;
    o.keep_partial = true;
    expect_any_cut_reads_as_one(text, o, "'" + text + "', keep partial");
  }
}

// A file read in chunks by threads: the same trace as the text in memory read whole.
TEST(FtraceChunks, AFileOnThreadsReadsAsTheTextInMemory) {
  const std::string text = sample();
  test_support::TempFiles files("chunks");
  const std::string path = files.path("chunks.txt");
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  ImportOptions o;
  o.threads = 2;
  o.chunk_bytes = 8192;
  ImportOptions whole;
  whole.threads = 1;
  whole.chunk_bytes = text.size() + 1;
  EXPECT_TRUE(encode(import_file(path, o)) == encode(import_ftrace(text, path, whole)));
  // The compressed capture, decoded as the threads read it.
  EXPECT_TRUE(encode(import_file(kData + "/ftrace-sample.txt.xz", o)) ==
              encode(import_ftrace(text, kData + "/ftrace-sample.txt.xz", whole)));
}

}  // namespace
}  // namespace kmbench::trace
