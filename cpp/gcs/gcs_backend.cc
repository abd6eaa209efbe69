// libstreamergcs: the gs:// backend plugin (Google Cloud Storage).
//
// Options (set by the Python package runai_model_streamer_gcs; every value a string):
//   endpoint        "http[s]://host[:port]"; empty: https://storage.googleapis.com
//   access_token    OAuth 2 bearer token: the JSON API (objects by their percent-encoded name)
//   hmac_access_id, hmac_secret   HMAC key: the XML API, signed GOOG4-HMAC-SHA256
//   (neither: anonymous JSON API requests, for public buckets)
//   list_page_size  objects per listing request (default 1000, the service's maximum)
//   and the shared HTTP options (ObjectClient::SetHttpOption)
// Credentials never appear in messages.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include "common/http/object_client.h"
#include "common/json.h"
#include "common/listing.h"
#include "common/parse.h"
#include "common/plugin/object_store.h"
#include "common/sigv4.h"
#include "common/status.h"
#include "common/uri.h"
#include "common/xml.h"
#include "streamer/streamer.h"

namespace runai::gcs {
namespace {

using common::AwsCredentials;
using common::Endpoint;
using common::HeaderList;
using common::HexOfBase64;
using common::HttpResponse;
using common::JsonValue;
using common::kS3ListingNames;
using common::ListingPage;
using common::ListPages;
using common::ObjectClient;
using common::ObjectInfo;
using common::ObjectStore;
using common::ParseInt64InRange;
using common::ParseJson;
using common::PluginOptions;
using common::QueryString;
using common::ReadXmlListing;
using common::ServiceError;
using common::SignV4;
using common::SigV4Request;
using common::SigV4Scheme;
using common::SigV4Timestamp;
using common::Status;
using common::UriEncode;
using common::XmlText;

constexpr const char* kUnsignedPayload = "UNSIGNED-PAYLOAD";

struct ObjectName {
  std::string bucket;
  std::string object;
};

// JSON API errors ({"error": {"message", "errors": [{"reason"}]}}), XML API errors
// (<Error><Code>...), or a short plain-text body.
ServiceError ParseGcsError(const HttpResponse& response) {
  ServiceError error;
  JsonValue json;
  std::string why;
  if (ParseJson(response.body, &json, &why)) {
    const JsonValue* detail = json.Find("error");
    if (detail != nullptr) {
      error.message = detail->Text("message");
      const JsonValue* errors = detail->Find("errors");
      if (errors != nullptr && !errors->items.empty()) error.code = errors->items[0].Text("reason");
    }
    return error;
  }
  error.code = XmlText(response.body, "Code");
  error.message = XmlText(response.body, "Message");
  if (error.code.empty() && error.message.empty() && response.body.size() <= 200) {
    error.message = response.body;
    while (!error.message.empty() &&
           std::isspace(static_cast<unsigned char>(error.message.back()))) {
      error.message.pop_back();
    }
  }
  return error;
}

class GcsStore : public ObjectStore {
 public:
  GcsStore() : client_({"gcs", ParseGcsError, {}}) { endpoint_.host = "storage.googleapis.com"; }

  Status Configure(const PluginOptions& options);
  Status Stat(const std::string& uri, ObjectInfo* info) override;
  Status Read(const std::string& uri, uint64_t offset, uint64_t size, char* dst,
              common::SegmentCrcs* crcs) override;
  Status List(const std::string& prefix, const ListEntry& entry) override;

 private:
  bool Hmac() const { return !hmac_.access_key_id.empty(); }
  Status Parse(const std::string& uri, bool need_object, ObjectName* name) const;
  // JSON API: .../storage/v1/b/<bucket>/o[/<object, '/' encoded too>]; XML API: /<bucket>/<object>.
  std::string Url(const ObjectName& name, const HeaderList& query) const;
  std::string XmlPath(const ObjectName& name) const {
    return "/" + name.bucket + "/" + name.object;
  }
  HeaderList Headers(const std::string& method, const ObjectName& name, const HeaderList& query,
                     HeaderList extra) const;
  Status Send(const std::string& uri, const std::string& action, const std::string& method,
              const ObjectName& name, const HeaderList& query, const HeaderList& extra,
              HttpResponse* response);
  Status ListJson(const std::string& uri_prefix, ObjectName name, const ListEntry& entry);
  Status ListXml(const std::string& uri_prefix, ObjectName name, const ListEntry& entry);

