#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>

#include "base/errors.h"
#include "harness/trace/trace.h"
#include "tests/support/temp_files.h"

namespace kmbench::trace {
namespace {

ops::Trace sample_trace(unsigned seed, std::size_t n_ops) {
  std::mt19937_64 rng(seed);
  ops::Trace t;
  t.header.source = "test";
  t.header.capture_tool = "unit \"quoted\" \x01 tool";
  t.header.cpu_count = 3;
  t.header.node_count = 2;
  t.header.time_base_ns = 123456789012345;
  t.header.metadata["host"] = "box";
  t.header.metadata["kernel"] = "6.1\n";
  t.strings = {"", "site_a+0x10/0x20", "site_b", "kmalloc-64", "ÿ tag"};
  t.counters["import.events"] = 42;
  std::vector<std::uint64_t> live_size;
  std::vector<std::uint32_t> live;
  for (std::uint32_t cpu : {0u, 2u}) {
    ops::Stream s{cpu, {}, {}};
    std::uint64_t time = rng() % 1000;
    for (std::size_t i = 0; i < n_ops; ++i) {
      time += (rng() % 4) * 1000 + (seed % 2 ? 0 : rng() % 3);
      ops::Op op;
      op.time_ns = time;
      if (live.empty() || rng() % 2) {
        op.kind = static_cast<ops::OpKind>((rng() % 4) * 2);
        op.object = t.object_count++;
        op.size = rng() % 3 ? 64 : rng() % 100000;
        op.align_log2 = rng() % 5 == 0 ? static_cast<std::uint8_t>(rng() % 13) : 0;
        op.node = rng() % 7 == 0 ? 1 : -1;
        op.flags = rng() % 3 == 0 ? static_cast<std::uint8_t>(rng()) : 0;
        live.push_back(op.object);
        live_size.resize(t.object_count);
        live_size[op.object] = op.size;
      } else {
        const std::size_t j = rng() % live.size();
        op.object = live[j];
        live[j] = live.back();
        live.pop_back();
        op.kind = static_cast<ops::OpKind>((rng() % 4) * 2 + 1);
        op.size = rng() % 5 ? live_size[op.object] : 7;
      }
      op.site = static_cast<std::uint32_t>(rng() % 3);
      op.tag = rng() % 2 ? 3 : 4;
      s.ops.push_back(op);
    }
    t.streams.push_back(std::move(s));
  }
  return t;
}

void expect_same(const ops::Trace& a, const ops::Trace& b) {
  EXPECT_EQ(a.header.format_version, b.header.format_version);
  EXPECT_EQ(a.header.source, b.header.source);
  EXPECT_EQ(a.header.capture_tool, b.header.capture_tool);
  EXPECT_EQ(a.header.page_size, b.header.page_size);
  EXPECT_EQ(a.header.cpu_count, b.header.cpu_count);
  EXPECT_EQ(a.header.node_count, b.header.node_count);
  EXPECT_EQ(a.header.time_base_ns, b.header.time_base_ns);
  EXPECT_EQ(a.header.metadata, b.header.metadata);
  EXPECT_EQ(a.strings, b.strings);
  EXPECT_EQ(a.counters, b.counters);
  EXPECT_EQ(a.object_count, b.object_count);
  ASSERT_EQ(a.streams.size(), b.streams.size());
  for (std::size_t s = 0; s < a.streams.size(); ++s) {
    EXPECT_EQ(a.streams[s].cpu, b.streams[s].cpu);
    ASSERT_EQ(a.streams[s].ops.size(), b.streams[s].ops.size());
    for (std::size_t i = 0; i < a.streams[s].ops.size(); ++i) {
      const ops::Op& x = a.streams[s].ops[i];
      const ops::Op& y = b.streams[s].ops[i];
      ASSERT_EQ(x.time_ns, y.time_ns) << "stream " << s << " op " << i;
      ASSERT_EQ(x.size, y.size) << "stream " << s << " op " << i;
      ASSERT_EQ(x.object, y.object);
      ASSERT_EQ(x.site, y.site);
      ASSERT_EQ(x.tag, y.tag);
      ASSERT_EQ(x.kind, y.kind);
      ASSERT_EQ(x.align_log2, y.align_log2);
      ASSERT_EQ(x.node, y.node);
      ASSERT_EQ(x.flags, y.flags);
    }
  }
}

std::string temp_path(const std::string& leaf) { return test_support::temp_path("kmt", leaf); }

TEST(Kmt, EncodeDecodeRoundTrip) {
  for (unsigned seed = 0; seed < 6; ++seed) {
    const ops::Trace t = sample_trace(seed, 2000);
    const std::string bytes = encode(t);
    expect_same(t, decode(bytes.data(), bytes.size(), "mem"));
  }
}

// A free leaves its size out when it is its object's size; the sizes 4-byte
// slots cannot hold (4 GiB - 2 and up) are kept aside, and still left out.
TEST(Kmt, FreesOfHugeBlocksLeaveTheirSizeOutAndRoundTrip) {
  const std::uint64_t sizes[] = {0, 1, 0xfffffffdull, 0xfffffffeull, 0xffffffffull, 0x100000000ull, 1ull << 39};
  ops::Trace t;
  t.strings = {""};
  ops::Stream s{0, {}, {}};
  std::uint64_t time = 0;
  for (const std::uint64_t size : sizes) {
    ops::Op op;
    op.kind = ops::OpKind::page_alloc;
    op.object = t.object_count++;
    op.size = size;
    op.time_ns = time += 1000;
    s.ops.push_back(op);
  }
  for (std::uint32_t o = 0; o < t.object_count; ++o) {
    ops::Op op;
    op.kind = ops::OpKind::page_free;
    op.object = o;
    op.size = sizes[o];
    op.time_ns = time += 1000;
    s.ops.push_back(op);
  }
  t.streams.push_back(s);
  const std::string bytes = encode(t);
  expect_same(t, decode(bytes.data(), bytes.size(), "mem"));
  // The same trace with each free's size one more must spell the sizes out.
  for (std::size_t i = std::size(sizes); i < t.streams[0].ops.size(); ++i) ++t.streams[0].ops[i].size;
  const std::string spelled = encode(t);
  expect_same(t, decode(spelled.data(), spelled.size(), "mem"));
  EXPECT_GE(spelled.size(), bytes.size() + std::size(sizes) * 2);
}

// A streaming decode hands over the same ops, a batch at a time, with their
// calls, and keeps no stream.
TEST(Kmt, StreamingDecodeHandsOverEveryOpInBatches) {
  ops::Trace t = sample_trace(3, 150000);  // streams of more than two batches
  for (ops::Stream& s : t.streams) {
    s.calls.resize(s.ops.size());
    for (std::size_t i = 0; i < s.ops.size(); ++i) s.calls[i] = static_cast<ops::Call>(1 + i % 5);
  }
  t.streams[0].calls.clear();  // one stream with calls, one without
  const std::string bytes = encode(t);
  ops::Trace got;
  std::vector<ops::Stream> seen;
  std::size_t batches = 0;
  const ops::Trace header = decode(bytes.data(), bytes.size(), "mem", [&](const ops::Trace&, const OpBatch& b) {
    if (b.first) seen.push_back({b.cpu, {}, {}});
    seen.back().ops.insert(seen.back().ops.end(), b.ops.begin(), b.ops.end());
    seen.back().calls.insert(seen.back().calls.end(), b.calls.begin(), b.calls.end());
    ++batches;
  });
  EXPECT_TRUE(header.streams.empty());
  EXPECT_GE(batches, 6u);
  got = header;
  got.streams = seen;
  expect_same(t, got);
  EXPECT_EQ(seen[1].calls, t.streams[1].calls);
  EXPECT_TRUE(seen[0].calls.empty());
  // Damage is found as decode() finds it.
  for (const std::size_t at : {bytes.size() / 3, bytes.size() - 10}) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x55);
    EXPECT_THROW(decode(bad.data(), bad.size(), "mem", [](const ops::Trace&, const OpBatch&) {}), InputError) << at;
  }
}

