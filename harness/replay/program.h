// The replay program: a trace pre-decoded into one array of steps per replay
// thread, with every cross-thread ordering decided at load time.
//
// Streams are folded onto threads (stream i on thread i % threads, merged by
// time). Each object's operations are put in an order its lifetime allows
// (alloc, maps, unmaps, free) by simulating the replay once; operations no
// order can make valid (a free with no allocation, a second allocation of a
// live object) are dropped and counted. When two consecutive operations on
// one object run on different threads, the two share a handoff: the first
// publishes it (release) and the second waits for it (acquire); every other
// step pays nothing. A realloc recorded as the free of the old block
// and the allocation of the new one (the C library's, ops::Call::realloc)
// runs as one realloc when the two are adjacent on their thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "allocators/backend.h"
#include "harness/replay/requests.h"
#include "ops/ops.h"

namespace kmbench::replay {

inline constexpr std::size_t kPageBytes = 4096;

/// Step::ctl bits.
enum StepCtl : std::uint8_t {
  kStepWait = 1u << 0,     // wait for the step's handoff before running
  kStepPublish = 1u << 1,  // publish the step's handoff (release) after running
  kStepLow = 1u << 2,      // alloc: below 4 GiB (the stream's dma32 flag); free: of such a block
  // A realloc that moved or resized a block: the free of the old block and,
  // as the very next step of the thread, the allocation of the new one.
  kStepReallocFrom = 1u << 3,  // free: the old block waits for the next step
  kStepReallocTo = 1u << 4,    // alloc: reallocates the block the step before left
};

/// Sizes a step carries: below 1 TiB. Trace times it carries: below 2^56 ns (2.28 years).
inline constexpr std::uint64_t kStepSizeLimit = std::uint64_t{1} << 40;
inline constexpr std::uint64_t kStepTimeLimit = std::uint64_t{1} << 56;

/// One operation as the replay loop runs it; 24 bytes. The time and the size
/// share a word and a half (56 and 40 bits). A step that waits or publishes
/// finds its handoffs in Program::handoffs, which the thread reads in step order.
struct Step {
  std::uint64_t time_ns() const noexcept { return time_size_hi_ & (kStepTimeLimit - 1); }  // since the first op
  /// alloc: bytes to ask for (page ops rounded to pages); free: the
  /// allocation's; map/unmap: bytes transferred.
  std::uint64_t size() const noexcept { return (time_size_hi_ >> 56) << 32 | size_lo_; }
  /// pre: t < kStepTimeLimit.
  void set_time_ns(std::uint64_t t) noexcept { time_size_hi_ = (time_size_hi_ & ~(kStepTimeLimit - 1)) | t; }
  /// pre: n < kStepSizeLimit.
  void set_size(std::uint64_t n) noexcept {
    time_size_hi_ = (time_size_hi_ & (kStepTimeLimit - 1)) | (n >> 32) << 56;
    size_lo_ = static_cast<std::uint32_t>(n);
  }

 private:
  std::uint64_t time_size_hi_ = 0;  // time in the low 56 bits, the size's bits 32..39 above
  std::uint32_t size_lo_ = 0;       // the size's low 32 bits

 public:
  std::uint32_t object = 0;
  std::uint16_t tag = 0;  // dense tag id (Counting's), 0: none
  ops::OpKind kind = ops::OpKind::alloc;
  std::uint8_t align_log2 = 0;  // alignment to ask for (already at least the default)
  std::int8_t node = -1;
  std::uint8_t flags = 0;  // ops::OpFlag
  std::uint8_t ctl = 0;    // StepCtl
  /// The KPI call that made the allocation (on its free too), for a replay
  /// through the KPI (kpi_path.h); none otherwise.
  ops::Call call = ops::Call::none;
};
static_assert(sizeof(Step) == 24);

/// An object that still holds a block (or a DMA mapping) after its last step:
/// what a pass leaves behind, freed by the thread that ran that step. 16 bytes.
struct Leftover {
  std::uint32_t object = 0;
  std::uint32_t size_lo = 0;  // its allocation's size, as the free step would carry it: bits 0..31
  std::uint16_t tag = 0;
  std::uint8_t size_hi = 0;  // and bits 32..39
  bool block : 1 = false;    // still allocated (else only still mapped)
  bool low : 1 = false;      // allocated below 4 GiB
  ops::Call call = ops::Call::none;  // as its steps carry it

