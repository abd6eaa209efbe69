#include "common/http/object_client.h"

#include <algorithm>

#include "common/parse.h"
#include "common/uri.h"
#include "streamer/backend.h"
#include "streamer/streamer.h"

namespace runai::common {

Status ObjectClient::SetHttpOption(const std::string& key, const std::string& value, bool* known) {
  *known = true;
  int64_t number = 0;
  Status status;
  auto bounded = [&](long* out, int64_t min, int64_t max) {
    status = ParseNumber(key, value, min, max, &number);
    if (status.ok()) *out = static_cast<long>(number);
    return status;
  };
  if (key == "ca_file") return http_.ca_file = value, Status::Ok();
  if (key == "verify_tls") return ParseFlag(key, value, &http_.verify_tls);
  if (key == "connect_timeout_ms") return bounded(&http_.connect_timeout_ms, 1, 600000);
  if (key == "low_speed_bytes") return bounded(&http_.low_speed_bytes, 0, INT32_MAX);
  if (key == "low_speed_seconds") return bounded(&http_.low_speed_seconds, 1, 3600);
  if (key == "retry_base_ms") return bounded(&http_.retry_base_ms, 0, 600000);
  if (key == "retry_cap_ms") return bounded(&http_.retry_cap_ms, 0, 600000);
  if (key == "max_attempts") {
    status = ParseNumber(key, value, 1, 100, &number);
    http_.max_attempts = static_cast<int>(number);
    return status;
  }
  // The engine's per-request timeout: the low-speed limit bounds a stalled transfer instead.
  if (key == RUNAI_BACKEND_OPTION_TIMEOUT_MS) return ParseNumber(key, value, 0, INT64_MAX, &number);
  *known = false;
  return Status::Ok();
}

Status ObjectClient::TakeOptions(const std::vector<std::pair<std::string, std::string>>& options,
                                 const ServiceOption& service) {
  Status status = InitHttp();
  for (auto option = options.begin(); status.ok() && option != options.end(); ++option) {
    const auto& [key, value] = *option;
    bool known = false;
    status = SetHttpOption(key, value, &known);
    if (known) continue;
    const std::optional<Status> taken = service(key, value);
    status = taken ? *taken : Error(RUNAI_E_INVALID_ARGUMENT, "unknown option '" + key + "'");
  }
  return status;
}

Status ObjectClient::ParseFlag(const std::string& key, const std::string& value, bool* out) const {
  if (value != "0" && value != "1") {
    return Error(RUNAI_E_INVALID_ARGUMENT, "option " + key + "='" + value + "' must be 0 or 1");
  }
  *out = value == "1";
  return Status::Ok();
}

Status ObjectClient::ParseNumber(const std::string& key, const std::string& value, int64_t min,
                                 int64_t max, int64_t* out) const {
  std::string why;
  if (!ParseInt64InRange(value, min, max, out, &why)) {
    return Error(RUNAI_E_INVALID_ARGUMENT, "option " + key + "='" + value + "' " + why);
  }
  return Status::Ok();
}

Status ObjectClient::ParseEndpoint(const std::string& key, const std::string& value,
                                   bool allow_path, Endpoint* endpoint) const {
  if (value.empty()) return Status::Ok();
  const size_t separator = value.find("://");
  const std::string scheme = separator == std::string::npos ? "" : value.substr(0, separator);
  if (scheme != "http" && scheme != "https") {
    return Error(RUNAI_E_INVALID_ARGUMENT,
                 key + " '" + value + "' is not an http:// or https:// URL");
  }
  std::string rest = value.substr(separator + 3);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t slash = rest.find('/');
  Endpoint parsed{scheme, rest.substr(0, slash),
                  slash == std::string::npos ? "" : rest.substr(slash)};
  if (parsed.host.empty() || (!allow_path && !parsed.base_path.empty()) ||
      rest.find_first_of("?#") != std::string::npos) {
    return Error(RUNAI_E_INVALID_ARGUMENT, key + " '" + value + "' must be scheme://host[:port]" +
                                               (allow_path ? "[/path]" : " with no path"));
  }
  *endpoint = parsed;
  return Status::Ok();
}

std::function<std::string()> ObjectClient::ServiceCode(const HttpResponse& response) const {
  return [this, &response] { return traits_.parse_error(response).code; };
}

Status ObjectClient::ResponseError(const std::string& uri, const std::string& action,
                                   const HttpResponse& response, int attempts,
                                   const std::string& why_not) const {
  std::string message = uri + ": " + action + " failed: ";
  if (response.status == 0) {
    message += response.transport_error;
  } else {
    const ServiceError error = traits_.parse_error(response);
    message += "HTTP " + std::to_string(response.status);
    if (!error.code.empty()) message += " " + error.code;
    if (!error.message.empty()) message += (error.code.empty() ? " " : ": ") + error.message;
    if (!response.transport_error.empty()) message += " (" + response.transport_error + ")";
    const std::string request_id =
        error.request_id.empty() ? response.request_id : error.request_id;
    if (!request_id.empty()) message += " [request id " + request_id + "]";
  }
  if (attempts > 1) message += " after " + std::to_string(attempts) + " attempts";
  if (!why_not.empty()) message += "; " + why_not;
  int code = RUNAI_E_BACKEND;
  if (response.status == 404) code = RUNAI_E_NOT_FOUND;
  if (response.status == 401 || response.status == 403) code = RUNAI_E_PERMISSION;
  return Error(code, message);
}

Status ObjectClient::Send(const std::string& uri, const std::string& action,
                          const std::string& method, const std::string& url,
                          const HeaderBuilder& headers, HttpResponse* response, bool redirect_ok) {
  RetryPolicy::Attempts attempts(&retry_, http_);
  const long last_accepted = redirect_ok ? 399 : 299;
  for (;;) {
    attempts.Begin();
    auto connection = connections_.Take();
    const bool complete = connection->Perform(method, url, headers(), http_, nullptr, 0, response);
    connections_.Give(std::move(connection));
    if (complete && response->status >= 200 && response->status <= last_accepted) {
      attempts.Succeeded();
      return Status::Ok();
    }
    std::string why_not;
    if (!attempts.Again(*response, ServiceCode(*response), &why_not)) {
      return ResponseError(uri, action, *response, attempts.count(), why_not);
    }
  }
}

// A range that runs past the end of an object of `size` bytes (the answer holds only its
// first bytes): RUNAI_E_EOF, as a 416 for a range that starts past it.
Status ObjectClient::PastTheEnd(const std::string& uri, const std::string& bytes,
                                uint64_t size) const {
  return Error(RUNAI_E_EOF, uri + ": bytes " + bytes + " run past the end of the object (" +
                                std::to_string(size) + " bytes)");
}

Status ObjectClient::ReadRange(const std::string& uri, const std::string& url,
                               const std::string& range_header,
                               const std::function<HeaderList(const HeaderList& range)>& headers,
                               uint64_t offset, uint64_t size, char* dst, SegmentCrcs* crcs) {
  uint64_t done = 0;
  const BodyBytes on_body =
      crcs == nullptr ? BodyBytes() : [crcs](const char* data, size_t n) { crcs->Feed(data, n); };
  HttpResponse response;
  RetryPolicy::Attempts attempts(&retry_, http_);
  while (done < size) {
    attempts.Begin();
    const uint64_t first = offset + done, last = offset + size - 1;
    const std::string bytes = std::to_string(first) + "-" + std::to_string(last);
    auto connection = connections_.Take();
    const bool complete =
        connection->Perform("GET", url, headers({{range_header, "bytes=" + bytes}}), http_,
                            dst + done, size - done, &response, on_body);
    connections_.Give(std::move(connection));
    const bool partial_content = response.status == 206;
    if (partial_content || response.status == 200) {
      // The response must be exactly the range asked for: check before trusting the bytes.
      uint64_t got_first = 0, got_last = 0;
      int64_t total = -1;
      std::string problem;
      if (partial_content) {
        if (!ParseContentRange(response.content_range, &got_first, &got_last, &total) ||
            got_first != first || got_last != last) {
          problem = "asked for bytes " + bytes + " but the response's Content-Range is '" +
                    response.content_range + "'";
        }
        if (got_first == first && got_last < last && total >= 0 &&
            got_last + 1 == static_cast<uint64_t>(total)) {  // the object ends inside the range
          return PastTheEnd(uri, bytes, static_cast<uint64_t>(total));
        }
      } else if (first == 0 && response.content_length >= 0 &&
                 static_cast<uint64_t>(response.content_length) < size - done) {
        return PastTheEnd(uri, bytes, static_cast<uint64_t>(response.content_length));
      } else if (first != 0 || response.content_length != static_cast<int64_t>(size - done)) {
        problem = "the server ignored the Range header (HTTP 200 for bytes " + bytes + ")";
      }
      if (!problem.empty()) return Error(RUNAI_E_BACKEND, uri + ": " + problem);
      if (response.content_length >= 0 &&
          static_cast<uint64_t>(response.content_length) != last - first + 1) {
        return Error(RUNAI_E_BACKEND,
                     uri + ": Content-Length " + std::to_string(response.content_length) +
                         " for a range of " + std::to_string(last - first + 1) + " bytes");
      }
      done += response.received;
      if (complete && done < size) {
        return Error(RUNAI_E_BACKEND, uri + ": the body of bytes " + bytes + " ended after " +
                                          std::to_string(response.received) + " bytes");
      }
      if (done == size) {
        attempts.Succeeded();
        return Status::Ok();
      }
      if (response.too_long) return Error(RUNAI_E_BACKEND, uri + ": " + response.transport_error);
      if (response.received > 0) attempts.Progressed();  // a cut body resumes where it stopped
    } else if (response.status == 416) {
      return Error(RUNAI_E_EOF, uri + ": bytes " + bytes + " are past the end of the object");
    }
    std::string why_not;
    if (!attempts.Again(response, ServiceCode(response), &why_not)) {
      return ResponseError(uri, "GET bytes " + bytes, response, attempts.count(), why_not);
    }
  }
  return Status::Ok();
}

Status ObjectClient::HeadObject(const std::string& uri, const std::string& range_header,
                                const Sender& send, uint64_t* size, HttpResponse* head) const {
  Status status = send("HEAD", {}, head);
  if (!status.ok()) {
    HttpResponse detail;
    Status explained = send("GET", {{range_header, "bytes=0-0"}}, &detail);
    if (!explained.ok() && detail.status == head->status) status = explained;
    return status;
  }
  if (head->content_length < 0) {
    return Error(RUNAI_E_BACKEND, uri + ": HEAD sent no Content-Length");
  }
  *size = static_cast<uint64_t>(head->content_length);
  return Status::Ok();
}

Status ObjectClient::SplitPath(const std::string& uri, const std::string& rest,
                               const char* bucket_word, const char* object_word, bool need_object,
                               std::string* bucket, std::string* object) const {
  const size_t slash = rest.find('/');
  *bucket = rest.substr(0, slash);
  *object = slash == std::string::npos ? "" : rest.substr(slash + 1);
  const std::string scheme = uri.substr(0, uri.find("://"));
  if (bucket->empty()) {
    return Error(RUNAI_E_INVALID_ARGUMENT, uri + ": the URI names no " + bucket_word + " (" +
                                               scheme + "://" + bucket_word + "/" + object_word +
                                               ")");
  }
  if (need_object && object->empty()) {
    return Error(RUNAI_E_INVALID_ARGUMENT, uri + ": the URI names a " + std::string(bucket_word) +
                                               ", not " + (object_word[0] == 'o' ? "an " : "a ") +
                                               object_word);
  }
  return Status::Ok();
}

std::string QueryString(const HeaderList& query) {
  std::string out;
  for (const auto& [name, value] : query) {
    out += (out.empty() ? "?" : "&") + UriEncode(name, false) + "=" + UriEncode(value, false);
  }
  return out;
}

}  // namespace runai::common
