// libstreamerhf: the hf:// backend plugin (the Hugging Face Hub and its mirrors).
//
// URIs: hf://[datasets/|spaces/]<owner>/<name>[@<revision>][/<path>]; the revision (a branch,
// tag or commit; "main" when left out) may carry '/' percent-encoded (refs%2Fpr%2F1).
// Options (set by the Python package runai_model_streamer_hf; every value a string):
//   endpoint   "http[s]://host[:port][/path]"; empty: https://huggingface.co (HF_ENDPOINT)
//   token      a Hub access token (sent to the Hub only, never to the storage it redirects to)
//   and the shared HTTP options (ObjectClient::SetHttpOption)
//
// A file's HEAD on <endpoint>/<repo>/resolve/<revision>/<path> tells its commit
// (X-Repo-Commit) and, for files in LFS/Xet storage, answers with a redirect to a signed URL
// carrying the size (X-Linked-Size) and SHA-256 (X-Linked-Etag). Data is read with ranged GETs
// on that URL, kept per file until it expires (or is refused: then it is asked for again).
// Listing goes through the tree API, page after page (its Link header). The token and the
// signed URLs never appear in messages.
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/http/object_client.h"
#include "common/json.h"
#include "common/listing.h"
#include "common/parse.h"
#include "common/plugin/object_store.h"
#include "common/status.h"
#include "common/uri.h"
#include "streamer/streamer.h"

