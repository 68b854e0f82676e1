// Internal to the ftrace text importer: an event line's fields made into the
// Builder's Event. Included by ftrace.cpp alone, and in an anonymous namespace,
// for the reason ftrace_scan.h gives.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "harness/trace/builder.h"
#include "harness/trace/ftrace_events.h"
#include "harness/trace/ftrace_scan.h"

namespace kmbench::trace::ftrace {
namespace {

constexpr std::uint64_t kAbsurdSize = std::uint64_t{1} << 44;  // 16 TiB

/// The strings (call sites, cache names) of one chunk of the text, by ids of
/// the chunk's own, in the order the chunk meets them; strings[0] is "", as in
/// a trace. Merging the chunk makes them the trace's (Builder::intern, in this
/// order), so ids come out as a single pass over the text would give them.
struct ChunkStrings {
  std::vector<std::string> strings{""};
  StringIds ids{strings};
  std::uint32_t intern(std::string_view s) { return ids.intern(s); }
};

/// Fills an Event from the fields that follow an event's name on its line:
/// quick() reads a 6.x kernel's kmem.h lines as they are passed over, fill()
/// any line from the fields it was split into. Remembers the gfp_flags values met.
class EventFiller {
 public:
  /// The chunk whose strings the events' ids index from now on.
  void use(ChunkStrings& strings) { strings_ = &strings; }

  /// x = Event{ev, cpu, time}, field by field: `x = Event{}` compiled to a slow `rep stos`.
  static void start(Event& x, Ev ev, std::uint32_t cpu, std::uint64_t time_ns) {
    x.ev = ev;
    x.null = false;
    x.flags = 0;
    x.align_log2 = 0;
    x.node = -1;
    x.cpu = cpu;
    x.site = x.tag = 0;
    x.time_ns = time_ns;
    x.key = x.size = x.charged = 0;
  }

  // fill() stands before quick(): in this order GCC inlines fill() into the
  // parser's line loop and keeps quick() apart, as it did in one ftrace.cpp.
  void fill(Shape shape, const Fields& f, Event& x, const LineCtx& c) {
    switch (shape) {
      case Shape::slab_alloc: {
        const std::string_view ptr = f.need("ptr", c);
        x.key = parse_hex(ptr, c, "ptr");
        x.null = x.key == 0;
        x.size = parse_uint(f.need("bytes_req", c), c, "bytes_req");
        const auto ba = f.find("bytes_alloc");
        x.charged = ba ? parse_uint(*ba, c, "bytes_alloc") : x.size;
        if (x.size > kAbsurdSize || x.charged > kAbsurdSize) c.fail("absurd allocation size " + std::to_string(std::max(x.size, x.charged)));
        if (const auto g = f.find("gfp_flags")) x.flags = gfp_flags(*g, c);
        if (const auto n = f.find("node")) x.node = node(*n, c);
        x.site = strings_->intern(f.need("call_site", c));
        if (x.ev == Ev::cache_alloc) {
          x.flags |= ops::kOpCache;
          if (const auto n = f.find("name")) x.tag = strings_->intern(*n);
        }
        break;
      }
      case Shape::slab_free: {
        x.key = parse_hex(f.need("ptr", c), c, "ptr");
        x.null = x.key == 0;
        x.site = strings_->intern(f.need("call_site", c));
        if (x.ev == Ev::cache_free) {
          x.flags |= ops::kOpCache;
          if (const auto n = f.find("name")) x.tag = strings_->intern(*n);
        }
        break;
      }
      case Shape::page_alloc:
      case Shape::page_free: {
        const auto pfn = f.find("pfn");
        const auto page = f.find("page");
        if (!pfn && !page) c.fail("page event lacks pfn= and page=");
        const std::uint64_t page_v = page ? parse_hex(*page, c, "page") : 1;
        x.key = pfn ? parse_uint(*pfn, c, "pfn") : page_v;
        x.null = page_v == 0;
        std::uint64_t order = 0;
        if (const auto o = f.find("order")) order = parse_uint(*o, c, "order");
        if (order > 20) c.fail("absurd page order " + std::to_string(order));
        x.size = x.charged = std::uint64_t{4096} << order;
        x.flags = ops::kOpContiguous;
        if (shape == Shape::page_alloc) {
          if (const auto g = f.find("gfp_flags")) x.flags |= gfp_flags(*g, c);
        }
        break;
      }
      case Shape::dma_alloc:
      case Shape::dma_free:
      case Shape::dma_map:
      case Shape::dma_unmap: {
        if (!f.first_bare.empty()) x.tag = strings_->intern(f.first_bare);
        if (const auto d = f.find("dir")) x.flags = dir_flags(*d);
        if (known_sg(x, f, c)) break;
        x.key = parse_hex(f.need("dma_addr", c), c, "dma_addr");
        if (const auto s = f.find("size")) x.size = parse_uint(*s, c, "size");
        if (x.size > kAbsurdSize) c.fail("absurd DMA size " + std::to_string(x.size));
        x.charged = x.size;
        if (shape == Shape::dma_alloc) {
          x.flags |= ops::kOpContiguous;
          if (const auto g = f.find("flags")) x.flags |= gfp_flags(*g, c);
        }
        break;
      }
    }
  }

