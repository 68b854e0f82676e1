// Reads a KPI record log (ops/kpi_record.h): the blocks up to the first one
// that is cut or fails its checksum, the records merged by time across
// threads, the call sites named from the recorded objects' symbol tables, and
// every call turned into an op (with its KPI call) by the capture Builder.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/crc32c.h"
#include "base/errors.h"
#include "harness/trace/builder.h"
#include "harness/trace/symbols.h"
#include "harness/trace/trace.h"
#include "ops/kpi_record.h"

namespace kmbench::trace {
namespace {

using namespace ops::kpirec;
using ops::Call;

// The KPI's option bits (IOKit/IOMemoryDescriptor.h, libkern/OSMalloc.h).
constexpr std::uint32_t kIOMemoryPhysicallyContiguous = 0x10;
constexpr std::uint32_t kIOMemoryPageable = 0x400;
constexpr std::uint32_t kIODirectionIn = 0x1, kIODirectionOut = 0x2;
constexpr std::uint32_t kOSMTPageable = 0x1;

/// What the blocks of a log hold.
struct Log {
  std::vector<Record> records;
  std::unordered_map<std::uint64_t, std::string> names;
  std::vector<Symbolizer::Module> modules;
  std::map<std::string, std::string> header;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> clock;  // (ticks, monotonic ns) per block
  std::uint64_t blocks = 0;
  bool ended = false;
  std::string cut;  // why reading stopped before the end block ("" when it did not)
};

template <class T>
T read_at(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void read_names(const char* p, std::size_t n, Log& log) {
  while (n >= 10) {
    const auto key = read_at<std::uint64_t>(p);
    const auto len = read_at<std::uint16_t>(p + 8);
    if (n - 10 < len) return;
    log.names[key] = std::string(p + 10, len);
    p += 10 + len;
    n -= 10 + std::size_t{len};
  }
}

void read_modules(const char* p, std::size_t n, Log& log) {
  std::vector<Symbolizer::Module> mods;
  while (n >= sizeof(Module)) {
    const auto m = read_at<Module>(p);
    const std::size_t extra = std::size_t{m.path_bytes} + m.build_id_bytes;
    if (n - sizeof(Module) < extra) return;
    Symbolizer::Module s;
    s.base = m.base;
    s.lo = m.lo;
    s.hi = m.hi;
    s.path.assign(p + sizeof(Module), m.path_bytes);
    s.build_id.assign(p + sizeof(Module) + m.path_bytes, m.build_id_bytes);
    mods.push_back(std::move(s));
    p += sizeof(Module) + extra;
    n -= sizeof(Module) + extra;
  }
  // The last list is the longest (objects loaded since are in it too) and starts with the program.
  if (mods.size() >= log.modules.size()) log.modules = std::move(mods);
}

void read_header(std::string_view text, Log& log) {
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    const std::size_t eq = line.find('=');
    if (eq != std::string_view::npos) log.header[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

Log read_log(std::string_view bytes, const std::string& name) {
  if (bytes.size() < kFileHeaderBytes || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    throw InputError(name, "not a KPI record log (no KMBKPIRC magic)");
  }
  const auto version = read_at<std::uint32_t>(bytes.data() + 8);
  if (version == 0 || version > kVersion) {
    throw InputError(name, "KPI record log version " + std::to_string(version) + " is newer than this build's (" +
                               std::to_string(kVersion) + ")");
  }
  Log log;
  std::size_t at = kFileHeaderBytes;
  while (at < bytes.size()) {
    const auto offset = std::to_string(at);
    if (bytes.size() - at < sizeof(BlockHeader)) {
      log.cut = "byte offset " + offset + ": a block header cut short";
      break;
    }
    const auto h = read_at<BlockHeader>(bytes.data() + at);
    const char* payload = bytes.data() + at + sizeof(BlockHeader);
    if (bytes.size() - at - sizeof(BlockHeader) < h.bytes) {
      log.cut = "byte offset " + offset + ": a block of " + std::to_string(h.bytes) + " bytes cut short";
      break;
    }
    if (base::crc32c(payload, h.bytes) != h.crc) {
      log.cut = "byte offset " + offset + ": a block fails its checksum";
      break;
    }
    if (log.ended) throw InputError(name, "byte offset " + offset + ": a block after the end block");
    ++log.blocks;
    log.clock.emplace_back(h.ticks, h.mono_ns);
    switch (h.type) {
      case BlockType::header: read_header(std::string_view(payload, h.bytes), log); break;
      case BlockType::records: {
        if (h.bytes % sizeof(Record) != 0) {
          throw InputError(name, "byte offset " + offset + ": records block of " + std::to_string(h.bytes) +
                                     " bytes is not a whole number of records");
        }
        const std::size_t n = h.bytes / sizeof(Record);
        if (n == 0) break;  // a thread that flushed nothing
        const std::size_t first = log.records.size();
        log.records.resize(first + n);
        std::memcpy(static_cast<void*>(log.records.data() + first), payload, h.bytes);
        break;
      }
      case BlockType::names: read_names(payload, h.bytes, log); break;
      case BlockType::modules: read_modules(payload, h.bytes, log); break;
      case BlockType::end: log.ended = true; break;
      default:
        throw InputError(name, "byte offset " + offset + ": unknown block type " + std::to_string(int(h.type)));
    }
    at += sizeof(BlockHeader) + h.bytes;
  }
  if (!log.ended && log.cut.empty()) log.cut = "byte offset " + std::to_string(at) + ": no end block";
  return log;
}

/// Converts ticks to nanoseconds of the monotonic clock from the pairs the blocks carry.
struct TickClock {
  std::uint64_t t0 = 0, ns0 = 0;
  double ns_per_tick = 0;
  explicit TickClock(std::vector<std::pair<std::uint64_t, std::uint64_t>> pairs) {
    if (pairs.empty()) return;
    std::sort(pairs.begin(), pairs.end());
    t0 = pairs.front().first;
    ns0 = pairs.front().second;
    const auto& last = pairs.back();
    if (last.first > t0 && last.second > ns0) {
      ns_per_tick = static_cast<double>(last.second - ns0) / static_cast<double>(last.first - t0);
    }
  }
  /// nullopt for a time stamp no recording has: 2^63 ns (292 years) or more
  /// from the first reading, or past 2^64 - 1 ns.
  std::optional<std::uint64_t> ns(std::uint64_t ticks) const {
    const double d = (static_cast<double>(ticks) - static_cast<double>(t0)) * ns_per_tick;
    if (!(std::fabs(d) < 0x1p63)) return std::nullopt;
    if (d <= -static_cast<double>(ns0)) return 0;
    std::uint64_t t;
    if (__builtin_add_overflow(ns0, static_cast<std::int64_t>(d), &t)) return std::nullopt;
    return t;
  }
};

std::uint8_t log2_of(std::uint64_t v) { return v <= 1 ? 0 : static_cast<std::uint8_t>(std::bit_width(v) - 1); }

/// The capture event of one recorded call; false for calls the trace does not hold.
bool event_of(const Record& r, Event& e) {
  const auto call = static_cast<Call>(r.call);
  e.key = r.address;
  e.null = r.address == 0;
  e.size = e.charged = r.size;
  switch (call) {
    case Call::io_malloc: e.ev = Ev::kmalloc; break;
    case Call::io_malloc_zero: e.ev = Ev::kmalloc; e.flags = ops::kOpZero; break;
    case Call::io_malloc_aligned: e.ev = Ev::kmalloc; e.align_log2 = log2_of(r.aux); break;
    case Call::io_malloc_pageable:
      e.ev = Ev::kmalloc;
      e.align_log2 = log2_of(r.aux);
      e.flags = ops::kOpPageable | ((r.aux2 & 1) != 0 ? ops::kOpZero : 0);
      break;
    case Call::io_malloc_contiguous:
      e.ev = Ev::kmalloc;
      e.align_log2 = log2_of(r.aux);
      e.flags = ops::kOpContiguous | ((r.aux2 & 1) != 0 ? ops::kOpDma32 : 0);
      break;
    case Call::os_malloc: case Call::os_malloc_noblock: case Call::os_malloc_nowait:
      e.ev = Ev::kmalloc;
      e.flags = (call != Call::os_malloc ? ops::kOpNoblock : 0) |
                ((r.aux2 & kOSMTPageable) != 0 && r.size >= 4096 ? ops::kOpPageable : 0);
      break;
    case Call::os_object_new: e.ev = Ev::kmalloc; break;
    case Call::io_free: case Call::io_free_aligned: case Call::io_free_pageable: case Call::io_free_contiguous:
    case Call::os_object_delete:
      e.ev = Ev::kfree;
      break;
    case Call::os_free:
      e.ev = Ev::kfree;
      e.flags = (r.aux2 & kOSMTPageable) != 0 && r.size >= 4096 ? ops::kOpPageable : 0;
      break;
    case Call::io_buffer_alloc:
      e.ev = Ev::dma_alloc;
      e.align_log2 = r.align_log2;
      if ((r.aux2 & kIOMemoryPhysicallyContiguous) != 0) e.flags |= ops::kOpContiguous;
      if ((r.aux2 & kIOMemoryPageable) != 0) e.flags |= ops::kOpPageable;
      if ((r.aux2 & kIODirectionIn) != 0) e.flags |= ops::kOpDirIn;
      if ((r.aux2 & kIODirectionOut) != 0) e.flags |= ops::kOpDirOut;
      if (r.aux != 0 && r.aux <= 0xffffffffull) e.flags |= ops::kOpDma32;
      break;
    case Call::io_buffer_free: e.ev = Ev::dma_free; break;
    case Call::dma_prepare:
      e.ev = Ev::dma_map;
      e.target = r.aux;  // the memory descriptor: a buffer descriptor's own dma_alloc when it is one
      if ((r.aux2 & kPrepareIn) != 0) e.flags |= ops::kOpDirIn;
      if ((r.aux2 & kPrepareOut) != 0) e.flags |= ops::kOpDirOut;
      if ((r.aux2 & kPrepare32) != 0) e.flags |= ops::kOpDma32;
      break;
    case Call::dma_complete: e.ev = Ev::dma_unmap; break;
    case Call::none:
    case Call::malloc: case Call::calloc: case Call::realloc: case Call::free: case Call::posix_memalign:
    case Call::aligned_alloc: case Call::memalign: case Call::valloc: case Call::pvalloc:
    case Call::mmap: case Call::munmap:
      return false;  // never made through the KPI
  }
  e.call = call;
  return true;
}

std::string key_name(const Log& log, std::uint64_t key, const char* what) {
  auto it = log.names.find(key);
  if (it != log.names.end()) return it->second;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s@0x%llx", what, static_cast<unsigned long long>(key));
  return buf;
}

}  // namespace

ops::Trace import_kpi_record(std::string_view bytes, const std::string& name, const ImportOptions& options) {
  Log log = read_log(bytes, name);
  std::stable_sort(log.records.begin(), log.records.end(),
                   [](const Record& a, const Record& b) { return a.ticks < b.ticks; });
  const TickClock clock(log.clock);

  // An object's class comes after its operator new, from its constructors (the most derived last).
  std::vector<std::uint64_t> class_of(log.records.size(), 0);
  {
    std::unordered_map<std::uint64_t, std::size_t> last_new;
    for (std::size_t i = 0; i < log.records.size(); ++i) {
      const Record& r = log.records[i];
      if (r.call == static_cast<std::uint8_t>(Call::os_object_new) && r.address != 0) {
        last_new[r.address] = i;
      } else if (r.call == kClassOf) {
        auto it = last_new.find(r.address);
        if (it != last_new.end()) class_of[it->second] = r.aux;
      }
    }
  }

  Builder b("kpi", "kmbench-kpi-record", options);
  Symbolizer symbols(log.modules, options.symbols);
  std::unordered_map<std::uint64_t, std::uint32_t> site_ids;
  std::uint64_t unknown = 0, dma_runs = 0, dma_bounced = 0;
  for (std::size_t i = 0; i < log.records.size(); ++i) {
    const Record& r = log.records[i];
    if (r.call >= kFirstEvent) continue;
    Event e;
    if (r.call >= ops::kCalls || !event_of(r, e)) {
      ++unknown;
      continue;
    }
    if (e.align_log2 > 63) {
      throw InputError(name, "a record asks for an alignment of 2^" + std::to_string(e.align_log2) +
                                 " bytes, more than any address has");
    }
    e.cpu = r.cpu;
    const std::optional<std::uint64_t> ns = clock.ns(r.ticks);
    if (!ns) {
      throw InputError(name, "a record's time stamp (" + std::to_string(r.ticks) +
                                 " ticks) is no time a recording has: 2^63 ns or more from the log's first clock "
                                 "reading, or past 2^64 - 1 ns");
    }
    e.time_ns = *ns;
    auto [it, fresh] = site_ids.try_emplace(r.site, 0);
    if (fresh) it->second = b.intern(symbols.name(r.site));  // each distinct site named once
    e.site = it->second;
    const auto call = static_cast<Call>(r.call);
    if (call == Call::dma_prepare) {  // what the ops cannot hold: the transfer's physical runs and its bounce
      dma_runs += r.aux2 >> kPrepareRunsShift;
      dma_bounced += (r.aux2 & kPrepareBounced) != 0 ? 1 : 0;
    }
    if (call == Call::os_malloc || call == Call::os_malloc_noblock || call == Call::os_malloc_nowait) {
      e.tag = b.intern(key_name(log, r.aux, "tag"));
    } else if (call == Call::os_object_new && class_of[i] != 0) {
      e.tag = b.intern(key_name(log, class_of[i], "class"));
    }
    b.add(e, true);
  }
  for (const auto& [k, v] : log.header) b.set_metadata("record." + k, v);
  if (!log.cut.empty()) b.set_metadata("record.cut", log.cut);
  b.set_cpu_count(static_cast<std::uint32_t>(std::strtoul(log.header["cpus"].c_str(), nullptr, 10)));
  ops::Trace t = b.finish();
  t.counters["record.records"] = log.records.size();
  t.counters["record.blocks"] = log.blocks;
  t.counters["record.cut"] = log.cut.empty() ? 0 : 1;
  t.counters["record.unknown_calls"] = unknown;
  t.counters["record.sites"] = site_ids.size();
  t.counters["record.sites_unnamed"] = symbols.counts().unnamed;
  t.counters["record.objects_unreadable"] = symbols.counts().unreadable_objects;
  t.counters["record.build_id_mismatches"] = symbols.counts().build_id_mismatches;
  t.counters["record.dma_runs"] = dma_runs;
  t.counters["record.dma_bounced_transfers"] = dma_bounced;
  t.counters["record.dropped_records"] = std::strtoull(log.header["dropped_records"].c_str(), nullptr, 10);
  if (const auto ps = std::strtoul(log.header["page_size"].c_str(), nullptr, 10); ps > 0) {
    t.header.page_size = static_cast<std::uint32_t>(ps);
  }
  return t;
}

}  // namespace kmbench::trace
