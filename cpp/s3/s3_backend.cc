// libstreamers3: the s3:// backend plugin (AWS S3 and S3-compatible stores).
//
// Options (set by the Python package runai_model_streamer_s3; every value a string):
//   endpoint            "http[s]://host[:port]"; empty: https://s3.<region>.amazonaws.com
//   region              signing region (default us-east-1)
//   access_key_id, secret_access_key, session_token   credentials (empty key: unsigned)
//   virtual_addressing  "1": https://bucket.host/key; "0": https://host/bucket/key
//   ca_file, verify_tls, connect_timeout_ms, low_speed_bytes, low_speed_seconds,
//   max_attempts, retry_base_ms, retry_cap_ms    the shared HTTP settings (http_client.h)
//   timeout_ms          set by the engine; accepted
// Credentials never appear in messages.
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>

#include "common/http/http_client.h"
#include "common/parse.h"
#include "common/sha256.h"
#include "common/sigv4.h"
#include "common/status.h"
#include "common/xml.h"
#include "streamer/backend.h"
#include "streamer/streamer.h"

#define S3_EXPORT extern "C" __attribute__((visibility("default")))

using runai::common::AwsCredentials;
using runai::common::HeaderList;
using runai::common::HttpResponse;
using runai::common::HttpSettings;
using runai::common::Status;

struct runai_backend {
  std::string scheme = "https";
  std::string host;  // host[:port] of the endpoint
  std::string region = "us-east-1";
  bool virtual_addressing = true;
  AwsCredentials credentials;
  std::mutex credentials_mutex;
  HttpSettings http;
  runai::common::ConnectionPool connections;
};

