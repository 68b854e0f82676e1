// Backend parameter tables (allocators/params.h): what each kind accepts, the
// messages a bad value gets, and the constructors reading through them.
#include <gtest/gtest.h>

#include "allocators/any_backend.h"
#include "allocators/params.h"
#include "base/errors.h"

namespace kmbench {
namespace {

constexpr ParamSpec kSpecs[] = {
    {"mode", ParamSpec::Kind::choice, "auto", "a choice", "auto|on|off"},
    {"count", ParamSpec::Kind::integer, "8", "an integer", {}, 1, 1024},
    {"limit", ParamSpec::Kind::address, "none", "an address", {}, 4096, 0xffffffff},
    {"size", ParamSpec::Kind::bytes, "1m", "a byte count", {}, 4096, std::int64_t{1} << 30},
};

TEST(Params, EachKindAcceptsItsValues) {
  EXPECT_FALSE(setting_error(kSpecs, "mode", "off"));
  EXPECT_FALSE(setting_error(kSpecs, "count", "1024"));
  EXPECT_FALSE(setting_error(kSpecs, "limit", "0xffffffff"));
  EXPECT_FALSE(setting_error(kSpecs, "limit", "4096"));
  EXPECT_FALSE(setting_error(kSpecs, "size", "64k"));
}

TEST(Params, BadValuesNameKeyValueAndWhatIsAllowed) {
  EXPECT_EQ(setting_error(kSpecs, "mode", "maybe").value(), "mode=maybe is not auto, on or off");
  EXPECT_EQ(setting_error(kSpecs, "count", "0").value(), "count=0 is outside 1..1024");
  EXPECT_EQ(setting_error(kSpecs, "count", "8x").value(), "count=8x is not an integer (allowed: 1..1024)");
  EXPECT_EQ(setting_error(kSpecs, "count", "0x10").value(), "count=0x10 is not an integer (allowed: 1..1024)");
  EXPECT_EQ(setting_error(kSpecs, "limit", "0x1_0").value(), "limit=0x1_0 is not an address (allowed: 0x1000..0xffffffff)");
  EXPECT_EQ(setting_error(kSpecs, "limit", "0x100000000").value(), "limit=0x100000000 is outside 0x1000..0xffffffff");
  EXPECT_EQ(setting_error(kSpecs, "size", "2g").value(),
            "size=2g is outside 4096..1073741824 bytes (k, m, g, t suffixes)");
  EXPECT_EQ(setting_error(kSpecs, "colour", "red").value(), "unknown parameter 'colour' (known: mode, count, limit, size)");
  EXPECT_EQ(setting_error({}, "x", "1").value(), "unknown parameter 'x' (known: none)");
}

TEST(Params, ReaderGivesValuesAndFallbacks) {
  BackendConfig config;
  config.params = {{"count", "16"}, {"size", "2m"}};
  const ParamReader r("test", kSpecs, config);
  EXPECT_EQ(r.integer("count"), 16);
  EXPECT_EQ(r.integer("size"), 2 << 20);
  EXPECT_EQ(r.choice("mode"), "auto");
  EXPECT_TRUE(r.given("count"));
  EXPECT_FALSE(r.given("limit"));
  config.params = {{"count", "2000"}};
  try {
    ParamReader bad("test", kSpecs, config);
    FAIL() << "count=2000 was accepted";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "test: count=2000 is outside 1..1024");
  }
}

// Every backend's table is well formed: defaults that are values are valid, ranges are ordered,
// and a constructor refuses what its table refuses (the table is what it reads).
TEST(Params, EveryBackendsTableIsConsistent) {
  for (const BackendInfo& b : all_backends()) {
    for (const ParamSpec& p : b.params) {
      EXPECT_FALSE(p.meaning.empty()) << b.name << " " << p.key;
      EXPECT_LE(p.min, p.max) << b.name << " " << p.key;
      // Defaults that are words, not values: none, auto, machine (the simulated machine's setting).
      if (p.fallback != "none" && p.fallback != "auto" && p.fallback != "machine" &&
          p.kind != ParamSpec::Kind::choice) {
        EXPECT_FALSE(param_error(p, p.fallback)) << b.name << " " << p.key << " default " << p.fallback;
      }
      if (p.kind == ParamSpec::Kind::choice) {
        EXPECT_FALSE(param_error(p, p.fallback)) << b.name << " " << p.key;
      }
    }
    if (!b.executable.empty()) continue;  // constructed in its worker only
    BackendConfig config;
    config.params = {{"no_such_parameter", "1"}};
    EXPECT_THROW(open_backend(b.name, config), UsageError) << b.name;
  }
}

}  // namespace
}  // namespace kmbench
