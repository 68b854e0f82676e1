// The KPI's recorder (kpi::start_recording, KMBENCH_RECORD): every call comes
// back from the trace importer with its KPI call, flags, tag or class and a
// named call site; threads' records merge so that every free follows its
// allocation; a log cut short reads up to its last whole block and says so;
// a .kmt keeps the calls. Each test runs in a process of its own (ctest).
#include <IOKit/IOBufferMemoryDescriptor.h>
#include <IOKit/IODMACommand.h>
#include <IOKit/IOLib.h>
#include <gtest/gtest.h>
#include <libkern/OSMalloc.h>
#include <fcntl.h>
#include <libkern/c++/OSString.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/crc32c.h"
#include "base/errors.h"
#include "harness/trace/spill.h"
#include "harness/trace/trace.h"
#include "kmbench/kpi.h"
#include "ops/kpi_record.h"
#include "tests/support/temp_files.h"

namespace kmbench::testing {
namespace {

using test_support::read_file;

std::string temp_path(const std::string& name) { return test_support::temp_path("record", name); }

/// Ops of the trace by KPI call name, over every stream.
std::map<std::string, std::uint64_t> calls_of(const ops::Trace& t) {
  std::map<std::string, std::uint64_t> n;
  for (const ops::Stream& s : t.streams) {
    EXPECT_EQ(s.calls.size(), s.ops.size());
    for (const ops::Call c : s.calls) ++n[std::string(ops::call_name(c))];
  }
  return n;
}

/// The first op made by `call`, and the stream's strings for it.
const ops::Op* first_op(const ops::Trace& t, ops::Call call) {
  for (const ops::Stream& s : t.streams) {
    for (std::size_t i = 0; i < s.calls.size(); ++i) {
      if (s.calls[i] == call) return &s.ops[i];
    }
  }
  return nullptr;
}

TEST(KpiRecord, EveryCallComesBackWithItsFamilyFlagsTagClassAndSite) {
  const std::string path = temp_path("calls.kmr");
  kpi::start_recording(path);
  ASSERT_TRUE(kpi::recording());
  OSMallocTag tag = OSMalloc_Tagalloc("com.kmbench.test.record", OSMT_DEFAULT);
  void* a = IOMalloc(100);
  void* z = IOMallocZero(200);
  void* al = IOMallocAligned(300, 256);
  void* pg = IOMallocPageable(8192, 4096);
  IOPhysicalAddress phys = 0;
  void* ct = IOMallocContiguous(4096, 4096, &phys);
  void* os = OSMalloc(64, tag);
  void* nb = OSMalloc_noblock(32, tag);
  OSString* str = OSString::withCString("recorded");
  IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withOptions(kIODirectionIn, 64 << 10, 4096);
  ASSERT_NE(buf, nullptr);
  IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost64, 32, 0);
  ASSERT_NE(cmd, nullptr);
  ASSERT_EQ(cmd->setMemoryDescriptor(buf, false), kIOReturnSuccess);
  ASSERT_EQ(cmd->prepare(), kIOReturnSuccess);
  ASSERT_EQ(cmd->complete(), kIOReturnSuccess);
  cmd->clearMemoryDescriptor();
  cmd->release();
  buf->release();
  str->release();
  OSFree(nb, 32, tag);
  OSFree(os, 64, tag);
  IOFreeContiguous(ct, 4096);
  IOFreePageable(pg, 8192);
  IOFreeAligned(al, 300);
  IOFree(z, 200);
  IOFree(a, 100);
  IOFree(nullptr, 0);
  OSMalloc_Tagfree(tag);
  kpi::stop_recording();
  EXPECT_FALSE(kpi::recording());

  const ops::Trace t = trace::import_file(path);
  EXPECT_EQ(t.header.source, "kpi");
  EXPECT_EQ(t.header.metadata.count("record.cut"), 0u);
  EXPECT_EQ(t.counters.at("import.unmatched_frees"), 0u);
  EXPECT_EQ(t.counters.at("import.never_freed"), 0u);
  EXPECT_EQ(t.counters.at("import.null_frees"), 1u);
  const auto calls = calls_of(t);
  for (const char* c : {"IOMallocZero", "IOMallocAligned", "IOMallocPageable", "IOMallocContiguous",
                        "OSMalloc", "OSMalloc_noblock", "IOBufferMemoryDescriptor", "IOBufferMemoryDescriptor::free",
                        "IODMACommand::prepare", "IODMACommand::complete", "IOFreeAligned", "IOFreePageable",
                        "IOFreeContiguous"}) {
    ASSERT_EQ(calls.count(c), 1u) << c;
    EXPECT_EQ(calls.at(c), 1u) << c;
  }
  EXPECT_EQ(calls.at("OSFree"), 2u);
  // The string's characters are IOMalloc'd by the KPI's own OSString, as XNU does;
  // IOFree(NULL) is a NULL free, not an op.
  EXPECT_EQ(calls.at("IOMalloc"), 2u);
  EXPECT_EQ(calls.at("IOFree"), 3u);
  // The string, the buffer descriptor and the DMA command are OSObjects.
  EXPECT_GE(calls.at("OSObject::operator new"), 3u);
  EXPECT_EQ(calls.at("OSObject::operator new"), calls.at("OSObject::operator delete"));

