// The CRCs object stores keep of whole objects, computed over ranges as they land and combined
// in file order into the CRC of the whole object without a second pass over its bytes:
// CRC32C (Castagnoli: GCS for every object, S3's x-amz-checksum-crc32c), CRC32 (the IEEE CRC of
// zlib: S3's x-amz-checksum-crc32, botocore's default for uploads) and CRC64/NVME (S3's
// x-amz-checksum-crc64nvme, the default of the AWS SDKs and of S3 itself since 2025). On x86-64
// CRC32C uses the crc32 instruction (SSE4.2) and the others carry-less multiplication
// (PCLMULQDQ); elsewhere, and on older processors, every CRC takes 8-byte tables.
#ifndef RUNAI_STREAMER_COMMON_CRC_H_
#define RUNAI_STREAMER_COMMON_CRC_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace runai::common {

// Numbered as runai_checksum_t in streamer.h.
enum class CrcKind { kCrc32c = 1, kCrc32 = 2, kCrc64Nvme = 3 };

// "crc32c", "crc32", "crc64nvme": the names the object infos use.
const char* CrcName(CrcKind kind);
std::optional<CrcKind> CrcKindOf(int value);

// The CRC of `size` bytes at `data`, continuing from `crc` (0 for the first bytes): the CRC of
// A then B is Crc(kind, Crc(kind, 0, A), B).
uint64_t Crc(CrcKind kind, uint64_t crc, const void* data, size_t size);

// The CRC of A then B from the CRC of A, that of B and B's length, in O(log length).
uint64_t CrcCombine(CrcKind kind, uint64_t crc_a, uint64_t crc_b, uint64_t size_b);

// Whether CRC32C uses the processor's instruction here.
bool Crc32cInHardware();
// The table computation (exposed so the tests check it where an instruction is used).
uint64_t CrcWithTables(CrcKind kind, uint64_t crc, const void* data, size_t size);

// The CRCs of consecutive segments of a byte stream that arrives in pieces (Feed, in order):
// what a receive loop computes while the bytes it just wrote are still in cache.
class SegmentCrcs {
 public:
  SegmentCrcs(CrcKind kind, std::vector<uint64_t> sizes);
  void Feed(const void* data, size_t size);
  // The CRC of each segment; valid once every byte was fed.
  const std::vector<uint64_t>& crcs() const { return crcs_; }
  uint64_t fed() const { return fed_; }

 private:
  CrcKind kind_;
  std::vector<uint64_t> sizes_;
  std::vector<uint64_t> crcs_;
  size_t segment_ = 0;
  uint64_t left_in_segment_ = 0;
  uint64_t fed_ = 0;
};

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_CRC_H_
