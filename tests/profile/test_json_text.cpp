// JsonText writes what nlohmann::json's dump(1) writes: the same layout, the
// same numbers, the same escapes; bytes that are not UTF-8 become U+FFFD.
#include "harness/profile/json_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace kmbench::profile {
namespace {

using Json = nlohmann::ordered_json;

TEST(JsonText, NumbersAreWrittenAsNlohmannWritesThem) {
  for (const double v : {1.0, 0.5, -0.25, 1e-5, 1e-4, 0.0001234, 0.3333333333333333, 2.0 / 3, 0.1, 123.456,
                         123456789012345.0, 1e15, 1e16, 1.5e17, 1e300, 5e-324, 4.9406564584124654e-320, 0.0,
                         -0.0, 1.0 / 1024, 0.9999999999999999, 12.0, 1e-3}) {
    JsonText j;
    j.value(v);
    EXPECT_EQ(j.finish(), Json(v).dump() + "\n") << v;
  }
  for (const std::uint64_t v : {std::uint64_t{0}, std::uint64_t{7}, std::numeric_limits<std::uint64_t>::max()}) {
    JsonText j;
    j.value(v);
    EXPECT_EQ(j.finish(), Json(v).dump() + "\n");
  }
  JsonText j;
  j.value(std::int64_t{-1});
  EXPECT_EQ(j.finish(), "-1\n");
  JsonText nan;
  nan.value(std::nan(""));
  EXPECT_EQ(nan.finish(), "null\n");
}

TEST(JsonText, NestingIsLaidOutAsDumpOfOneSpace) {
  JsonText j;
  j.open_object();
  j.member("name", "a \"quoted\" \\ tab\t and \x01");
  j.key("empty");
  j.open_array();
  j.close();
  j.key("nothing");
  j.open_object();
  j.close();
  j.key("pairs");
  j.open_array();
  for (int i = 0; i < 2; ++i) {
    j.open_array();
    j.value(i);
    j.value(0.25 * i);
    j.close();
  }
  j.close();
  j.key("inner");
  j.open_object();
  j.member("n", std::uint64_t{3});
  j.close();
  j.close();
  const Json expected{{"name", "a \"quoted\" \\ tab\t and \x01"},
                      {"empty", Json::array()},
                      {"nothing", Json::object()},
                      {"pairs", {{0, 0.0}, {1, 0.25}}},
                      {"inner", {{"n", 3}}}};
  EXPECT_EQ(j.finish(), expected.dump(1) + "\n");
}

TEST(JsonText, BytesThatAreNotUtf8BecomeTheReplacementCharacter) {
  JsonText j;
  j.value(std::string_view("ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 bad \xff \xc3 \xed\xa0\x80 end"));
  const std::string text = j.finish();
  EXPECT_EQ(text, "\"ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 bad \xef\xbf\xbd \xef\xbf\xbd "
                  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end\"\n");
  EXPECT_NO_THROW((void)Json::parse(text));
}

}  // namespace
}  // namespace kmbench::profile
