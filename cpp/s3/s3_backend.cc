// libstreamers3: the s3:// backend plugin (AWS S3 and S3-compatible stores).
//
// Options (set by the Python package runai_model_streamer_s3; every value a string):
//   endpoint            "http[s]://host[:port]"; empty: https://s3.<region>.amazonaws.com
//   region              signing region (default us-east-1)
//   access_key_id, secret_access_key, session_token   credentials (empty key: unsigned)
//   virtual_addressing  "1": https://bucket.host/key; "0": https://host/bucket/key
//   object_parts        "1" (default): Stat asks for the part sizes of a multipart object whose
//                       checksum is of its parts' (one more request); "0": not (nothing checks it)
//   and the shared HTTP options (ObjectClient::SetHttpOption)
// Credentials never appear in messages.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http/object_client.h"
#include "common/listing.h"
#include "common/parse.h"
#include "common/plugin/object_store.h"
#include "common/sigv4.h"
#include "common/status.h"
#include "common/uri.h"
#include "common/xml.h"
#include "streamer/streamer.h"

namespace runai::s3 {
namespace {

using common::AwsCredentials;
using common::Endpoint;
using common::HeaderList;
using common::HttpResponse;
using common::kS3ListingNames;
using common::ListingPage;
using common::ListPages;
using common::ObjectClient;
using common::ObjectInfo;
using common::ObjectStore;
using common::PluginOptions;
using common::QueryString;
using common::ReadXmlListing;
using common::ServiceError;
using common::SignV4;
using common::SigV4Request;
using common::SigV4Timestamp;
using common::Status;
using common::UriEncode;
using common::XmlText;

constexpr const char* kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct ObjectName {
  std::string bucket;
  std::string key;
};

ServiceError ParseS3Error(const HttpResponse& response) {
  return {XmlText(response.body, "Code"), XmlText(response.body, "Message"),
          XmlText(response.body, "RequestId")};
}

// ETag and VersionId as the version; x-amz-checksum-<algorithm> (base64) as "<algorithm>=<hex>",
// or, for a multipart object's checksum of its parts' checksums ("<base64>-<parts>", or
// x-amz-checksum-type COMPOSITE), as "composite-<algorithm>=<hex>-<parts>". Returns the number of
// parts such a checksum names (0: none, or not said).
uint64_t ReadObjectHeaders(const HeaderList& headers, ObjectInfo* info) {
  int64_t parts = 0;
  bool composite = false;
  for (const auto& [name, value] : headers) {
    if (name == "x-amz-checksum-type") composite = value == "COMPOSITE";
  }
  const std::string prefix = "x-amz-checksum-";
  for (const auto& [name, value] : headers) {
    if (name == "etag") {
      ObjectInfo::Add(&info->version, "etag", common::Unquoted(value));
    } else if (name == "x-amz-version-id") {
      ObjectInfo::Add(&info->version, "version", value);
    } else if (name.rfind(prefix, 0) == 0 && name != "x-amz-checksum-type") {
      const std::string algorithm = name.substr(prefix.size());
      const size_t dash = value.find('-');
      const std::string hex = common::HexOfBase64(value.substr(0, dash));
      if (hex.empty()) continue;
      if (composite || dash != std::string::npos) {
        ObjectInfo::Add(&info->checksums, "composite-" + algorithm,
                        dash == std::string::npos ? hex : hex + value.substr(dash));
        std::string why;
        if (dash != std::string::npos &&
            !common::ParseInt64InRange(value.substr(dash + 1), 1, 10000, &parts, &why)) {
          parts = 0;  // S3 allows 10,000 parts: anything else is not a part count
        }
      } else {
        ObjectInfo::Add(&info->checksums, algorithm, hex);
      }
    }
  }
  return static_cast<uint64_t>(parts);
}

class S3Store : public ObjectStore {
 public:
  S3Store() : client_({"s3", ParseS3Error, {"SlowDown"}}) {}

  Status Configure(const PluginOptions& options);
  Status Stat(const std::string& uri, ObjectInfo* info) override;
  Status Size(const std::string& uri, uint64_t* size) override;
  Status Read(const std::string& uri, uint64_t offset, uint64_t size, char* dst,
              common::SegmentCrcs* crcs) override;
  Status List(const std::string& prefix, const ListEntry& entry) override;

 private:
  Status Parse(const std::string& uri, bool need_key, ObjectName* name) const;
  // The HEAD of an object, with its checksums: its size in info->size.
  Status Head(const std::string& uri, const ObjectName& name, ObjectInfo* info, HttpResponse* head);
  // The sizes of the `parts` parts of a multipart object of `size` bytes, in order, as runs
  // "<size>*<count>/..." (GetObjectAttributes, a page of 1,000 parts a request); "" where the
  // store does not say them (no such request, no permission for it), where what it says does
  // not add up to the object, or where the object is no longer the one HEADed.
  std::string PartLayout(const std::string& uri, const ObjectName& name, const HttpResponse& head,
                         uint64_t parts, uint64_t size);
  // The URL, the Host header and the (decoded) path that is signed, of a bucket and key.
  void Address(const ObjectName& name, const HeaderList& query, std::string* url, std::string* host,
               std::string* path) const;
  HeaderList Signed(const std::string& method, const std::string& host, const std::string& path,
                    const HeaderList& query, HeaderList extra) const;
  Status Send(const std::string& uri, const std::string& action, const std::string& method,
              const ObjectName& name, const HeaderList& query, const HeaderList& extra,
              HttpResponse* response);