// `trace info` on a .kmt decodes it a batch at a time: the same figures as
// summarize() over the trace in memory, with importer counters or without
// them (counted from the ops), with KPI calls and a realloc pair across batches.
TEST(Kmt, InfoOfAFileIsTheInfoOfTheTraceInMemory) {
  for (const bool counters : {true, false}) {
    ops::Trace t = sample_trace(5, 70000);
    if (!counters) t.counters.clear();
    ops::Stream& s = t.streams[1];
    s.calls.assign(s.ops.size(), ops::Call::none);
    for (std::size_t i = 65530; i < 65540; ++i) s.calls[i] = ops::Call::realloc;
    s.ops[65536].kind = ops::OpKind::alloc;
    s.ops[65536].object = t.object_count++;
    s.ops[65535].kind = ops::OpKind::free;
    s.ops[65535].time_ns = s.ops[65536].time_ns;
    s.ops[65535].size = 64;
    for (std::size_t i = 100; i < 200; ++i) s.calls[i] = ops::Call::io_malloc;
    const std::string path = temp_path("info.kmt");
    save(t, path);
    ops::Trace header;
    const Info streamed = summarize_file(path, header, 5);
    const ops::Trace whole = load(path);
    EXPECT_EQ(info_json(header, streamed), info_json(whole, summarize(whole, 5))) << "counters " << counters;
    EXPECT_EQ(streamed.realloc_of_live, 1u);
    std::filesystem::remove(path);
  }
}

