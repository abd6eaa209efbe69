// AWS Signature Version 4 (header form), for S3 and S3-compatible stores and for GCS HMAC
// keys (GOOG4-HMAC-SHA256: the same algorithm under other names, see SigV4Scheme).
//
// The signer takes the request as it will be sent, with its path and query *decoded*, and
// encodes them itself the way S3 expects (RFC 3986 unreserved characters kept, everything
// else %XX of its UTF-8 bytes, '/' kept in the path; no path normalisation, no double
// encoding). Tested against AWS's published test suite and against botocore.
#ifndef RUNAI_STREAMER_COMMON_SIGV4_H_
#define RUNAI_STREAMER_COMMON_SIGV4_H_

#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/headers.h"
#include "common/uri.h"

namespace runai::common {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: none
};

// The names that differ between AWS SigV4 and GCS's V4 HMAC signing.
struct SigV4Scheme {
  std::string algorithm = "AWS4-HMAC-SHA256";
  std::string key_prefix = "AWS4";
  std::string terminator = "aws4_request";
  std::string header_prefix = "x-amz-";  // for -date and -security-token
};

struct SigV4Request {
  std::string method;              // "GET"
  std::string path;                // decoded, starting with '/': "/bucket/my key+1.safetensors"
  HeaderList query;                // decoded names and values, in any order
  HeaderList headers;              // as sent (Host included); names in any case
  std::string payload_sha256_hex;  // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

struct SigV4Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;      // hex
  std::string authorization;  // the Authorization header's value
  HeaderList added_headers;   // to send too: <prefix>date and, with a token, <prefix>security-token
};

// Signs `request` for `region` and `service` at `timestamp` (UTC, "YYYYMMDDTHHMMSSZ").
SigV4Signature SignV4(const SigV4Request& request, const AwsCredentials& credentials,
                      std::string_view region, std::string_view service, std::string_view timestamp,
                      const SigV4Scheme& scheme = SigV4Scheme());

// "YYYYMMDDTHHMMSSZ" of a time.
std::string SigV4Timestamp(std::time_t when);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_SIGV4_H_
