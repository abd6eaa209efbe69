#include "common/http/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "common/http/direct_get.h"
#include "common/http/retry_policy.h"
#include "common/parse.h"

namespace runai::common {
namespace {

struct Transfer {
  CURL* curl;
  HttpResponse* response;
  char* dst;
  uint64_t capacity;
  const BodyBytes& on_body;
  bool overflow = false;
};

std::string Trim(const char* begin, const char* end) {
  while (begin < end && std::isspace(static_cast<unsigned char>(*begin))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(end[-1]))) --end;
  return std::string(begin, end);
}

bool IsObjectHeader(const std::string& name) {
  return name == "etag" || name == "content-md5" || name == "x-amz-version-id" ||
         name.rfind("x-amz-checksum-", 0) == 0 || name == "x-goog-hash" ||
         name == "x-goog-generation" || name == "x-repo-commit" || name == "x-linked-etag" ||
         name == "x-linked-size" || name == "x-error-message" || name == "location" ||
         name == "link";
}

size_t OnHeader(char* data, size_t size, size_t count, void* context) {
  auto* transfer = static_cast<Transfer*>(context);
  const size_t bytes = size * count;
  if (bytes >= 5 && std::strncmp(data, "HTTP/", 5) == 0) {
    // A new response (after 100-continue or a redirect): forget the previous one's headers.
    transfer->response->content_range.clear();
    transfer->response->content_length = -1;
    transfer->response->object_headers.clear();
    transfer->response->status = 0;
    return bytes;
  }
  std::string name, value;
  ReadHeaderLine(data, bytes, &name, &value, transfer->response);
  return bytes;
}

size_t OnBody(char* data, size_t size, size_t count, void* context) {
  auto* transfer = static_cast<Transfer*>(context);
  HttpResponse* response = transfer->response;
  const size_t bytes = size * count;
  if (response->status == 0) {  // the body starts: curl knows the final status by now
    curl_easy_getinfo(transfer->curl, CURLINFO_RESPONSE_CODE, &response->status);
  }
  const bool success = response->status >= 200 && response->status < 300;
  if (success && transfer->dst != nullptr) {
    if (response->received + bytes > transfer->capacity) {
      transfer->overflow = true;
      return 0;  // aborts the transfer: a longer body than asked for is an error
    }
    std::memcpy(transfer->dst + response->received, data, bytes);
    if (transfer->on_body) transfer->on_body(transfer->dst + response->received, bytes);
    response->received += bytes;
    return bytes;
  }
  if (response->body.size() + bytes > kMaxErrorBody) {
    transfer->overflow = true;
    return 0;
  }
  response->body.append(data, bytes);
  return bytes;
}

}  // namespace

Status InitHttp() {
  static const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (code != CURLE_OK) {
    return Status{8, std::string("libcurl initialisation failed: ") + curl_easy_strerror(code)};
  }
  return Status::Ok();
}

