#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "base/errors.h"
#include "harness/trace/trace.h"
#include "harness/trace/tracedat_reader.h"
#include "ops/size_classes.h"
#include "tests/support/temp_files.h"

namespace kmbench::trace {
namespace {

const std::string kData = KMBENCH_TRACE_TEST_DATA;

std::uint64_t c(const ops::Trace& t, const std::string& key) {
  const auto it = t.counters.find("import." + key);
  return it == t.counters.end() ? ~0ull : it->second;
}

const ops::Op* find_op(const ops::Trace& t, ops::OpKind kind, std::uint64_t size) {
  for (const ops::Stream& s : t.streams) {
    for (const ops::Op& op : s.ops) {
      if (op.kind == kind && op.size == size) return &op;
    }
  }
  return nullptr;
}

std::string site_of(const ops::Trace& t, const ops::Op* op) { return op ? t.strings[op->site] : "(no op)"; }

TEST(FtraceImport, CountsEveryImperfectionAndKeepsGoing) {
  const ops::Trace t = import_file(kData + "/imperfect.ftrace");
  EXPECT_EQ(c(t, "events"), 14u);
  EXPECT_EQ(c(t, "allocs"), 7u);
  EXPECT_EQ(c(t, "frees"), 5u);
  EXPECT_EQ(c(t, "null_frees"), 1u);
  EXPECT_EQ(c(t, "unmatched_frees"), 2u);
  EXPECT_EQ(c(t, "page_allocs"), 2u);
  EXPECT_EQ(c(t, "page_frees"), 2u);
  EXPECT_EQ(c(t, "never_freed"), 3u);
  EXPECT_EQ(c(t, "peak_live_bytes"), 20576u);
  EXPECT_EQ(c(t, "failed_allocs"), 1u);
  EXPECT_EQ(c(t, "pointer_reuse"), 1u);
  EXPECT_EQ(c(t, "out_of_order"), 1u);
  EXPECT_EQ(c(t, "clamped_times"), 1u);
  EXPECT_EQ(c(t, "lost_events"), 17u);
  EXPECT_EQ(c(t, "dma_events"), 4u);
  EXPECT_EQ(c(t, "skipped_events"), 1u);
  EXPECT_EQ(c(t, "skipped.rss_stat"), 1u);
  EXPECT_EQ(t.object_count, 9u);
  EXPECT_EQ(t.op_count(), 14u);
  EXPECT_EQ(t.header.cpu_count, 4u);
  EXPECT_EQ(t.header.time_base_ns, 100000100000u);
  ASSERT_EQ(t.streams.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(t.streams[i].cpu, i);
}

// The kernel's own slack: bytes_req and bytes_alloc of the slab allocations
// (not pages, not the failed one), by class of bytes_req, counted by hand.
TEST(FtraceImport, SlabSlackIsSummedBySizeClassAndSurvivesKmtAndText) {
  const ops::Trace t = import_file(kData + "/imperfect.ftrace");
  const std::uint64_t want[][4] = {{1, 1, 30, 32}, {2, 1, 64, 64}, {3, 1, 100, 128}, {4, 2, 400, 512}};
  for (int k = 0; k < ops::kPagesClass; ++k) {
    std::uint64_t allocs = 0, req = 0, alloc = 0;
    for (const auto& w : want) {
      if (static_cast<int>(w[0]) == k) std::tie(allocs, req, alloc) = std::tuple(w[1], w[2], w[3]);
    }
    EXPECT_EQ(t.counters.at(ops::slab_slack_counter(k, "allocs")), allocs) << k;
    EXPECT_EQ(t.counters.at(ops::slab_slack_counter(k, "bytes_req")), req) << k;
    EXPECT_EQ(t.counters.at(ops::slab_slack_counter(k, "bytes_alloc")), alloc) << k;
  }
  const std::string bytes = encode(t);
  const ops::Trace back = decode(bytes.data(), bytes.size(), "t.kmt");
  EXPECT_EQ(back.counters, t.counters);
  std::ostringstream text;
  dump(t, text);
  EXPECT_EQ(undump(text.str(), "t.txt").counters, t.counters);
  const Info info = summarize(back);
  ASSERT_TRUE(info.slab_slack_recorded);
  ASSERT_EQ(info.slab_slack.size(), 4u);
  EXPECT_EQ(info.slab_slack[3].name, "le256");
  EXPECT_EQ(info.slab_slack[3].max_bytes, 256u);
  EXPECT_EQ(info.slab_slack[3].bytes_alloc, 512u);
  EXPECT_NE(info_json(back, info).find("\"slab_slack\": {"), std::string::npos);
}

// A .kmt written before the counters were kept, and captures without
// bytes_alloc (DTrace), read as "not recorded", never as zero slack.
TEST(FtraceImport, SlabSlackOfOlderTracesIsNotRecorded) {
  ops::Trace t = import_file(kData + "/imperfect.ftrace");
  std::erase_if(t.counters, [](const auto& kv) { return kv.first.starts_with("import.slab_slack."); });
  const std::string bytes = encode(t);
  const ops::Trace old = decode(bytes.data(), bytes.size(), "old.kmt");
  Info info = summarize(old);
  EXPECT_FALSE(info.slab_slack_recorded);
  EXPECT_NE(info_json(old, info).find("\"slab_slack\": null"), std::string::npos);
  std::ostringstream out;
  print_info(old, info, out);
  EXPECT_NE(out.str().find("kernel slack  not recorded"), std::string::npos);
  const ops::Trace dtrace = import_file(kData + "/sample.dtrace");
  EXPECT_FALSE(summarize(dtrace).slab_slack_recorded);
}

TEST(FtraceImport, FreesCarryTheAllocationsSizeAndTag) {
  const ops::Trace t = import_file(kData + "/imperfect.ftrace");
  // kmem_cache_free has no size: it comes from the kmem_cache_alloc (bytes_req 200).
  const ops::Op* free_op = find_op(t, ops::OpKind::free, 200);
  ASSERT_NE(free_op, nullptr);
  EXPECT_EQ(t.strings[free_op->tag], "drv_cache");
  EXPECT_EQ(site_of(t, free_op), "rcu_do_batch+0x1/0x2");
  const ops::Op* alloc_op = find_op(t, ops::OpKind::alloc, 200);
  ASSERT_NE(alloc_op, nullptr);
  EXPECT_EQ(alloc_op->object, free_op->object);
  EXPECT_EQ(alloc_op->node, 0);
  EXPECT_TRUE(alloc_op->flags & ops::kOpNoblock);  // GFP_ATOMIC
  EXPECT_TRUE(alloc_op->flags & ops::kOpCache);
  const ops::Op* zeroed = find_op(t, ops::OpKind::alloc, 100);
  ASSERT_NE(zeroed, nullptr);
  EXPECT_TRUE(zeroed->flags & ops::kOpZero);
  EXPECT_FALSE(zeroed->flags & ops::kOpNoblock);
  // Pages match by pfn; order 2 is 16 KiB.
  const ops::Op* page_free = find_op(t, ops::OpKind::page_free, 16384);
  ASSERT_NE(page_free, nullptr);
  EXPECT_EQ(page_free->object, find_op(t, ops::OpKind::page_alloc, 16384)->object);
  EXPECT_TRUE(find_op(t, ops::OpKind::page_alloc, 4096)->flags & ops::kOpDma32);
  // DMA: mapped by dma_addr; direction kept; device is the tag.
  const ops::Op* map = find_op(t, ops::OpKind::dma_map, 1500);
  ASSERT_NE(map, nullptr);
  EXPECT_TRUE(map->flags & ops::kOpDirOut);
  EXPECT_EQ(t.strings[map->tag], "0000:00:03.0");
  ASSERT_NE(find_op(t, ops::OpKind::dma_unmap, 1500), nullptr);
  ASSERT_NE(find_op(t, ops::OpKind::dma_free, 8192), nullptr);
}

TEST(FtraceImport, TimesAreRelativeAndNonDecreasingPerStream) {
  const ops::Trace t = import_file(kData + "/ftrace-sample.txt.xz");
  EXPECT_EQ(c(t, "events"), 19999u);
  for (const ops::Stream& s : t.streams) {
    for (std::size_t i = 1; i < s.ops.size(); ++i) ASSERT_LE(s.ops[i - 1].time_ns, s.ops[i].time_ns);
  }
  EXPECT_NO_THROW(validate(t, "sample"));
}

TEST(FtraceImport, EncodesToUnderAFifteenthOfTheText) {
  const Input text(kData + "/ftrace-sample.txt.xz");
  const ops::Trace t = import_ftrace(text.bytes(), "sample", {});
  const std::string kmt = encode(t);
  EXPECT_LT(kmt.size() * 15, text.bytes().size()) << kmt.size() << " bytes of .kmt for " << text.bytes().size();
}

TEST(FtraceImport, SiteFilterKeepsFreesOfSelectedBlocks) {
  ImportOptions o;
  o.filter.site_regex = "^drv_";
  const ops::Trace t = import_file(kData + "/imperfect.ftrace", o);
  // drv_alloc (x2), drv_cache (x2): 4 allocations; the frees by rcu_do_batch and drv_free follow.
  EXPECT_EQ(c(t, "allocs"), 4u);
  ASSERT_NE(find_op(t, ops::OpKind::free, 200), nullptr);
  ASSERT_NE(find_op(t, ops::OpKind::free, 64), nullptr);
  EXPECT_EQ(find_op(t, ops::OpKind::alloc, 30), nullptr);  // other_alloc is filtered out
  EXPECT_GT(c(t, "filtered_events"), 0u);
}

TEST(FtraceImport, TaskWindowAndKindFilters) {
  ImportOptions by_task;
  by_task.filter.task = "kworker/1:2";
  EXPECT_EQ(import_file(kData + "/imperfect.ftrace", by_task).op_count(), 0u);  // kworker only frees
  by_task.filter.task = "200";
  EXPECT_EQ(c(import_file(kData + "/imperfect.ftrace", by_task), "allocs"), 2u);

  ImportOptions window;
  window.filter.from_s = 100.0007;
  window.filter.to_s = 100.0010;
  const ops::Trace w = import_file(kData + "/imperfect.ftrace", window);
  EXPECT_EQ(c(w, "page_allocs"), 2u);
  EXPECT_EQ(c(w, "allocs"), 2u);

  ImportOptions pages;
  pages.filter.kinds = parse_kinds("page");
  const ops::Trace p = import_file(kData + "/imperfect.ftrace", pages);
  EXPECT_EQ(c(p, "allocs"), 2u);
  EXPECT_EQ(c(p, "dma_events"), 0u);
  EXPECT_THROW(parse_kinds("pages"), UsageError);
}

TEST(FtraceImport, StrictRefusesUnknownEvents) {
  ImportOptions o;
  o.strict = true;
  try {
    import_file(kData + "/imperfect.ftrace", o);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("imperfect.ftrace:21:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rss_stat"), std::string::npos);
  }
}

ops::Trace ftrace_text(const std::string& text) { return import_ftrace(text, "t.txt", {}); }

std::string error_of(const std::string& text) {
  try {
    ftrace_text(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(FtraceImport, BadInputNamesFileAndLine) {
  const std::string good =
      "   bash-1 [000] .....   1.000001: kmalloc: call_site=a+0x1/0x2 ptr=00000000000000aa bytes_req=8 "
      "bytes_alloc=8 gfp_flags=GFP_KERNEL node=-1 accounted=false\n";
  EXPECT_EQ(ftrace_text(good).op_count(), 1u);
  EXPECT_NE(error_of(good + "this is garbage\n").find("t.txt:2: not an ftrace event line"), std::string::npos);
  EXPECT_NE(error_of(good + good.substr(0, 60)).find("t.txt:2: truncated"), std::string::npos);
  EXPECT_NE(error_of(std::string("\x7f" "ELF\x02\x01\x01\0\0\0\n", 11)).find("t.txt:1:"), std::string::npos);
  std::string absurd = good;
  absurd.replace(absurd.find("bytes_req=8"), 11, "bytes_req=99999999999999999");
  EXPECT_NE(error_of(absurd).find("absurd"), std::string::npos) << error_of(absurd);
  std::string no_ptr = good;
  no_ptr.replace(no_ptr.find("ptr="), 4, "pt=");
  EXPECT_NE(error_of(no_ptr).find("lacks the field 'ptr'"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
}

// Lines in the kernel's own field order take a quick path; an extra field at
// the end sends the same line down the general one. Both must give the same trace.
TEST(FtraceImport, QuickAndGeneralPathsAgreeOnARealCapture) {
  const std::string text(Input(kData + "/ftrace-sample.txt.xz").bytes());
  std::string general;
  std::size_t p = 0;
  while (p < text.size()) {
    std::size_t nl = text.find('\n', p);
    if (nl == std::string::npos) nl = text.size();
    general.append(text, p, nl - p);
    if (text[p] != '#') general += " x=1";
    general += '\n';
    p = nl + 1;
  }
  const ops::Trace quick = import_ftrace(text, "t.txt", {});
  const ops::Trace slow = import_ftrace(general, "t.txt", {});
  EXPECT_GT(quick.op_count(), 1000u);
  EXPECT_EQ(encode(quick), encode(slow));
}

// A line whose head (task, CPU, flags) repeats a recent line's is read from its
// timestamp on. Leading blanks in a three-way rotation make every head new:
// the same capture must give the same trace either way.
TEST(FtraceImport, RepeatedHeadsReadAsFreshOnes) {
  const std::string text(Input(kData + "/ftrace-sample.txt.xz").bytes());
  std::string fresh;
  std::size_t line = 0;
  for (std::size_t p = 0; p < text.size(); ++line) {
    std::size_t nl = text.find('\n', p);
    if (nl == std::string::npos) nl = text.size();
    if (text[p] != '#') fresh.append(line % 3, ' ');
    fresh.append(text, p, nl - p);
    fresh += '\n';
    p = nl + 1;
  }
  EXPECT_EQ(encode(import_ftrace(text, "t.txt", {})), encode(import_ftrace(fresh, "t.txt", {})));

  // The same head, then a different CPU, then a new task; a repeated head before no timestamp is an error.
  const std::string head = "            bash-3235    [000] .....  ";
  const std::string rest = " kmalloc: call_site=a+0x1/0x2 ptr=00000000000000aa bytes_req=8 bytes_alloc=8 "
                           "gfp_flags=GFP_KERNEL node=-1 accounted=false\n";
  const std::string free = " kfree: call_site=b+0x1/0x2 ptr=00000000000000aa\n";
  const ops::Trace t = ftrace_text(head + "1715.582696:" + rest + head + "1715.582697:" + free +
                                   "            bash-3235    [001] .....  1715.582698:" + rest +
                                   "            bash-3236    [001] .....  1715.582699:" + free);
  ASSERT_EQ(t.streams.size(), 2u);
  EXPECT_EQ(t.streams[0].ops.size(), 2u);
  EXPECT_EQ(t.streams[1].ops.size(), 2u);
  EXPECT_EQ(t.streams[0].ops[1].time_ns, 1000u);
  EXPECT_EQ(t.streams[1].ops[1].time_ns, 3000u);
  const std::string bad = error_of(head + "1715.582696:" + rest + head + "x1715.582697:" + free);
  EXPECT_NE(bad.find("t.txt:2: no timestamp"), std::string::npos) << bad;
}

TEST(FtraceImport, QuickPathEdgesReadAsTheGeneralPathDoes) {
  const auto line = [](const std::string& ptr, const std::string& pfn) {
    return "   bash-1 [000] .....   1.000001: kmalloc: call_site=a+0x1/0x2 ptr=" + ptr +
           " bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL node=-1 accounted=false\n"
           "   bash-1 [000] .....   1.000002: mm_page_alloc: page=" + ptr + " pfn=0x" + pfn +
           " order=1 migratetype=0 gfp_flags=GFP_KERNEL\n";
  };
  for (const auto& [ptr, pfn] : std::vector<std::pair<std::string, std::string>>{
           {"00000000000000aa", "1"}, {"FFFF0000ABCDEF12", "1A442E"}, {"1", "ffffffffffffffff"}, {"(nil)", "0"}}) {
    // Twice: the first gfp_flags value is learnt by the general path, then the quick one reads the rest.
    const std::string text = line(ptr, pfn) + line(ptr, pfn);
    std::string general = text;
    for (std::size_t at = general.find('\n'); at != std::string::npos; at = general.find('\n', at + 6)) {
      general.insert(at, " x=1");
    }
    EXPECT_EQ(encode(ftrace_text(text)), encode(ftrace_text(general))) << ptr << " " << pfn;
  }
  // Seventeen digits do not fit: the same error either way, also at the very end of the text.
  const std::string long_ptr = line("10000000000000000", "1");
  EXPECT_NE(error_of(long_ptr).find("t.txt:1: bad ptr"), std::string::npos) << error_of(long_ptr);
  EXPECT_NE(error_of(long_ptr.substr(0, long_ptr.find('\n') + 1)).find("t.txt:1: bad ptr"), std::string::npos);
  const std::string bad_digit = line("00000000000000g1", "1");
  EXPECT_NE(error_of(bad_digit).find("t.txt:1: bad ptr"), std::string::npos) << error_of(bad_digit);
}

// A file is read a window (512 KiB) at a time: lines cut by a window's end,
// a line longer than a window and a last line without its newline read as the
// same text in memory does.
TEST(FtraceImport, AFileReadsInWindowsAsTheTextInMemory) {
  const std::string sample(Input(kData + "/ftrace-sample.txt.xz").bytes());
  test_support::TempFiles files("import");
  const std::string path = files.path("windows.txt");
  const auto write = [&](const std::string& text) { std::ofstream(path, std::ios::binary) << text; };

  std::string text = sample + "# " + std::string(1300 * 1024, 'x') + "\n" + sample;
  write(text);
  const ops::Trace from_file = import_file(path);
  EXPECT_GT(from_file.op_count(), 2000u);
  EXPECT_EQ(encode(from_file), encode(import_ftrace(text, path, {})));
  // The windows fall elsewhere without the long line, which is a comment: the same trace.
  EXPECT_EQ(encode(from_file), encode(import_ftrace(sample + sample, path, {})));

  text.resize(text.size() - 30);  // cut inside the last line
  write(text);
  const std::size_t lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  try {
    import_file(path);
    ADD_FAILURE() << "a cut last line was read";
  } catch (const InputError& e) {
    const std::string want = path + ":" + std::to_string(lines) + ": truncated";
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
}

TEST(FtraceImport, KeepPartialReturnsWhatCameBefore) {
  const std::string good =
      "   bash-1 [000] .....   1.000001: kmalloc: call_site=a+0x1/0x2 ptr=00000000000000aa bytes_req=8 "
      "bytes_alloc=8 gfp_flags=GFP_KERNEL node=-1 accounted=false\n";
  ImportOptions o;
  o.keep_partial = true;
  const ops::Trace t = import_ftrace(good + "junk\n" + good, "t.txt", o);
  EXPECT_EQ(t.op_count(), 1u);
  EXPECT_NE(t.header.metadata.at("import.error").find("t.txt:2:"), std::string::npos);
}

// A ring-buffer overrun cuts lines in the middle of a capture. With
// skip_bad_lines each damaged line is skipped and counted, the first ten
// named by file:line, and the rest of the capture reads as if the damaged
// lines had never been there.
TEST(FtraceImport, SkipBadLinesReadsAroundDamageInTheMiddle) {
  const std::string text(Input(kData + "/ftrace-sample.txt.xz").bytes());
  std::string damaged, without;
  std::vector<std::uint64_t> bad_line_numbers;
  std::uint64_t line = 0, kmallocs = 0, out_line = 0;
  for (std::size_t p = 0; p < text.size();) {
    const std::size_t nl = text.find('\n', p);
    const std::string_view l(text.data() + p, nl - p);
    p = nl + 1;
    ++line;
    const std::size_t ptr = l.find(" ptr=");
    if (l.find(" kmalloc: ") != std::string_view::npos && ptr != std::string_view::npos && ++kmallocs % 97 == 0) {
      damaged.append(l.substr(0, ptr + 9)).append("\n");  // cut after four hex digits of the pointer
      bad_line_numbers.push_back(++out_line);
      if (bad_line_numbers.size() % 4 == 0) {
        damaged.append("\x01\x7f[overrun]\n");
        bad_line_numbers.push_back(++out_line);
      }
      continue;
    }
    damaged.append(l).append("\n");
    without.append(l).append("\n");
    ++out_line;
  }
  ASSERT_GT(bad_line_numbers.size(), static_cast<std::size_t>(kBadLinesKept)) << "too little damage to test the cap";

  EXPECT_NE(error_of(damaged).find("t.txt:" + std::to_string(bad_line_numbers[0]) + ":"), std::string::npos)
      << "by default the first bad line stops the import";
  ImportOptions skip;
  skip.skip_bad_lines = true;
  const ops::Trace t = import_ftrace(damaged, "t.txt", skip);
  const ops::Trace clean = import_ftrace(without, "t.txt", {});
  EXPECT_EQ(c(t, "bad_lines"), bad_line_numbers.size());
  for (int n = 1; n <= kBadLinesKept + 1; ++n) {
    const auto it = t.header.metadata.find("import.bad_line." + std::to_string(n));
    if (n > kBadLinesKept) {
      EXPECT_EQ(it, t.header.metadata.end()) << "only the first ten are kept";
      continue;
    }
    ASSERT_NE(it, t.header.metadata.end()) << n;
    EXPECT_EQ(it->second.rfind("t.txt:" + std::to_string(bad_line_numbers[n - 1]) + ": ", 0), 0u) << it->second;
  }
  ASSERT_EQ(t.streams.size(), clean.streams.size());
  EXPECT_EQ(t.object_count, clean.object_count);
  for (std::size_t s = 0; s < t.streams.size(); ++s) {
    ASSERT_EQ(t.streams[s].ops.size(), clean.streams[s].ops.size()) << "stream " << s;
    EXPECT_EQ(std::memcmp(t.streams[s].ops.data(), clean.streams[s].ops.data(),
                          t.streams[s].ops.size() * sizeof(ops::Op)),
              0)
        << "stream " << s;
  }
  for (const auto& [key, n] : clean.counters) {
    EXPECT_EQ(c(t, key.substr(7)), n) << key;
  }
  const Info info = summarize_counts(t);
  EXPECT_EQ(info.bad_lines, bad_line_numbers.size());
  std::ostringstream printed;
  print_info(t, info, printed);
  EXPECT_NE(printed.str().find("bad lines     " + std::to_string(bad_line_numbers.size())), std::string::npos);

  const ops::Trace cut_at_end = import_ftrace(without + "   bash-1 [000] .....   9.0: kmal", "t.txt", skip);
  EXPECT_EQ(c(cut_at_end, "bad_lines"), 1u) << "a last line without its newline is one more bad line";
}

TEST(DtraceImport, SkipBadLinesKeepsTheRecordsAround) {
  const std::string head = "#kmbench-dtrace 1\n";
  const std::string text = head + "1 0 5 IOMalloc size=16 ptr=0x10 exec=x\n2 0 5 IOFree ptr=zz exec=x\n" +
                           "3 0 5 IOFree size=16 ptr=0x10 exec=x\n";
  ImportOptions skip;
  skip.skip_bad_lines = true;
  const ops::Trace t = import_dtrace(text, "d.txt", skip);
  EXPECT_EQ(t.op_count(), 2u);
  EXPECT_EQ(c(t, "bad_lines"), 1u);
  EXPECT_EQ(t.header.metadata.at("import.bad_line.1").rfind("d.txt:3: ", 0), 0u);
}

/// The same capture through `trace-cmd report` gives the same trace; false
/// when trace-cmd is not installed.
bool agrees_with_its_report(const ops::Trace& t, const std::string& dat) {
  // A file of this process and capture's own: ctest runs other tests calling this at the same time.
  test_support::TempFiles files("import");
  const std::string report = files.path("report-" + dat.substr(dat.rfind('/') + 1) + ".txt");
  const std::string cmd = "trace-cmd report -i " + dat + " > " + report + " 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) return false;
  const ops::Trace r = import_file(report);
  for (const char* k : {"events", "allocs", "frees", "null_frees", "unmatched_frees", "page_allocs", "page_frees",
                        "never_freed", "peak_live_bytes", "lost_events"}) {
    EXPECT_EQ(c(t, k), c(r, k)) << dat << ": " << k;
  }
  EXPECT_EQ(t.op_count(), r.op_count()) << dat;
  return true;
}

TEST(TraceDatImport, AgreesWithTheTextOfTheSameCapture) {
  const ops::Trace t = import_file(kData + "/small-trace.dat");
  EXPECT_EQ(detect_format(std::string_view("\x17\x08\x44tracing6", 11)), Format::tracedat);
  EXPECT_GT(c(t, "events"), 500u);
  EXPECT_GT(c(t, "lost_events"), 0u);
  EXPECT_EQ(t.header.cpu_count, 2u);
  EXPECT_NO_THROW(validate(t, "small"));
  if (!agrees_with_its_report(t, kData + "/small-trace.dat")) GTEST_SKIP() << "trace-cmd is not installed";
}

// `trace-cmd record -B NAME` and `trace-cmd extract -B NAME` keep the events
// in an instance's buffer; the top buffer of this file is empty.
TEST(TraceDatImport, ReadsTheEventsOfEveryBuffer) {
  const ops::Trace t = import_file(kData + "/instance-trace.dat");
  EXPECT_GT(c(t, "events"), 1000u);
  EXPECT_GT(t.op_count(), 500u);
  EXPECT_EQ(t.header.cpu_count, 2u);
  EXPECT_NO_THROW(validate(t, "instance"));
  if (!agrees_with_its_report(t, kData + "/instance-trace.dat")) GTEST_SKIP() << "trace-cmd is not installed";
}

// LeakSanitizer's switches, present in a sanitizer build only.
extern "C" void __lsan_disable() __attribute__((weak));
extern "C" void __lsan_enable() __attribute__((weak));

/// The lines the trace.dat reader writes for `dat`, `checked` as kmb_tracedat_set_checked takes it.
/// It runs here, not in the import's child: libtraceevent 1.7's event parser
/// leaks a few bytes, which LeakSanitizer is told to let pass.
std::vector<std::string> tracedat_lines(const std::string& dat, int checked) {
  std::vector<std::string> lines;
  if (__lsan_disable) __lsan_disable();
  kmb_tracedat_set_checked(checked);
  int cpus = 0, reader = 0;
  char err[256] = {};
  const auto add = [](void* ctx, const char* line, std::size_t len) {
    static_cast<std::vector<std::string>*>(ctx)->emplace_back(line, len);
  };
  EXPECT_EQ(kmb_tracedat_read(dat.c_str(), add, &lines, &cpus, &reader, err, sizeof err), 0) << err;
  kmb_tracedat_set_checked(64);
  if (__lsan_enable) __lsan_enable();
  return lines;
}

// The kmem lines written from the records' fields, none of them checked
// against libtraceevent, are the lines libtraceevent writes, byte for byte;
// a kmem event the importer does not read is its head and name.
TEST(TraceDatImport, LinesWrittenFromTheFieldsAreLibtraceeventsLines) {
  for (const char* file : {"/small-trace.dat", "/instance-trace.dat"}) {
    const std::vector<std::string> fast = tracedat_lines(kData + file, 0);
    const std::vector<std::string> slow = tracedat_lines(kData + file, -1);
    ASSERT_EQ(fast.size(), slow.size()) << file;
    std::size_t written = 0;  // slab and page events written from their fields
    for (std::size_t i = 0; i < fast.size(); ++i) {
      if (fast[i] == slow[i]) {
        written += fast[i].find(" call_site=") != std::string::npos || fast[i].find(" pfn=0x") != std::string::npos;
        continue;
      }
      // Only the events the importer skips by name lose their fields.
      ASSERT_EQ(fast[i].back(), ':') << file << " line " << i << "\n" << fast[i] << "\n" << slow[i];
      ASSERT_EQ(slow[i].rfind(fast[i] + " ", 0), 0u) << file << " line " << i;
    }
    EXPECT_GT(written, 500u) << file;
  }
}

TEST(TraceDatImport, JunkIsAnInputError) {
  test_support::TempFiles files("import");
  const std::string path = files.path("junk.dat");
  std::ofstream(path) << std::string("\x17\x08\x44tracing6\0\0\0garbage", 22);
  try {
    import_file(path);
    FAIL() << "junk was imported";
  } catch (const InputError& e) {
    // Why neither reader took it, and no errno libtracecmd left behind ("No such file or directory").
    EXPECT_EQ(std::string(e.what()),
              path + ": not a readable trace-cmd trace.dat: libtracecmd cannot open it (not version 7)");
  }
}

TEST(TraceDatImport, AFileThatKillsLibtracecmdIsAnInputError) {
  // kmbench's own reader finds the compression's version unterminated.
  try {
    import_file(kData + "/damaged-trace.dat");
    FAIL() << "a damaged trace.dat was imported";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not a readable trace-cmd trace.dat: its header is cut short"),
              std::string::npos)
        << e.what();
  }
  // libtracecmd 3.1.6 frees this file's compression name twice; its child dies, the import does not.
  ::setenv("KMBENCH_TRACEDAT_READER", "libtracecmd", 1);
  try {
    import_file(kData + "/damaged-trace.dat");
    ::unsetenv("KMBENCH_TRACEDAT_READER");
    FAIL() << "a damaged trace.dat was imported";
  } catch (const InputError& e) {
    ::unsetenv("KMBENCH_TRACEDAT_READER");
    // Where the allocator lets the double free pass (ThreadSanitizer's), libtracecmd refuses the file instead.
    const std::string what = e.what();
    EXPECT_TRUE(what.find("damaged or not a trace-cmd trace.dat") != std::string::npos ||
                what.find("not a readable trace-cmd trace.dat") != std::string::npos)
        << what;
    EXPECT_EQ(what.rfind(kData + "/damaged-trace.dat: ", 0), 0u) << what;
  }
  // and the next file reads as if nothing had happened
  EXPECT_GT(c(import_file(kData + "/small-trace.dat"), "events"), 500u);
}

TEST(DtraceImport, ReadsTheDocumentedFormat) {
  const ops::Trace t = import_file(kData + "/sample.dtrace");
  EXPECT_EQ(t.header.source, "dtrace");
  EXPECT_EQ(t.header.metadata.at("kext"), "com.example.nic");
  EXPECT_EQ(c(t, "events"), 10u);
  EXPECT_EQ(c(t, "allocs"), 5u);
  EXPECT_EQ(c(t, "frees"), 4u);
  EXPECT_EQ(c(t, "null_frees"), 1u);
  EXPECT_EQ(c(t, "unmatched_frees"), 1u);
  EXPECT_EQ(c(t, "never_freed"), 2u);
  EXPECT_EQ(c(t, "peak_live_bytes"), 6044u);
  EXPECT_EQ(c(t, "dma_events"), 4u);
  const ops::Op* osm = find_op(t, ops::OpKind::alloc, 256);
  ASSERT_NE(osm, nullptr);
  EXPECT_EQ(t.strings[osm->tag], "com.example.nic.rx");
  EXPECT_EQ(t.strings[osm->site], "com.example.nic`rx_buf+0x8");
  EXPECT_TRUE(find_op(t, ops::OpKind::alloc, 128)->flags & ops::kOpNoblock);
  EXPECT_EQ(t.strings[find_op(t, ops::OpKind::alloc, 128)->tag], "tag@0xffffff80aa000200");
  EXPECT_TRUE(find_op(t, ops::OpKind::alloc, 64)->flags & ops::kOpZero);
  EXPECT_EQ(find_op(t, ops::OpKind::alloc, 4096)->align_log2, 12);
  const ops::Op* bmd = find_op(t, ops::OpKind::dma_alloc, 65536);
  ASSERT_NE(bmd, nullptr);
  EXPECT_TRUE(bmd->flags & ops::kOpContiguous);
  EXPECT_TRUE(bmd->flags & ops::kOpDma32);
  ASSERT_NE(find_op(t, ops::OpKind::dma_map, 65536), nullptr);
  ASSERT_NE(find_op(t, ops::OpKind::dma_unmap, 65536), nullptr);
  ASSERT_NE(find_op(t, ops::OpKind::dma_free, 65536), nullptr);
  // Each op keeps the KPI call its probe fired on.
  std::map<std::string, int> calls;
  for (const ops::Stream& s : t.streams) {
    ASSERT_EQ(s.calls.size(), s.ops.size());
    for (const ops::Call call : s.calls) ++calls[std::string(ops::call_name(call))];
  }
  const std::map<std::string, int> want = {
      {"IOMalloc", 1}, {"IOMallocZero", 1}, {"OSMalloc", 1}, {"OSMalloc_noblock", 1}, {"IOMallocAligned", 1},
      {"IOBufferMemoryDescriptor", 1}, {"IODMACommand::prepare", 1}, {"IODMACommand::complete", 1},
      {"IOFree", 1}, {"OSFree", 1}, {"IOFreeAligned", 1}, {"IOBufferMemoryDescriptor::free", 1}};
  EXPECT_EQ(calls, want);
}

TEST(DtraceImport, BadRecordsNameTheLine) {
  const std::string head = "#kmbench-dtrace 1\n";
  EXPECT_THROW(import_dtrace(head + "12 0 5 IOMalloc size=abc ptr=0x10 exec=x\n", "d", {}), InputError);
  EXPECT_THROW(import_dtrace("12 0 5 IOMalloc size=1 ptr=0x10 exec=x\n", "d", {}), InputError);
  EXPECT_THROW(import_dtrace(head + "12 0 5 IOMalloc ptr=0x10 exec=x\n", "d", {}), InputError);
  EXPECT_THROW(import_dtrace("#kmbench-dtrace 2\n", "d", {}), InputError);
  try {
    import_dtrace(head + "1 0 5 IOMalloc size=1 ptr=0x10 exec=x\n2 0 5 IOFree ptr=zz exec=x\n", "d.txt", {});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("d.txt:3:"), std::string::npos) << e.what();
  }
}

TEST(Input, CompressedAndPlainReadTheSame) {
  const Input xz(kData + "/ftrace-sample.txt.xz");
  EXPECT_TRUE(xz.compressed());
  EXPECT_EQ(detect_format(xz.bytes().substr(0, 4096)), Format::ftrace);
  test_support::TempFiles files("import");
  for (const char* tool : {"gzip", "zstd"}) {
    const std::string out = files.path(std::string("sample.") + tool);
    const std::string cmd = std::string("xz -dc ") + kData + "/ftrace-sample.txt.xz | " + tool + " -c > " + out;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const Input other(out);
    EXPECT_TRUE(other.compressed());
    EXPECT_EQ(other.bytes(), xz.bytes()) << tool;
    // Read in pieces, it is decoded as it goes, and reads the same.
    const Input streamed(out);
    EXPECT_EQ(streamed.head(4096), xz.bytes().substr(0, 4096));
    std::string pieces;
    char piece[100000];
    for (std::size_t n; (n = streamed.read(pieces.size(), piece, sizeof piece)) > 0;) pieces.append(piece, n);
    EXPECT_EQ(pieces, xz.bytes()) << tool;
    EXPECT_EQ(encode(import_file(out)), encode(import_ftrace(xz.bytes(), out, {}))) << tool;

    std::string cut;
    {
      std::ifstream in(out, std::ios::binary);
      cut.assign(std::istreambuf_iterator<char>(in), {});
    }
    std::ofstream(out, std::ios::binary) << cut.substr(0, cut.size() / 2);
    EXPECT_THROW(Input{out}.bytes(), InputError) << tool << " truncated";
    try {
      import_file(out);
      ADD_FAILURE() << tool << ": a truncated capture was imported";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("truncated " + std::string(tool == std::string("gzip") ? "gzip" : "zstd")),
                std::string::npos)
          << e.what();
    }
    ImportOptions keep;
    keep.keep_partial = true;  // the lines decoded before the cut are kept
    const ops::Trace partial = import_file(out, keep);
    EXPECT_GT(partial.op_count(), 100u) << tool;
    EXPECT_NE(partial.header.metadata.at("import.error").find("truncated"), std::string::npos) << tool;
  }
  const std::string junk = files.path("junk.gz");
  std::ofstream(junk, std::ios::binary) << "\x1f\x8b this is not gzip data";
  EXPECT_THROW(Input{junk}, InputError) << "corrupt at the start";
  // A plain file: its head and pieces read without mapping it, then the same bytes whole.
  const std::string out = files.path("sample.txt");
  std::ofstream(out, std::ios::binary) << xz.bytes();
  const Input plain(out);
  EXPECT_FALSE(plain.compressed());
  EXPECT_EQ(plain.size(), xz.size());
  EXPECT_EQ(plain.head(100), xz.bytes().substr(0, 100));
  std::string piece(5000, '\0');
  ASSERT_EQ(plain.read(xz.size() - 3000, piece.data(), piece.size()), 3000u);
  EXPECT_EQ(piece.substr(0, 3000), xz.bytes().substr(xz.size() - 3000));
  EXPECT_EQ(plain.read(xz.size(), piece.data(), piece.size()), 0u);
  EXPECT_EQ(plain.bytes(), xz.bytes());
}

/// At least `bytes` of ftrace text that compresses about fivefold: kmalloc and
/// kfree lines of varied tasks, sizes, sites and pointers, each free of a live one.
std::string varied_capture(std::size_t bytes) {
  std::string text = "# tracer: nop\n";
  std::uint64_t x = 0x9E3779B97F4A7C15ull, t = 1000000;
  const auto next = [&x] { return x ^= x << 13, x ^= x >> 7, x ^= x << 17; };
  std::vector<std::uint64_t> live;
  char line[256];
  while (text.size() < bytes) {
    t += next() % 50;
    const std::uint64_t r = next();
    if (live.empty() || r % 3 != 0) {
      const std::uint64_t ptr = 0xffff800000000000ull | (next() & 0xfffffffff0ull);
      std::snprintf(line, sizeof line,
                    "   task-%u [%03u] ..... %llu.%06llu: kmalloc: call_site=site_%u+0x%x/0x200 ptr=%#llx "
                    "bytes_req=%u bytes_alloc=%u gfp_flags=GFP_KERNEL\n",
                    static_cast<unsigned>(r % 4000), static_cast<unsigned>(r % 2),
                    static_cast<unsigned long long>(t / 1000000), static_cast<unsigned long long>(t % 1000000),
                    static_cast<unsigned>(r % 37), static_cast<unsigned>(next() % 0xfff0), static_cast<unsigned long long>(ptr),
                    static_cast<unsigned>(r % 3000 + 1), static_cast<unsigned>(r % 3000 + 8));
      live.push_back(ptr);
    } else {
      const std::size_t i = next() % live.size();
      std::snprintf(line, sizeof line,
                    "   task-%u [%03u] ..... %llu.%06llu: kfree: call_site=free_%u+0x10/0x80 ptr=%#llx\n",
                    static_cast<unsigned>(r % 4000), static_cast<unsigned>(r % 2),
                    static_cast<unsigned long long>(t / 1000000), static_cast<unsigned long long>(t % 1000000),
                    static_cast<unsigned>(r % 5), static_cast<unsigned long long>(live[i]));
      live[i] = live.back();
      live.pop_back();
    }
    text += line;
  }
  return text;
}

// A compressed file is mapped and decoded front to back, and the pages it has
// decoded are given back a MiB at a time: megabytes of compressed text, in
// each format, read and import as the text does.
TEST(Input, ALargeCompressedCaptureReadsAsItsText) {
  const std::string text = varied_capture(std::size_t{14} << 20);
  test_support::TempFiles files("import");
  const std::string plain = files.path("large.txt");
  std::ofstream(plain, std::ios::binary) << text;
  for (const char* tool : {"gzip", "xz", "zstd"}) {
    const std::string out = files.path(std::string("large.txt.") + tool);
    const std::string cmd = std::string(tool) + " -1 -c " + plain + " > " + out;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    ASSERT_GT(std::ifstream(out, std::ios::binary | std::ios::ate).tellg(), 2 << 20) << tool << ": too small to test";
    const Input in(out);
    std::string pieces;
    std::vector<char> piece(std::size_t{1} << 20);
    for (std::size_t n; (n = in.read(pieces.size(), piece.data(), piece.size())) > 0;) pieces.append(piece.data(), n);
    EXPECT_TRUE(pieces == text) << tool;
    EXPECT_TRUE(in.bytes() == text) << tool << ": decoded whole again, after its pages were given back";
    // The import reads through the same Input: one compressor checks it.
    if (std::string_view(tool) == "zstd") {
      EXPECT_TRUE(encode(import_file(out)) == encode(import_ftrace(text, out, {})));
    }
    std::remove(out.c_str());  // now: the next one's room
  }
}

// An import reserves room for the trace by the text's size; a compressed
// capture's is what gzip's trailer or a zstd frame declares, without decoding.
TEST(Input, SizeHintIsTheSizeACompressedStreamDeclares) {
  const std::string text(Input(kData + "/ftrace-sample.txt.xz").bytes());
  test_support::TempFiles files("import");
  const std::string plain = files.path("hint.txt");
  std::ofstream(plain, std::ios::binary) << text;
  for (const char* tool : {"gzip", "zstd -q"}) {
    const std::string out = files.path("hint.txt." + std::string(tool).substr(0, 4));
    const std::string cmd = std::string(tool) + " -c " + plain + " > " + out;  // from a file: zstd writes the size
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    EXPECT_EQ(Input(out).size_hint(), text.size()) << tool;
  }
  const std::string piped = files.path("hint.txt.piped.zst");  // from a pipe it cannot: a guess
  ASSERT_EQ(std::system(("cat " + plain + " | zstd -q -c > " + piped).c_str()), 0);
  const Input guess(piped);
  EXPECT_GT(guess.size_hint(), 0u);
  EXPECT_EQ(guess.size(), text.size());
}

/// A pipe whose other end a thread fills with `bytes`; the read end is named
/// as /proc/self/fd/N. The destructor waits for the writer, which stops when
/// the reader has gone (SIGPIPE is ignored: a test that fails part way through
/// a pipe reports its failure rather than dying).
class FilledPipe {
 public:
  explicit FilledPipe(std::string bytes) {
    static const bool ignored = (std::signal(SIGPIPE, SIG_IGN), true);
    (void)ignored;
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    read_ = fds[0];
    writer_ = std::thread([this, fd = fds[1], bytes = std::move(bytes)] {
      for (std::size_t at = 0; at < bytes.size();) {
        const ssize_t n = ::write(fd, bytes.data() + at, std::min<std::size_t>(bytes.size() - at, 4096));
        if (n <= 0) break;  // the reader went away
        at += static_cast<std::size_t>(n);
        written_.store(at, std::memory_order_relaxed);
      }
      ::close(fd);
    });
  }
  ~FilledPipe() {
    ::close(read_);  // a reader that stopped early unblocks the writer
    writer_.join();
  }
  std::string path() const { return "/proc/self/fd/" + std::to_string(read_); }
  /// Bytes written into the pipe so far (it holds 64 KiB).
  std::size_t written() const { return written_.load(std::memory_order_relaxed); }

 private:
  int read_ = -1;
  std::atomic<std::size_t> written_{0};
  std::thread writer_;
};

/// The .kmt of a trace, whatever input it was named by.
std::string unnamed(ops::Trace t) {
  t.header.metadata.erase("input");
  return encode(t);
}

// A pipe (stdin, or a capture streamed from a live system) is read as the
// import goes, never held whole, and gives the trace the same text as a file
// gives; a .kmt through a pipe is read whole, as before.
TEST(Input, APipeReadsAsTheSameTextFromAFile) {
  const std::string sample(Input(kData + "/ftrace-sample.txt.xz").bytes());
  const std::string text = sample + "# " + std::string(300 * 1024, 'x') + "\n" + sample;  // more than a head
  ImportOptions o;
  o.chunk_bytes = 64 * 1024;  // several chunks and threads
  o.threads = 2;
  const std::string want = unnamed(import_ftrace(text, "capture", o));
  {
    const FilledPipe pipe(text);
    const Input in(pipe.path());
    EXPECT_FALSE(in.compressed());
    EXPECT_EQ(in.size_hint(), Input::kPipeGuess);
    EXPECT_EQ(detect_format(in.head(4096)), Format::ftrace);
    EXPECT_EQ(unnamed(import_ftrace(in, o)), want);
  }
  {
    const FilledPipe pipe(text);
    const Input in(pipe.path());
    EXPECT_EQ(in.bytes(), text);  // whole, when asked before any read
    EXPECT_EQ(in.size(), text.size());
  }
  const ops::Trace t = import_ftrace(text, "capture", {});
  {
    const FilledPipe pipe(encode(t));
    EXPECT_EQ(unnamed(import_file(pipe.path())), unnamed(t));
  }
  test_support::TempFiles files("import");
  const std::string plain = files.path("piped.txt"), zst = files.path("piped.txt.zst");
  std::ofstream(plain, std::ios::binary) << text;
  ASSERT_EQ(std::system(("zstd -q -f -c " + plain + " > " + zst).c_str()), 0);
  {
    // libtracecmd reads a file: a trace.dat through a pipe is given to it whole, as a temporary file.
    std::ifstream f(kData + "/small-trace.dat", std::ios::binary);
    const FilledPipe pipe(std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()));
    EXPECT_EQ(unnamed(import_file(pipe.path())), unnamed(import_file(kData + "/small-trace.dat")));
  }
  std::ifstream z(zst, std::ios::binary);
  const std::string compressed((std::istreambuf_iterator<char>(z)), std::istreambuf_iterator<char>());
  {
    const FilledPipe pipe(compressed);
    const Input in(pipe.path());
    EXPECT_TRUE(in.compressed());
    EXPECT_EQ(unnamed(import_ftrace(in, o)), want);
  }
}

// A compressed capture on stdin is decoded as the pipe is read, a piece at a
// time: the writer is still blocked on the pipe while the first MiB of text
// is read, and nothing is held whole. The text, the error at a cut and what
// an import keeps of a cut capture are those of the same bytes in a file.
TEST(Input, ACompressedPipeIsDecodedAsItComesNotHeldWhole) {
  const std::string text = varied_capture(std::size_t{8} << 20);
  test_support::TempFiles files("import");
  const std::string plain = files.path("piped.txt");
  std::ofstream(plain, std::ios::binary) << text;
  /// The text `path` reads as, a piece at a time, and the error that stopped it, but for the input's name.
  const auto read_all = [](const std::string& path, std::string& error) {
    std::string out;
    try {
      const Input in(path);
      std::vector<char> piece(100000);
      for (std::size_t n; (n = in.read(out.size(), piece.data(), piece.size())) > 0;) out.append(piece.data(), n);
    } catch (const InputError& e) {
      const std::string what = e.what();
      error = what.substr(what.find(": "));
    }
    return out;
  };
  for (const std::string tool : {"gzip", "xz", "zstd"}) {
    const std::string file = files.path("piped.txt." + tool);
    ASSERT_EQ(std::system((tool + " -1 -c " + plain + " > " + file).c_str()), 0) << tool;
    std::ifstream f(file, std::ios::binary);
    const std::string compressed((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ASSERT_GT(compressed.size(), std::size_t{1} << 20) << tool << ": too small to test";
    {
      const FilledPipe pipe(compressed);
      const Input in(pipe.path());
      EXPECT_TRUE(in.compressed()) << tool;
      EXPECT_EQ(in.head(4096), std::string_view(text).substr(0, 4096)) << tool;
      std::string pieces;
      std::vector<char> piece(100000);
      const auto read_some = [&] {
        const std::size_t n = in.read(pieces.size(), piece.data(), piece.size());
        pieces.append(piece.data(), n);
        return n;
      };
      while (pieces.size() < (std::size_t{1} << 20)) ASSERT_GT(read_some(), 0u) << tool;
      EXPECT_LT(pipe.written(), compressed.size() / 2) << tool << ": the pipe was read ahead of the decoding";
      while (read_some() > 0) {
      }
      EXPECT_TRUE(pieces == text) << tool;
      EXPECT_THROW(in.bytes(), std::logic_error) << tool << ": a pipe cannot be decoded again";
    }
    {
      const FilledPipe pipe(compressed);
      const Input in(pipe.path());
      EXPECT_TRUE(in.bytes() == text) << tool << ": whole, when asked before any read";
    }
    // Cut in the middle: the same text, then the same error, with the same byte offset.
    const std::string cut = compressed.substr(0, compressed.size() / 2);
    std::ofstream(file, std::ios::binary) << cut;
    std::string from_file, from_pipe;
    const std::string file_text = read_all(file, from_file);
    const FilledPipe pipe(cut);
    EXPECT_TRUE(read_all(pipe.path(), from_pipe) == file_text) << tool;
    EXPECT_GT(file_text.size(), text.size() / 4) << tool;
    EXPECT_NE(from_file.find("truncated " + tool + " data"), std::string::npos) << from_file;
    EXPECT_EQ(from_pipe, from_file) << tool;
    if (tool == "zstd") {  // the import reads through the same Input
      {
        const FilledPipe whole(compressed);
        EXPECT_TRUE(unnamed(import_file(whole.path())) == unnamed(import_file(plain)));
      }
      ImportOptions keep;
      keep.keep_partial = true;
      const ops::Trace from_disk = import_file(file, keep);
      const FilledPipe again(cut);
      const ops::Trace piped = import_file(again.path(), keep);
      EXPECT_GT(piped.op_count(), 1000u);
      EXPECT_EQ(piped.op_count(), from_disk.op_count());
      EXPECT_EQ(piped.header.metadata.at("import.error").substr(piped.header.metadata.at("import.error").find(": ")),
                from_disk.header.metadata.at("import.error").substr(
                    from_disk.header.metadata.at("import.error").find(": ")));
    }
    std::remove(file.c_str());  // now: the next one's room
  }
}

}  // namespace
}  // namespace kmbench::trace
