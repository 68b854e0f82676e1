// The replay program's layout: 24-byte steps holding sizes beyond 4 GiB,
// the handoffs that order steps across threads, the call-site column in one
// or two words, and the limits a step puts on a trace.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "base/errors.h"
#include "harness/replay/program.h"
#include "harness/replay/replay.h"
#include "tests/support/make_op.h"

namespace kmbench::replay {
namespace {

using ops::OpKind;

ops::Op make(std::uint64_t t, OpKind kind, std::uint32_t object, std::uint64_t size, std::uint32_t site = 0) {
  return test_support::make_op(t, kind, object, size, {site});
}

std::string build_error(const ops::Trace& t) {
  try {
    build_program(t, 1);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(built)";
}

TEST(Program, AStepKeepsItsTimeAndSizeApartUpToTheirLimits) {
  Step s;
  s.set_size(kStepSizeLimit - 1);
  s.set_time_ns(kStepTimeLimit - 1);
  EXPECT_EQ(s.size(), kStepSizeLimit - 1);
  EXPECT_EQ(s.time_ns(), kStepTimeLimit - 1);
  s.set_size(5);
  EXPECT_EQ(s.size(), 5u);
  EXPECT_EQ(s.time_ns(), kStepTimeLimit - 1);
  s.set_time_ns(0);
  s.set_size((std::uint64_t{6} << 30) + 3);
  EXPECT_EQ(s.time_ns(), 0u);
  EXPECT_EQ(s.size(), (std::uint64_t{6} << 30) + 3);

  const Leftover l = Leftover::of((std::uint64_t{5} << 32) + 7, 9, 2, true, false, ops::Call::none);
  EXPECT_EQ(l.size(), (std::uint64_t{5} << 32) + 7);
  EXPECT_EQ(l.object, 9u);
  EXPECT_TRUE(l.block);
  EXPECT_FALSE(l.low);
}

TEST(Program, StepsCarrySizesBeyond4GiBAndTimesBeyond32Bits) {
  ops::Trace t;
  t.streams.resize(1);
  t.object_count = 2;
  const std::uint64_t big = (std::uint64_t{6} << 30) + 3, later = std::uint64_t{1} << 40;
  t.streams[0].ops = {make(100, OpKind::alloc, 0, big), make(100 + later, OpKind::free, 0, 0),
                      make(200 + later, OpKind::page_alloc, 1, big)};
  const Program p = build_program(t, 1);
  ASSERT_EQ(p.threads[0].size(), 3u);
  EXPECT_EQ(p.threads[0][0].size(), big);
  EXPECT_EQ(p.threads[0][1].size(), big);  // a free carries its allocation's size
  EXPECT_EQ(p.threads[0][1].time_ns(), later);
  EXPECT_EQ(p.threads[0][2].size(), (big + 4095) / 4096 * 4096);
  EXPECT_EQ(p.duration_ns, later + 100);
  EXPECT_EQ(p.alloc_bytes, big + (big + 4095) / 4096 * 4096);
  ASSERT_EQ(p.leftovers[0].size(), 1u);
  EXPECT_EQ(p.leftovers[0][0].size(), (big + 4095) / 4096 * 4096);
  EXPECT_EQ(memory_demand(p).largest_block, (big + 4095) / 4096 * 4096);
}

TEST(Program, RefusesASizeOrATimeBeyondAStepNamingTheOperation) {
  ops::Trace t;
  t.streams.resize(1);
  t.object_count = 2;
  t.streams[0].ops = {make(0, OpKind::alloc, 0, 64), make(1, OpKind::alloc, 1, kStepSizeLimit)};
  const std::string size = build_error(t);
  EXPECT_NE(size.find("stream 0 operation 1: size " + std::to_string(kStepSizeLimit)), std::string::npos) << size;
  // A page allocation rounds up to whole pages: the largest size taken still fits.
  t.streams[0].ops[1] = make(1, OpKind::page_alloc, 1, kStepSizeLimit - 4096);
  EXPECT_EQ(build_error(t), "(built)");
  t.streams[0].ops[1] = make(1, OpKind::page_alloc, 1, kStepSizeLimit - 4095);
  EXPECT_NE(build_error(t).find("stream 0 operation 1: size"), std::string::npos);

  t.streams[0].ops = {make(7, OpKind::alloc, 0, 64), make(7 + kStepTimeLimit, OpKind::free, 0, 64)};
  const std::string time = build_error(t);
  EXPECT_NE(time.find("stream 0 operation 1: it comes " + std::to_string(kStepTimeLimit) + " ns after the first"),
            std::string::npos)
      << time;
  t.streams[0].ops[1].time_ns = 6 + kStepTimeLimit;
  EXPECT_EQ(build_error(t), "(built)");
}

// Each object: allocated on thread 0, mapped on 1, unmapped on 0, freed on 1.
// Every step but the first waits for the one before it, and every step but
// the last publishes; the map and the unmap do both, their wait first.
TEST(Program, AStepThatWaitsAndPublishesTakesItsWaitsHandoffFirst) {
  constexpr std::uint32_t kObjects = 2000;
  ops::Trace t;
  t.streams.resize(2);
  t.streams[1].cpu = 1;
  t.object_count = kObjects;
  for (std::uint32_t i = 0; i < kObjects; ++i) {
    const std::uint64_t at = 10 * std::uint64_t{i};
    t.streams[0].ops.push_back(make(at, OpKind::alloc, i, 4096));
    t.streams[1].ops.push_back(make(at + 1, OpKind::dma_map, i, 512));
    t.streams[0].ops.push_back(make(at + 2, OpKind::dma_unmap, i, 512));
    t.streams[1].ops.push_back(make(at + 3, OpKind::free, i, 0));
  }
  const Program p = build_program(t, 2);
  EXPECT_TRUE(p.dropped.empty());
  ASSERT_EQ(p.cross_thread_waits, 3u * kObjects);
  ASSERT_EQ(p.threads[0].size(), 2u * kObjects);
  ASSERT_EQ(p.threads[1].size(), 2u * kObjects);
  // By handoff: the step that publishes it and the one that waits for it.
  struct Where {
    unsigned thread;
    std::size_t index;
  };
  std::map<std::uint32_t, Where> publisher, waiter;
  for (unsigned th = 0; th < 2; ++th) {
    std::size_t next = 0;
    for (std::size_t i = 0; i < p.threads[th].size(); ++i) {
      const Step& s = p.threads[th][i];
      if ((s.ctl & kStepWait) != 0) {
        EXPECT_TRUE(waiter.emplace(p.handoffs[th].at(next++), Where{th, i}).second);
      }
      if ((s.ctl & kStepPublish) != 0) {
        EXPECT_TRUE(publisher.emplace(p.handoffs[th].at(next++), Where{th, i}).second);
      }
    }
    EXPECT_EQ(next, p.handoffs[th].size());
  }
  ASSERT_EQ(publisher.size(), 3u * kObjects);
  ASSERT_EQ(waiter.size(), 3u * kObjects);
  for (const auto& [h, w] : waiter) {
    const Where& from = publisher.at(h);
    EXPECT_NE(from.thread, w.thread) << "handoff " << h;
    EXPECT_EQ(p.threads[from.thread][from.index].object, p.threads[w.thread][w.index].object) << "handoff " << h;
    // The waiting step is the object's next after the publishing one.
    const Step& before = p.threads[from.thread][from.index];
    EXPECT_EQ(p.threads[w.thread][w.index].time_ns(), before.time_ns() + 1) << "handoff " << h;
  }
  // The map (thread 1) and the unmap (thread 0) wait, then publish.
  EXPECT_EQ(p.threads[1][0].ctl, kStepWait | kStepPublish);
  EXPECT_EQ(p.threads[0][1].ctl, kStepWait | kStepPublish);
  EXPECT_EQ(p.threads[0][0].ctl, kStepPublish);
  EXPECT_EQ(p.threads[1][1].ctl, kStepWait);

  Options o;
  o.sample_ms = 1;
  const Result r = run(p, "system", o);
  EXPECT_EQ(r.events, 4u * kObjects);
  EXPECT_EQ(r.final_live_blocks, 0);
  EXPECT_TRUE(r.accounting_ok) << r.accounting_detail;
  EXPECT_EQ(r.dependency_checks, 3u * kObjects);
}

/// One allocation (and its free) at each of `sites` distinct sites.
ops::Trace at_sites(std::uint32_t sites) {
  ops::Trace t;
  t.streams.resize(1);
  t.object_count = sites;
  t.strings.assign(1, "");  // string 0: no site
  for (std::uint32_t i = 0; i < sites; ++i) {
    t.strings.push_back("site_" + std::to_string(i) + "+0x10/0x40");
    t.streams[0].ops.push_back(make(2 * std::uint64_t{i}, OpKind::alloc, i, 32 + i % 64, i + 1));
    t.streams[0].ops.push_back(make(2 * std::uint64_t{i} + 1, OpKind::free, i, 0));
  }
  return t;
}

TEST(Program, CallSitesTakeOneWordAStepUpTo65536SitesAndTwoBeyond) {
  for (const std::uint32_t sites : {1000u, 70000u}) {
    const ops::Trace t = at_sites(sites);
    const Program p = build_program(t, 1);
    ASSERT_EQ(p.sites.size(), sites + 1u);  // and the unnamed one
    const std::size_t words = sites == 70000u ? 2 : 1;  // 70,001 sites with the unnamed one: beyond 65,536
    EXPECT_EQ(p.step_sites[0].size(), p.threads[0].size() * words);
    SiteCursor cursor{p.step_sites[0].data(), p.wide_sites()};
    for (std::size_t i = 0; i < p.threads[0].size(); ++i) {
      const std::uint32_t site = cursor.next();
      ASSERT_LT(site, p.sites.size());
      ASSERT_EQ(p.sites[site].name, "site_" + std::to_string(i / 2) + "+0x10/0x40") << "step " << i;
    }
  }
  // Timed by site: every site's allocation and free, wide or not.
  const Program p = build_program(at_sites(70000), 1);
  Options o;
  o.sample_ms = 1;
  const Result r = run(p, "system", o);
  ASSERT_EQ(r.sites.size(), p.sites.size());
  EXPECT_EQ(r.sites[0].timed_ops, 0u);
  for (std::size_t s = 1; s < r.sites.size(); ++s) ASSERT_EQ(r.sites[s].timed_ops, 2u) << r.sites[s].name;
}

}  // namespace
}  // namespace kmbench::replay