  ObjectClient client_;
  Endpoint endpoint_;
  std::string region_ = "us-east-1";
  bool virtual_addressing_ = true;
  bool object_parts_ = true;
  AwsCredentials credentials_;
};

Status S3Store::Configure(const PluginOptions& options) {
  bool endpoint_given = false;
  Status status = client_.TakeOptions(
      options, [&](const std::string& key, const std::string& value) -> std::optional<Status> {
        if (key == "endpoint") {
          endpoint_given = !value.empty();
          return client_.ParseEndpoint(key, value, false, &endpoint_);
        }
        if (key == "virtual_addressing") return client_.ParseFlag(key, value, &virtual_addressing_);
        if (key == "object_parts") return client_.ParseFlag(key, value, &object_parts_);
        if (key == "region") {
          if (!value.empty()) region_ = value;
        } else if (key == "access_key_id") {
          credentials_.access_key_id = value;
        } else if (key == "secret_access_key") {
          credentials_.secret_access_key = value;
        } else if (key == "session_token") {
          credentials_.session_token = value;
        } else {
          return std::nullopt;
        }
        return Status::Ok();
      });
  if (!status.ok()) return status;
  if (!endpoint_given) endpoint_.host = "s3." + region_ + ".amazonaws.com";
  if (credentials_.access_key_id.empty() != credentials_.secret_access_key.empty()) {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT,
                         "access_key_id and secret_access_key must be given together");
  }
  return Status::Ok();
}

Status S3Store::Parse(const std::string& uri, bool need_key, ObjectName* name) const {
  if (uri.size() < 5 || strncasecmp(uri.c_str(), "s3://", 5) != 0) {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT, uri + ": not an s3:// URI");
  }
  return client_.SplitPath(uri, uri.substr(5), "bucket", "key", need_key, &name->bucket,
                           &name->key);
}

void S3Store::Address(const ObjectName& name, const HeaderList& query, std::string* url,
                      std::string* host, std::string* path) const {
  if (virtual_addressing_) {
    *host = name.bucket + "." + endpoint_.host;
    *path = "/" + name.key;
  } else {
    *host = endpoint_.host;
    *path = "/" + name.bucket + "/" + name.key;
  }
  *url = endpoint_.scheme + "://" + *host + UriEncode(*path, true) + QueryString(query);
}

HeaderList S3Store::Signed(const std::string& method, const std::string& host,
                           const std::string& path, const HeaderList& query,
                           HeaderList extra) const {
  extra.emplace_back("host", host);
  extra.emplace_back("x-amz-content-sha256", kEmptySha256);
  if (credentials_.access_key_id.empty()) return extra;  // unsigned (public buckets)
  const SigV4Request request{method, path, query, extra, kEmptySha256};
  const auto signature =
      SignV4(request, credentials_, region_, "s3", SigV4Timestamp(std::time(nullptr)));
  for (const auto& header : signature.added_headers) extra.push_back(header);
  extra.emplace_back("Authorization", signature.authorization);
  return extra;
}

Status S3Store::Send(const std::string& uri, const std::string& action, const std::string& method,
                     const ObjectName& name, const HeaderList& query, const HeaderList& extra,
                     HttpResponse* response) {
  std::string url, host, path;
  Address(name, query, &url, &host, &path);
  return client_.Send(
      uri, action, method, url, [&] { return Signed(method, host, path, query, extra); }, response);
}

Status S3Store::Head(const std::string& uri, const ObjectName& name, ObjectInfo* info,
                     HttpResponse* head) {
  return client_.HeadObject(
      uri, "range",
      [&](const std::string& method, HeaderList extra, HttpResponse* response) {
        extra.emplace_back("x-amz-checksum-mode", "ENABLED");  // the x-amz-checksum-* headers
        return Send(uri, method, method, name, {}, extra, response);
      },
      &info->size, head);
}

Status S3Store::Size(const std::string& uri, uint64_t* size) {
  ObjectName name;
  Status status = Parse(uri, true, &name);
  if (!status.ok()) return status;
  ObjectInfo info;
  HttpResponse head;
  status = Head(uri, name, &info, &head);
  if (status.ok()) *size = info.size;
  return status;
}

Status S3Store::Stat(const std::string& uri, ObjectInfo* info) {
  ObjectName name;
  Status status = Parse(uri, true, &name);
  if (!status.ok()) return status;
  HttpResponse head;
  status = Head(uri, name, info, &head);
  if (!status.ok()) return status;
  const uint64_t parts = ReadObjectHeaders(head.object_headers, info);
  // A checksum of the parts' checksums can be checked where the sizes of the parts are known:
  // the stream then computes each part's CRC from the ranges as they land.
  if (parts > 0 && object_parts_) {
    const std::string layout = PartLayout(uri, name, head, parts, info->size);
    if (!layout.empty()) ObjectInfo::Add(&info->checksums, "parts", layout);
  }
  return Status::Ok();
}