  std::uint64_t size() const noexcept { return std::uint64_t{size_hi} << 32 | size_lo; }
  /// pre: size < kStepSizeLimit.
  static Leftover of(std::uint64_t size, std::uint32_t object, std::uint16_t tag, bool block, bool low,
                     ops::Call call) noexcept {
    Leftover l;
    l.object = object;
    l.size_lo = static_cast<std::uint32_t>(size);
    l.size_hi = static_cast<std::uint8_t>(size >> 32);
    l.tag = tag;
    l.block = block;
    l.low = low;
    l.call = call;
    return l;
  }
};
static_assert(sizeof(Leftover) == 16);

struct Program {
  std::vector<std::vector<Step>> threads;
  /// By thread, in step order: the handoff each step with kStepWait waits
  /// for, then the one each step with kStepPublish publishes. A handoff
  /// (0 .. cross_thread_waits - 1) joins one step to the next step on its
  /// object, on another thread.
  std::vector<std::vector<std::uint32_t>> handoffs;
  std::vector<std::vector<Leftover>> leftovers;  // by thread
  std::uint32_t object_count = 0;
  std::vector<std::string> tag_names;   // by dense tag id; [0] is ""
  std::uint64_t steps = 0;
  std::uint64_t cross_thread_waits = 0;  // steps with kStepWait: the handoffs
  std::uint64_t dma_maps = 0;            // dma_map steps
  std::uint64_t realloc_pairs = 0;       // free and allocation steps joined as one realloc
  std::uint64_t kpi_steps = 0;           // allocation and free steps a KPI call made (kpi_path.h)
  std::uint64_t alloc_bytes = 0;         // bytes all allocation steps ask for
  std::uint64_t duration_ns = 0;         // last step's time
  std::map<std::string, std::uint64_t> dropped;  // why → how many operations were dropped
  std::vector<Request> requests;  // every distinct allocation request and how often it is made
  std::vector<SiteUse> sites;     // by call site ([0]: none named); empty when no op names a site
  /// By thread, parallel to `threads`: each step's call site (its allocation's
  /// index in `sites`), so the timed pass can time by site; empty with `sites`.
  /// A site takes one 16-bit word when there are at most 65,536 sites, else
  /// two (wide_sites()), the low word first.
  std::vector<std::vector<std::uint16_t>> step_sites;

  bool wide_sites() const noexcept { return sites.size() > 65536; }
};

/// Reads a thread's call-site column (Program::step_sites) in step order.
struct SiteCursor {
  const std::uint16_t* at = nullptr;
  bool wide = false;

  std::uint32_t next() noexcept {
    std::uint32_t site = *at++;
    if (wide) site |= std::uint32_t{*at++} << 16;
    return site;
  }
};

/// pre: threads >= 1. Throws InputError (of `name`, the trace's file or source)
/// naming the object when an object id is out of range, or naming the
/// operation when its size or time is beyond a step's.
Program build_program(const ops::Trace& trace, unsigned threads, const std::string& name = "trace");

/// The bytes a program holds: its steps, their sites, leftovers, requests and
/// sites (the arrays' reserved room, strings included).
std::uint64_t program_bytes(const Program& program);

/// What a program asks of memory at its busiest, its steps taken in trace time order.
struct MemoryDemand {
  std::uint64_t peak_live_bytes = 0;  // bytes asked for and not yet freed
  std::uint64_t peak_page_bytes = 0;  // the same, each block as a power-of-two run of pages
                                      // (4 MiB and beyond: whole pages), as buddy holds it
  std::uint64_t peak_low_bytes = 0;   // of blocks below 4 GiB, likewise
  std::uint64_t peak_bounce_bytes = 0;  // 32-bit transfers in flight over other blocks, in pages
  std::uint64_t largest_block = 0;
};
MemoryDemand memory_demand(const Program& program);

bool is_alloc(ops::OpKind k) noexcept;
bool is_free(ops::OpKind k) noexcept;

}  // namespace kmbench::replay
