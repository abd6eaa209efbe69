#include <gtest/gtest.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/listing.h"
#include "common/object_info.h"
#include "common/parse.h"
#include "common/status.h"
#include "streamer/streamer.h"

namespace runai::common {
namespace {

TEST(ParseInt64InRange, AcceptsDecimalIntegersInRange) {
  int64_t value = 0;
  std::string why;
  EXPECT_TRUE(ParseInt64InRange("42", 1, 100, &value, &why));
  EXPECT_EQ(value, 42);
  EXPECT_TRUE(ParseInt64InRange("-5", -10, 10, &value, &why));
  EXPECT_EQ(value, -5);
  EXPECT_TRUE(ParseInt64InRange("9223372036854775807", 0, INT64_MAX, &value, &why));
  EXPECT_EQ(value, INT64_MAX);
  EXPECT_TRUE(ParseInt64InRange("-9223372036854775808", INT64_MIN, 0, &value, &why));
  EXPECT_EQ(value, INT64_MIN);
  EXPECT_TRUE(ParseInt64InRange("007", 1, 10, &value, &why));
  EXPECT_EQ(value, 7);
}

TEST(ParseInt64InRange, RejectsMalformedText) {
  for (const char* text : {"", "abc", "12x", "x12", " 12", "12 ", "+12", "-", "1.5", "0x10"}) {
    int64_t value = 99;
    std::string why;
    EXPECT_FALSE(ParseInt64InRange(text, INT64_MIN, INT64_MAX, &value, &why)) << text;
    EXPECT_EQ(why, "is not a decimal integer") << text;
    EXPECT_EQ(value, 99) << text;
  }
}

TEST(ParseInt64InRange, RejectsOutOfRangeAndOverflow) {
  for (const char* text :
       {"0", "-1", "1025", "9223372036854775808", "99999999999999999999", "-9223372036854775809"}) {
    int64_t value = 99;
    std::string why;
    EXPECT_FALSE(ParseInt64InRange(text, 1, 1024, &value, &why)) << text;
    EXPECT_EQ(why, "is out of range 1..1024") << text;
    EXPECT_EQ(value, 99) << text;
  }
}

TEST(StatusCodeFromErrno, MapsErrnoToStatus) {
  EXPECT_EQ(StatusCodeFromErrno(0), RUNAI_OK);
  EXPECT_EQ(StatusCodeFromErrno(ENOENT), RUNAI_E_NOT_FOUND);
  EXPECT_EQ(StatusCodeFromErrno(ENOTDIR), RUNAI_E_NOT_FOUND);
  EXPECT_EQ(StatusCodeFromErrno(EACCES), RUNAI_E_PERMISSION);
  EXPECT_EQ(StatusCodeFromErrno(EPERM), RUNAI_E_PERMISSION);
  EXPECT_EQ(StatusCodeFromErrno(EISDIR), RUNAI_E_NOT_A_FILE);
  EXPECT_EQ(StatusCodeFromErrno(ENOMEM), RUNAI_E_NO_MEMORY);
  EXPECT_EQ(StatusCodeFromErrno(EIO), RUNAI_E_IO);
  EXPECT_EQ(StatusCodeFromErrno(EBADF), RUNAI_E_IO);
}

TEST(ErrnoText, MatchesStrerror) {
  EXPECT_EQ(ErrnoText(ENOENT), std::strerror(ENOENT));
  EXPECT_EQ(ErrnoText(EACCES), std::strerror(EACCES));
  EXPECT_FALSE(ErrnoText(123456).empty());
}

TEST(StatusName, NamesEveryCode) {
  EXPECT_STREQ(StatusName(RUNAI_OK), "RUNAI_OK");
  EXPECT_STREQ(StatusName(RUNAI_E_EOF), "RUNAI_E_EOF");
  EXPECT_STREQ(StatusName(RUNAI_E_INTERNAL), "RUNAI_E_INTERNAL");
  for (int code = RUNAI_E_INVALID_ARGUMENT; code <= RUNAI_E_INTERNAL; ++code) {
    EXPECT_STRNE(StatusName(code), "RUNAI_E_UNKNOWN_STATUS") << code;
  }
  EXPECT_STREQ(StatusName(-1), "RUNAI_E_UNKNOWN_STATUS");
  EXPECT_STREQ(StatusName(1000), "RUNAI_E_UNKNOWN_STATUS");
}

TEST(ObjectInfo, KeepsOnlyPlainEntriesAndCutsAtACommaWhereTheyDoNotFit) {
  ObjectInfo info;
  info.size = 42;
  ObjectInfo::Add(&info.checksums, "crc32c", "e3069283");
  ObjectInfo::Add(&info.checksums, "md5", "a,b");     // a hostile header: left out
  ObjectInfo::Add(&info.checksums, "bad", "x=y");     // the same
  ObjectInfo::Add(&info.checksums, "ctl", "a\r\nb");  // the same
  ObjectInfo::Add(&info.checksums, "crc32", "");      // nothing to check
  EXPECT_EQ(info.checksums, "crc32c=e3069283");
  for (int i = 0; i < 100; ++i) ObjectInfo::Add(&info.version, "etag", "0123456789");
  runai_object_info_t out;
  ExportObjectInfo(info, &out);
  EXPECT_EQ(out.size, 42u);
  EXPECT_STREQ(out.checksums, "crc32c=e3069283");
  const std::string version = out.version;
  EXPECT_LT(version.size(), sizeof(out.version));
  EXPECT_EQ(version.size() % 16, 15u);  // whole "etag=0123456789" entries only
  EXPECT_EQ(version.back(), '9');
}

TEST(HexOfBase64, DecodesChecksumHeaders) {
  EXPECT_EQ(HexOfBase64("ROPt5Q=="), "44e3ede5");
  EXPECT_EQ(HexOfBase64("TV0cup6xiISlQQ9Lg7xpUQ=="), "4d5d1cba9eb18884a5410f4b83bc6951");
  EXPECT_EQ(HexOfBase64("not base64!"), "");
  EXPECT_EQ(HexOfBase64(""), "");
}

TEST(CopyMessage, TruncatesAndTerminates) {
  char buffer[6];
  std::memset(buffer, 'x', sizeof(buffer));
  CopyMessage("hello world", buffer, sizeof(buffer));
  EXPECT_STREQ(buffer, "hello");
  CopyMessage("hi", buffer, sizeof(buffer));
  EXPECT_STREQ(buffer, "hi");
  CopyMessage("ignored", buffer, 0);  // must not write
  EXPECT_STREQ(buffer, "hi");
}

// Pages as a service sends them, by the token that asks for each.
std::map<std::string, ListingPage> Pages() {
  return {
      {"", {{{"m/a", 1}, {"m/", 0}, {"m/sub/", 0}}, {"m/", "m/d/"}, "t1"}},
      {"t1", {{{"m/b", 2}}, {}, "t2"}},
      {"t2", {{{"m/c", 3}}, {"m/e/"}, ""}},
  };
}

TEST(ListPages, WalksThePagesAndSkipsPlaceholdersAndThePrefixItself) {
  const auto pages = Pages();
  std::vector<std::string> asked;
  std::vector<std::pair<std::string, uint64_t>> seen;
  Status status = ListPages(
      "s3: s3://b/m/", "s3://b/", "m/",
      [&](const std::string& next, ListingPage* page) {
        asked.push_back(next);
        *page = pages.at(next);
        return Status::Ok();
      },
      [&](const std::string& uri, uint64_t size) {
        seen.emplace_back(uri, size);
        return true;
      });
  ASSERT_TRUE(status.ok()) << status.message;
  EXPECT_EQ(asked, (std::vector<std::string>{"", "t1", "t2"}));
  const std::vector<std::pair<std::string, uint64_t>> expected = {{"s3://b/m/a", 1},
                                                                  {"s3://b/m/d/", 0},
                                                                  {"s3://b/m/b", 2},
                                                                  {"s3://b/m/c", 3},
                                                                  {"s3://b/m/e/", 0}};
  EXPECT_EQ(seen, expected);
}

TEST(ListPages, StopsWhenTheEntryAsksAndFailsOnAPageThatRepeats) {
  const auto pages = Pages();
  int fetched = 0;
  auto fetch = [&](const std::string& next, ListingPage* page) {
    ++fetched;
    *page = pages.at(next);
    return Status::Ok();
  };
  ASSERT_TRUE(ListPages("x", "s3://b/", "m/", fetch, [](const std::string&, uint64_t) {
                return false;
              }).ok());
  EXPECT_EQ(fetched, 1);
  Status looping = ListPages(
      "s3: s3://b/m/", "s3://b/", "m/",
      [](const std::string&, ListingPage* page) {
        page->next = "same";
        return Status::Ok();
      },
      [](const std::string&, uint64_t) { return true; });
  EXPECT_EQ(looping.code, RUNAI_E_BACKEND);
  EXPECT_NE(looping.message.find("s3: s3://b/m/: the listing asked for the same page again"),
            std::string::npos)
      << looping.message;
  Status failing = ListPages(
      "x", "s3://b/", "m/",
      [](const std::string&, ListingPage*) { return Status{RUNAI_E_PERMISSION, "denied"}; },
      [](const std::string&, uint64_t) { return true; });
  EXPECT_EQ(failing.code, RUNAI_E_PERMISSION);
}

}  // namespace
}  // namespace runai::common