  ObjectClient client_;
  Endpoint endpoint_;
  std::string access_token_;
  AwsCredentials hmac_;
  int64_t list_page_size_ = 1000;
};

Status GcsStore::Configure(const PluginOptions& options) {
  Status status = client_.TakeOptions(
      options, [&](const std::string& key, const std::string& value) -> std::optional<Status> {
        if (key == "endpoint") return client_.ParseEndpoint(key, value, false, &endpoint_);
        if (key == "list_page_size") {
          return client_.ParseNumber(key, value, 1, 1000, &list_page_size_);
        }
        if (key == "access_token") {
          access_token_ = value;
        } else if (key == "hmac_access_id") {
          hmac_.access_key_id = value;
        } else if (key == "hmac_secret") {
          hmac_.secret_access_key = value;
        } else {
          return std::nullopt;
        }
        return Status::Ok();
      });
  if (!status.ok()) return status;
  if (hmac_.access_key_id.empty() != hmac_.secret_access_key.empty()) {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT,
                         "hmac_access_id and hmac_secret must be given together");
  }
  if (Hmac() && !access_token_.empty()) {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT,
                         "give either an access token or an HMAC key, not both");
  }
  return Status::Ok();
}

Status GcsStore::Parse(const std::string& uri, bool need_object, ObjectName* name) const {
  if (uri.size() < 5 || strncasecmp(uri.c_str(), "gs://", 5) != 0) {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT, uri + ": not a gs:// URI");
  }
  return client_.SplitPath(uri, uri.substr(5), "bucket", "object", need_object, &name->bucket,
                           &name->object);
}

std::string GcsStore::Url(const ObjectName& name, const HeaderList& query) const {
  std::string url = endpoint_.scheme + "://" + endpoint_.host;
  if (Hmac()) {
    url += UriEncode(XmlPath(name), true);
  } else {
    url += "/storage/v1/b/" + UriEncode(name.bucket, false) + "/o";
    if (!name.object.empty()) url += "/" + UriEncode(name.object, false);
  }
  return url + QueryString(query);
}

HeaderList GcsStore::Headers(const std::string& method, const ObjectName& name,
                             const HeaderList& query, HeaderList extra) const {
  if (Hmac()) {
    extra.emplace_back("host", endpoint_.host);
    extra.emplace_back("x-goog-content-sha256", kUnsignedPayload);
    static const SigV4Scheme kGoog4{"GOOG4-HMAC-SHA256", "GOOG4", "goog4_request", "x-goog-"};
    const SigV4Request request{method, XmlPath(name), query, extra, kUnsignedPayload};
    const auto signature =
        SignV4(request, hmac_, "auto", "storage", SigV4Timestamp(std::time(nullptr)), kGoog4);
    for (const auto& header : signature.added_headers) extra.push_back(header);
    extra.emplace_back("Authorization", signature.authorization);
  } else if (!access_token_.empty()) {
    extra.emplace_back("Authorization", "Bearer " + access_token_);
  }
  return extra;
}

Status GcsStore::Send(const std::string& uri, const std::string& action, const std::string& method,
                      const ObjectName& name, const HeaderList& query, const HeaderList& extra,
                      HttpResponse* response) {
  return client_.Send(
      uri, action, method, Url(name, query), [&] { return Headers(method, name, query, extra); },
      response);
}

Status GcsStore::Stat(const std::string& uri, ObjectInfo* info) {
  ObjectName name;
  Status status = Parse(uri, true, &name);
  if (!status.ok()) return status;
  HttpResponse response;
  if (Hmac()) {  // the XML API: HEAD, with x-goog-hash: crc32c=<base64>,md5=<base64>
    status = client_.HeadObject(
        uri, "range",
        [&](const std::string& method, const HeaderList& extra, HttpResponse* head) {
          return Send(uri, method, method, name, {}, extra, head);
        },
        &info->size, &response);
    if (!status.ok()) return status;
    for (const auto& [header, value] : response.object_headers) {
      if (header == "x-goog-generation") ObjectInfo::Add(&info->version, "generation", value);
      if (header != "x-goog-hash") continue;
      size_t start = 0;
      while (start < value.size()) {
        size_t end = value.find(',', start);
        if (end == std::string::npos) end = value.size();
        const std::string entry = value.substr(start, end - start);
        const size_t equals = entry.find('=');
        std::string algorithm = entry.substr(0, equals);
        algorithm.erase(0, algorithm.find_first_not_of(' '));
        if (equals != std::string::npos && (algorithm == "crc32c" || algorithm == "md5")) {
          ObjectInfo::Add(&info->checksums, algorithm, HexOfBase64(entry.substr(equals + 1)));
        }
        start = end + 1;
      }
    }
    return Status::Ok();
  }
  status = Send(uri, "GET metadata", "GET", name, {{"fields", "size,generation,crc32c,md5Hash"}},
                {}, &response);
  if (!status.ok()) return status;
  JsonValue json;
  std::string why;
  int64_t parsed = -1;
  if (!ParseJson(response.body, &json, &why) ||
      !ParseInt64InRange(json.Text("size"), 0, INT64_MAX, &parsed, &why)) {
    return client_.Error(RUNAI_E_BACKEND,
                         uri + ": the object metadata has no valid size (" + why + ")");
  }
  info->size = static_cast<uint64_t>(parsed);
  ObjectInfo::Add(&info->version, "generation", json.Text("generation"));
  ObjectInfo::Add(&info->checksums, "crc32c", HexOfBase64(json.Text("crc32c")));
  ObjectInfo::Add(&info->checksums, "md5", HexOfBase64(json.Text("md5Hash")));
  return Status::Ok();
}

