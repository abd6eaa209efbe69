#include "common/http/direct_get.h"

#include <curl/curl.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace runai::common {
namespace {

constexpr size_t kMaxHead = 64 << 10;   // response status line and headers
constexpr size_t kHeadRead = 16 << 10;  // what one recv for the head asks for
constexpr int kPollSliceMs = 1000;      // the low-speed check runs at least this often

using Clock = std::chrono::steady_clock;

// curl's low-speed rule: fewer than `bytes` per second over `seconds` fails the transfer.
class SpeedCheck {
 public:
  explicit SpeedCheck(const HttpSettings& settings)
      : bytes_per_second_(settings.low_speed_bytes), seconds_(settings.low_speed_seconds) {}

  void Add(size_t bytes) { bytes_ += bytes; }

  // True once a whole window has passed below the limit; starts a new window otherwise.
  bool TooSlow() {
    if (bytes_per_second_ <= 0) return false;  // 0: no limit, as in curl
    const Clock::time_point now = Clock::now();
    if (now - start_ < std::chrono::seconds(seconds_)) return false;
    if (bytes_ < static_cast<uint64_t>(bytes_per_second_) * static_cast<uint64_t>(seconds_)) {
      return true;
    }
    start_ = now;
    bytes_ = 0;
    return false;
  }

  std::string Message() const {
    return "Operation too slow. Less than " + std::to_string(bytes_per_second_) +
           " bytes/sec transferred the last " + std::to_string(seconds_) + " seconds";
  }

 private:
  long bytes_per_second_;
  long seconds_;
  Clock::time_point start_ = Clock::now();
  uint64_t bytes_ = 0;
};

// Until the socket is ready or the slice has passed (EINTR included: the caller loops).
void Wait(long socket, short events) {
  pollfd fd{static_cast<int>(socket), events, 0};
  (void)::poll(&fd, 1, kPollSliceMs);
}

constexpr long kReceiveFailed = -1;  // an error from the connection
constexpr long kTooSlow = -2;        // the low-speed limit

// What one receive got: bytes (> 0), the peer closing (0), or a failure (kReceiveFailed or
// kTooSlow, with response->transport_error set).
long Receive(CURL* curl, long socket, char* buffer, size_t size, SpeedCheck* speed,
             HttpResponse* response) {
  for (;;) {
    size_t got = 0;
    const CURLcode code = curl_easy_recv(curl, buffer, size, &got);
    if (code != CURLE_OK && code != CURLE_AGAIN) {
      SetTransportError(code, "", response);
      return kReceiveFailed;
    }
    if (code == CURLE_OK && got == 0) return 0;
    speed->Add(got);
    if (speed->TooSlow()) {  // checked while data flows too: a trickle must not last forever
      SetTransportError(CURLE_OPERATION_TIMEDOUT, speed->Message(), response);
      return kTooSlow;
    }
    if (code == CURLE_OK) return static_cast<long>(got);
    Wait(socket, POLLIN);
  }
}

bool SendAll(CURL* curl, long socket, const std::string& data, SpeedCheck* speed,
             HttpResponse* response) {
  size_t sent = 0;
  while (sent < data.size()) {
    size_t wrote = 0;
    const CURLcode code = curl_easy_send(curl, data.data() + sent, data.size() - sent, &wrote);
    if (code == CURLE_OK) {
      sent += wrote;
      speed->Add(wrote);
      continue;
    }
    if (code != CURLE_AGAIN) {
      SetTransportError(code, "", response);
      return false;
    }
    if (speed->TooSlow()) {
      SetTransportError(CURLE_OPERATION_TIMEDOUT, speed->Message(), response);
      return false;
    }
    Wait(socket, POLLOUT);
  }
  return true;
}

std::string UrlPart(CURLU* url, CURLUPart part) {
  char* value = nullptr;
  if (curl_url_get(url, part, &value, 0) != CURLUE_OK || value == nullptr) return "";
  std::string out(value);
  curl_free(value);
  return out;
}

bool IEquals(const std::string& a, const char* b) {
  const size_t size = std::strlen(b);
  if (a.size() != size) return false;
  for (size_t i = 0; i < size; ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  }
  return true;
}

}  // namespace

bool ProxyInEnvironment() {
  for (const char* name :
       {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && value[0] != '\0') return true;
  }
  return false;
}

DirectGet::~DirectGet() { Disconnect(); }

