#include "common/parse.h"

#include <limits>

namespace runai::common {

bool ParseInt64InRange(const std::string& text, int64_t min, int64_t max, int64_t* value,
                       std::string* why) {
  const std::string range = "out of range " + std::to_string(min) + ".." + std::to_string(max);
  size_t pos = 0;
  bool negative = false;
  if (!text.empty() && text[0] == '-') {
    negative = true;
    pos = 1;
  }
  if (pos == text.size()) {
    *why = "is not a decimal integer";
    return false;
  }
  // Accumulate as a negative number so INT64_MIN is representable.
  int64_t accumulated = 0;
  bool overflow = false;
  for (; pos < text.size(); ++pos) {
    char c = text[pos];
    if (c < '0' || c > '9') {
      *why = "is not a decimal integer";
      return false;
    }
    int digit = c - '0';
    if (accumulated < (std::numeric_limits<int64_t>::min() + digit) / 10) overflow = true;
    if (!overflow) accumulated = accumulated * 10 - digit;
  }
  if (!overflow && !negative && accumulated == std::numeric_limits<int64_t>::min()) {
    overflow = true;
  }
  if (overflow) {
    *why = "is " + range;
    return false;
  }
  int64_t result = negative ? accumulated : -accumulated;
  if (result < min || result > max) {
    *why = "is " + range;
    return false;
  }
  *value = result;
  return true;
}

}  // namespace runai::common
