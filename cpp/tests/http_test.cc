#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>

#include "common/http/http_client.h"
#include "common/http/retry_policy.h"
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
  ASSERT_TRUE(ParseContentRange("bytes 9007199254740992-9007199254740993/9007199254740994", &first,
                                &last, &total));
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

HttpResponse Failed(long status) {
  HttpResponse response;
  response.status = status;
  return response;
}

std::function<std::string()> Code(const std::string& code) {
  return [code] { return code; };
}

HttpSettings NoWaiting(int max_attempts) {
  HttpSettings settings;
  settings.retry_base_ms = 0;
  settings.retry_cap_ms = 0;
  settings.max_attempts = max_attempts;
  return settings;
}

TEST(RetryPolicy, RetriesWhatIsTransientUpToMaxAttempts) {
  RetryPolicy policy({"SlowDown"});
  const HttpSettings settings = NoWaiting(3);
  std::string why_not;
  RetryPolicy::Attempts attempts(&policy, settings);
  attempts.Begin();
  EXPECT_TRUE(attempts.Again(Failed(503), Code(""), &why_not));
  attempts.Begin();
  EXPECT_FALSE(attempts.Again(Failed(0), Code(""), &why_not));  // not a transient transport error
  HttpResponse cut = Failed(0);
  cut.transient = true;
  EXPECT_TRUE(attempts.Again(cut, Code(""), &why_not));
  attempts.Begin();
  EXPECT_FALSE(attempts.Again(cut, Code(""), &why_not));  // the third attempt was the last
  EXPECT_EQ(attempts.count(), 3);
  EXPECT_TRUE(why_not.empty());

  RetryPolicy::Attempts other(&policy, settings);
  other.Begin();
  EXPECT_FALSE(other.Again(Failed(404), Code("NoSuchKey"), &why_not));
  EXPECT_FALSE(other.Again(Failed(400), Code("InvalidRange"), &why_not));
  EXPECT_TRUE(other.Again(Failed(400), Code("SlowDown"), &why_not));  // the service's code
}

TEST(RetryPolicy, ABudgetSharedByEveryRequestStopsARetryStorm) {
  RetryPolicy policy;
  const HttpSettings settings = NoWaiting(1000);  // the budget, not the attempts, stops it
  std::string why_not;
  int retries = 0;
  {
    RetryPolicy::Attempts failing(&policy, settings);  // a request that never succeeds
    for (failing.Begin(); failing.Again(Failed(500), Code(""), &why_not); failing.Begin()) {
      ++retries;
    }
  }
  EXPECT_EQ(retries, RetryPolicy::kBudget / RetryPolicy::kRetryCost);
  EXPECT_EQ(policy.tokens(), 0);
  EXPECT_NE(why_not.find("retry budget"), std::string::npos) << why_not;
  // Another request now fails at its first error...
  RetryPolicy::Attempts next(&policy, settings);
  next.Begin();
  why_not.clear();
  EXPECT_FALSE(next.Again(Failed(503), Code(""), &why_not));
  EXPECT_FALSE(why_not.empty());
  // ...and each request that succeeds at once gives a token back.
  for (int i = 0; i < RetryPolicy::kRetryCost; ++i) {
    RetryPolicy::Attempts ok(&policy, settings);
    ok.Begin();
    ok.Succeeded();
  }
  RetryPolicy::Attempts again(&policy, settings);
  again.Begin();
  EXPECT_TRUE(again.Again(Failed(503), Code(""), &why_not));
}

TEST(RetryPolicy, ARetriedRequestThatSucceedsGivesItsTokensBack) {
  RetryPolicy policy;
  const HttpSettings settings = NoWaiting(10);
  std::string why_not;
  RetryPolicy::Attempts attempts(&policy, settings);
  for (int i = 0; i < 4; ++i) {
    attempts.Begin();
    ASSERT_TRUE(attempts.Again(Failed(502), Code(""), &why_not));
  }
  EXPECT_EQ(policy.tokens(), RetryPolicy::kBudget - 4 * RetryPolicy::kRetryCost);
  attempts.Begin();
  attempts.Succeeded();
  EXPECT_EQ(policy.tokens(), RetryPolicy::kBudget);
}

}  // namespace
}  // namespace runai::common