  /// The quick path for the events of a 6.x kernel's kmem.h; false declines the line.
  bool quick(const Scan& scan, const char* fields, const char* e, Event& x, std::string_view& site, std::string_view& tag) {
    Quick r(scan, fields, e);  // built here: passed by value it was stored and reloaded, stalling
    const bool cache = x.ev == Ev::cache_alloc || x.ev == Ev::cache_free;
    std::string_view gfp, accounted;
    switch (x.ev) {
      case Ev::kmalloc:  // kmalloc_node prints the same fields
      case Ev::cache_alloc: {
        std::uint64_t req, charged;
        if (!(r.key("call_site=") && r.word(site) && r.key(" ptr=") && r.hex(x.key))) return false;
        if (cache && !(r.key(" name=") && r.word(tag))) return false;
        if (!(r.key(" bytes_req=") && r.dec(req) && r.key(" bytes_alloc=") && r.dec(charged) &&
              r.key(" gfp_flags=") && r.word(gfp) && r.key(" node=") && r.node(x.node) && r.key(" accounted=") &&
              r.word(accounted) && r.done())) {
          return false;
        }
        if (req > kAbsurdSize || charged > kAbsurdSize || !gfp_quick(gfp, x.flags)) return false;
        x.null = x.key == 0;
        x.size = req;
        x.charged = charged;
        if (cache) x.flags |= ops::kOpCache;
        return true;
      }
      case Ev::kfree:
      case Ev::cache_free:
        if (!(r.key("call_site=") && r.word(site) && r.key(" ptr=") && r.hex(x.key))) return false;
        if (cache && !(r.key(" name=") && r.word(tag))) return false;
        if (!r.done()) return false;
        x.null = x.key == 0;
        if (cache) x.flags |= ops::kOpCache;
        return true;
      case Ev::page_alloc:
      case Ev::page_free: {
        std::uint64_t page, order, migratetype;
        if (!(r.key("page=") && r.hex(page) && r.key(" pfn=0x") && r.hex(x.key) && r.key(" order=") && r.dec(order))) {
          return false;
        }
        if (x.ev == Ev::page_alloc &&
            !(r.key(" migratetype=") && r.dec(migratetype) && r.key(" gfp_flags=") && r.word(gfp) && gfp_quick(gfp, x.flags))) {
          return false;
        }
        if (!r.done() || order > 20) return false;
        x.null = page == 0;
        x.size = x.charged = std::uint64_t{4096} << order;
        x.flags |= ops::kOpContiguous;
        return true;
      }
      default:
        return false;
    }
  }

 private:
  /// The flags of a gfp_flags value already met (most lines repeat a few); false otherwise.
  bool gfp_quick(std::string_view v, std::uint8_t& flags) {
    for (const auto& [k, f] : gfp_cache_) {
      if (same_bytes(k, v)) {
        flags = f;
        return true;
      }
    }
    return false;
  }

  std::uint8_t gfp_flags(std::string_view v, const LineCtx& c) {
    for (const auto& [k, flags] : gfp_cache_) {
      if (k == v) return flags;
    }
    std::uint8_t f = gfp_to_flags(v);
    if (v.size() > 2 && v[0] == '0' && v[1] == 'x') f = gfp_bits_to_flags(parse_hex(v, c, "gfp_flags"));
    if (gfp_cache_.size() < 64) gfp_cache_.emplace_back(std::string(v), f);
    return f;
  }

  // dma_map_sg / dma_unmap_sg: keyed by the first physical address; size is the sum of lengths.
  bool known_sg(Event& x, const Fields& f, const LineCtx& c) {
    if (f.find("dma_addr")) return false;
    const auto phys = f.find("phys_addrs");
    if (!phys) c.fail("DMA event lacks dma_addr= and phys_addrs=");
    std::string_view v = *phys;
    while (!v.empty() && (v[0] == '{' || v[0] == '[')) v.remove_prefix(1);
    std::size_t cut = v.find_first_of(",}]");
    if (cut == std::string_view::npos) cut = v.size();
    x.key = cut ? parse_hex(v.substr(0, cut), c, "phys_addrs") : 0;
    auto lens = f.find("sizes");
    if (!lens) lens = f.find("lengths");
    if (lens) {
      std::string_view l = *lens;
      std::uint64_t total = 0;
      while (!l.empty()) {
        while (!l.empty() && (l[0] == '{' || l[0] == '[' || l[0] == ',' || l[0] == '}' || l[0] == ']')) l.remove_prefix(1);
        std::size_t n = l.find_first_of(",}]");
        if (n == std::string_view::npos) n = l.size();
        if (n) total += parse_uint(l.substr(0, n), c, "sizes");
        if (total > kAbsurdSize) c.fail("absurd DMA size");
        l.remove_prefix(n);
      }
      x.size = x.charged = total;
    }
    return true;
  }

  static std::uint8_t dir_flags(std::string_view d) {
    if (d == "TO_DEVICE") return ops::kOpDirOut;
    if (d == "FROM_DEVICE") return ops::kOpDirIn;
    if (d == "BIDIRECTIONAL") return ops::kOpDirIn | ops::kOpDirOut;
    return 0;
  }

  static std::int8_t node(std::string_view v, const LineCtx& c) {
    const std::int64_t n = parse_int(v, c, "node");
    if (n < -1 || n > 127) c.fail("absurd node " + std::to_string(n));
    return static_cast<std::int8_t>(n);
  }

  ChunkStrings* strings_ = nullptr;  // interns call sites and tags
  std::vector<std::pair<std::string, std::uint8_t>> gfp_cache_;
};

}  // namespace
}  // namespace kmbench::trace::ftrace