  const ops::Op* zero = first_op(t, ops::Call::io_malloc_zero);
  ASSERT_NE(zero, nullptr);
  EXPECT_EQ(zero->size, 200u);
  EXPECT_TRUE(zero->flags & ops::kOpZero);
  EXPECT_EQ(first_op(t, ops::Call::io_malloc_aligned)->align_log2, 8);
  EXPECT_TRUE(first_op(t, ops::Call::io_malloc_pageable)->flags & ops::kOpPageable);
  const ops::Op* contiguous = first_op(t, ops::Call::io_malloc_contiguous);
  EXPECT_EQ(contiguous->flags & (ops::kOpContiguous | ops::kOpDma32), ops::kOpContiguous | ops::kOpDma32);
  const ops::Op* noblock = first_op(t, ops::Call::os_malloc_noblock);
  EXPECT_TRUE(noblock->flags & ops::kOpNoblock);
  EXPECT_EQ(t.strings[noblock->tag], "com.kmbench.test.record");
  const ops::Op* buffer = first_op(t, ops::Call::io_buffer_alloc);
  EXPECT_EQ(buffer->kind, ops::OpKind::dma_alloc);
  EXPECT_EQ(buffer->size, 64u << 10);
  EXPECT_EQ(buffer->align_log2, 12);
  EXPECT_TRUE(buffer->flags & ops::kOpDirIn);
  const ops::Op* prepare = first_op(t, ops::Call::dma_prepare);
  EXPECT_EQ(prepare->kind, ops::OpKind::dma_map);
  EXPECT_EQ(prepare->size, 64u << 10);
  EXPECT_TRUE(prepare->flags & ops::kOpDma32);

  // Objects carry their class; sites are this test's functions, named.
  bool string_class = false;
  for (const ops::Stream& s : t.streams) {
    for (std::size_t i = 0; i < s.ops.size(); ++i) {
      if (s.calls[i] == ops::Call::os_object_new && t.strings[s.ops[i].tag] == "OSString") string_class = true;
    }
  }
  EXPECT_TRUE(string_class);
  const std::string& site = t.strings[zero->site];
  EXPECT_NE(site.find("EveryCallComesBackWithItsFamilyFlagsTagClassAndSite"), std::string::npos) << site;
  EXPECT_NE(site.find("+0x"), std::string::npos) << site;

  // --no-symbols leaves object+offset.
  trace::ImportOptions raw;
  raw.symbols = false;
  const ops::Trace u = trace::import_file(path, raw);
  const std::string& raw_site = u.strings[first_op(u, ops::Call::io_malloc_zero)->site];
  EXPECT_EQ(raw_site.find("Every"), std::string::npos) << raw_site;
  EXPECT_NE(raw_site.find("test_kpi_record+0x"), std::string::npos) << raw_site;
  // Every site is then unnamed; with symbols, this program's own sites were named.
  EXPECT_EQ(u.counters.at("record.sites_unnamed"), u.counters.at("record.sites"));
  EXPECT_LT(t.counters.at("record.sites_unnamed"), t.counters.at("record.sites"));

