// The HTTP machinery every object-storage plugin shares: kept-alive libcurl connections, TLS
// settings, low-speed and connect timeouts and response checks (when to retry:
// retry_policy.h). Services (s3/, gcs/, azure/) only build URLs, sign requests and parse their
// errors.
#ifndef RUNAI_STREAMER_COMMON_HTTP_HTTP_CLIENT_H_
#define RUNAI_STREAMER_COMMON_HTTP_HTTP_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/headers.h"
#include "common/status.h"

namespace runai::common {

// What one receive from a connection may take: larger reads than curl's 16 KiB default mean
// fewer recv calls per GB. 512 KiB is CURL_MAX_READ_SIZE of older libcurls.
constexpr long kReceiveBufferBytes = 512 << 10;
// The longest body kept in memory (errors and listings): a longer one is refused (kBodyTooLong).
constexpr size_t kMaxErrorBody = 1 << 20;
// Why a response was refused when its body would not fit the buffer given for it.
inline constexpr char kBodyTooLong[] = "the response body is longer than requested";

struct HttpSettings {
  std::string ca_file;  // CA bundle (chosen by the Python side); empty: libcurl's default
  bool verify_tls = true;
  long connect_timeout_ms = 10000;
  // A transfer slower than low_speed_bytes per second for low_speed_seconds is cut (and
  // retried): a slow server that keeps sending completes, a stalled one does not hang.
  long low_speed_bytes = 1024;
  long low_speed_seconds = 30;
  int max_attempts = 5;      // attempts per request, retries included
  long retry_base_ms = 200;  // backoff: random in [0, min(cap, base * 2^attempt)]
  long retry_cap_ms = 10000;
};

struct HttpResponse {
  long status = 0;              // 0: no response (connection error)
  std::string content_range;    // "bytes a-b/total"
  int64_t content_length = -1;  // -1: not sent
  std::string request_id;       // x-amz-request-id (or the service's equivalent)
  std::string error_code;       // x-ms-error-code / x-error-code (sent with bodiless errors too)
  long retry_after_ms = -1;     // Retry-After in delta-seconds (-1: not sent, or an HTTP date)
  std::string body;             // error bodies and small (listing) bodies
  uint64_t received = 0;        // body bytes written into the destination buffer
  std::string transport_error;  // curl's message when status is 0 or the body broke off
  bool transient = false;       // a transport error worth retrying (IsTransientTransportError)
  bool too_long = false;        // the body was longer than the buffer given for it
  // What the response says of the object's version and checksums (ETag, x-amz-checksum-*,
  // x-amz-version-id, x-goog-hash, x-goog-generation, Content-MD5; the Hub's x-repo-commit,
  // x-linked-etag, x-linked-size, x-error-message, Location and Link), lower-case names, at
  // most kMaxObjectHeaders of them.
  HeaderList object_headers;
  static constexpr size_t kMaxObjectHeaders = 16;
};

class DirectGet;

// Called with each piece of a 2xx body as it lands in the destination, in order (a CRC taken
// while the bytes are in cache).
using BodyBytes = std::function<void(const char* data, size_t size)>;

// One libcurl easy handle: one kept-alive connection (and one more for DirectGet's data
// reads). Not thread-safe; see ConnectionPool.
class HttpConnection {
 public:
  HttpConnection();
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends one request. A 2xx body goes into dst (at most `capacity` bytes: more is an
  // error) when dst is given, else into response->body; other bodies into response->body.
  // Returns false (with response->transport_error) when no complete response came.
  bool Perform(const std::string& method, const std::string& url, const HeaderList& headers,
               const HttpSettings& settings, char* dst, uint64_t capacity, HttpResponse* response,
               const BodyBytes& on_body = {});

 private:
  void* curl_;  // CURL*
  std::unique_ptr<DirectGet> direct_;
};

// Connections reused across requests and threads (keep-alive), created on demand.
class ConnectionPool {
 public:
  std::unique_ptr<HttpConnection> Take();
  void Give(std::unique_ptr<HttpConnection> connection);

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<HttpConnection>> idle_;
};

// One response header line ("Name: value", CRLF or not) into `response` where it is one that
// both receive paths keep (Content-Range, Content-Length, request ids, error codes). Returns
// its lower-case name and trimmed value; false for a line without a colon.
bool ReadHeaderLine(const char* data, size_t size, std::string* name, std::string* value,
                    HttpResponse* response);
// libcurl's result `curl_code` (with curl's detail, if any) as response->transport_error, and
// whether it is worth another attempt (IsTransientTransportError) as response->transient.
void SetTransportError(int curl_code, const std::string& detail, HttpResponse* response);
// The options every connection shares, whichever path reads from it: no signals, HTTP/1.1,
// large receives, the connect timeout and TLS verification. `curl` is a CURL*.
void ApplyConnectionOptions(void* curl, const HttpSettings& settings);

// "bytes a-b/total" -> a, b, total (total -1 for "*"); false when malformed.
bool ParseContentRange(const std::string& value, uint64_t* first, uint64_t* last, int64_t* total);

// Global libcurl initialisation, once per process (thread-safe).
Status InitHttp();

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_HTTP_HTTP_CLIENT_H_
