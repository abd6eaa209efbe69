// The small formats of the object-storage plugins: base64 (RFC 4648's test vectors) and JSON.
#include <gtest/gtest.h>

#include <string>

#include "common/base64.h"
#include "common/json.h"

namespace runai::common {
namespace {

TEST(Base64, Rfc4648TestVectors) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    std::string decoded;
    ASSERT_TRUE(Base64Decode(encoded, &decoded)) << encoded;
    EXPECT_EQ(decoded, plain);
  }
}

TEST(Base64, BinaryRoundTrip) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  std::string decoded;
  ASSERT_TRUE(Base64Decode(Base64Encode(bytes), &decoded));
  EXPECT_EQ(decoded, bytes);
}

TEST(Base64, RejectsWhatIsNotPaddedStandardBase64) {
  std::string out;
  for (const char* bad : {"Zg", "Zg=", "Z===", "Zm9v!A==", "Zm 9v", "Zg==Zg==", "Zm8=x", "-_-_"}) {
    EXPECT_FALSE(Base64Decode(bad, &out)) << bad;
  }
}

TEST(Json, ParsesAListingResponse) {
  JsonValue json;
  std::string why;
  ASSERT_TRUE(ParseJson(R"({"kind": "storage#objects",
    "items": [{"name": "a b/c\u00e9.safetensors", "size": "123"}, {"name": "x", "size": "0"}],
    "prefixes": ["a b/sub/"], "nextPageToken": "tok\"en", "n": -1.5e3, "t": true, "z": null})",
                        &json, &why))
      << why;
  const JsonValue* items = json.Find("items");
  ASSERT_NE(items, nullptr);
  ASSERT_EQ(items->items.size(), 2u);
  EXPECT_EQ(items->items[0].Text("name"), "a b/c\xc3\xa9.safetensors");
  EXPECT_EQ(items->items[0].Text("size"), "123");
  EXPECT_EQ(json.Find("prefixes")->items[0].text, "a b/sub/");
  EXPECT_EQ(json.Text("nextPageToken"), "tok\"en");
  EXPECT_EQ(json.Text("n"), "-1.5e3");
  EXPECT_EQ(json.Find("t")->kind, JsonValue::Kind::kBool);
  EXPECT_EQ(json.Find("z")->kind, JsonValue::Kind::kNull);
  EXPECT_EQ(json.Text("missing"), "");
  EXPECT_EQ(json.Text("items"), "");  // not a string
}

TEST(Json, DecodesSurrogatePairs) {
  JsonValue json;
  std::string why;
  ASSERT_TRUE(ParseJson(R"(["\ud83d\ude00", "\u0041\n"])", &json, &why)) << why;
  EXPECT_EQ(json.items[0].text, "\xf0\x9f\x98\x80");
  EXPECT_EQ(json.items[1].text, "A\n");
}

TEST(Json, RejectsMalformedInputWithAReason) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":}", "\"abc", "tru", "01x", "[1] 2",
                          "\"\\ud800\"", "\"\\x\"", "\"a\nb\"", "{a:1}", "-", "1."}) {
    JsonValue json;
    std::string why;
    EXPECT_FALSE(ParseJson(bad, &json, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

TEST(Json, DeepNestingIsAnErrorNotAStackOverflow) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  JsonValue json;
  std::string why;
  EXPECT_FALSE(ParseJson(deep, &json, &why));
  EXPECT_NE(why.find("nesting"), std::string::npos) << why;
}

}  // namespace
}  // namespace runai::common
