#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "common/http/http_client.h"
#include "common/xml.h"

namespace runai::common {
namespace {

TEST(ParseContentRange, AcceptsWellFormedRanges) {
  uint64_t first = 0, last = 0;
  int64_t total = 0;
  ASSERT_TRUE(ParseContentRange("bytes 0-99/1000", &first, &last, &total));
  EXPECT_EQ(first, 0u);
  EXPECT_EQ(last, 99u);
  EXPECT_EQ(total, 1000);
  ASSERT_TRUE(ParseContentRange("bytes 5-5/*", &first, &last, &total));
  EXPECT_EQ(total, -1);
  ASSERT_TRUE(ParseContentRange("bytes 9007199254740992-9007199254740993/9007199254740994",
                                &first, &last, &total));
  EXPECT_EQ(last, 9007199254740993u);
}

TEST(ParseContentRange, RejectsMalformedRanges) {
  uint64_t first = 0, last = 0;
  int64_t total = 0;
  for (const char* text : {"", "bytes", "bytes */1000", "bytes 10-5/100", "items 0-1/2",
                           "bytes 0-1/x", "bytes 0-1/-5", "bytes 0-1/10x"}) {
    EXPECT_FALSE(ParseContentRange(text, &first, &last, &total)) << text;
  }
}

TEST(Xml, FindsElementsByExactName) {
  const std::string xml =
      "<ListBucketResult><KeyCount>2</KeyCount><Contents><Key>a&amp;b</Key><Size>3</Size>"
      "</Contents><Contents><Key>c &lt;d&gt; &#233;&#x1F600;</Key><Size>4</Size></Contents>"
      "<IsTruncated>false</IsTruncated><Empty/></ListBucketResult>";
  const auto contents = XmlElements(xml, "Contents");
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(XmlText(contents[0], "Key"), "a&b");  // <KeyCount> is not <Key>
  EXPECT_EQ(XmlText(contents[1], "Key"), "c <d> \xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(XmlText(xml, "KeyCount"), "2");
  EXPECT_EQ(XmlText(xml, "IsTruncated"), "false");
  EXPECT_EQ(XmlText(xml, "Empty"), "");
  EXPECT_EQ(XmlText(xml, "Missing"), "");
  EXPECT_EQ(XmlDecode("<![CDATA[a&b<c>]]>&quot;&apos;"), "a&b<c>\"'");
}

TEST(Xml, SurvivesTruncatedDocuments) {
  EXPECT_EQ(XmlElements("<Error><Code>Slow", "Code").size(), 0u);
  EXPECT_EQ(XmlText("<Error><Code", "Code"), "");
  EXPECT_EQ(XmlDecode("a &amp b &#"), "a &amp b &#");
}

TEST(Backoff, StaysWithinTheCappedExponentialBound) {
  HttpSettings settings;
  settings.retry_base_ms = 100;
  settings.retry_cap_ms = 1000;
  for (int attempt = 1; attempt < 40; ++attempt) {
    const long bound = std::min(1000L, 100L << std::min(attempt, 20));
    for (int i = 0; i < 50; ++i) {
      const long wait = BackoffMs(settings, attempt);
      EXPECT_GE(wait, 0);
      EXPECT_LE(wait, bound);
    }
  }
  EXPECT_TRUE(IsTransientHttpStatus(503));
  EXPECT_TRUE(IsTransientHttpStatus(429));
  EXPECT_FALSE(IsTransientHttpStatus(404));
  EXPECT_FALSE(IsTransientHttpStatus(403));
}

}  // namespace
}  // namespace runai::common
