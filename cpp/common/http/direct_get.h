// Ranged GETs whose bodies libcurl never touches. curl only opens the connection (TCP and TLS,
// CURLOPT_CONNECT_ONLY); the request and the response head go through curl_easy_send and
// curl_easy_recv and are handled here, and the body is received straight into the
// destination. The write-callback path copies every byte once more, out of curl's receive
// buffer, and on a client that shares its cores that copy costs throughput (figures in
// benchmarks/RESULTS.md, "Measurements behind defaults").
//
// Only the common case is handled: HTTP/1.1 responses with a Content-Length, no proxy. Anything
// else (chunked bodies, a proxy in the environment, a header with a line break) is left to
// the curl path.
#ifndef RUNAI_STREAMER_COMMON_HTTP_DIRECT_GET_H_
#define RUNAI_STREAMER_COMMON_HTTP_DIRECT_GET_H_

#include <cstdint>
#include <string>

#include "common/headers.h"
#include "common/http/http_client.h"

namespace runai::common {

class DirectGet {
 public:
  enum class Outcome {
    kComplete,    // a whole response: as HttpConnection::Perform returning true
    kIncomplete,  // as Perform returning false (response->transport_error says why)
    kUnhandled,   // a response this path does not read: send the request through curl
  };

  DirectGet() = default;
  ~DirectGet();
  DirectGet(const DirectGet&) = delete;
  DirectGet& operator=(const DirectGet&) = delete;

  // GET `url`; a 2xx body goes into dst (more than `capacity` bytes is an error), any other
  // body into response->body. The connection is kept for the next request to the same origin.
  // on_body sees each piece of a 2xx body as it lands in dst.
  Outcome Perform(const std::string& url, const HeaderList& headers, const HttpSettings& settings,
                  char* dst, uint64_t capacity, HttpResponse* response,
                  const BodyBytes& on_body = {});

 private:
  struct Target {
    std::string origin;  // scheme://host[:port]: what one connection serves
    std::string host;    // the Host header curl would send
    std::string path;    // path and query, as in the request line
  };
  enum class Exchange { kDone, kUnhandled, kFailed, kStale };

  // False for what curl should word the error of (a malformed URL, another scheme).
  static bool ParseTarget(const std::string& url, Target* target);
  bool Connect(const Target& target, const HttpSettings& settings, HttpResponse* response);
  void Disconnect();
  Exchange Run(const std::string& request, const HttpSettings& settings, char* dst,
               uint64_t capacity, HttpResponse* response, const BodyBytes& on_body);
  // Whether a kept connection is still open and quiet (a server may close idle ones).
  bool Alive();

  void* curl_ = nullptr;  // CURL*, connected to origin_
  long socket_ = -1;      // its socket
  std::string origin_;
};

// Whether the environment names a proxy curl would use (http_proxy, https_proxy, all_proxy and
// their upper-case forms): requests then go through curl, which speaks to proxies.
bool ProxyInEnvironment();

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_HTTP_DIRECT_GET_H_
