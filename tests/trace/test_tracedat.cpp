// kmbench's own trace.dat (version 7) reader against libtracecmd: the same
// report lines from the same files, compressed or not, whichever buffer holds
// the events; what it leaves to libtracecmd; and damaged files named for what
// is wrong with them, never a crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/errors.h"
#include "harness/trace/trace.h"
#include "harness/trace/tracedat_reader.h"
#include "tests/support/temp_files.h"

namespace kmbench::trace {
namespace {

const std::string kData = KMBENCH_TRACE_TEST_DATA;

using test_support::read_file;

std::string temp_path(const std::string& name) { return test_support::temp_path("tracedat", name); }

/// `dat` converted by `trace-cmd convert ARGS`, or "" when trace-cmd is not installed.
std::string converted(const std::string& dat, const std::string& name, const std::string& args) {
  const std::string out = temp_path(name);
  const std::string cmd = "trace-cmd convert -i " + dat + " -o " + out + " " + args + " > /dev/null 2>&1";
  return std::system(cmd.c_str()) == 0 ? out : "";
}

// LeakSanitizer's switches, present in a sanitizer build only.
extern "C" void __lsan_disable() __attribute__((weak));
extern "C" void __lsan_enable() __attribute__((weak));

struct Lines {
  std::vector<std::string> lines;
  int reader = 0;
  int result = 0;
  std::string err;
};

/// The report lines `reader` writes for `dat`, read here rather than in an
/// import's child (libtraceevent 1.7's event parser leaks a few bytes, which
/// LeakSanitizer is told to let pass).
Lines lines_of(const std::string& dat, int reader) {
  Lines out;
  if (__lsan_disable) __lsan_disable();
  kmb_tracedat_set_reader(reader);
  int cpus = 0;
  char err[256] = {};
  const auto add = [](void* ctx, const char* line, std::size_t len) {
    static_cast<std::vector<std::string>*>(ctx)->emplace_back(line, len);
  };
  out.result = kmb_tracedat_read(dat.c_str(), add, &out.lines, &cpus, &out.reader, err, sizeof err);
  out.err = err;
  kmb_tracedat_set_reader(KMB_TRACEDAT_ANY);
  if (__lsan_enable) __lsan_enable();
  return out;
}

void expect_the_same_lines(const std::string& dat, std::size_t at_least) {
  const Lines own = lines_of(dat, KMB_TRACEDAT_OWN), lib = lines_of(dat, KMB_TRACEDAT_LIBTRACECMD);
  ASSERT_EQ(own.result, 0) << dat << ": " << own.err;
  ASSERT_EQ(lib.result, 0) << dat << ": " << lib.err;
  EXPECT_EQ(own.reader, KMB_TRACEDAT_OWN);
  EXPECT_EQ(lib.reader, KMB_TRACEDAT_LIBTRACECMD);
  EXPECT_GE(own.lines.size(), at_least) << dat;
  ASSERT_EQ(own.lines.size(), lib.lines.size()) << dat;
  for (std::size_t i = 0; i < own.lines.size(); ++i) {
    ASSERT_EQ(own.lines[i], lib.lines[i]) << dat << " line " << i;
  }
}

TEST(TraceDatReader, WritesLibtracecmdsLinesForTheTopBuffer) { expect_the_same_lines(kData + "/small-trace.dat", 900); }

TEST(TraceDatReader, WritesLibtracecmdsLinesForAnInstancesBuffer) {
  expect_the_same_lines(kData + "/instance-trace.dat", 1300);
}

TEST(TraceDatReader, WritesLibtracecmdsLinesForAnUncompressedFile) {
  const std::string plain = converted(kData + "/instance-trace.dat", "plain.dat", "--compression none");
  if (plain.empty()) GTEST_SKIP() << "trace-cmd is not installed";
  expect_the_same_lines(plain, 1300);
  std::remove(plain.c_str());
}

TEST(TraceDatReader, AnImportSaysWhichReaderReadIt) {
  EXPECT_EQ(import_file(kData + "/small-trace.dat").header.capture_tool, "trace-cmd trace.dat");
  ::setenv("KMBENCH_TRACEDAT_READER", "libtracecmd", 1);
  const ops::Trace lib = import_file(kData + "/small-trace.dat");
  ::unsetenv("KMBENCH_TRACEDAT_READER");
  EXPECT_EQ(lib.header.capture_tool, "trace-cmd trace.dat (libtracecmd)");
  EXPECT_EQ(lib.op_count(), import_file(kData + "/small-trace.dat").op_count());
  ::setenv("KMBENCH_TRACEDAT_READER", "mine", 1);
  EXPECT_THROW(import_file(kData + "/small-trace.dat"), UsageError);
  ::unsetenv("KMBENCH_TRACEDAT_READER");
}

TEST(TraceDatReader, LeavesAVersion6FileToLibtracecmd) {
  const std::string v6 = converted(kData + "/small-trace.dat", "v6.dat", "--file-version 6");
  if (v6.empty()) GTEST_SKIP() << "trace-cmd is not installed";
  const Lines any = lines_of(v6, KMB_TRACEDAT_ANY);
  EXPECT_EQ(any.result, 0) << any.err;
  EXPECT_EQ(any.reader, KMB_TRACEDAT_LIBTRACECMD);
  EXPECT_EQ(any.lines, lines_of(kData + "/small-trace.dat", KMB_TRACEDAT_OWN).lines);
  const Lines own = lines_of(v6, KMB_TRACEDAT_OWN);
  EXPECT_EQ(own.result, -1);
  EXPECT_NE(own.err.find("only libtracecmd reads (not version 7)"), std::string::npos) << own.err;
  std::remove(v6.c_str());
}

/// Where a version 7 file keeps things: the BUFFER option that lists CPU 0's
/// data, and the data itself. Read from the uncompressed options sections of
/// the shipped files.
struct Layout {
  std::size_t first = 0;      // the header's field with the first options section's offset
  std::size_t done_next = 0;  // the last options section's DONE offset field
  std::size_t cpu0 = 0;       // CPU 0's data in the first buffer that has CPUs
};

std::uint64_t le(const std::string& b, std::size_t at, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(b.at(at + static_cast<std::size_t>(i)));
  return v;
}

Layout layout_of(const std::string& b) {
  Layout l;
  std::size_t p = 12 + 6;         // magic, "7\0", endian, long, page size
  p = b.find('\0', p) + 1;        // compression name
  l.first = b.find('\0', p) + 1;  // and version
  for (std::uint64_t section = le(b, l.first, 8); section != 0;) {
    const std::size_t end = section + 16 + le(b, section + 8, 8);  // id, flags, string, size
    std::size_t o = section + 16;
    section = 0;
    while (o + 6 <= end) {
      const auto id = le(b, o, 2);
      const auto n = le(b, o + 2, 4);
      const std::size_t data = o + 6;
      if (id == 3 && l.cpu0 == 0) {  // BUFFER: offset, name, clock, page size, CPUs, then (id, offset, size)
        std::size_t q = b.find('\0', data + 8) + 1;
        q = b.find('\0', q) + 1;
        if (le(b, q + 4, 4) > 0) l.cpu0 = le(b, q + 8 + 4, 8);
      }
      if (id == 0) {
        l.done_next = data;
        section = le(b, data, 8);
        break;
      }
      o = data + n;
    }
  }
  return l;
}

/// Imports `bytes` as a file; the InputError's message (which must name the file), or "" if it imported.
std::string import_error(const std::string& name, const std::string& bytes) {
  const std::string path = test_support::write_file(temp_path(name), bytes);
  std::string what;
  try {
    import_file(path);
  } catch (const InputError& e) {
    what = e.what();
    EXPECT_EQ(what.rfind(path + ":", 0), 0u) << what;
  }
  std::remove(path.c_str());
  return what;
}

TEST(TraceDatReader, ADamagedFileIsAnInputErrorThatSaysWhatIsWrong) {
  const std::string good = read_file(kData + "/instance-trace.dat");
  const Layout l = layout_of(good);
  ASSERT_GT(l.cpu0, 0u);
  ASSERT_GT(l.done_next, 0u);

  // The options sections, which list the CPUs' data, come after it.
  EXPECT_NE(import_error("cut.dat", good.substr(0, l.cpu0 + 100)).find("lies past the end of the file"),
            std::string::npos);

  std::string plain_size = good;  // CPU 0's first chunk: count, packed size, plain size
  plain_size[l.cpu0 + 9] = static_cast<char>(plain_size[l.cpu0 + 9] + 1);
  EXPECT_NE(import_error("plain-size.dat", plain_size).find("does not decompress"), std::string::npos);

  std::string packed_size = good;
  packed_size.replace(l.cpu0 + 4, 4, std::string("\xff\xff\xff\x7f", 4));
  EXPECT_NE(import_error("packed-size.dat", packed_size).find("bytes packed"), std::string::npos);

  std::string looped = good;  // the last options section's DONE points back at the first
  looped.replace(l.done_next, 8, good.substr(l.first, 8));
  EXPECT_NE(import_error("looped.dat", looped).find("the options sections loop"), std::string::npos);

  std::string no_magic = good;
  no_magic[0] = 'x';
  EXPECT_FALSE(import_error("no-magic.dat", no_magic).empty());
}

TEST(TraceDatReader, APageThatSaysItHoldsMoreThanAPageIsAnInputError) {
  const std::string plain = converted(kData + "/instance-trace.dat", "plain.dat", "--compression none");
  if (plain.empty()) GTEST_SKIP() << "trace-cmd is not installed";
  std::string bytes = read_file(plain);
  std::remove(plain.c_str());
  const Layout l = layout_of(bytes);
  ASSERT_GT(l.cpu0, 0u);
  bytes.replace(l.cpu0 + 8, 8, std::string("\x00\x20\x00\x00\x00\x00\x00\x00", 8));  // commit: 8 KiB
  EXPECT_NE(import_error("big-page.dat", bytes).find("holds more than a page"), std::string::npos);
}

}  // namespace
}  // namespace kmbench::trace
