#include "common/sigv4.h"

#include <algorithm>
#include <cctype>

#include "common/sha256.h"

namespace runai::common {
namespace {

std::string Lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Canonical header value: trimmed, runs of spaces collapsed to one (SigV4 "Trimall").
std::string TrimAll(std::string_view value) {
  std::string out;
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string SigV4Timestamp(std::time_t when) {
  std::tm utc{};
  gmtime_r(&when, &utc);
  char text[17];
  std::strftime(text, sizeof(text), "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

SigV4Signature SignV4(const SigV4Request& request, const AwsCredentials& credentials,
                      std::string_view region, std::string_view service, std::string_view timestamp,
                      const SigV4Scheme& scheme) {
  SigV4Signature result;
  result.added_headers.emplace_back(scheme.header_prefix + "date", std::string(timestamp));
  if (!credentials.session_token.empty()) {
    result.added_headers.emplace_back(scheme.header_prefix + "security-token",
                                      credentials.session_token);
  }

  // Headers: lowercase names, sorted; repeated names joined with ',' in the order sent.
  std::vector<std::pair<std::string, std::string>> headers;
  const HeaderList* lists[] = {&request.headers, &result.added_headers};
  for (const HeaderList* list : lists) {
    for (const auto& [name, value] : *list) headers.emplace_back(Lowercase(name), TrimAll(value));
  }
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string canonical_headers;
  std::string signed_headers;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i > 0 && headers[i].first == headers[i - 1].first) {
      canonical_headers.back() = ',';
    } else {
      if (!signed_headers.empty()) signed_headers.push_back(';');
      signed_headers += headers[i].first;
      canonical_headers += headers[i].first + ':';
    }
    canonical_headers += headers[i].second + '\n';
  }

  // Query: encoded names and values, sorted by name then value.
  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [name, value] : request.query) {
    query.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(query.begin(), query.end());
  std::string canonical_query;
  for (const auto& [name, value] : query) {
    if (!canonical_query.empty()) canonical_query.push_back('&');
    canonical_query += name + '=' + value;
  }

  const std::string path = request.path.empty() ? "/" : UriEncode(request.path, true);
  result.canonical_request = request.method + '\n' + path + '\n' + canonical_query + '\n' +
                             canonical_headers + '\n' + signed_headers + '\n' +
                             request.payload_sha256_hex;

  const std::string date(timestamp.substr(0, 8));
  const std::string scope =
      date + '/' + std::string(region) + '/' + std::string(service) + '/' + scheme.terminator;
  result.string_to_sign = scheme.algorithm + '\n' + std::string(timestamp) + '\n' + scope + '\n' +
                          Hex(Sha256Of(result.canonical_request));

  Sha256Digest key = HmacSha256(scheme.key_prefix + credentials.secret_access_key, date);
  key = HmacSha256(AsBytes(key), region);
  key = HmacSha256(AsBytes(key), service);
  key = HmacSha256(AsBytes(key), scheme.terminator);
  result.signature = Hex(HmacSha256(AsBytes(key), result.string_to_sign));
  result.authorization = scheme.algorithm + " Credential=" + credentials.access_key_id + '/' +
                         scope + ", SignedHeaders=" + signed_headers +
                         ", Signature=" + result.signature;
  return result;
}

}  // namespace runai::common