bool ReadHeaderLine(const char* data, size_t size, std::string* name, std::string* value,
                    HttpResponse* response) {
  const char* colon = static_cast<const char*>(std::memchr(data, ':', size));
  if (colon == nullptr) return false;
  *name = Trim(data, colon);
  for (char& c : *name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  *value = Trim(colon + 1, data + size);
  if (*name == "content-range") {
    response->content_range = *value;
  } else if (*name == "content-length") {
    char* end = nullptr;
    const long long parsed = std::strtoll(value->c_str(), &end, 10);
    response->content_length = end != value->c_str() && *end == '\0' && parsed >= 0 ? parsed : -1;
  } else if (*name == "x-amz-request-id" || *name == "x-ms-request-id" ||
             *name == "x-guploader-uploadid") {
    response->request_id = *value;
  } else if (*name == "x-ms-error-code" || *name == "x-error-code") {
    response->error_code = *value;
  } else if (*name == "retry-after") {
    int64_t seconds = 0;
    std::string why;
    if (ParseInt64InRange(*value, 0, 86400, &seconds, &why)) {
      response->retry_after_ms = static_cast<long>(seconds * 1000);
    }
  } else if (IsObjectHeader(*name) &&
             response->object_headers.size() < HttpResponse::kMaxObjectHeaders) {
    response->object_headers.emplace_back(*name, *value);
  }
  return true;
}

void SetTransportError(int curl_code, const std::string& detail, HttpResponse* response) {
  const auto code = static_cast<CURLcode>(curl_code);
  response->transport_error =
      std::string(curl_easy_strerror(code)) + (detail.empty() ? "" : ": " + detail);
  response->transient = IsTransientTransportError(curl_code);
}

HttpConnection::HttpConnection() : curl_(curl_easy_init()) {}

HttpConnection::~HttpConnection() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

bool HttpConnection::Perform(const std::string& method, const std::string& url,
                             const HeaderList& headers, const HttpSettings& settings, char* dst,
                             uint64_t capacity, HttpResponse* response, const BodyBytes& on_body) {
  // Data reads take the direct path; everything else, and what it leaves, goes through curl.
  if (method == "GET" && dst != nullptr && !ProxyInEnvironment()) {
    if (direct_ == nullptr) direct_ = std::make_unique<DirectGet>();
    const DirectGet::Outcome outcome =
        direct_->Perform(url, headers, settings, dst, capacity, response, on_body);
    if (outcome != DirectGet::Outcome::kUnhandled) {
      return outcome == DirectGet::Outcome::kComplete;
    }
  }
  *response = HttpResponse();
  CURL* curl = static_cast<CURL*>(curl_);
  if (curl == nullptr) {
    response->transport_error = "libcurl could not create a handle";
    return false;
  }
  Transfer transfer{curl, response, dst, capacity, on_body};
  curl_slist* header_list = nullptr;
  for (const auto& [name, value] : headers) {
    header_list = curl_slist_append(header_list, (name + ": " + value).c_str());
  }
  // Stop curl from adding headers we did not sign.
  header_list = curl_slist_append(header_list, "Accept:");
  header_list = curl_slist_append(header_list, "Expect:");
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_reset(curl);  // keeps the connection cache
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  ApplyConnectionOptions(curl, settings);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, settings.low_speed_bytes);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, settings.low_speed_seconds);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(header_list);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  response->status = status;
  if (code == CURLE_OK) return true;
  if (transfer.overflow) {
    response->too_long = true;
    response->transport_error = kBodyTooLong;
    return false;
  }
  SetTransportError(code, error, response);
  return false;
}

std::unique_ptr<HttpConnection> ConnectionPool::Take() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      return connection;
    }
  }
  return std::make_unique<HttpConnection>();
}

void ConnectionPool::Give(std::unique_ptr<HttpConnection> connection) {
  std::lock_guard<std::mutex> lock(mutex_);
  idle_.push_back(std::move(connection));
}

void ApplyConnectionOptions(void* handle, const HttpSettings& settings) {
  CURL* curl = static_cast<CURL*>(handle);
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  // The URL's path is the object key as written: never remove "." / ".." segments from it (an
  // object named a/../b would otherwise be asked for as b).
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
  // Larger reads than curl's 16 KiB default: fewer recv calls (and write callbacks) per GB.
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, settings.connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, settings.verify_tls ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, settings.verify_tls ? 2L : 0L);
  if (!settings.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, settings.ca_file.c_str());
}

bool ParseContentRange(const std::string& value, uint64_t* first, uint64_t* last, int64_t* total) {
  unsigned long long a = 0, b = 0;
  char rest[32] = {};
  if (std::sscanf(value.c_str(), "bytes %llu-%llu/%31s", &a, &b, rest) != 3 || b < a) return false;
  *first = a;
  *last = b;
  if (std::strcmp(rest, "*") == 0) {
    *total = -1;
    return true;
  }
  char* end = nullptr;
  const long long parsed = std::strtoll(rest, &end, 10);
  if (*end != '\0' || parsed < 0) return false;
  *total = parsed;
  return true;
}

}  // namespace runai::common