namespace {

constexpr const char* kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

int Fail(const Status& status, char* error, size_t error_size) {
  runai::common::CopyMessage(status.message, error, error_size);
  return status.code;
}

struct ObjectName {
  std::string bucket;
  std::string key;
};

bool ParseUri(const std::string& uri, ObjectName* name, std::string* why) {
  if (uri.size() < 5 || strncasecmp(uri.c_str(), "s3://", 5) != 0) {
    *why = uri + ": not an s3:// URI";
    return false;
  }
  const std::string rest = uri.substr(5);
  const size_t slash = rest.find('/');
  name->bucket = rest.substr(0, slash);
  name->key = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (name->bucket.empty()) {
    *why = uri + ": the URI names no bucket (s3://bucket/key)";
    return false;
  }
  return true;
}

// The URL and the (decoded) path that is signed, for a bucket and key (key may be empty).
void Address(const runai_backend& b, const ObjectName& name, std::string* url, std::string* host,
             std::string* path) {
  if (b.virtual_addressing) {
    *host = name.bucket + "." + b.host;
    *path = "/" + name.key;
  } else {
    *host = b.host;
    *path = "/" + name.bucket + "/" + name.key;
  }
  *url = b.scheme + "://" + *host + runai::common::UriEncode(*path, true);
}

std::string QueryString(const HeaderList& query) {
  std::string out;
  for (const auto& [name, value] : query) {
    out += (out.empty() ? "?" : "&") + runai::common::UriEncode(name, false) + "=" +
           runai::common::UriEncode(value, false);
  }
  return out;
}

HeaderList SignedHeaders(runai_backend& b, const std::string& method, const std::string& host,
                         const std::string& path, const HeaderList& query, HeaderList extra) {
  extra.emplace_back("host", host);
  extra.emplace_back("x-amz-content-sha256", kEmptySha256);
  AwsCredentials credentials;
  {
    std::lock_guard<std::mutex> lock(b.credentials_mutex);
    credentials = b.credentials;
  }
  if (credentials.access_key_id.empty()) return extra;  // unsigned (public buckets)
  runai::common::SigV4Request request{method, path, query, extra, kEmptySha256};
  const auto signature = runai::common::SignV4(request, credentials, b.region, "s3",
                                               runai::common::SigV4Timestamp(std::time(nullptr)));
  HeaderList headers = extra;
  for (const auto& header : signature.added_headers) headers.push_back(header);
  headers.emplace_back("Authorization", signature.authorization);
  return headers;
}

// The message of a failed response: URI, HTTP status, S3 error code and message, request id.
Status ResponseError(const std::string& uri, const std::string& action,
                     const HttpResponse& response, int attempts) {
  std::string message = uri + ": " + action + " failed: ";
  if (response.status == 0) {
    message += response.transport_error;
  } else {
    message += "HTTP " + std::to_string(response.status);
    const std::string code = runai::common::XmlText(response.body, "Code");
    const std::string text = runai::common::XmlText(response.body, "Message");
    if (!code.empty()) message += " " + code;
    if (!text.empty()) message += ": " + text;
    if (!response.transport_error.empty()) message += " (" + response.transport_error + ")";
    std::string request_id = response.request_id;
    if (request_id.empty()) request_id = runai::common::XmlText(response.body, "RequestId");
    if (!request_id.empty()) message += " [request id " + request_id + "]";
  }
  if (attempts > 1) message += " after " + std::to_string(attempts) + " attempts";
  int code = RUNAI_E_BACKEND;
  if (response.status == 404) code = RUNAI_E_NOT_FOUND;
  if (response.status == 401 || response.status == 403) code = RUNAI_E_PERMISSION;
  return Status{code, "s3: " + message};
}

bool Transient(const HttpResponse& response) {
  if (response.transient || runai::common::IsTransientHttpStatus(response.status)) return true;
  return runai::common::XmlText(response.body, "Code") == "SlowDown";
}

// One request with retries; body into dst (capacity bytes) or response->body.
Status Send(runai_backend& b, const std::string& uri, const std::string& action,
            const std::string& method, const ObjectName& name, const HeaderList& query,
            const HeaderList& extra, HttpResponse* response) {
  std::string url, host, path;
  Address(b, name, &url, &host, &path);
  url += QueryString(query);
  for (int attempt = 1;; ++attempt) {
    auto connection = b.connections.Take();
    const bool complete =
        connection->Perform(method, url, SignedHeaders(b, method, host, path, query, extra),
                            b.http, nullptr, 0, response);
    b.connections.Give(std::move(connection));
    if (complete && response->status >= 200 && response->status < 300) return Status::Ok();
    if (attempt >= b.http.max_attempts || !Transient(*response)) {
      return ResponseError(uri, action, *response, attempt);
    }
    runai::common::SleepMs(runai::common::BackoffMs(b.http, attempt));
  }
}

Status ReadRange(runai_backend& b, const std::string& uri, const ObjectName& name,
                 uint64_t offset, uint64_t size, char* dst) {
  std::string url, host, path;
  Address(b, name, &url, &host, &path);
  uint64_t done = 0;
  HttpResponse response;
  int attempt = 0;
  while (done < size) {
    ++attempt;
    const uint64_t first = offset + done, last = offset + size - 1;
    const HeaderList range{{"range", "bytes=" + std::to_string(first) + "-" + std::to_string(last)}};
    auto connection = b.connections.Take();
    const bool complete = connection->Perform(
        "GET", url, SignedHeaders(b, "GET", host, path, {}, range), b.http, dst + done,
        size - done, &response);
    b.connections.Give(std::move(connection));
    const bool partial_content = response.status == 206;
    if (partial_content || response.status == 200) {
      // The response must be exactly the range asked for: check before trusting the bytes.
      uint64_t got_first = 0, got_last = 0;
      int64_t total = -1;
      std::string problem;
      if (partial_content) {
        if (!runai::common::ParseContentRange(response.content_range, &got_first, &got_last,
                                              &total) ||
            got_first != first || got_last != last) {
          problem = "asked for bytes " + std::to_string(first) + "-" + std::to_string(last) +
                    " but the response's Content-Range is '" + response.content_range + "'";
        }
      } else if (first != 0 || response.content_length != static_cast<int64_t>(size - done)) {
        problem = "the server ignored the Range header (HTTP 200 for bytes " +
                  std::to_string(first) + "-" + std::to_string(last) + ")";
      }
      if (!problem.empty()) return Status{RUNAI_E_BACKEND, "s3: " + uri + ": " + problem};
      if (response.content_length >= 0 &&
          static_cast<uint64_t>(response.content_length) != last - first + 1) {
        return Status{RUNAI_E_BACKEND, "s3: " + uri + ": Content-Length " +
                                           std::to_string(response.content_length) +
                                           " for a range of " + std::to_string(last - first + 1) +
                                           " bytes"};
      }
      done += response.received;
      if (complete && done < size) {
        return Status{RUNAI_E_BACKEND, "s3: " + uri + ": the body of bytes " +
                                           std::to_string(first) + "-" + std::to_string(last) +
                                           " ended after " + std::to_string(response.received) +
                                           " bytes"};
      }
      if (done == size) return Status::Ok();
      if (response.too_long) {
        return Status{RUNAI_E_BACKEND, "s3: " + uri + ": " + response.transport_error};
      }
      if (response.received > 0) attempt = 0;  // progress: a cut body resumes where it stopped
    } else if (response.status == 416) {
      return Status{RUNAI_E_EOF, "s3: " + uri + ": bytes " + std::to_string(first) + "-" +
                                     std::to_string(last) + " are past the end of the object"};
    }
    if (attempt >= b.http.max_attempts || !Transient(response)) {
      return ResponseError(uri, "GET bytes " + std::to_string(first) + "-" + std::to_string(last),
                           response, attempt);
    }
    runai::common::SleepMs(runai::common::BackoffMs(b.http, attempt));
  }
  return Status::Ok();
}

Status SetOption(runai_backend* b, const std::string& key, const std::string& value) {
  auto number = [&](long* out, int64_t min, int64_t max) {
    int64_t parsed = 0;
    std::string why;
    if (!runai::common::ParseInt64InRange(value, min, max, &parsed, &why)) {
      return Status{RUNAI_E_INVALID_ARGUMENT, "s3: option " + key + "='" + value + "' " + why};
    }
    *out = static_cast<long>(parsed);
    return Status::Ok();
  };
  auto flag = [&](bool* out) {
    if (value != "0" && value != "1") {
      return Status{RUNAI_E_INVALID_ARGUMENT, "s3: option " + key + "='" + value + "' must be 0 or 1"};
    }
    *out = value == "1";
    return Status::Ok();
  };
  long attempts = 0;
  if (key == "endpoint") {
    const size_t separator = value.find("://");
    if (value.empty()) return Status::Ok();
    if (separator == std::string::npos ||
        (value.compare(0, separator, "http") != 0 && value.compare(0, separator, "https") != 0)) {
      return Status{RUNAI_E_INVALID_ARGUMENT,
                    "s3: endpoint '" + value + "' is not an http:// or https:// URL"};
    }
    b->scheme = value.substr(0, separator);
    b->host = value.substr(separator + 3);
    while (!b->host.empty() && b->host.back() == '/') b->host.pop_back();
    if (b->host.empty() || b->host.find('/') != std::string::npos) {
      return Status{RUNAI_E_INVALID_ARGUMENT,
                    "s3: endpoint '" + value + "' must be scheme://host[:port] with no path"};
    }
    return Status::Ok();
  }
  if (key == "region") {
    if (!value.empty()) b->region = value;
    return Status::Ok();
  }
  if (key == "access_key_id") return b->credentials.access_key_id = value, Status::Ok();
  if (key == "secret_access_key") return b->credentials.secret_access_key = value, Status::Ok();
  if (key == "session_token") return b->credentials.session_token = value, Status::Ok();
  if (key == "ca_file") return b->http.ca_file = value, Status::Ok();
  if (key == "virtual_addressing") return flag(&b->virtual_addressing);
  if (key == "verify_tls") return flag(&b->http.verify_tls);
  if (key == "connect_timeout_ms") return number(&b->http.connect_timeout_ms, 1, 600000);
  if (key == "low_speed_bytes") return number(&b->http.low_speed_bytes, 0, INT32_MAX);
  if (key == "low_speed_seconds") return number(&b->http.low_speed_seconds, 1, 3600);
  if (key == "retry_base_ms") return number(&b->http.retry_base_ms, 0, 600000);
  if (key == "retry_cap_ms") return number(&b->http.retry_cap_ms, 0, 600000);
  if (key == "max_attempts") {
    Status status = number(&attempts, 1, 100);
    b->http.max_attempts = static_cast<int>(attempts);
    return status;
  }
  if (key == RUNAI_BACKEND_OPTION_TIMEOUT_MS) return number(&attempts, 0, INT64_MAX);
  return Status{RUNAI_E_INVALID_ARGUMENT, "s3: unknown option '" + key + "'"};
}

}  // namespace

