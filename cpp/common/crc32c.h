// CRC32C (Castagnoli, the checksum GCS keeps for every object and S3 offers as
// x-amz-checksum-crc32c): computed over ranges as they land, and combined in file order into
// the checksum of the whole object without a second pass over its bytes (issue 28's
// integrity checks build on this). The hardware instruction on x86-64 with SSE4.2, a table
// elsewhere; tested against RFC 3720's vectors.
#ifndef RUNAI_STREAMER_COMMON_CRC32C_H_
#define RUNAI_STREAMER_COMMON_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace runai::common {

// The CRC32C of `size` bytes at `data`, continuing from `crc` (0 for the first bytes): the
// CRC32C of A then B is Crc32c(Crc32c(0, A), B).
uint32_t Crc32c(uint32_t crc, const void* data, size_t size);

// The CRC32C of A then B from the CRC32C of A, that of B and B's length, in O(log length).
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t size_b);

// Whether Crc32c uses the processor's instruction here.
bool Crc32cInHardware();
// The table computation Crc32c falls back to (exposed so the tests check it where the
// instruction is used).
uint32_t Crc32cWithTables(uint32_t crc, const void* data, size_t size);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_CRC32C_H_
