#include "allocators/buddy/buddy.h"

#include <sys/mman.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <string>

#include "base/errors.h"

namespace kmbench {
namespace {

using physmem::kMaxOrder;
using physmem::kPageShift;
using physmem::kPageSize;

std::uint64_t pages_of(std::size_t size) noexcept {
  return size == 0 ? 1 : (static_cast<std::uint64_t>(size) + kPageSize - 1) >> kPageShift;
}

unsigned order_of_pages(std::uint64_t pages) noexcept {
  return pages <= 1 ? 0 : static_cast<unsigned>(64 - std::countl_zero(pages - 1));
}

}  // namespace

BuddyBackend::BuddyBackend(const BackendConfig& config)
    : machine_(config.machine != nullptr ? *config.machine : physmem::current_machine()) {
  const ParamReader params("buddy", kParams, config);
  std::uint32_t pcp_high = 0, pcp_batch = 0;  // the marks to set (0: the machine's stay)
  if (params.given("max_phys")) max_phys_ = static_cast<std::uint64_t>(params.integer("max_phys"));
  if (params.given("pcp_high") || params.given("pcp_batch")) {
    const auto high = static_cast<std::uint32_t>(params.given("pcp_high") ? params.integer("pcp_high")
                                                                           : machine_.pcp_high_pages());
    const auto batch = static_cast<std::uint32_t>(params.given("pcp_batch") ? params.integer("pcp_batch")
                                                                             : std::min(machine_.pcp_batch_pages(), high));
    if (batch > high) {
      throw UsageError("buddy: pcp_batch=" + std::to_string(batch) + " is above pcp_high=" +
                       std::to_string(high) + " (a spill keeps pcp_high - pcp_batch pages)");
    }
    pcp_high = high;
    pcp_batch = batch;
  }
  const physmem::NodeInfo& last = machine_.node(static_cast<NodeId>(machine_.node_count() - 1));
  shape_bytes_ = static_cast<std::size_t>(last.phys_end >> kPageShift);
  shape_bytes_ = (shape_bytes_ + kPageSize - 1) & ~(kPageSize - 1);
  void* p = mmap(nullptr, shape_bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw RunError(std::string("buddy: cannot map the page shape table: ") + std::strerror(errno));
  }
  shape_ = static_cast<std::uint8_t*>(p);
  machine_.populate_page_table(shape_, 1);
  if (pcp_high != 0) {  // last: nothing after it can throw, so the destructor puts the machine's back
    saved_pcp_high_ = machine_.pcp_high_pages();
    saved_pcp_batch_ = machine_.pcp_batch_pages();
    machine_.set_pcp_marks(pcp_high, pcp_batch);
  }
}

BuddyBackend::~BuddyBackend() {
  munmap(shape_, shape_bytes_);
  if (saved_pcp_high_ != 0) machine_.set_pcp_marks(saved_pcp_high_, saved_pcp_batch_);  // marks it read: valid
}

void* BuddyBackend::allocate_large(std::size_t size, std::size_t align, NodeId node,
                                   std::uint64_t max_phys, std::uint32_t gfp) noexcept {
  Shard& s = shards_[this_cpu_slot()];
  if ((align & (align - 1)) != 0 || size > (std::size_t{1} << 44)) {
    bump(s.failures, std::uint64_t{1});
    return nullptr;
  }
  const std::uint64_t pages = pages_of(size);
  const unsigned size_order = order_of_pages(pages);
  const unsigned align_order =
      align <= kPageSize ? 0 : static_cast<unsigned>(std::countr_zero(align)) - kPageShift;
  void* p = nullptr;
  std::uint8_t shape = kShapeBySize;
  std::int64_t held = 0;
  if (size_order <= kMaxOrder && align_order <= kMaxOrder) {
    const unsigned order = std::max(size_order, align_order);
    p = machine_.alloc_pages(order, node, max_phys, gfp);
    shape = order == size_order ? kShapeBySize : static_cast<std::uint8_t>(order + 1);
    held = std::int64_t{1} << order;
  } else {
    p = machine_.alloc_contiguous(static_cast<std::size_t>(pages << kPageShift),
                                  std::max(align, kPageSize), node, max_phys, gfp);
    shape = size_order <= kMaxOrder ? kShapeRun : kShapeBySize;
    held = static_cast<std::int64_t>(pages);
  }
  if (p == nullptr) {
    bump(s.failures, std::uint64_t{1});
    return nullptr;
  }
  if (shape != kShapeBySize) {
    shape_[machine_.phys_of(p) >> kPageShift] = shape;
    bump(shape == kShapeRun ? s.runs : s.raised, std::uint64_t{1});
  } else if (size_order > kMaxOrder) {
    bump(s.runs, std::uint64_t{1});
  }
  bump(s.pages, held);
  bump(s.blocks, std::int64_t{1});
  return p;
}

void BuddyBackend::free_large(void* p, std::size_t size, std::uint64_t pfn) noexcept {
  const std::uint8_t shape = shape_[pfn];
  const std::uint64_t pages = pages_of(size);
  Shard& s = shards_[this_cpu_slot()];
  if (shape == kShapeRun || (shape == kShapeBySize && order_of_pages(pages) > kMaxOrder)) {
    shape_[pfn] = kShapeBySize;
    machine_.free_contiguous(p, static_cast<std::size_t>(pages << kPageShift));
    bump(s.pages, -static_cast<std::int64_t>(pages));
    bump(s.blocks, std::int64_t{-1});
    return;
  }
  const unsigned order = shape == kShapeBySize ? order_of_pages(pages) : shape - 1u;
  shape_[pfn] = kShapeBySize;
  machine_.free_pages(p, order);
  bump(s.pages, -(std::int64_t{1} << order));
  bump(s.blocks, std::int64_t{-1});
}

std::size_t BuddyBackend::usable_size(void* p, std::size_t size) const noexcept {
  const std::uint8_t shape = shape_[machine_.phys_of(p) >> kPageShift];
  const std::uint64_t pages = pages_of(size);
  if (shape == kShapeRun) {
    return static_cast<std::size_t>(pages << kPageShift);
  }
  if (shape != kShapeBySize) {
    return kPageSize << (shape - 1u);
  }
  const unsigned order = order_of_pages(pages);
  return order > kMaxOrder ? static_cast<std::size_t>(pages << kPageShift) : kPageSize << order;
}

std::size_t BuddyBackend::reclaim(ReclaimLevel level) {
  return machine_.drain_local(level == ReclaimLevel::trim);
}

BackendFootprint BuddyBackend::footprint() const {
  std::int64_t pages = 0;
  const unsigned slots = cpu_slots_in_use();
  for (unsigned i = 0; i < slots; ++i) pages += load(shards_[i].pages);
  const std::uint64_t bytes = static_cast<std::uint64_t>(pages) << kPageShift;
  return {bytes, bytes};
}

BackendStats BuddyBackend::stats() const {
  std::int64_t pages = 0, blocks = 0;
  std::uint64_t raised = 0, runs = 0, failures = 0;
  const unsigned slots = cpu_slots_in_use();
  for (unsigned i = 0; i < slots; ++i) {
    const Shard& s = shards_[i];
    pages += load(s.pages);
    blocks += load(s.blocks);
    raised += load(s.raised);
    runs += load(s.runs);
    failures += load(s.failures);
  }
  const physmem::PageStats page = machine_.stats();
  BackendStats out;
  out.mapped_bytes = static_cast<std::uint64_t>(pages) << kPageShift;
  out.resident_bytes = out.mapped_bytes;
  out.metadata_bytes = 0;  // the page layer's descriptors are the machine's (physmem.metadata_bytes)
  out.live_blocks = blocks;
  out.live_bytes = pages << kPageShift;
  out.metrics = {
      {"backend.buddy.pages_held", static_cast<double>(pages)},
      {"backend.buddy.aligned_up_blocks", static_cast<double>(raised)},
      {"backend.buddy.contiguous_runs", static_cast<double>(runs)},
      {"backend.buddy.failed_allocs", static_cast<double>(failures)},
  };
  for (Metric& m : page.metrics()) {
    out.metrics.push_back(std::move(m));
  }
  return out;
}

}  // namespace kmbench
