// Recorded reallocs in the replay: which free and allocation steps the program
// joins into one realloc, and how each backend runs them (its own realloc, or
// allocate, copy and free), failures included.
#include <gtest/gtest.h>

#include <atomic>

#include "allocators/registry.h"
#include "harness/replay/replay.h"
#include "harness/replay/replay_loop.h"
#include "tests/support/forwarding_zones.h"
#include "tests/support/make_op.h"

namespace kmbench::replay {
namespace {

using ops::Call;
using ops::OpKind;

struct Recorded {
  ops::Trace trace;
  void add(std::uint32_t stream, std::uint64_t t, OpKind kind, std::uint32_t object, std::uint64_t size,
           Call call, std::uint8_t flags = 0) {
    if (trace.streams.size() <= stream) trace.streams.resize(stream + 1);
    trace.streams[stream].ops.push_back(test_support::make_op(t, kind, object, size, {0, 0, flags}));
    trace.streams[stream].calls.push_back(call);
    trace.object_count = std::max(trace.object_count, object + 1);
  }
  /// A realloc of a live block, as the LD_PRELOAD recorder writes it: the old
  /// block's free and the new one's allocation, both at the call's time.
  void realloc(std::uint32_t stream, std::uint64_t t, std::uint32_t from, std::uint64_t from_size,
               std::uint32_t to, std::uint64_t size) {
    add(stream, t, OpKind::free, from, from_size, Call::realloc);
    add(stream, t, OpKind::alloc, to, size, Call::realloc);
  }
};

std::uint8_t ctl_of(const Program& p, unsigned thread, std::size_t step) { return p.threads[thread][step].ctl; }

TEST(ReallocProgram, AFreeAndTheAllocationRightAfterItFromOneReallocAreJoined) {
  Recorded r;
  r.add(0, 0, OpKind::alloc, 0, 100, Call::malloc);
  r.realloc(0, 10, 0, 100, 1, 5000);           // joined
  r.add(0, 20, OpKind::alloc, 2, 64, Call::realloc);  // realloc(NULL, 64): an allocation alone
  r.add(0, 30, OpKind::free, 2, 64, Call::realloc);   // realloc(p, 0): a free alone ...
  r.add(0, 31, OpKind::alloc, 3, 64, Call::malloc);   // ... not joined to the next malloc
  r.add(0, 40, OpKind::free, 1, 5000, Call::realloc);
  r.add(0, 41, OpKind::alloc, 4, 80, Call::realloc);  // another time: not the same call
  r.realloc(0, 50, 3, 64, 3, 72);              // in place: one object, two lifetimes
  const Program p = build_program(r.trace, 1);
  ASSERT_EQ(p.threads[0].size(), 10u);
  EXPECT_EQ(p.realloc_pairs, 2u);
  EXPECT_EQ(ctl_of(p, 0, 1), kStepReallocFrom);
  EXPECT_EQ(ctl_of(p, 0, 2), kStepReallocTo);
  for (std::size_t i : {3, 4, 5, 6, 7}) EXPECT_EQ(ctl_of(p, 0, i), 0) << i;
  EXPECT_EQ(ctl_of(p, 0, 8), kStepReallocFrom);
  EXPECT_EQ(ctl_of(p, 0, 9), kStepReallocTo);
}

TEST(ReallocProgram, StepsOfOtherStreamsOrBelow4GiBAreNotJoined) {
  Recorded r;
  r.add(0, 0, OpKind::alloc, 0, 100, Call::malloc);
  r.add(1, 0, OpKind::alloc, 1, 100, Call::malloc, ops::kOpDma32);
  r.add(0, 10, OpKind::free, 0, 100, Call::realloc);
  r.add(1, 10, OpKind::alloc, 2, 200, Call::realloc);  // folded right after it, but another stream's
  r.realloc(1, 20, 1, 100, 3, 300);                    // the old block lies below 4 GiB
  const Program p = build_program(r.trace, 1);
  EXPECT_EQ(p.realloc_pairs, 0u);
  for (const Step& s : p.threads[0]) EXPECT_EQ(s.ctl & (kStepReallocFrom | kStepReallocTo), 0);
}

/// A buffer's size after its next realloc: grown by half, and cut to an
/// eighth once past 64 KiB.
std::uint64_t next_size(std::uint64_t size) { return size > 65536 ? size / 8 : size * 3 / 2 + 8; }

/// A buffer grown and shrunk through 60 reallocs on each of two streams.
ops::Trace growing_buffers() {
  Recorded r;
  std::uint32_t next = 0;
  for (std::uint32_t s = 0; s < 2; ++s) {
    std::uint64_t size = 24, t = 0;
    std::uint32_t obj = next++;
    r.add(s, t, OpKind::alloc, obj, size, Call::malloc);
    for (int i = 0; i < 60; ++i) {
      const std::uint64_t grown = next_size(size);
      const std::uint32_t to = i % 4 == 0 ? obj : next++;  // a quarter stay where they were
      r.realloc(s, t += 10, obj, size, to, grown);
      obj = to;
      size = grown;
    }
    r.add(s, t + 10, OpKind::free, obj, size, Call::free);
  }
  return std::move(r.trace);
}

TEST(ReallocReplay, EveryBackendRunsTheJoinedReallocsAndDrainsToZero) {
  const ops::Trace t = growing_buffers();
  const Program p = build_program(t, 2);
  ASSERT_EQ(p.realloc_pairs, 120u);
  for (const BackendInfo& b : all_backends()) {
    if (!b.executable.empty()) continue;  // jemalloc, mimalloc: tests/trace's recorder test runs them
    for (Realloc mode : {Realloc::backend, Realloc::copy, Realloc::split}) {
      Options o;
      o.sample_ms = 1;
      o.drain = true;
      o.realloc = mode;
      const Result r = run(p, b.name, o);
      const std::string what = b.name + " --realloc " + std::string(name_of(mode));
      EXPECT_TRUE(r.accounting_ok) << what << ": " << r.accounting_detail;
      EXPECT_EQ(r.events, p.steps) << what;
      EXPECT_EQ(r.failed_allocs, 0u) << what;
      const bool joined = mode != Realloc::split;
      EXPECT_EQ(r.reallocs.calls, joined ? 120u : 0u) << what;
      const bool own = mode == Realloc::backend && (b.features & kFeatureRealloc) != 0;
      EXPECT_EQ(r.reallocs.own, own ? 120u : 0u) << what;
      EXPECT_LE(r.reallocs.in_place, r.reallocs.calls) << what;
      if (!own) {
        EXPECT_EQ(r.reallocs.in_place, 0u) << what;  // allocate, copy, free always moves
      }
      // A joined realloc is one backend call: 2 allocations, 2 frees and 120 reallocs per pass,
      // timed apart from the allocations' and frees' latency.
      EXPECT_EQ(r.time.allocator_ops, joined ? 124u : 244u) << what;
      EXPECT_EQ(r.realloc_latency.count, r.reallocs.calls) << what;
      EXPECT_EQ(r.latency[static_cast<int>(OpKind::alloc)].count + r.latency[static_cast<int>(OpKind::free)].count,
                joined ? 4u : 244u)
          << what;
      EXPECT_LE(r.realloc_allocator_ns, r.time.allocator_ns) << what;
    }
  }
}

/// zones with a realloc of its own that refuses to grow past 4 KiB.
class RefusingZones : public test_support::ForwardingZones {
 public:
  static constexpr BackendVariant kVariants[] = {{"refusing-zones", "zones whose realloc refuses large blocks", ""}};
  static constexpr std::uint32_t kFeatures = kForwardedFeatures | kFeatureRealloc;
  using ForwardingZones::ForwardingZones;
  void* reallocate(void* p, std::size_t old_size, std::size_t new_size, std::size_t align, TagId tag,
                   NodeId node) noexcept {
    return new_size > 4096 ? nullptr : copy_reallocate(zones_, p, old_size, new_size, align, tag, node);
  }
};
static_assert(Backend<RefusingZones>);

// A realloc that fails leaves the old block, which the replay frees as the
// trace did; the new block counts as a failed allocation, and its later
// reallocs and free are skipped, not crashed on.
TEST(ReallocReplay, AFailedReallocFreesTheOldBlockAndTheNewOneCountsAsFailed) {
  const ops::Trace t = growing_buffers();
  Options o;
  o.sample_ms = 1;
  o.drain = true;
  o.warmup = 0;
  // What the replay must do, worked out apart: a realloc with a block fails
  // past 4 KiB and leaves none; the next one has no block and only allocates.
  std::uint64_t failed = 0, calls = 0;
  for (int s = 0; s < 2; ++s) {
    std::uint64_t size = 24;
    bool held = true;
    for (int i = 0; i < 60; ++i) {
      size = next_size(size);
      if (held) {
        ++calls;
        held = size <= 4096;
        failed += held ? 0 : 1;
      } else {
        held = true;
      }
    }
  }
  ASSERT_GT(failed, 2u);
  const Result r = run_as<RefusingZones>(build_program(t, 2), "refusing-zones", o);
  EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;
  EXPECT_EQ(r.reallocs.failed, failed);
  EXPECT_EQ(r.failed_allocs, failed);
  EXPECT_EQ(r.reallocs.calls, calls);
}

}  // namespace
}  // namespace kmbench::replay
