// Percent-encoding of URI parts, as object stores and their signatures expect it.
#ifndef RUNAI_STREAMER_COMMON_URI_H_
#define RUNAI_STREAMER_COMMON_URI_H_

#include <string>
#include <string_view>

namespace runai::common {

// RFC 3986 percent-encoding of `text`'s UTF-8 bytes (unreserved characters A-Z a-z 0-9 - . _ ~
// kept; '/' kept when `keep_slash`), uppercase hex, as SigV4 and S3 keys need.
std::string UriEncode(std::string_view text, bool keep_slash);

// `text` with its %XX escapes decoded; a malformed escape is kept as it is.
std::string UriDecode(std::string_view text);

// The raw (still encoded) value of query parameter `name` in `url`; "" when absent.
std::string QueryValue(std::string_view url, std::string_view name);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_URI_H_
