// libstreamerazure: the az:// backend plugin (Azure Blob Storage), also registered for
// https:// to serve https://<account>.blob.<suffix>/<container>/<blob> URLs.
//
// Options (set by the Python package runai_model_streamer_azure; every value a string):
//   account_name     the storage account of az:// URIs (https:// URLs name their own)
//   endpoint         the Blob service endpoint, "http[s]://host[:port][/path]" (a connection
//                    string's BlobEndpoint; Azurite's is http://127.0.0.1:P/<account>);
//                    empty: https://<account>.blob.<endpoint_suffix>
//   endpoint_suffix  default core.windows.net (sovereign clouds: core.chinacloudapi.cn...)
//   account_key      base64 account key: requests signed with SharedKey
//   sas_token        a SAS token ("sv=...&sig=..."), appended to every URL
//   access_token     an Entra ID (OAuth 2) bearer token
//   (none of the three: anonymous requests, for public containers)
//   list_page_size   blobs per listing request (default 5000, the service's maximum)
//   and the shared HTTP options (ObjectClient::SetHttpOption)
// Credentials never appear in messages.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include "common/base64.h"
#include "common/http/object_client.h"
#include "common/listing.h"
#include "common/plugin/object_store.h"
#include "common/sha256.h"
#include "common/status.h"
#include "common/uri.h"
#include "common/xml.h"
#include "streamer/streamer.h"

namespace runai::azure {
namespace {

using common::AsBytes;
using common::Base64Decode;
using common::Base64Encode;
using common::Endpoint;
using common::HeaderList;
using common::HexOfBase64;
using common::HmacSha256;
using common::HttpResponse;
using common::ListingPage;
using common::ListPages;
using common::ObjectClient;
using common::ObjectInfo;
using common::ObjectStore;
using common::PluginOptions;
using common::QueryString;
using common::ReadXmlListing;
using common::ServiceError;
using common::Status;
using common::UriEncode;
using common::XmlText;

constexpr const char* kApiVersion = "2021-08-06";

struct BlobName {
  std::string account;
  Endpoint endpoint;       // of the account's Blob service
  std::string uri_prefix;  // "az://" or "https://<host>/": what listed URIs start with
  std::string container;
  std::string blob;
};

ServiceError ParseAzureError(const HttpResponse& response) {
  ServiceError error{XmlText(response.body, "Code"), XmlText(response.body, "Message"), ""};
  if (error.code.empty()) error.code = response.error_code;  // HEAD: the header only
  const size_t newline = error.message.find('\n');           // "...\nRequestId:...\nTime:..."
  if (newline != std::string::npos) error.message.resize(newline);
  return error;
}

// RFC 1123 date in GMT, independent of the locale.
std::string HttpDate(std::time_t when) {
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&when, &tm);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buffer;
}

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

class AzureStore : public ObjectStore {
 public:
  AzureStore() : client_({"azure", ParseAzureError, {"ServerBusy", "OperationTimedOut"}}) {}

  Status Configure(const PluginOptions& options);
  Status Stat(const std::string& uri, ObjectInfo* info) override;
  Status Read(const std::string& uri, uint64_t offset, uint64_t size, char* dst,
              common::SegmentCrcs* crcs) override;
  Status List(const std::string& prefix, const ListEntry& entry) override;

 private:
  Status Parse(const std::string& uri, bool need_blob, BlobName* name) const;
  // The encoded path of a container (and blob), with the endpoint's base path.
  std::string Path(const BlobName& name) const;
  std::string Url(const BlobName& name, const HeaderList& query) const;
  HeaderList Headers(const std::string& method, const BlobName& name, const HeaderList& query,
                     HeaderList extra) const;
  std::string SharedKey(const std::string& method, const BlobName& name, const HeaderList& query,
                        const HeaderList& headers) const;
  Status Send(const std::string& uri, const std::string& action, const std::string& method,
              const BlobName& name, const HeaderList& query, const HeaderList& extra,
              HttpResponse* response);

