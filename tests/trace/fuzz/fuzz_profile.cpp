// Profiles (docs/profile-format.md) are shared between sites, so a profile is
// outside input as much as a capture is. Any bytes either read as a profile or
// are refused with InputError; a profile that reads:
// - writes out and reads back to the same JSON;
// - is at distance 0 from itself;
// - synthesizes (when its stream is small), at scale 1 and at 1.5 (where
//   counts are rounded by chance), operation streams that are valid traces:
//   the .kmt encoder, which checks what the decoder checks, takes them, and
//   at scale 1 the stream holds the profile's allocations, no more.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/errors.h"
#include "harness/profile/profile.h"
#include "harness/trace/trace.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_profile: %s %s\n", what, detail.c_str());
  std::abort();
}

/// Synthesizes streams of up to this many bytes (synth_bytes): some fifteen thousand operations.
constexpr std::uint64_t kSynthBytes = std::uint64_t{2} << 20;

bool is_alloc(kmbench::ops::OpKind k) {
  using kmbench::ops::OpKind;
  return k == OpKind::alloc || k == OpKind::page_alloc || k == OpKind::dma_alloc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmbench;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  profile::Profile p;
  try {
    p = profile::from_json(text, "fuzz.kprof.json");
  } catch (const InputError&) {
    return 0;
  }

  const std::string once = profile::to_json(p);
  profile::Profile again;
  try {
    again = profile::from_json(once, "written");
  } catch (const InputError& e) {
    fail("a profile it read does not read back once written:", e.what());
  }
  if (profile::to_json(again) != once) fail("a profile written, read and written again changed");

  const profile::Distance d = profile::distance(p, p);
  for (const double ks : {d.ks_size, d.ks_lifetime_ns, d.ks_lifetime_ops, d.ks_interarrival}) {
    if (!(ks == 0)) fail("a profile is not at KS distance 0 from itself");
  }
  if (!std::isfinite(d.peak_live_ratio) || !std::isfinite(d.allocs_ratio) || !(d.class_overlap >= 0) ||
      !(d.class_overlap <= 1 + 1e-9)) {
    fail("distance to itself gave a ratio or overlap out of range");
  }

  if (profile::synth_bytes(p, 1.5) > kSynthBytes) return 0;
  const ops::Trace t = profile::synthesize(p, {1, 7});
  const ops::Trace rounded = profile::synthesize(p, {1.5, 7});
  for (const ops::Trace* s : {&t, &rounded}) {
    try {
      (void)trace::encode(*s);
    } catch (const InputError& e) {
      fail("a synthesized stream is not a valid trace:", e.what());
    }
  }
  std::uint64_t allocs = 0;
  for (const ops::Stream& s : t.streams) {
    for (const ops::Op& op : s.ops) allocs += is_alloc(op.kind) ? 1 : 0;
  }
  if (allocs != p.allocs) {
    fail("a synthesized stream at scale 1 does not hold the profile's allocations:",
         std::to_string(allocs) + " against " + std::to_string(p.allocs));
  }
  return 0;
}
