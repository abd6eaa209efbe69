// Signs requests read from stdin and prints each one's Authorization value, so that a test
// (sigv4_vs_botocore.py) can compare our signer with botocore's on random requests.
// Input, per request, one field per line, each hex-encoded: method, path, query count (then
// that many name and value lines), header count (then names and values), payload hash,
// access key id, secret, session token, region, service, timestamp.
#include <cstdlib>
#include <iostream>
#include <string>

#include "common/sigv4.h"

namespace {

bool ReadField(std::string* out) {
  std::string line;
  if (!std::getline(std::cin, line)) return false;
  out->clear();
  for (size_t i = 0; i + 1 < line.size(); i += 2) {
    out->push_back(static_cast<char>(std::stoi(line.substr(i, 2), nullptr, 16)));
  }
  return true;
}

bool ReadPairs(runai::common::HeaderList* pairs) {
  std::string count;
  if (!ReadField(&count)) return false;
  for (long i = std::strtol(count.c_str(), nullptr, 10); i > 0; --i) {
    std::string name, value;
    if (!ReadField(&name) || !ReadField(&value)) return false;
    pairs->emplace_back(name, value);
  }
  return true;
}

}  // namespace

int main() {
  using namespace runai::common;
  for (;;) {
    SigV4Request request;
    AwsCredentials credentials;
    std::string region, service, timestamp;
    if (!ReadField(&request.method)) return 0;
    if (!ReadField(&request.path) || !ReadPairs(&request.query) || !ReadPairs(&request.headers) ||
        !ReadField(&request.payload_sha256_hex) || !ReadField(&credentials.access_key_id) ||
        !ReadField(&credentials.secret_access_key) || !ReadField(&credentials.session_token) ||
        !ReadField(&region) || !ReadField(&service) || !ReadField(&timestamp)) {
      std::cerr << "sigv4_tool: truncated input\n";
      return 2;
    }
    std::cout << SignV4(request, credentials, region, service, timestamp).authorization << '\n';
  }
}
