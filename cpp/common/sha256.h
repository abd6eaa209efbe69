// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for request signing (AWS Signature
// Version 4, GCS HMAC keys). Small and dependency-free so that every plugin signs the same
// way whatever TLS library it links; tested against the NIST and RFC 4231 vectors.
#ifndef RUNAI_STREAMER_COMMON_SHA256_H_
#define RUNAI_STREAMER_COMMON_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace runai::common {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental SHA-256: Update() any number of times, then Finish() once.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  Sha256Digest Finish();

 private:
  void Compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

Sha256Digest Sha256Of(std::string_view data);
Sha256Digest HmacSha256(std::string_view key, std::string_view message);
// Lowercase hexadecimal of any bytes.
std::string Hex(const uint8_t* data, size_t size);
inline std::string Hex(const Sha256Digest& digest) { return Hex(digest.data(), digest.size()); }
inline std::string_view AsBytes(const Sha256Digest& digest) {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_SHA256_H_