std::string S3Store::PartLayout(const std::string& uri, const ObjectName& name,
                                const HttpResponse& head, uint64_t parts, uint64_t size) {
  constexpr uint64_t kPageParts = 1000;  // S3's most parts in one answer
  constexpr int kMaxPages = 100;         // 100 parts a page at least, for S3's 10,000 parts
  constexpr int64_t kMaxPartBytes = int64_t{5} << 30;
  std::string etag, version_id;
  for (const auto& [header, value] : head.object_headers) {
    if (header == "etag") etag = common::Unquoted(value);
    if (header == "x-amz-version-id") version_id = value;
  }
  HeaderList query{{"attributes", ""}};
  if (!version_id.empty()) query.emplace_back("versionId", version_id);
  std::vector<uint64_t> sizes;
  uint64_t total = 0;
  for (int page = 0; sizes.size() < parts; ++page) {
    if (page == kMaxPages) return "";  // a store that pages slowly: no endless requests
    HeaderList extra{{"x-amz-object-attributes", "ETag,ObjectParts"},
                     {"x-amz-max-parts", std::to_string(kPageParts)}};
    if (!sizes.empty()) {  // the last part number seen
      extra.emplace_back("x-amz-part-number-marker", std::to_string(sizes.size()));
    }
    HttpResponse response;
    if (!Send(uri, "GetObjectAttributes", "GET", name, query, extra, &response).ok()) return "";
    const std::string& body = response.body;
    const std::string answered_etag = common::Unquoted(XmlText(body, "ETag"));
    if (!answered_etag.empty() && answered_etag != etag) return "";  // changed since the HEAD
    if (XmlText(body, "PartsCount") != std::to_string(parts)) return "";
    const size_t before = sizes.size();
    for (const std::string_view part : common::XmlElements(body, "Part")) {
      int64_t number = 0, bytes = 0;
      std::string why;
      if (!common::ParseInt64InRange(XmlText(part, "PartNumber"), 1, 10000, &number, &why) ||
          !common::ParseInt64InRange(XmlText(part, "Size"), 1, kMaxPartBytes, &bytes, &why) ||
          static_cast<uint64_t>(number) != sizes.size() + 1 || sizes.size() == parts) {
        return "";  // out of order, out of range, or more parts than the checksum names
      }
      sizes.push_back(static_cast<uint64_t>(bytes));
      total += static_cast<uint64_t>(bytes);
    }
    if (sizes.size() == before) return "";  // a page without parts would never end
  }
  if (total != size) return "";
  std::string layout;  // runs of equal sizes: the SDKs upload parts of one size but the last
  for (size_t i = 0; i < sizes.size();) {
    size_t run = i;
    while (run < sizes.size() && sizes[run] == sizes[i]) ++run;
    if (!layout.empty()) layout += '/';
    layout += std::to_string(sizes[i]) + "*" + std::to_string(run - i);
    i = run;
  }
  return layout;
}

Status S3Store::Read(const std::string& uri, uint64_t offset, uint64_t size, char* dst,
                     common::SegmentCrcs* crcs) {
  ObjectName name;
  Status status = Parse(uri, true, &name);
  if (!status.ok()) return status;
  std::string url, host, path;
  Address(name, {}, &url, &host, &path);
  return client_.ReadRange(
      uri, url, "range",
      [&](const HeaderList& range) { return Signed("GET", host, path, {}, range); }, offset, size,
      dst, crcs);
}

Status S3Store::List(const std::string& uri_prefix, const ListEntry& entry) {
  ObjectName name;
  Status status = Parse(uri_prefix, false, &name);
  if (!status.ok()) return status;
  const std::string prefix = name.key;
  name.key.clear();
  auto fetch = [&](const std::string& token, ListingPage* page) -> Status {
    HeaderList query{{"delimiter", "/"}, {"list-type", "2"}, {"prefix", prefix}};
    if (!token.empty()) query.emplace_back("continuation-token", token);
    HttpResponse response;
    Status sent = Send(uri_prefix, "ListObjectsV2", "GET", name, query, {}, &response);
    if (!sent.ok()) return sent;
    ReadXmlListing(response.body, kS3ListingNames, page);
    if (XmlText(response.body, "IsTruncated") != "true") return Status::Ok();
    page->next = XmlText(response.body, "NextContinuationToken");
    if (!page->next.empty()) return Status::Ok();
    return client_.Error(RUNAI_E_BACKEND,
                         uri_prefix + ": a truncated listing sent no continuation token");
  };
  return ListPages(client_.name() + ": " + uri_prefix, "s3://" + name.bucket + "/", prefix, fetch,
                   entry);
}

}  // namespace
}  // namespace runai::s3

namespace runai::common {

Status CreateObjectStore(const PluginOptions& options, std::unique_ptr<ObjectStore>* out) {
  return CreateConfiguredStore<s3::S3Store>(options, out);
}

}  // namespace runai::common
