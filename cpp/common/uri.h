// Percent-encoding of URI parts, as object stores and their signatures expect it.
#ifndef RUNAI_STREAMER_COMMON_URI_H_
#define RUNAI_STREAMER_COMMON_URI_H_

#include <string>
#include <string_view>

namespace runai::common {

// RFC 3986 percent-encoding of `text`'s UTF-8 bytes (unreserved characters A-Z a-z 0-9 - . _ ~
// kept; '/' kept when `keep_slash`), uppercase hex, as SigV4 and S3 keys need.
std::string UriEncode(std::string_view text, bool keep_slash);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_URI_H_