TEST(Kmt, EmptyTraceRoundTrips) {
  ops::Trace t;
  const std::string bytes = encode(t);
  expect_same(t, decode(bytes.data(), bytes.size(), "mem"));
}

TEST(Kmt, SaveLoadIsAtomicAndLeavesNoTempFile) {
  const ops::Trace t = sample_trace(7, 500);
  const std::string path = temp_path("a.kmt");
  save(t, path);
  expect_same(t, load(path));
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    EXPECT_EQ(e.path().string().find(path + ".tmp"), std::string::npos) << e.path();
  }
  std::filesystem::remove(path);
}

TEST(Kmt, CompactOpsAreAFewBytesEach) {
  const ops::Trace t = sample_trace(1, 20000);
  const std::string bytes = encode(t);
  EXPECT_LT(bytes.size(), t.op_count() * 10);
}

TEST(Kmt, EveryTruncationIsAnInputErrorWithAnOffset) {
  const ops::Trace t = sample_trace(2, 50);
  const std::string bytes = encode(t);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    try {
      decode(bytes.data(), n, "cut.kmt");
      FAIL() << "truncated to " << n << " bytes was accepted";
    } catch (const InputError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("cut.kmt"), std::string::npos) << what;
      EXPECT_NE(what.find("byte offset"), std::string::npos) << what;
    }
  }
}

TEST(Kmt, EveryFlippedByteIsDetected) {
  const ops::Trace t = sample_trace(3, 40);
  const std::string bytes = encode(t);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x21);
    EXPECT_THROW(decode(bad.data(), bad.size(), "flip.kmt"), InputError) << "byte " << i;
  }
}

TEST(Kmt, NewerVersionIsRefusedByName) {
  const std::string path = temp_path("new.kmt");
  save(sample_trace(4, 10), path);
  std::string bytes = test_support::read_file(path);
  bytes[8] = 2;  // version 2, with a matching header CRC
  const auto c = static_cast<std::uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()), 28));
  for (int i = 0; i < 4; ++i) bytes[28 + i] = static_cast<char>(c >> (8 * i));
  std::filesystem::remove(path);
  try {
    decode(bytes.data(), bytes.size(), "new.kmt");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("version 2 is newer"), std::string::npos) << e.what();
  }
}

TEST(Kmt, MissingFileIsAnInputError) {
  EXPECT_THROW(load("/nonexistent/x.kmt"), InputError);
}

TEST(Kmt, GarbageIsNotAKmt) {
  const std::string junk = "hello, this is not a trace at all, just text........";
  try {
    decode(junk.data(), junk.size(), "junk");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not a .kmt"), std::string::npos);
  }
}

TEST(TextForm, DumpUndumpRoundTrip) {
  for (unsigned seed = 0; seed < 3; ++seed) {
    const ops::Trace t = sample_trace(seed, 300);
    std::ostringstream out;
    dump(t, out);
    const ops::Trace back = undump(out.str(), "text");
    expect_same(t, back);
    std::ostringstream again;
    dump(back, again);
    EXPECT_EQ(out.str(), again.str());
  }
}

TEST(TextForm, ErrorsNameTheLine) {
  const std::string text = "kmt-text 1\nobject_count 2\nstream 0\n10 alloc 0 64\n20 alloc 5 64\nend\n";
  try {
    undump(text, "t.txt");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("t.txt:5:"), std::string::npos) << e.what();
  }
  EXPECT_THROW(undump("kmt-text 1\nstream 0\n", "t.txt"), InputError);             // no end
  EXPECT_THROW(undump("kmt-text 9\nend\n", "t.txt"), InputError);                  // newer
  EXPECT_THROW(undump("kmt-text 1\nobject_count 1\nstream 0\n5 bogus 0 1\nend\n", "t"), InputError);
}

TEST(TextForm, ObjectCountBeyondTheOpsIsRefusedAtItsLine) {
  // Two ops cannot make 2500009 objects; a replay would still size arrays by the claim.
  const std::string text = "kmt-text 1\nobject_count 2500009\nstream 0\n10 alloc 0 64\n20 free 0 64\nend\n";
  try {
    undump(text, "t.txt");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("t.txt:2:"), std::string::npos) << e.what();
  }
  ops::Trace t = undump("kmt-text 1\nobject_count 1\nstream 0\n10 alloc 0 64\nend\n", "t.txt");
  t.object_count = 7;
  EXPECT_THROW(validate(t, "t"), InputError);
  EXPECT_THROW(encode(t), InputError);
}

}  // namespace
}  // namespace kmbench::trace