namespace runai::hf {
namespace {

using common::Endpoint;
using common::HeaderList;
using common::HttpResponse;
using common::JsonValue;
using common::ListingPage;
using common::ListPages;
using common::ObjectClient;
using common::ObjectInfo;
using common::ObjectStore;
using common::ParseInt64InRange;
using common::ParseJson;
using common::PluginOptions;
using common::QueryValue;
using common::ServiceError;
using common::Status;
using common::UriDecode;
using common::UriEncode;
using Clock = std::chrono::steady_clock;

// A signed URL is asked for again this long before it says it expires.
constexpr auto kExpiryMargin = std::chrono::seconds(60);
// Redirects of the Hub itself (a renamed repository) followed by a HEAD.
constexpr int kMaxHubRedirects = 3;

struct HubPath {
  std::string kind = "models";  // models | datasets | spaces
  std::string repo;             // owner/name
  std::string revision = "main";
  std::string path;  // inside the repository ("" or ending with '/' for a listing)
  std::string base;  // the URI up to the path: hf://[kind/]owner/name[@revision]/
};

// The Hub's errors: X-Error-Code / X-Error-Message headers (HEAD answers have no body), or a
// JSON body {"error": "..."}.
ServiceError ParseHubError(const HttpResponse& response) {
  ServiceError error;
  error.code = response.error_code;
  for (const auto& [name, value] : response.object_headers) {
    if (name == "x-error-message") error.message = value;
  }
  JsonValue json;
  std::string why;
  if (error.message.empty() && ParseJson(response.body, &json, &why)) {
    error.message = json.Text("error");
  }
  if (error.message.size() > 300) error.message.resize(300);
  return error;
}

std::string Header(const HttpResponse& response, const char* name) {
  for (const auto& [header, value] : response.object_headers) {
    if (header == name) return value;
  }
  return "";
}

bool IsHex(const std::string& text, size_t length) {
  if (text.size() != length) return false;
  for (char c : text) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// When a signed URL stops being valid, from what it says: CloudFront's Expires=<unix time> or
// SigV4's X-Amz-Expires=<seconds> (counted from now: the signature's own time is at most
// seconds old). Neither: until it is refused.
std::optional<Clock::time_point> SignedUrlExpiry(const std::string& url) {
  int64_t value = 0;
  std::string why;
  const std::string expires = QueryValue(url, "Expires");
  if (!expires.empty() && ParseInt64InRange(expires, 0, INT64_MAX / 2, &value, &why)) {
    const auto left = std::chrono::seconds(value - static_cast<int64_t>(std::time(nullptr)));
    return Clock::now() + left;
  }
  const std::string amz = QueryValue(url, "X-Amz-Expires");
  if (!amz.empty() && ParseInt64InRange(amz, 0, 7 * 86400, &value, &why)) {
    return Clock::now() + std::chrono::seconds(value);
  }
  return std::nullopt;
}

struct SignedUrl {
  std::string url;
  std::optional<Clock::time_point> expires;
  bool Fresh() const { return !expires || Clock::now() + kExpiryMargin < *expires; }
};

// Where a file's bytes are: its signed URL (LFS/Xet storage) or the resolve URL itself.
struct Location {
  std::string url;
  bool signed_url = false;
};

class HubStore : public ObjectStore {
 public:
  HubStore() : client_({"hf", ParseHubError, {}}) { endpoint_.host = "huggingface.co"; }

  Status Configure(const PluginOptions& options);
  Status Stat(const std::string& uri, ObjectInfo* info) override;
  Status Read(const std::string& uri, uint64_t offset, uint64_t size, char* dst,
              common::SegmentCrcs* crcs) override;
  Status List(const std::string& prefix, const ListEntry& entry) override;

 private:
  Status Parse(const std::string& uri, bool need_path, HubPath* path) const;
  std::string Origin() const { return endpoint_.scheme + "://" + endpoint_.host; }
  // A Location that is a path on the Hub, made absolute; "" for any other.
  std::string OnHub(const std::string& location) const {
    const bool path = !location.empty() && location[0] == '/' && location.rfind("//", 0) != 0;
    return path ? Origin() + location : "";
  }
  std::string ResolveUrl(const HubPath& path) const;
  HeaderList HubHeaders(HeaderList extra) const;
  // A HEAD of the file: its description, and where its bytes are (remembered for Read).
  Status Resolve(const std::string& uri, const HubPath& path, ObjectInfo* info, Location* location);
  Status Where(const std::string& uri, const HubPath& path, Location* location);
  Status ReadFrom(const std::string& uri, const Location& location, uint64_t offset, uint64_t size,
                  char* dst, common::SegmentCrcs* crcs);
  // A 401/403 with what to do about it.
  Status Explained(Status status, const HubPath& path) const;

  ObjectClient client_;
  Endpoint endpoint_;
  std::string token_;
  std::mutex mutex_;
  std::map<std::string, SignedUrl> signed_;    // by URI
  std::map<std::string, std::string> direct_;  // URIs whose bytes the resolve URL serves
};

Status HubStore::Configure(const PluginOptions& options) {
  return client_.TakeOptions(
      options, [&](const std::string& key, const std::string& value) -> std::optional<Status> {
        if (key == "endpoint") return client_.ParseEndpoint(key, value, true, &endpoint_);
        if (key != "token") return std::nullopt;
        token_ = value;
        return Status::Ok();
      });
}

Status HubStore::Parse(const std::string& uri, bool need_path, HubPath* out) const {
  if (uri.size() < 5 || strncasecmp(uri.c_str(), "hf://", 5) != 0) {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT, uri + ": not an hf:// URI");
  }
  std::string rest = uri.substr(5);
  HubPath path;
  for (const char* kind : {"datasets", "spaces"}) {
    const std::string folder = std::string(kind) + "/";
    if (rest.compare(0, folder.size(), folder) == 0) {
      path.kind = kind;
      rest.erase(0, folder.size());
    }
  }
  const size_t owner_end = rest.find('/');
  const size_t name_end =
      owner_end == std::string::npos ? owner_end : rest.find('/', owner_end + 1);
  std::string name =
      owner_end == std::string::npos
          ? ""
          : rest.substr(owner_end + 1, name_end == std::string::npos ? std::string::npos
                                                                     : name_end - owner_end - 1);
  const std::string owner = rest.substr(0, owner_end);
  path.path = name_end == std::string::npos ? "" : rest.substr(name_end + 1);
  const size_t at = name.find('@');
  if (at != std::string::npos) {
    path.revision = UriDecode(name.substr(at + 1));
    name.erase(at);
  }
  if (owner.empty() || name.empty() || path.revision.empty()) {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT,
                         uri +
                             ": the URI names no repository (hf://[datasets/]owner/name"
                             "[@revision]/path)");
  }
  // Dot segments would be resolved away by the URL layer, reaching another repository.
  const std::string segments = "/" + path.path + "/";
  if (segments.find("/../") != std::string::npos || segments.find("/./") != std::string::npos ||
      path.path.find("//") != std::string::npos || path.revision == ".." || path.revision == "." ||
      owner == "." || owner == ".." || name == "." || name == "..") {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT, uri + ": '.' and '..' are not file names");
  }
  if (need_path && (path.path.empty() || path.path.back() == '/')) {
    return client_.Error(RUNAI_E_INVALID_ARGUMENT, uri + ": the URI names no file");
  }
  path.repo = owner + "/" + name;
  path.base = uri.substr(0, uri.size() - path.path.size());
  if (path.base.back() != '/') path.base += '/';
  *out = path;
  return Status::Ok();
}