  ObjectClient client_;
  Endpoint endpoint_;
  std::string account_;
  std::string key_;  // decoded account key; empty: no SharedKey
  std::string sas_token_;
  std::string access_token_;
  int64_t list_page_size_ = 5000;
};

Status AzureStore::Configure(const PluginOptions& options) {
  std::string suffix = "core.windows.net", endpoint;
  Status status = client_.TakeOptions(
      options, [&](const std::string& key, const std::string& value) -> std::optional<Status> {
        if (key == "list_page_size") {
          return client_.ParseNumber(key, value, 1, 5000, &list_page_size_);
        }
        if (key == "account_key" && !value.empty() &&
            (!Base64Decode(value, &key_) || key_.empty())) {
          return client_.Error(RUNAI_E_INVALID_ARGUMENT, "the account key is not base64");
        }
        if (key == "account_name") {
          account_ = value;
        } else if (key == "endpoint") {
          endpoint = value;
        } else if (key == "endpoint_suffix") {
          if (!value.empty()) suffix = value;
        } else if (key == "sas_token") {
          sas_token_ = value.size() > 0 && value[0] == '?' ? value.substr(1) : value;
        } else if (key == "access_token") {
          access_token_ = value;
        } else if (key != "account_key") {
          return std::nullopt;
        }
        return Status::Ok();
      });
  if (!status.ok()) return status;
  if (!key_.empty() + !sas_token_.empty() + !access_token_.empty() > 1) {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT,
                         "give one of an account key, a SAS token and an access token");
  }
  if (account_.empty() && (!key_.empty() || !sas_token_.empty())) {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT, "an account key or SAS needs account_name");
  }
  if (account_.empty()) return Status::Ok();  // https:// URLs only
  if (endpoint.empty()) endpoint = "https://" + account_ + ".blob." + suffix;
  return client_.ParseEndpoint("endpoint", endpoint, true, &endpoint_);
}

Status AzureStore::Parse(const std::string& uri, bool need_blob, BlobName* name) const {
  std::string rest;
  if (uri.size() >= 5 && strncasecmp(uri.c_str(), "az://", 5) == 0) {
    if (account_.empty()) {
      return client_.Error(RUNAI_E_INVALID_ARGUMENT,
                           uri + ": no storage account is configured for az:// URIs");
    }
    name->account = account_;
    name->endpoint = endpoint_;
    name->uri_prefix = "az://";
    rest = uri.substr(5);
  } else if (uri.size() >= 8 && strncasecmp(uri.c_str(), "https://", 8) == 0) {
    // https://<account>.blob.<suffix>[:port]/<container>/<blob>: the account is the host's
    // first label.
    const size_t host_end = uri.find('/', 8);
    const std::string host = uri.substr(8, host_end == std::string::npos ? host_end : host_end - 8);
    const size_t dot = host.find('.');
    if (dot == std::string::npos || dot == 0 || host.compare(dot, 6, ".blob.") != 0) {
      return client_.Error(RUNAI_E_INVALID_ARGUMENT,
                           uri +
                               ": not an Azure Blob URL (https://<account>.blob.<suffix>/"
                               "<container>/<blob>)");
    }
    name->account = host.substr(0, dot);
    name->endpoint = Endpoint{"https", host, ""};
    name->uri_prefix = "https://" + host + "/";
    rest = host_end == std::string::npos ? "" : uri.substr(host_end + 1);
    if ((!key_.empty() || !sas_token_.empty()) && name->account != account_) {
      return client_.Error(RUNAI_E_PERMISSION,
                           uri + ": the account key or SAS configured is for account '" + account_ +
                               "', not '" + name->account + "'");
    }
  } else {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT, uri + ": not an az:// URI");
  }
  return client_.SplitPath(uri, rest, "container", "blob", need_blob, &name->container,
                           &name->blob);
}

std::string AzureStore::Path(const BlobName& name) const {
  std::string path = name.endpoint.base_path + "/" + UriEncode(name.container, false);
  if (!name.blob.empty()) path += "/" + UriEncode(name.blob, true);
  return path;
}

std::string AzureStore::Url(const BlobName& name, const HeaderList& query) const {
  std::string url =
      name.endpoint.scheme + "://" + name.endpoint.host + Path(name) + QueryString(query);
  if (!sas_token_.empty()) url += (query.empty() ? "?" : "&") + sas_token_;
  return url;
}

