// Strict parsing of integers from configuration strings.
#ifndef RUNAI_STREAMER_COMMON_PARSE_H_
#define RUNAI_STREAMER_COMMON_PARSE_H_

#include <cstdint>
#include <string>

namespace runai::common {

// Parses `text` as a decimal integer in [min, max]: the whole string must be
// an optional '-' followed by digits (no spaces, no '+', no suffix). On
// failure returns false and sets *why ("is not a decimal integer", "is out of
// range 1..1024").
bool ParseInt64InRange(const std::string& text, int64_t min, int64_t max, int64_t* value,
                       std::string* why);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_PARSE_H_