std::string HubStore::ResolveUrl(const HubPath& path) const {
  const std::string kind = path.kind == "models" ? "" : "/" + path.kind;
  return Origin() + endpoint_.base_path + kind + "/" + UriEncode(path.repo, true) + "/resolve/" +
         UriEncode(path.revision, false) + "/" + UriEncode(path.path, true);
}

HeaderList HubStore::HubHeaders(HeaderList extra) const {
  if (!token_.empty()) extra.emplace_back("Authorization", "Bearer " + token_);
  return extra;
}

Status HubStore::Explained(Status status, const HubPath& path) const {
  if (status.code != RUNAI_E_PERMISSION) return status;
  // The Hub answers 401 RepoNotFound for a repository that does not exist as for one it will
  // not show without a token.
  const bool unknown = status.message.find("RepoNotFound") != std::string::npos;
  if (token_.empty()) {
    status.message += "; " + path.repo + (unknown ? " does not exist, or it" : "") +
                      " is private or gated: set HF_TOKEN (or log in with `hf auth login`) to a "
                      "token that may read it";
  } else {
    status.message += "; the token given may not read " + path.repo +
                      (unknown ? " (or it does not exist)" : "") +
                      " (gated: accept its conditions on the Hub; private: ask its owner)";
  }
  return status;
}

Status HubStore::Resolve(const std::string& uri, const HubPath& path, ObjectInfo* info,
                         Location* location) {
  std::string url = ResolveUrl(path);
  HttpResponse response;
  for (int hop = 0;; ++hop) {
    response = HttpResponse();
    Status status = client_.Send(
        uri, "HEAD", "HEAD", url, [&] { return HubHeaders({{"accept-encoding", "identity"}}); },
        &response, true);
    if (!status.ok()) return Explained(status, path);
    if (response.status < 300) break;
    if (!Header(response, "x-linked-size").empty()) break;  // to the file's storage
    // The Hub's own redirects (a renamed repository) stay on the Hub: relative ones only.
    const std::string next = OnHub(Header(response, "location"));
    if (next.empty() || hop == kMaxHubRedirects) {
      return client_.Error(RUNAI_E_BACKEND, uri + ": the Hub answered HTTP " +
                                                std::to_string(response.status) +
                                                " with no file behind it");
    }
    url = next;
  }
  const std::string commit = Lower(Header(response, "x-repo-commit"));
  if (!commit.empty() && !IsHex(commit, 40)) {
    return client_.Error(RUNAI_E_BACKEND, uri + ": the Hub sent a malformed X-Repo-Commit");
  }
  ObjectInfo described;
  ObjectInfo::Add(&described.version, "commit", commit);
  const std::string etag = common::Unquoted(Header(response, "etag"));
  if (response.status >= 300) {
    std::string why;
    int64_t size = -1;
    const std::string sha256 = Lower(common::Unquoted(Header(response, "x-linked-etag")));
    if (!ParseInt64InRange(Header(response, "x-linked-size"), 0, INT64_MAX, &size, &why)) {
      return client_.Error(RUNAI_E_BACKEND,
                           uri + ": the Hub sent a bad X-Linked-Size (" + why + ")");
    }
    const std::string redirect = Header(response, "location");
    const std::string relative = OnHub(redirect);
    const std::string target = relative.empty() ? redirect : relative;
    if (target.rfind("https://", 0) != 0 && target.rfind("http://", 0) != 0) {
      return client_.Error(RUNAI_E_BACKEND, uri + ": the Hub redirected to no http(s) URL");
    }
    described.size = static_cast<uint64_t>(size);
    ObjectInfo::Add(&described.version, "etag", sha256);
    if (IsHex(sha256, 64)) ObjectInfo::Add(&described.checksums, "sha256", sha256);
    *location = {target, true};
    std::lock_guard<std::mutex> lock(mutex_);
    signed_[uri] = {target, SignedUrlExpiry(target)};
  } else {
    if (response.content_length < 0) {
      return client_.Error(RUNAI_E_BACKEND, uri + ": HEAD sent no Content-Length");
    }
    described.size = static_cast<uint64_t>(response.content_length);
    ObjectInfo::Add(&described.version, "etag", etag);
    // The Hub's ETag of a file kept in git is its blob id: SHA-1 of "blob <size>\0" + bytes.
    if (!commit.empty() && IsHex(etag, 40)) {
      ObjectInfo::Add(&described.checksums, "git-sha1", Lower(etag));
    }
    *location = {url, false};
    std::lock_guard<std::mutex> lock(mutex_);
    direct_[uri] = url;
  }
  if (info != nullptr) *info = described;
  return Status::Ok();
}

