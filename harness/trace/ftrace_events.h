// Internal to harness/trace: the Linux kmem and dma tracepoints kmbench
// imports, and the GFP flags it keeps, shared by the text and trace.dat readers.
#pragma once

#include <cstdint>
#include <string_view>

#include "harness/trace/builder.h"

namespace kmbench::trace {

/// Which fields an event carries.
enum class Shape : std::uint8_t { slab_alloc, slab_free, page_alloc, page_free, dma_alloc, dma_free, dma_map, dma_unmap };

/// A tracepoint kmbench imports.
struct FtraceEvent {
  std::string_view name;
  Ev ev;
  Shape shape;
  std::uint32_t kind_bit;  // EventKindBit
};

// Most frequent first: lookups stop early.
inline constexpr FtraceEvent kFtraceEvents[] = {
    {"mm_page_alloc", Ev::page_alloc, Shape::page_alloc, kKindPage},
    {"mm_page_free", Ev::page_free, Shape::page_free, kKindPage},
    {"kmem_cache_alloc", Ev::cache_alloc, Shape::slab_alloc, kKindCache},
    {"kmem_cache_free", Ev::cache_free, Shape::slab_free, kKindCache},
    {"mm_page_free_batched", Ev::page_free, Shape::page_free, kKindPage},
    {"kfree", Ev::kfree, Shape::slab_free, kKindKmalloc},
    {"kmalloc", Ev::kmalloc, Shape::slab_alloc, kKindKmalloc},
    {"kmalloc_node", Ev::kmalloc, Shape::slab_alloc, kKindKmalloc},
    {"kmem_cache_alloc_node", Ev::cache_alloc, Shape::slab_alloc, kKindCache},
    {"dma_alloc", Ev::dma_alloc, Shape::dma_alloc, kKindDma},
    {"dma_alloc_pages", Ev::dma_alloc, Shape::dma_alloc, kKindDma},
    {"dma_alloc_sgt", Ev::dma_alloc, Shape::dma_alloc, kKindDma},
    {"dma_free", Ev::dma_free, Shape::dma_free, kKindDma},
    {"dma_free_pages", Ev::dma_free, Shape::dma_free, kKindDma},
    {"dma_free_sgt", Ev::dma_free, Shape::dma_free, kKindDma},
    {"dma_map_phys", Ev::dma_map, Shape::dma_map, kKindDma},
    {"dma_map_page", Ev::dma_map, Shape::dma_map, kKindDma},
    {"dma_map_resource", Ev::dma_map, Shape::dma_map, kKindDma},
    {"dma_map_sg", Ev::dma_map, Shape::dma_map, kKindDma},
    {"dma_unmap_phys", Ev::dma_unmap, Shape::dma_unmap, kKindDma},
    {"dma_unmap_page", Ev::dma_unmap, Shape::dma_unmap, kKindDma},
    {"dma_unmap_resource", Ev::dma_unmap, Shape::dma_unmap, kKindDma},
    {"dma_unmap_sg", Ev::dma_unmap, Shape::dma_unmap, kKindDma},
};

inline const FtraceEvent* find_ftrace_event(std::string_view name) {
  if (name.size() < 5 || (name[0] != 'k' && name[0] != 'm' && name[0] != 'd')) return nullptr;
  for (const FtraceEvent& e : kFtraceEvents) {
    if (same_bytes(e.name, name)) return &e;
  }
  return nullptr;
}

/// GFP bit values of Linux 5.x/6.x (include/linux/gfp_types.h).
inline std::uint8_t gfp_bits_to_flags(std::uint64_t gfp) {
  std::uint8_t f = 0;
  if (gfp & 0x100) f |= ops::kOpZero;                  // __GFP_ZERO
  if (!(gfp & 0x400)) f |= ops::kOpNoblock;            // no __GFP_DIRECT_RECLAIM
  if (gfp & 0x5) f |= ops::kOpDma32;                   // __GFP_DMA | __GFP_DMA32
  return f;
}

/// "GFP_KERNEL|__GFP_ZERO" → OpFlag bits.
inline std::uint8_t gfp_to_flags(std::string_view v) {
  std::uint8_t f = 0;
  bool may_sleep = false;
  while (!v.empty()) {
    std::size_t bar = v.find('|');
    if (bar == std::string_view::npos) bar = v.size();
    const std::string_view t = v.substr(0, bar);
    v.remove_prefix(bar == v.size() ? bar : bar + 1);
    if (t == "__GFP_ZERO") {
      f |= ops::kOpZero;
    } else if (t == "GFP_DMA32" || t == "__GFP_DMA32" || t == "GFP_DMA" || t == "__GFP_DMA") {
      f |= ops::kOpDma32;
    } else if (t == "GFP_KERNEL" || t == "GFP_KERNEL_ACCOUNT" || t == "GFP_NOFS" || t == "GFP_NOIO" ||
               t == "GFP_USER" || t == "GFP_HIGHUSER" || t == "GFP_HIGHUSER_MOVABLE" || t == "GFP_TRANSHUGE" ||
               t == "__GFP_DIRECT_RECLAIM" || t == "__GFP_RECLAIM") {
      may_sleep = true;
    }
  }
  if (!may_sleep) f |= ops::kOpNoblock;
  return f;
}

}  // namespace kmbench::trace