// https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key (2009-09-19+).
std::string AzureStore::SharedKey(const std::string& method, const BlobName& name,
                                  const HeaderList& query, const HeaderList& headers) const {
  HeaderList ms;
  for (const auto& [name, value] : headers) {
    const std::string lower = Lower(name);
    if (lower.rfind("x-ms-", 0) == 0) ms.emplace_back(lower, value);
  }
  std::sort(ms.begin(), ms.end());
  // VERB, then Content-Encoding ... Range: all empty for these bodiless GET/HEAD requests.
  std::string to_sign = method + "\n" + std::string(11, '\n');
  for (const auto& [name, value] : ms) to_sign += name + ":" + value + "\n";
  to_sign += "/" + name.account + Path(name);
  HeaderList sorted;
  for (const auto& [name, value] : query) sorted.emplace_back(Lower(name), value);
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [name, value] : sorted) to_sign += "\n" + name + ":" + value;
  return "SharedKey " + name.account + ":" + Base64Encode(AsBytes(HmacSha256(key_, to_sign)));
}

HeaderList AzureStore::Headers(const std::string& method, const BlobName& name,
                               const HeaderList& query, HeaderList extra) const {
  extra.emplace_back("x-ms-date", HttpDate(std::time(nullptr)));
  extra.emplace_back("x-ms-version", kApiVersion);
  if (!key_.empty()) {
    extra.emplace_back("Authorization", SharedKey(method, name, query, extra));
  } else if (!access_token_.empty()) {
    extra.emplace_back("Authorization", "Bearer " + access_token_);
  }
  return extra;
}

Status AzureStore::Send(const std::string& uri, const std::string& action,
                        const std::string& method, const BlobName& name, const HeaderList& query,
                        const HeaderList& extra, HttpResponse* response) {
  return client_.Send(
      uri, action, method, Url(name, query), [&] { return Headers(method, name, query, extra); },
      response);
}

Status AzureStore::Stat(const std::string& uri, ObjectInfo* info) {
  BlobName name;
  Status status = Parse(uri, true, &name);
  if (!status.ok()) return status;
  HttpResponse head;
  status = client_.HeadObject(
      uri, "x-ms-range",
      [&](const std::string& method, const HeaderList& extra, HttpResponse* response) {
        return Send(uri, method, method, name, {}, extra, response);
      },
      &info->size, &head);
  if (!status.ok()) return status;
  // The blob's ETag; its Content-MD5 when it has one (Put Blob sets it; a blob of blocks has
  // one only if the uploader set it).
  for (const auto& [header, value] : head.object_headers) {
    if (header == "etag") ObjectInfo::Add(&info->version, "etag", common::Unquoted(value));
    if (header == "content-md5") ObjectInfo::Add(&info->checksums, "md5", HexOfBase64(value));
  }
  return Status::Ok();
}

Status AzureStore::Read(const std::string& uri, uint64_t offset, uint64_t size, char* dst,
                        common::SegmentCrcs* crcs) {
  BlobName name;
  Status status = Parse(uri, true, &name);
  if (!status.ok()) return status;
  return client_.ReadRange(
      uri, Url(name, {}), "x-ms-range",
      [&](const HeaderList& range) { return Headers("GET", name, {}, range); }, offset, size, dst,
      crcs);
}

Status AzureStore::List(const std::string& uri_prefix, const ListEntry& entry) {
  BlobName name;
  Status status = Parse(uri_prefix, false, &name);
  if (!status.ok()) return status;
  const std::string prefix = name.blob;
  name.blob.clear();
  auto fetch = [&](const std::string& marker, ListingPage* page) -> Status {
    HeaderList query{{"comp", "list"},
                     {"delimiter", "/"},
                     {"maxresults", std::to_string(list_page_size_)},
                     {"prefix", prefix},
                     {"restype", "container"}};
    if (!marker.empty()) query.emplace_back("marker", marker);
    HttpResponse response;
    Status sent = Send(uri_prefix, "List Blobs", "GET", name, query, {}, &response);
    if (!sent.ok()) return sent;
    ReadXmlListing(response.body, {"Blob", "Name", "Content-Length", "BlobPrefix", "Name"}, page);
    page->next = XmlText(response.body, "NextMarker");
    return Status::Ok();
  };
  return ListPages(client_.name() + ": " + uri_prefix, name.uri_prefix + name.container + "/",
                   prefix, fetch, entry);
}

}  // namespace
}  // namespace runai::azure

namespace runai::common {

Status CreateObjectStore(const PluginOptions& options, std::unique_ptr<ObjectStore>* out) {
  return CreateConfiguredStore<azure::AzureStore>(options, out);
}

}  // namespace runai::common
