// osmalloc: drivers allocating under OSMalloc tags. Each tag has a typical
// block size; some allocations are OSMalloc_noblock, and pageable tags get
// page-level memory for blocks of a page or more (OSMT_PAGEABLE). Every
// `unload_every` operations a driver unloads: all its blocks are freed, its
// tag is freed and a new one takes its place (kext reload).
#include "workloads/builder.h"

namespace kmbench::workloads {
namespace {

/// The most tags: a driver each, and far more drivers than a machine loads.
constexpr std::uint64_t kMaxTags = 65536;

ops::Trace generate_osmalloc(const Params& p, std::uint64_t seed) {
  const unsigned streams = stream_count(p, "streams");
  const std::uint64_t tag_count = p.u64("tags", 1);
  if (tag_count > kMaxTags) p.refuse("tags", "is above " + std::to_string(kMaxTags) + " tags");
  const auto tags = static_cast<unsigned>(tag_count);
  const std::uint64_t total = p.u64("ops");
  const std::uint64_t target = p.u64("live", 1);
  const double noblock = p.real("noblock");
  const double pageable = p.real("pageable");
  const std::uint64_t unload_every = p.u64("unload_every");
  const double op_ns = op_time_ns(p);

  if (p.check_only()) return {};

  Rng rng(seed);
  Builder b("osmalloc", streams);
  const std::uint32_t site = b.str("OSMalloc");
  struct Tag {
    std::uint32_t name;
    std::uint64_t typical;
    bool pageable;
    unsigned generation;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> live;  // object, size
    std::vector<std::uint8_t> kinds;                             // 1: page-level
  };
  std::vector<Tag> drivers(tags);
  auto load = [&](unsigned d) {
    Tag& t = drivers[d];
    ++t.generation;
    t.name = b.str("com.example.driver" + std::to_string(d) + "#" + std::to_string(t.generation));
    t.pageable = rng.chance(pageable * 4 < 1 ? pageable * 4 : 1);  // a few tags are pageable
    t.typical = std::uint64_t{32} << rng.below(9);                   // 32 B .. 8 KiB
    t.live.clear();
    t.kinds.clear();
  };
  for (unsigned d = 0; d < tags; ++d) load(d);

  std::uint64_t live_total = 0;
  auto free_block = [&](unsigned s, double t, Tag& tag, std::size_t k) {
    const auto [o, size] = tag.live[k];
    const bool paged = tag.kinds[k] != 0;
    tag.live[k] = tag.live.back();
    tag.live.pop_back();
    tag.kinds[k] = tag.kinds.back();
    tag.kinds.pop_back();
    b.op(s, t, paged ? OpKind::page_free : OpKind::free, o, size,
         {static_cast<std::uint8_t>(paged ? ops::kOpPageable : 0), tag.name, site});
    --live_total;
  };
  for (std::uint64_t i = 0; i < total; ++i) {
    const unsigned s = static_cast<unsigned>(i % streams);
    const double t = static_cast<double>(i / streams) * op_ns;
    if (unload_every > 0 && i > 0 && i % unload_every == 0) {
      const unsigned d = static_cast<unsigned>(rng.below(tags));
      double at = t;
      while (!drivers[d].live.empty()) free_block(s, at += 1, drivers[d], drivers[d].live.size() - 1);
      load(d);
      continue;
    }
    const bool grow = live_total < target ? rng.chance(0.7) : rng.chance(0.3);
    const unsigned d = static_cast<unsigned>(rng.below(tags));
    Tag& tag = drivers[d];
    if (grow || tag.live.empty()) {
      const std::uint64_t size = std::max<std::uint64_t>(1, tag.typical / 2 + rng.below(tag.typical));
      const bool paged = tag.pageable && size >= kPage;
      std::uint8_t flags = paged ? ops::kOpPageable : 0;
      if (!tag.pageable && rng.chance(noblock)) flags |= ops::kOpNoblock;  // noblock on a pageable tag fails
      const std::uint32_t o = b.object();
      b.op(s, t, paged ? OpKind::page_alloc : OpKind::alloc, o, size, {flags, tag.name, site});
      tag.live.emplace_back(o, size);
      tag.kinds.push_back(paged ? 1 : 0);
      ++live_total;
    } else {
      free_block(s, t, tag, rng.below(tag.live.size()));
    }
  }
  const double end = static_cast<double>(total / streams + 1) * op_ns;
  for (unsigned d = 0; d < tags; ++d) {
    double at = end;
    while (!drivers[d].live.empty()) {
      free_block(d % streams, at += 1, drivers[d], drivers[d].live.size() - 1);
    }
  }
  return b.finish();
}

}  // namespace

WorkloadInfo osmalloc_workload() {
  return {"osmalloc",
          "OSMalloc tag churn: drivers allocate under their tags (noblock, pageable), unload and free everything, tags recreated",
          {{"streams", "2", "CPU streams"},
           {"tags", "32", "drivers (tags) loaded at once"},
           {"ops", "200000", "operations (all streams)"},
           {"live", "4000", "live blocks in steady state"},
           {"noblock", "0.1", "fraction of OSMalloc_noblock allocations"},
           {"pageable", "0.05", "fraction of allocations from pageable tags (page-level, >= 1 page)"},
           {"unload_every", "20000", "operations between driver unloads (0: never)"},
           {"op_ns", "100", "time per operation"}},
          generate_osmalloc};
}

}  // namespace kmbench::workloads