  // A .kmt and its text form keep the calls.
  const ops::Trace back = trace::decode(trace::encode(t).data(), trace::encode(t).size(), "back.kmt");
  EXPECT_EQ(calls_of(back), calls);
  std::ostringstream text;
  trace::dump(t, text);
  EXPECT_NE(text.str().find("call=OSObject::operator_new"), std::string::npos);
  EXPECT_EQ(trace::encode(trace::undump(text.str(), "t.txt")), trace::encode(t));
  std::remove(path.c_str());
}

// IOMalloc, IOFree, OSMalloc and OSFree jump through words the KPI points at
// a path for the mode alone once nothing records: a recording started later
// still sees every call from its start, with the driver's site, and none after its stop.
TEST(KpiRecord, TheHotCallsAreRecordedFromTheStartToTheStopWithTheirSites) {
  const std::string path = temp_path("hot.kmr");
  OSMallocTag tag = OSMalloc_Tagalloc("com.kmbench.test.hot", OSMT_DEFAULT);
  IOFree(IOMalloc(48), 48);  // before the start: on the mode's path
  OSFree(OSMalloc(48, tag), 48, tag);
  kpi::start_recording(path);
  void* a = IOMalloc(100);
  void* b = OSMalloc(200, tag);
  OSString* s = OSString::withCString("hot");
  s->release();
  IOFree(a, 100);
  OSFree(b, 200, tag);
  kpi::stop_recording();
  IOFree(IOMalloc(48), 48);  // after the stop: on the mode's path again
  OSFree(OSMalloc(48, tag), 48, tag);
  OSMalloc_Tagfree(tag);

  const ops::Trace t = trace::import_file(path);
  const auto calls = calls_of(t);
  EXPECT_EQ(calls.at("OSMalloc"), 1u);
  EXPECT_EQ(calls.at("OSFree"), 1u);
  EXPECT_EQ(calls.at("OSObject::operator new"), 1u);
  EXPECT_EQ(calls.at("OSObject::operator delete"), 1u);
  // The string's characters are IOMalloc'd too.
  EXPECT_EQ(calls.at("IOMalloc"), 2u);
  EXPECT_EQ(calls.at("IOFree"), 2u);
  for (ops::Call c : {ops::Call::io_malloc, ops::Call::os_malloc}) {
    const ops::Op* op = first_op(t, c);
    ASSERT_NE(op, nullptr);
    const std::string& site = t.strings[op->site];
    EXPECT_NE(site.find("TheHotCallsAreRecordedFromTheStartToTheStopWithTheirSites"), std::string::npos) << site;
  }
  std::remove(path.c_str());
}

TEST(KpiRecord, ThreadsFreeingEachOthersBlocksMergeWithEveryFreeAfterItsAllocation) {
  const std::string path = temp_path("threads.kmr");
  kpi::start_recording(path);
  constexpr int kBlocks = 20000;  // several buffers a thread
  std::vector<std::atomic<void*>> handoff(kBlocks);
  std::thread producer([&] {
    for (int i = 0; i < kBlocks; ++i) {
      void* p = IOMalloc(64 + i % 512);
      void* q = IOMalloc(32);  // freed here, so its address comes back to this thread
      IOFree(q, 32);
      handoff[i].store(p, std::memory_order_release);
    }
  });
  std::thread consumer([&] {
    for (int i = 0; i < kBlocks; ++i) {
      void* p;
      while ((p = handoff[i].load(std::memory_order_acquire)) == nullptr) std::this_thread::yield();
      IOFree(p, 64 + i % 512);
    }
  });
  producer.join();
  consumer.join();
  kpi::stop_recording();
  const ops::Trace t = trace::import_file(path);
  EXPECT_EQ(t.counters.at("import.allocs"), 2u * kBlocks);
  EXPECT_EQ(t.counters.at("import.frees"), 2u * kBlocks);
  EXPECT_EQ(t.counters.at("import.unmatched_frees"), 0u);
  EXPECT_EQ(t.counters.at("import.pointer_reuse"), 0u);
  EXPECT_EQ(t.counters.at("import.never_freed"), 0u);
  std::remove(path.c_str());
}

TEST(KpiRecord, ASpilledImportKeepsEveryCallAndWritesTheSameBytes) {
  const std::string path = temp_path("spill.kmr");
  kpi::start_recording(path);
  OSMallocTag tag = OSMalloc_Tagalloc("com.kmbench.test.spill", OSMT_DEFAULT);
  std::vector<std::pair<void*, int>> blocks;
  for (int i = 0; i < 3000; ++i) {  // runs of one call, and calls that change op by op
    blocks.emplace_back(i % 3 == 0 ? OSMalloc(48, tag) : i % 7 == 0 ? IOMallocZero(80) : IOMalloc(64), i);
  }
  for (const auto& [p, i] : blocks) {
    if (i % 3 == 0) {
      OSFree(p, 48, tag);
    } else {
      IOFree(p, i % 7 == 0 ? 80 : 64);
    }
  }
  OSMalloc_Tagfree(tag);
  kpi::stop_recording();

  const ops::Trace held = trace::import_file(path);
  const std::string whole = trace::encode(held);
  const std::string info = trace::info_json(held, trace::summarize(held));
  for (const std::size_t window : {std::size_t{1}, std::size_t{5}, std::size_t{1000}}) {
    trace::OpSpill spill(std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp"), 0, window);
    trace::ImportOptions o;
    o.spill = &spill;
    const ops::Trace head = trace::import_file(path, o);
    EXPECT_EQ(head.op_count(), 0u);
    EXPECT_EQ(trace::info_json(head, trace::summarize(head, spill)), info) << "window " << window;
    const std::string out = temp_path("spill.kmt");
    trace::save(head, spill, out);
    EXPECT_TRUE(read_file(out) == whole) << "window " << window;
    const ops::Trace back = trace::load(out);
    EXPECT_EQ(calls_of(back)["OSMalloc"], 1000u);
    EXPECT_EQ(calls_of(back)["IOMallocZero"], 286u);
    std::remove(out.c_str());
  }
  std::remove(path.c_str());
}

TEST(KpiRecord, ALogCutShortReadsUpToItsLastWholeBlockAndSaysWhere) {
  const std::string path = temp_path("cut.kmr");
  kpi::start_recording(path);
  std::vector<void*> blocks;
  for (int i = 0; i < 10000; ++i) blocks.push_back(IOMalloc(48));
  // As a crash would leave it: two whole buffers written, the third still in memory.
  const ops::Trace running = trace::import_file(path);
  EXPECT_EQ(running.op_count(), 8192u);
  ASSERT_EQ(running.header.metadata.count("record.cut"), 1u);
  EXPECT_NE(running.header.metadata.at("record.cut").find("no end block"), std::string::npos);
  EXPECT_FALSE(trace::summarize(running).cut.empty());
  for (void* p : blocks) IOFree(p, 48);
  kpi::stop_recording();

  const std::string whole = read_file(path);
  const ops::Trace full = trace::import_file(path);
  EXPECT_EQ(full.op_count(), 20000u);
  EXPECT_EQ(full.header.metadata.count("record.cut"), 0u);
  EXPECT_TRUE(trace::summarize(full).cut.empty());
  // Cut inside a records block (or the first block): the blocks before it stay, whole.
  for (std::size_t cut : {whole.size() / 2, std::size_t{40}}) {
    const ops::Trace t = trace::import_kpi_record(std::string_view(whole).substr(0, cut), "cut.kmr", {});
    ASSERT_EQ(t.header.metadata.count("record.cut"), 1u) << cut;
    EXPECT_EQ(t.counters.at("record.cut"), 1u);
    EXPECT_EQ(t.op_count() % 4096, 0u) << "whole buffers only, cut at " << cut;
    EXPECT_LT(t.op_count(), full.op_count());
  }
  // Only the end block cut: every record is there, and the log still says it was cut.
  const ops::Trace last = trace::import_kpi_record(std::string_view(whole).substr(0, whole.size() - 1), "cut.kmr", {});
  EXPECT_EQ(last.op_count(), 20000u);
  EXPECT_EQ(last.counters.at("record.cut"), 1u);
  // A block whose bytes changed fails its checksum: reading stops before it.
  std::string damaged = whole;
  damaged[damaged.size() / 2] ^= 0x40;
  const ops::Trace d = trace::import_kpi_record(damaged, "damaged.kmr", {});
  EXPECT_NE(d.header.metadata.at("record.cut").find("checksum"), std::string::npos);
  std::remove(path.c_str());
}

/// A log made by hand: the file header, then each block with its checksum.
std::string hand_made_log(const std::vector<std::pair<ops::kpirec::BlockType, std::string>>& blocks,
                          std::uint64_t mono_base = 0) {
  std::string log(ops::kpirec::kMagic, sizeof ops::kpirec::kMagic);
  const std::uint32_t version = ops::kpirec::kVersion, reserved = 0;
  log.append(reinterpret_cast<const char*>(&version), 4).append(reinterpret_cast<const char*>(&reserved), 4);
  std::uint64_t flush = 0;
  for (const auto& [type, payload] : blocks) {
    ops::kpirec::BlockHeader h{};
    h.type = type;
    h.bytes = static_cast<std::uint32_t>(payload.size());
    h.crc = base::crc32c(payload.data(), payload.size());
    h.ticks = (flush += 1000);  // a tick a nanosecond
    h.mono_ns = mono_base + flush;
    log.append(reinterpret_cast<const char*>(&h), sizeof h).append(payload);
  }
  return log;
}

std::string record_bytes(std::uint64_t ticks, ops::Call call, std::uint8_t align_log2 = 0) {
  ops::kpirec::Record r{};
  r.ticks = ticks;
  r.address = 0x10000;
  r.size = 4096;
  r.call = static_cast<std::uint8_t>(call);
  r.align_log2 = align_log2;
  return std::string(reinterpret_cast<const char*>(&r), sizeof r);
}

// A log whose checksums hold can still say what no recording says (a
// recorder's bug, or a file made to look like a log): the import refuses it
// by name, rather than handing a replay an impossible operation.
TEST(KpiRecord, RecordsNoRecordingHasAreRefusedByName) {
  using ops::kpirec::BlockType;
  const auto error_of = [](const std::string& log) {
    try {
      trace::import_kpi_record(log, "made.kmr", {});
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string end = "";
  EXPECT_EQ(error_of(hand_made_log({{BlockType::records, record_bytes(1500, ops::Call::io_malloc)},
                                    {BlockType::records, ""},  // a thread that flushed nothing
                                    {BlockType::end, end}})),
            "accepted");
  EXPECT_EQ(error_of(hand_made_log({{BlockType::records, record_bytes(1500, ops::Call::io_buffer_alloc, 200)},
                                    {BlockType::end, end}})),
            "made.kmr: a record asks for an alignment of 2^200 bytes, more than any address has");
  EXPECT_EQ(error_of(hand_made_log({{BlockType::records, record_bytes(~std::uint64_t{0}, ops::Call::io_malloc)},
                                    {BlockType::records, record_bytes(2500, ops::Call::io_malloc)},
                                    {BlockType::end, end}})),
            "made.kmr: a record's time stamp (18446744073709551615 ticks) is no time a recording has: 2^63 ns or "
            "more from the log's first clock reading, or past 2^64 - 1 ns");
  // A clock that reads near 2^64 ns: a time stamp 2^62 ticks on would wrap past it.
  EXPECT_EQ(error_of(hand_made_log({{BlockType::records, record_bytes(std::uint64_t{1} << 62, ops::Call::io_malloc)},
                                    {BlockType::end, end}},
                                   ~std::uint64_t{0} - 10000)),
            "made.kmr: a record's time stamp (4611686018427387904 ticks) is no time a recording has: 2^63 ns or "
            "more from the log's first clock reading, or past 2^64 - 1 ns");
}

// A log's modules name files of the recording machine. Here such a path may
// be a FIFO: naming the sites must not wait on it for a writer.
TEST(KpiRecord, AModulePathThatIsAFifoLeavesItsSitesUnnamed) {
  const std::string fifo = temp_path("module.fifo");
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ops::kpirec::Module m{};
  m.lo = 0x400000;
  m.hi = 0x500000;
  m.path_bytes = static_cast<std::uint16_t>(fifo.size());
  std::string modules(reinterpret_cast<const char*>(&m), sizeof m);
  modules += fifo;
  std::string record = record_bytes(1500, ops::Call::io_malloc);
  const std::uint64_t site = 0x401234;
  std::memcpy(record.data() + offsetof(ops::kpirec::Record, site), &site, sizeof site);
  const std::string log = hand_made_log({{ops::kpirec::BlockType::modules, modules},
                                         {ops::kpirec::BlockType::records, record},
                                         {ops::kpirec::BlockType::end, ""}});
  std::promise<std::string> named;
  std::future<std::string> done = named.get_future();
  std::thread reader([&] {
    const ops::Trace t = trace::import_kpi_record(log, "fifo.kmr", {});
    named.set_value(t.strings.at(t.streams.at(0).ops.at(0).site));
  });
  const bool returned = done.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  if (!returned) ::close(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK));  // let a reader blocked in open() go
  reader.join();
  ASSERT_TRUE(returned) << "the import waited on the FIFO";
  EXPECT_EQ(done.get(), fifo.substr(fifo.rfind('/') + 1) + "+0x401234");  // object+offset, unnamed
  std::remove(fifo.c_str());
}

TEST(KpiRecord, BadLogsAndBadPathsAreRefusedByName) {
  EXPECT_THROW(trace::import_kpi_record("KMBTRACE........", "x.kmr", {}), InputError);
  std::string newer(ops::kpirec::kMagic, 8);
  newer += std::string("\x02\0\0\0\0\0\0\0", 8);
  try {
    trace::import_kpi_record(newer, "newer.kmr", {});
    FAIL() << "a newer version was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("newer.kmr"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("version 2"), std::string::npos);
  }
  try {
    kpi::start_recording("/nonexistent-dir/x.kmr");
    FAIL() << "recorded to a folder that does not exist";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.kmr"), std::string::npos);
  }
  const std::string path = temp_path("twice.kmr");
  kpi::start_recording(path);
  EXPECT_THROW(kpi::start_recording(path), UsageError);
  kpi::stop_recording();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace kmbench::testing