S3_EXPORT int runai_backend_abi_version(void) { return RUNAI_BACKEND_ABI_VERSION; }

S3_EXPORT int runai_backend_create(const char* const* option_keys,
                                   const char* const* option_values, size_t num_options,
                                   runai_backend_t** out, char* error, size_t error_size) {
  Status status = runai::common::InitHttp();
  if (!status.ok()) return Fail(status, error, error_size);
  auto backend = std::make_unique<runai_backend>();
  bool endpoint_given = false;
  for (size_t i = 0; i < num_options; ++i) {
    status = SetOption(backend.get(), option_keys[i], option_values[i]);
    if (!status.ok()) return Fail(status, error, error_size);
    if (std::strcmp(option_keys[i], "endpoint") == 0 && option_values[i][0] != '\0') {
      endpoint_given = true;
    }
  }
  if (!endpoint_given) backend->host = "s3." + backend->region + ".amazonaws.com";
  if (backend->credentials.access_key_id.empty() !=
      backend->credentials.secret_access_key.empty()) {
    return Fail(Status{RUNAI_E_INVALID_ARGUMENT,
                       "s3: access_key_id and secret_access_key must be given together"},
                error, error_size);
  }
  *out = backend.release();
  return RUNAI_OK;
}

S3_EXPORT void runai_backend_destroy(runai_backend_t* backend) { delete backend; }