bool DirectGet::ParseTarget(const std::string& url, Target* target) {
  CURLU* parsed = curl_url();
  // CURLU_PATH_AS_IS: the object key as written, "." and ".." segments included.
  if (parsed == nullptr ||
      curl_url_set(parsed, CURLUPART_URL, url.c_str(), CURLU_PATH_AS_IS) != CURLUE_OK) {
    curl_url_cleanup(parsed);
    return false;
  }
  const std::string scheme = UrlPart(parsed, CURLUPART_SCHEME);
  const std::string host = UrlPart(parsed, CURLUPART_HOST);
  const std::string port = UrlPart(parsed, CURLUPART_PORT);  // "" when the URL names none
  const std::string path = UrlPart(parsed, CURLUPART_PATH);
  const std::string query = UrlPart(parsed, CURLUPART_QUERY);
  curl_url_cleanup(parsed);
  if ((scheme != "http" && scheme != "https") || host.empty()) return false;
  const bool default_port = port.empty() || port == (scheme == "https" ? "443" : "80");
  target->origin = scheme + "://" + host + (port.empty() ? "" : ":" + port);
  target->host = default_port ? host : host + ":" + port;  // as curl writes Host
  target->path = (path.empty() ? "/" : path) + (query.empty() ? "" : "?" + query);
  return true;
}

bool DirectGet::Connect(const Target& target, const HttpSettings& settings,
                        HttpResponse* response) {
  Disconnect();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    response->transport_error = "libcurl could not create a handle";
    return false;
  }
  char error[CURL_ERROR_SIZE] = {};
  const std::string url = target.origin + "/";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");  // proxies are the curl path's
  ApplyConnectionOptions(curl, settings);        // HTTP/1.1 only in ALPN; the buffer caps each recv
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  const CURLcode code = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);  // `error` goes out of scope
  curl_socket_t socket = CURL_SOCKET_BAD;
  if (code == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_ACTIVESOCKET, &socket);
  if (code != CURLE_OK || socket == CURL_SOCKET_BAD) {
    SetTransportError(code != CURLE_OK ? code : CURLE_COULDNT_CONNECT, error, response);
    curl_easy_cleanup(curl);
    return false;
  }
  curl_ = curl;
  socket_ = static_cast<long>(socket);
  origin_ = target.origin;
  return true;
}

void DirectGet::Disconnect() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
  curl_ = nullptr;
  socket_ = -1;
  origin_.clear();
}

bool DirectGet::Alive() {
  char byte = 0;
  size_t got = 0;
  // Nothing may be waiting on an idle connection: data or a close means it is spent.
  return curl_easy_recv(static_cast<CURL*>(curl_), &byte, 1, &got) == CURLE_AGAIN;
}

DirectGet::Outcome DirectGet::Perform(const std::string& url, const HeaderList& headers,
                                      const HttpSettings& settings, char* dst, uint64_t capacity,
                                      HttpResponse* response, const BodyBytes& on_body) {
  *response = HttpResponse();
  Target target;
  if (!ParseTarget(url, &target)) return Outcome::kUnhandled;  // curl words the error
  std::string request = "GET " + target.path + " HTTP/1.1\r\n";
  const bool has_host = std::any_of(headers.begin(), headers.end(), [](const auto& header) {
    return IEquals(header.first, "host");
  });
  if (!has_host) request += "Host: " + target.host + "\r\n";
  for (const auto& [name, value] : headers) {
    if ((name + value).find_first_of("\r\n") != std::string::npos) return Outcome::kUnhandled;
    if (!value.empty()) request += name + ": " + value + "\r\n";  // curl drops empty ones too
  }
  request += "\r\n";

  // A kept connection the server has closed is found out here or by the first read; then
  // the request goes once more on a new connection, as curl does.
  const bool reused = curl_ != nullptr && origin_ == target.origin && Alive();
  if (!reused && !Connect(target, settings, response)) return Outcome::kIncomplete;
  Exchange exchange = Run(request, settings, dst, capacity, response, on_body);
  if (exchange == Exchange::kStale && reused) {
    *response = HttpResponse();
    if (!Connect(target, settings, response)) return Outcome::kIncomplete;
    exchange = Run(request, settings, dst, capacity, response, on_body);
  }
  switch (exchange) {
    case Exchange::kDone:
      return Outcome::kComplete;
    case Exchange::kUnhandled:
      Disconnect();
      return Outcome::kUnhandled;
    case Exchange::kStale:
      if (response->transport_error.empty()) SetTransportError(CURLE_GOT_NOTHING, "", response);
      [[fallthrough]];
    case Exchange::kFailed:
      break;
  }
  Disconnect();
  return Outcome::kIncomplete;
}

