#include <gtest/gtest.h>

#include <cerrno>
#include <climits>
#include <cstring>

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
  for (const char* text : {"0", "-1", "1025", "9223372036854775808", "99999999999999999999",
                           "-9223372036854775809"}) {
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

}  // namespace
}  // namespace runai::common