Status GcsStore::Read(const std::string& uri, uint64_t offset, uint64_t size, char* dst,
                      common::SegmentCrcs* crcs) {
  ObjectName name;
  Status status = Parse(uri, true, &name);
  if (!status.ok()) return status;
  const HeaderList query = Hmac() ? HeaderList{} : HeaderList{{"alt", "media"}};
  return client_.ReadRange(
      uri, Url(name, query), "range",
      [&](const HeaderList& range) { return Headers("GET", name, query, range); }, offset, size,
      dst, crcs);
}

Status GcsStore::List(const std::string& uri_prefix, const ListEntry& entry) {
  ObjectName name;
  Status status = Parse(uri_prefix, false, &name);
  if (!status.ok()) return status;
  return Hmac() ? ListXml(uri_prefix, name, entry) : ListJson(uri_prefix, name, entry);
}

Status GcsStore::ListJson(const std::string& uri_prefix, ObjectName name, const ListEntry& entry) {
  const std::string prefix = name.object;
  name.object.clear();
  auto fetch = [&](const std::string& token, ListingPage* page) -> Status {
    HeaderList query{{"delimiter", "/"},
                     {"prefix", prefix},
                     {"maxResults", std::to_string(list_page_size_)},
                     {"fields", "items(name,size),prefixes,nextPageToken"}};
    if (!token.empty()) query.emplace_back("pageToken", token);
    HttpResponse response;
    Status sent = Send(uri_prefix, "list", "GET", name, query, {}, &response);
    if (!sent.ok()) return sent;
    JsonValue json;
    std::string why;
    if (!ParseJson(response.body, &json, &why)) {
      return client_.Error(RUNAI_E_BACKEND, uri_prefix + ": the listing is not JSON (" + why + ")");
    }
    if (const JsonValue* items = json.Find("items")) {
      for (const JsonValue& item : items->items) {
        page->objects.emplace_back(item.Text("name"),
                                   std::strtoull(item.Text("size").c_str(), nullptr, 10));
      }
    }
    if (const JsonValue* prefixes = json.Find("prefixes")) {
      for (const JsonValue& sub : prefixes->items) page->prefixes.push_back(sub.text);
    }
    page->next = json.Text("nextPageToken");
    return Status::Ok();
  };
  return ListPages(client_.name() + ": " + uri_prefix, "gs://" + name.bucket + "/", prefix, fetch,
                   entry);
}

Status GcsStore::ListXml(const std::string& uri_prefix, ObjectName name, const ListEntry& entry) {
  const std::string prefix = name.object;
  name.object.clear();
  auto fetch = [&](const std::string& marker, ListingPage* page) -> Status {
    HeaderList query{
        {"delimiter", "/"}, {"max-keys", std::to_string(list_page_size_)}, {"prefix", prefix}};
    if (!marker.empty()) query.emplace_back("marker", marker);
    HttpResponse response;
    Status sent = Send(uri_prefix, "list", "GET", name, query, {}, &response);
    if (!sent.ok()) return sent;
    ReadXmlListing(response.body, kS3ListingNames, page);
    if (XmlText(response.body, "IsTruncated") != "true") return Status::Ok();
    // Without a NextMarker the next page starts after the last name of this one.
    page->next = XmlText(response.body, "NextMarker");
    if (page->next.empty()) {
      for (const auto& object : page->objects) page->next = std::max(page->next, object.first);
      for (const std::string& sub : page->prefixes) page->next = std::max(page->next, sub);
    }
    if (!page->next.empty()) return Status::Ok();
    return client_.Error(RUNAI_E_BACKEND, uri_prefix + ": a truncated listing sent no marker");
  };
  return ListPages(client_.name() + ": " + uri_prefix, "gs://" + name.bucket + "/", prefix, fetch,
                   entry);
}

}  // namespace
}  // namespace runai::gcs

namespace runai::common {

Status CreateObjectStore(const PluginOptions& options, std::unique_ptr<ObjectStore>* out) {
  return CreateConfiguredStore<gcs::GcsStore>(options, out);
}

}  // namespace runai::common