DirectGet::Exchange DirectGet::Run(const std::string& request, const HttpSettings& settings,
                                   char* dst, uint64_t capacity, HttpResponse* response,
                                   const BodyBytes& on_body) {
  CURL* curl = static_cast<CURL*>(curl_);
  SpeedCheck speed(settings);
  if (!SendAll(curl, socket_, request, &speed, response)) return Exchange::kStale;

  // The head: status lines and headers up to the blank line; 1xx heads are skipped.
  std::string head;
  size_t head_end = std::string::npos;
  bool close_after = false, chunked = false;
  for (;;) {
    while ((head_end = head.find("\r\n\r\n")) == std::string::npos) {
      if (head.size() >= kMaxHead) {
        response->transport_error =
            "the response head is longer than " + std::to_string(kMaxHead) + " bytes";
        return Exchange::kFailed;
      }
      const size_t before = head.size();
      head.resize(before + kHeadRead);
      const long got = Receive(curl, socket_, &head[before], kHeadRead, &speed, response);
      head.resize(before + static_cast<size_t>(std::max(got, 0L)));
      if (got < 0) return before == 0 && got != kTooSlow ? Exchange::kStale : Exchange::kFailed;
      if (got == 0) {
        if (before == 0) return Exchange::kStale;
        SetTransportError(CURLE_PARTIAL_FILE, "the connection closed inside the response head",
                          response);
        return Exchange::kFailed;
      }
    }
    head_end += 4;
    int major = 0, minor = 0, status = 0;
    if (std::sscanf(head.c_str(), "HTTP/%d.%d %3d", &major, &minor, &status) != 3 || status < 100 ||
        status > 999) {
      SetTransportError(CURLE_WEIRD_SERVER_REPLY, "no HTTP status line", response);
      return Exchange::kFailed;
    }
    if (status >= 100 && status < 200) {  // 100 Continue and friends: the real head follows
      head.erase(0, head_end);
      continue;
    }
    response->status = status;
    close_after = major == 1 && minor == 0;  // HTTP/1.0 closes unless told otherwise
    for (size_t line = head.find("\r\n") + 2; line + 2 < head_end;) {
      const size_t end = head.find("\r\n", line);
      std::string name, value;
      if (ReadHeaderLine(&head[line], end - line, &name, &value, response)) {
        if (name == "transfer-encoding" && !IEquals(value, "identity")) chunked = true;
        if (name == "connection") close_after = IEquals(value, "close");
      }
      line = end + 2;
    }
    break;
  }

  const bool success = response->status >= 200 && response->status < 300;
  const bool bodiless = response->status == 204 || response->status == 304;
  if (bodiless) response->content_length = 0;
  if (chunked || response->content_length < 0) return Exchange::kUnhandled;
  const auto length = static_cast<uint64_t>(response->content_length);
  if (length > (success ? capacity : kMaxErrorBody)) {
    response->too_long = true;
    response->transport_error = kBodyTooLong;
    return Exchange::kFailed;
  }
  char* out = dst;
  if (!success) {
    response->body.resize(length);
    out = response->body.data();
  }
  // The body: what came with the head, then the rest straight into its destination.
  const size_t early = head.size() - head_end;
  uint64_t got_total = std::min<uint64_t>(early, length);
  const bool observed = success && on_body;
  if (got_total > 0) {
    std::memcpy(out, head.data() + head_end, got_total);
    if (observed) on_body(out, got_total);
  }
  while (got_total < length) {
    const long got = Receive(curl, socket_, out + got_total, length - got_total, &speed, response);
    if (got <= 0) {
      if (got == 0) {
        SetTransportError(CURLE_PARTIAL_FILE,
                          "transfer closed with " + std::to_string(length - got_total) +
                              " bytes remaining to read",
                          response);
      }
      break;
    }
    if (observed) on_body(out + got_total, static_cast<size_t>(got));
    got_total += static_cast<uint64_t>(got);
  }
  if (success) {
    response->received = got_total;
  } else {
    response->body.resize(got_total);
  }
  if (got_total < length) return Exchange::kFailed;
  // Bytes past the body belong to no request of ours: start afresh.
  if (close_after || early > length) Disconnect();
  return Exchange::kDone;
}

}  // namespace runai::common
