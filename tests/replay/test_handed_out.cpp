// Internal fragmentation and call sites: a program's distinct requests and
// sites, summed by size class with each backend's handed-out bytes, and the
// cell JSON that carries them and the capture's own slack.
#include <gtest/gtest.h>
#include <malloc.h>

#include "harness/replay/cell_json.h"
#include "harness/replay/replay.h"
#include "ops/size_classes.h"
#include "tests/support/make_op.h"

namespace kmbench::replay {
namespace {

using ops::OpKind;

ops::Op op(std::uint64_t t, OpKind kind, std::uint32_t object, std::uint64_t size, std::uint32_t site) {
  return test_support::make_op(t, kind, object, size, {site});
}

/// CPU 0 allocates three 10-byte blocks at site A, two of 100 and a page at
/// B, one of 5000 bytes at no site; CPU 1 frees one of A's and one of B's.
ops::Trace tiny() {
  ops::Trace t;
  t.strings = {"", "site_a+0x1/0x10", "site_b+0x2/0x20"};
  t.streams.resize(2);
  t.streams[1].cpu = 1;
  t.object_count = 7;
  t.streams[0].ops = {op(0, OpKind::alloc, 0, 10, 1),     op(1, OpKind::alloc, 1, 10, 1),
                      op(2, OpKind::alloc, 2, 10, 1),     op(3, OpKind::alloc, 3, 100, 2),
                      op(4, OpKind::alloc, 4, 100, 2),    op(5, OpKind::page_alloc, 5, 4096, 2),
                      op(6, OpKind::alloc, 6, 5000, 0),   op(7, OpKind::free, 0, 10, 1)};
  t.streams[1].ops = {op(10, OpKind::free, 1, 10, 0), op(11, OpKind::free, 3, 100, 0)};
  return t;
}

Options quiet() {
  Options o;
  o.sample_ms = 1;
  return o;
}

TEST(Requests, DistinctRequestsAndSitesAreCountedAtLoad) {
  const Program p = build_program(tiny(), 2);
  ASSERT_EQ(p.requests.size(), 4u);
  std::uint64_t count = 0;
  for (const Request& q : p.requests) count += q.count;
  EXPECT_EQ(count, 7u);
  EXPECT_EQ(p.requests[0].size, 10u);
  EXPECT_EQ(p.requests[0].count, 3u);
  EXPECT_TRUE(p.requests[2].pages);
  ASSERT_EQ(p.sites.size(), 3u);
  EXPECT_EQ(p.sites[0].name, "(no call site)");
  EXPECT_EQ(p.sites[1].name, "site_a+0x1/0x10");
  EXPECT_EQ(p.sites[1].allocs, 3u);
  EXPECT_EQ(p.sites[1].bytes, 30u);
  EXPECT_EQ(p.sites[1].frees, 2u);
  EXPECT_EQ(p.sites[1].cross_cpu_frees, 1u);
  EXPECT_EQ(p.sites[2].allocs, 3u);
  EXPECT_EQ(p.sites[2].bytes, 200u + 4096u);
  EXPECT_EQ(p.sites[2].cross_cpu_frees, 1u);
}

TEST(Requests, AStreamWithoutSitesHasNone) {
  ops::Trace t = tiny();
  for (ops::Stream& s : t.streams) {
    for (ops::Op& o : s.ops) o.site = 0;
  }
  EXPECT_TRUE(build_program(t, 1).sites.empty());
}

TEST(HandedOut, BumpHandsOutWhatIsAskedClassByClass) {
  const Result r = run(build_program(tiny(), 2), "bump", quiet());
  ASSERT_TRUE(r.handed_out_measured);
  const auto& c = r.size_classes;
  EXPECT_EQ(c[0].allocs, 3u);
  EXPECT_EQ(c[0].requested_bytes, 30u);
  EXPECT_EQ(c[0].handed_out_bytes, 30u);
  EXPECT_EQ(c[3].allocs, 2u);  // <= 128
  EXPECT_EQ(c[3].requested_bytes, 200u);
  EXPECT_EQ(c[ops::kLargeClass].requested_bytes, 5000u);
  EXPECT_EQ(c[ops::kPagesClass].requested_bytes, 4096u);
  EXPECT_EQ(c[ops::kPagesClass].handed_out_bytes, 4096u);
  EXPECT_EQ(r.refused_requests, 0u);
}

TEST(HandedOut, SystemHandsOutMallocUsableSize) {
  const Result r = run(build_program(tiny(), 2), "system", quiet());
  void* p = std::malloc(10);
  const std::uint64_t ten = malloc_usable_size(p);
  std::free(p);
  EXPECT_EQ(r.size_classes[0].handed_out_bytes, 3 * ten);
  EXPECT_GE(ten, 10u);  // glibc rounds 10 up to 24; a sanitizer's allocator answers exactly 10
}

// Kernel-style backends round up to their own classes: never below the
// request, and the sites' handed-out bytes add up to the classes'.
TEST(HandedOut, KernelBackendsRoundUpAndSitesAddUp) {
  for (const char* backend : {"slab", "zones", "buddy"}) {
    const Result r = run(build_program(tiny(), 2), backend, quiet());
    std::uint64_t handed = 0;
    for (const SizeClassUse& u : r.size_classes) {
      EXPECT_GE(u.handed_out_bytes, u.requested_bytes) << backend;
      handed += u.handed_out_bytes;
    }
    EXPECT_GT(r.size_classes[0].handed_out_bytes, 30u) << backend;  // no 10-byte class anywhere
    if (std::string(backend) == "buddy") {
      EXPECT_EQ(r.size_classes[0].handed_out_bytes, 3u * 4096u);
    }
    std::uint64_t sites = 0;
    for (const SiteResult& s : r.sites) sites += s.handed_out_bytes;
    EXPECT_EQ(sites, handed) << backend;
  }
}

// The timed pass charges each backend call to its allocation's site: site A's
// three allocations and two frees (one on the other thread), B's three and one,
// the unnamed site's one; the sites' time adds up to the allocator's.
TEST(SiteTime, EveryTimedCallIsChargedToItsAllocationsSite) {
  for (const char* backend : {"slab", "zones", "system"}) {
    const Result r = run(build_program(tiny(), 2), backend, quiet());
    ASSERT_EQ(r.sites.size(), 3u) << backend;
    EXPECT_EQ(r.sites[0].timed_ops, 1u) << backend;
    EXPECT_EQ(r.sites[1].timed_ops, 5u) << backend;
    EXPECT_EQ(r.sites[2].timed_ops, 4u) << backend;
    EXPECT_EQ(r.time.allocator_ops, 10u) << backend;
    double ns = 0;
    for (const SiteResult& s : r.sites) ns += s.allocator_ns;
    // Each site takes the timer floor off its own sum, so a site can only round up from zero.
    EXPECT_GE(ns, r.time.allocator_ns * (1 - 1e-9)) << backend;
    EXPECT_GT(ns, 0) << backend;
    const nlohmann::json j = cell_json(r, Source{"trace", "tiny.kmt", {}, std::nullopt, {}});
    for (const auto& s : j.at("call_sites").at("sites")) EXPECT_TRUE(s.at("allocator_ns_per_op").is_number());
  }
}

TEST(SiteTime, WithoutLatencyNoSiteIsTimed) {
  Options o = quiet();
  o.latency = false;
  const Result r = run(build_program(tiny(), 2), "slab", o);
  for (const SiteResult& s : r.sites) EXPECT_EQ(s.timed_ops, 0u);
  const nlohmann::json j = cell_json(r, Source{"trace", "tiny.kmt", {}, std::nullopt, {}});
  for (const auto& s : j.at("call_sites").at("sites")) EXPECT_TRUE(s.at("allocator_ns_per_op").is_null());
}

TEST(HandedOut, CellJsonCarriesClassesSitesAndTheCapturesSlack) {
  const Result r = run(build_program(tiny(), 2), "slab", quiet());
  Source trace{"trace", "tiny.kmt", {}, std::nullopt, {}};
  for (int k = 0; k < ops::kPagesClass; ++k) {
    for (std::string_view f : ops::kSlackFields) trace.counters[ops::slab_slack_counter(k, f)] = 0;
  }
  trace.counters[ops::slab_slack_counter(0, "allocs")] = 3;
  trace.counters[ops::slab_slack_counter(0, "bytes_req")] = 30;
  trace.counters[ops::slab_slack_counter(0, "bytes_alloc")] = 48;
  const nlohmann::json j = cell_json(r, trace);
  const auto& frag = j.at("internal_fragmentation");
  EXPECT_EQ(frag.at("classes").at(0).at("class"), "le16");
  EXPECT_EQ(frag.at("classes").at(0).at("requested_bytes"), 30u);
  EXPECT_EQ(frag.at("total").at("allocs"), 7u);
  EXPECT_EQ(j.at("kernel_slack").at("classes").size(), 1u);
  EXPECT_EQ(j.at("kernel_slack").at("total").at("bytes_alloc"), 48u);
  EXPECT_EQ(j.at("call_sites").at("sites").size(), 3u);
  EXPECT_EQ(j.at("call_sites").at("sites").at(0).at("cross_cpu_frees"), 1u);
  double share = 0;
  for (const auto& s : j.at("call_sites").at("sites")) share += s.at("footprint_share").get<double>();
  EXPECT_NEAR(share, 1.0, 1e-9);
  // A workload, or a trace written before the counters were kept: not recorded.
  EXPECT_TRUE(cell_json(r, Source{"workload", "churn", {}, std::nullopt, {}}).at("kernel_slack").is_null());
  EXPECT_TRUE(cell_json(r, Source{"trace", "old.kmt", {}, std::nullopt, {{"import.events", 4}}})
                  .at("kernel_slack")
                  .is_null());
}

}  // namespace
}  // namespace kmbench::replay
