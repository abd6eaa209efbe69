// The request loop every object-storage plugin shares: requests with retries, ranged GETs whose
// responses are checked before a byte is trusted, cut bodies resumed where they stopped, error
// messages that name the URI, the HTTP status and the service's error code, and the options of
// the HTTP layer. A service (s3/, gcs/, azure/) supplies only its URLs, its headers (signing)
// and how its error bodies read (ServiceTraits).
#ifndef RUNAI_STREAMER_COMMON_HTTP_OBJECT_CLIENT_H_
#define RUNAI_STREAMER_COMMON_HTTP_OBJECT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/crc.h"
#include "common/headers.h"
#include "common/http/http_client.h"
#include "common/http/retry_policy.h"
#include "common/status.h"

namespace runai::common {

struct ServiceError {
  std::string code;     // the service's error code ("NoSuchKey", "AuthorizationFailure"...)
  std::string message;  // its message
  std::string request_id;
};

struct ServiceTraits {
  std::string name;  // "s3", "gcs", "azure": the prefix of every message
  // What a failed response says (from its body or headers).
  std::function<ServiceError(const HttpResponse&)> parse_error;
  // Error codes that ask to slow down whatever the status (S3's SlowDown): retried, and every
  // worker backs off (see RetryPolicy).
  std::vector<std::string> throttling_codes;
};

// The headers of one attempt, built again for each (a signature carries its time).
using HeaderBuilder = std::function<HeaderList()>;

// "scheme://host[:port][/base/path]" of an endpoint option.
struct Endpoint {
  std::string scheme = "https";
  std::string host;       // host[:port]
  std::string base_path;  // "" or "/devstoreaccount1" (no trailing '/')
};

class ObjectClient {
 public:
  explicit ObjectClient(ServiceTraits traits)
      : traits_(std::move(traits)), retry_(traits_.throttling_codes) {}

  const HttpSettings& http() const { return http_; }
  const std::string& name() const { return traits_.name; }

  // Sets one of the shared HTTP options (ca_file, verify_tls, connect_timeout_ms,
  // low_speed_bytes, low_speed_seconds, max_attempts, retry_base_ms, retry_cap_ms, timeout_ms);
  // *known is false for any other key.
  Status SetHttpOption(const std::string& key, const std::string& value, bool* known);

  // A service's own options: the status of taking one, or nullopt for a key it does not know.
  using ServiceOption =
      std::function<std::optional<Status>(const std::string& key, const std::string& value)>;
  // Takes a plugin's options (after initialising libcurl): the shared HTTP ones here, the others
  // by `service`; a key neither knows is an error naming it.
  Status TakeOptions(const std::vector<std::pair<std::string, std::string>>& options,
                     const ServiceOption& service);

  // One request with retries; a 2xx body lands in response->body. With `redirect_ok`, a 3xx
  // answer is one too (its Location in response->object_headers): nothing follows redirects
  // unasked, so no credential reaches another host.
  Status Send(const std::string& uri, const std::string& action, const std::string& method,
              const std::string& url, const HeaderBuilder& headers, HttpResponse* response,
              bool redirect_ok = false);

  // Exactly `size` bytes at `offset` of the object at `url` into dst. `range_header` is the
  // header that carries "bytes=a-b" ("range"; Azure: "x-ms-range"); `headers` builds the others
  // for a given range header value.
  // With `crcs`: the CRCs of the range's segments, taken from each piece of a body as it lands
  // (resumed bodies continue them).
  Status ReadRange(const std::string& uri, const std::string& url, const std::string& range_header,
                   const std::function<HeaderList(const HeaderList& range)>& headers,
                   uint64_t offset, uint64_t size, char* dst, SegmentCrcs* crcs = nullptr);

  // A HEAD of an object: its size from Content-Length and the headers that describe it
  // (head->object_headers). A failed HEAD carries no body, so it is asked again as a GET of
  // byte 0 (`range_header`: "range" or "x-ms-range") for the service's error code and message.
  // send(method, extra headers, response) sends one request.
  using Sender =
      std::function<Status(const std::string& method, const HeaderList& extra, HttpResponse*)>;
  Status HeadObject(const std::string& uri, const std::string& range_header, const Sender& send,
                    uint64_t* size, HttpResponse* head) const;

  // Splits `rest`, the part of `uri` after "<scheme>://", into "<bucket>/<object>" (object ""
  // for a bare bucket); `bucket_word` / `object_word` name them in messages ("container",
  // "blob").
  Status SplitPath(const std::string& uri, const std::string& rest, const char* bucket_word,
                   const char* object_word, bool need_object, std::string* bucket,
                   std::string* object) const;

  // "<name>: <uri>: <action> failed: HTTP 403 Code: message [request id ...] after N attempts"
  // (and why there was no retry, when `why_not` says).
  Status ResponseError(const std::string& uri, const std::string& action,
                       const HttpResponse& response, int attempts,
                       const std::string& why_not = "") const;
  Status Error(int code, const std::string& message) const {
    return Status{code, traits_.name + ": " + message};
  }

  // Parses an endpoint option ("" leaves *endpoint as it is).
  Status ParseEndpoint(const std::string& key, const std::string& value, bool allow_path,
                       Endpoint* endpoint) const;
  // Parses "0"/"1" and bounded integers of options, with messages naming the option.
  Status ParseFlag(const std::string& key, const std::string& value, bool* out) const;
  Status ParseNumber(const std::string& key, const std::string& value, int64_t min, int64_t max,
                     int64_t* out) const;

 private:
  std::function<std::string()> ServiceCode(const HttpResponse& response) const;
  Status PastTheEnd(const std::string& uri, const std::string& bytes, uint64_t size) const;

  ServiceTraits traits_;
  RetryPolicy retry_;  // shared by every request of this client (all workers)
  HttpSettings http_;
  ConnectionPool connections_;
};

// "?a=1&b=2" of decoded query parameters (RFC 3986 encoded), "" when there are none.
std::string QueryString(const HeaderList& query);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_HTTP_OBJECT_CLIENT_H_