Status HubStore::Stat(const std::string& uri, ObjectInfo* info) {
  HubPath path;
  Status status = Parse(uri, true, &path);
  if (!status.ok()) return status;
  Location location;
  return Resolve(uri, path, info, &location);
}

Status HubStore::Where(const std::string& uri, const HubPath& path, Location* location) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto known = signed_.find(uri);
    if (known != signed_.end() && known->second.Fresh()) {
      *location = {known->second.url, true};
      return Status::Ok();
    }
    auto direct = direct_.find(uri);
    if (direct != direct_.end()) {
      *location = {direct->second, false};
      return Status::Ok();
    }
  }
  return Resolve(uri, path, nullptr, location);
}

Status HubStore::ReadFrom(const std::string& uri, const Location& location, uint64_t offset,
                          uint64_t size, char* dst, common::SegmentCrcs* crcs) {
  // A signed URL carries its own authorization: the token stays with the Hub.
  return client_.ReadRange(
      uri, location.url, "range",
      [&](const HeaderList& range) { return location.signed_url ? range : HubHeaders(range); },
      offset, size, dst, crcs);
}

Status HubStore::Read(const std::string& uri, uint64_t offset, uint64_t size, char* dst,
                      common::SegmentCrcs* crcs) {
  HubPath path;
  Status status = Parse(uri, true, &path);
  if (!status.ok()) return status;
  Location location;
  status = Where(uri, path, &location);
  if (!status.ok()) return status;
  status = ReadFrom(uri, location, offset, size, dst, crcs);
  if (status.code != RUNAI_E_PERMISSION || !location.signed_url) return status;
  // Refused: the signed URL expired early (or was revoked). Ask the Hub for a new one, once
  // (unless CRCs were taken of bytes already: a new read would take them twice).
  if (crcs != nullptr && crcs->fed() != 0) return status;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    signed_.erase(uri);
  }
  status = Resolve(uri, path, nullptr, &location);
  if (!status.ok()) return status;
  return ReadFrom(uri, location, offset, size, dst, crcs);
}

Status HubStore::List(const std::string& uri_prefix, const ListEntry& entry) {
  HubPath path;
  Status status = Parse(uri_prefix, false, &path);
  if (!status.ok()) return status;
  std::string folder = path.path;
  if (!folder.empty() && folder.back() == '/') folder.pop_back();
  const std::string first = Origin() + endpoint_.base_path + "/api/" + path.kind + "/" +
                            UriEncode(path.repo, true) + "/tree/" +
                            UriEncode(path.revision, false) +
                            (folder.empty() ? "" : "/" + UriEncode(folder, true));
  auto fetch = [&](const std::string& next, ListingPage* page) -> Status {
    HttpResponse response;
    Status sent = client_.Send(
        uri_prefix, "list", "GET", next.empty() ? first : next, [&] { return HubHeaders({}); },
        &response);
    if (!sent.ok()) return Explained(sent, path);
    JsonValue json;
    std::string why;
    if (!ParseJson(response.body, &json, &why) || json.kind != JsonValue::Kind::kArray) {
      return client_.Error(RUNAI_E_BACKEND,
                           uri_prefix + ": the tree listing is not a JSON array (" + why + ")");
    }
    for (const JsonValue& item : json.items) {
      const std::string name = item.Text("path");
      if (item.Text("type") == "directory") {
        page->prefixes.push_back(name + "/");
        continue;
      }
      const JsonValue* lfs = item.Find("lfs");
      const std::string size = lfs != nullptr ? lfs->Text("size") : item.Text("size");
      page->objects.emplace_back(name, std::strtoull(size.c_str(), nullptr, 10));
    }
    // The next page: the Link header's rel="next" URL, on the Hub itself (the token goes with
    // it, so a listing may not send it elsewhere).
    page->next.clear();
    const std::string link = Header(response, "link");
    const size_t open = link.find('<'), close = link.find('>');
    if (open != std::string::npos && close != std::string::npos && close > open &&
        link.find("rel=\"next\"", close) != std::string::npos) {
      page->next = link.substr(open + 1, close - open - 1);
      if (page->next.rfind(Origin() + "/", 0) != 0) {
        return client_.Error(RUNAI_E_BACKEND,
                             uri_prefix + ": the tree listing's next page is not on the Hub");
      }
    }
    return Status::Ok();
  };
  return ListPages(client_.name() + ": " + uri_prefix, path.base, path.path, fetch, entry);
}

}  // namespace
}  // namespace runai::hf

namespace runai::common {

Status CreateObjectStore(const PluginOptions& options, std::unique_ptr<ObjectStore>* out) {
  return CreateConfiguredStore<hf::HubStore>(options, out);
}

}  // namespace runai::common