S3_EXPORT int runai_backend_size(runai_backend_t* backend, const char* uri, uint64_t* size,
                                 char* error, size_t error_size) {
  ObjectName name;
  std::string why;
  if (!ParseUri(uri, &name, &why) || name.key.empty()) {
    if (why.empty()) why = std::string(uri) + ": the URI names a bucket, not an object";
    return Fail(Status{RUNAI_E_INVALID_ARGUMENT, "s3: " + why}, error, error_size);
  }
  HttpResponse response;
  Status status = Send(*backend, uri, "HEAD", "HEAD", name, {}, {}, &response);
  if (!status.ok()) {
    // HEAD answers have no body: ask again with GET for the service's error code.
    HttpResponse detail;
    Status explained = Send(*backend, uri, "GET", "GET", name, {}, {{"range", "bytes=0-0"}}, &detail);
    if (!explained.ok() && detail.status == response.status) status = explained;
    return Fail(status, error, error_size);
  }
  if (response.content_length < 0) {
    return Fail(Status{RUNAI_E_BACKEND, std::string("s3: ") + uri + ": HEAD sent no Content-Length"},
                error, error_size);
  }
  *size = static_cast<uint64_t>(response.content_length);
  return RUNAI_OK;
}

S3_EXPORT int runai_backend_read(runai_backend_t* backend, const char* uri, uint64_t offset,
                                 uint64_t size, void* dst, char* error, size_t error_size) {
  ObjectName name;
  std::string why;
  if (!ParseUri(uri, &name, &why)) {
    return Fail(Status{RUNAI_E_INVALID_ARGUMENT, "s3: " + why}, error, error_size);
  }
  if (size == 0) return RUNAI_OK;
  return Fail(ReadRange(*backend, uri, name, offset, size, static_cast<char*>(dst)), error,
              error_size);
}

S3_EXPORT int runai_backend_list(runai_backend_t* backend, const char* uri_prefix,
                                 runai_backend_list_entry_fn entry, void* context, char* error,
                                 size_t error_size) {
  ObjectName name;
  std::string why;
  if (!ParseUri(uri_prefix, &name, &why)) {
    return Fail(Status{RUNAI_E_INVALID_ARGUMENT, "s3: " + why}, error, error_size);
  }
  const std::string prefix = name.key;
  name.key.clear();
  std::string token;
  for (;;) {
    HeaderList query{{"delimiter", "/"}, {"list-type", "2"}, {"prefix", prefix}};
    if (!token.empty()) query.emplace_back("continuation-token", token);
    HttpResponse response;
    Status status = Send(*backend, uri_prefix, "ListObjectsV2", "GET", name, query, {}, &response);
    if (!status.ok()) return Fail(status, error, error_size);
    for (std::string_view contents : runai::common::XmlElements(response.body, "Contents")) {
      const std::string key = runai::common::XmlText(contents, "Key");
      const std::string size_text = runai::common::XmlText(contents, "Size");
      if (key.empty() || key.back() == '/') continue;  // "directory" markers
      const std::string uri = "s3://" + name.bucket + "/" + key;
      if (entry(uri.c_str(), std::strtoull(size_text.c_str(), nullptr, 10), context) != 0) {
        return RUNAI_OK;
      }
    }
    for (std::string_view common : runai::common::XmlElements(response.body, "CommonPrefixes")) {
      const std::string sub = runai::common::XmlText(common, "Prefix");
      if (sub.empty() || sub == prefix) continue;
      const std::string uri = "s3://" + name.bucket + "/" + sub;  // ends with '/'
      if (entry(uri.c_str(), 0, context) != 0) return RUNAI_OK;
    }
    if (runai::common::XmlText(response.body, "IsTruncated") != "true") return RUNAI_OK;
    token = runai::common::XmlText(response.body, "NextContinuationToken");
    if (token.empty()) {
      return Fail(Status{RUNAI_E_BACKEND, std::string("s3: ") + uri_prefix +
                                              ": a truncated listing sent no continuation token"},
                  error, error_size);
    }
  }
}
