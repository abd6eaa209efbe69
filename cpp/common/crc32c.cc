#include "common/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace runai::common {
namespace {

// The Castagnoli polynomial 0x1EDC6F41, bit-reflected (the bit for x^0 is the highest).
constexpr uint32_t kPolynomial = 0x82F63B78u;

// tables[k][b]: the CRC of byte b followed by k zero bytes, for eight bytes a step.
using Tables = std::array<std::array<uint32_t, 256>, 8>;

Tables MakeTables() {
  Tables tables{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? kPolynomial : 0);
    tables[0][byte] = crc;
  }
  for (size_t k = 1; k < tables.size(); ++k) {
    for (uint32_t byte = 0; byte < 256; ++byte) {
      const uint32_t previous = tables[k - 1][byte];
      tables[k][byte] = (previous >> 8) ^ tables[0][previous & 0xFF];
    }
  }
  return tables;
}

// `crc` here is the register, already inverted.
uint32_t UpdateWithTables(uint32_t crc, const uint8_t* bytes, size_t size) {
  static const Tables tables = MakeTables();
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, bytes, 8);
    word ^= crc;  // little-endian: the register meets the first four bytes
    crc = tables[7][word & 0xFF] ^ tables[6][(word >> 8) & 0xFF] ^ tables[5][(word >> 16) & 0xFF] ^
          tables[4][(word >> 24) & 0xFF] ^ tables[3][(word >> 32) & 0xFF] ^
          tables[2][(word >> 40) & 0xFF] ^ tables[1][(word >> 48) & 0xFF] ^ tables[0][word >> 56];
    bytes += 8;
    size -= 8;
  }
  while (size-- > 0) crc = (crc >> 8) ^ tables[0][(crc ^ *bytes++) & 0xFF];
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2,crc32"))) uint32_t UpdateWithInstruction(uint32_t crc,
                                                                       const uint8_t* bytes,
                                                                       size_t size) {
  uint64_t wide = crc;
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, bytes, 8);
    wide = _mm_crc32_u64(wide, word);
    bytes += 8;
    size -= 8;
  }
  uint32_t narrow = static_cast<uint32_t>(wide);
  while (size-- > 0) narrow = _mm_crc32_u8(narrow, *bytes++);
  return narrow;
}

bool HasInstruction() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#else
uint32_t UpdateWithInstruction(uint32_t crc, const uint8_t* bytes, size_t size) {
  return UpdateWithTables(crc, bytes, size);
}

bool HasInstruction() { return false; }
#endif

// a * b modulo the polynomial, both bit-reflected.
uint32_t MultiplyModP(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (int term = 0; term < 32; ++term) {
    if (a & (0x80000000u >> term)) product ^= b;
    b = (b >> 1) ^ ((b & 1) ? kPolynomial : 0);  // b * x
  }
  return product;
}

// x^(8 * bytes) modulo the polynomial, by squaring.
uint32_t XPowerOfBytes(uint64_t bytes) {
  uint32_t result = 0x80000000u;  // x^0
  uint32_t power = 0x00800000u;   // x^8: one byte
  for (; bytes != 0; bytes >>= 1) {
    if (bytes & 1) result = MultiplyModP(result, power);
    power = MultiplyModP(power, power);
  }
  return result;
}

}  // namespace

uint32_t Crc32c(uint32_t crc, const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  const uint32_t state = ~crc;
  return ~(HasInstruction() ? UpdateWithInstruction(state, bytes, size)
                            : UpdateWithTables(state, bytes, size));
}

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t size_b) {
  // CRC(A B) = CRC(A) * x^(8|B|) + CRC(B): the initial and final inversions cancel out.
  return MultiplyModP(crc_a, XPowerOfBytes(size_b)) ^ crc_b;
}

bool Crc32cInHardware() { return HasInstruction(); }

uint32_t Crc32cWithTables(uint32_t crc, const void* data, size_t size) {
  return ~UpdateWithTables(~crc, static_cast<const uint8_t*>(data), size);
}

}  // namespace runai::common
