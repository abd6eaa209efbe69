#include "common/crc.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <wmmintrin.h>
#endif

namespace runai::common {
namespace {

// A CRC with bit-reflected input and output, initial value and final XOR all ones (the three
// CRCs here are all of that family), over a register of type Word. kPolynomial is reflected
// (the bit for x^0 is the highest).
template <typename Word, Word kPolynomial>
class Reflected {
 public:
  static constexpr int kBits = 8 * sizeof(Word);
  static constexpr Word kOne = Word{1} << (kBits - 1);  // x^0

  // `crc` here is the register, already inverted.
  static Word Update(Word crc, const uint8_t* bytes, size_t size) {
    static const Tables tables = MakeTables();
    while (size >= 8) {
      uint64_t word;
      std::memcpy(&word, bytes, 8);
      word ^= crc;  // little-endian: the register meets the first bytes
      crc = tables[7][word & 0xFF] ^ tables[6][(word >> 8) & 0xFF] ^
            tables[5][(word >> 16) & 0xFF] ^ tables[4][(word >> 24) & 0xFF] ^
            tables[3][(word >> 32) & 0xFF] ^ tables[2][(word >> 40) & 0xFF] ^
            tables[1][(word >> 48) & 0xFF] ^ tables[0][word >> 56];
      bytes += 8;
      size -= 8;
    }
    while (size-- > 0) crc = (crc >> 8) ^ tables[0][(crc ^ *bytes++) & 0xFF];
    return crc;
  }

#if defined(__x86_64__)
  // Update by carry-less multiplication (PCLMULQDQ). A 128-bit remainder X of the bytes so far
  // (the register folded into the first ones) is carried over the next block D, n bits later,
  // as X * x^n + D = lo * x^(n+64) + hi * x^n + D (lo: X's first eight bytes, the higher
  // terms), with x^(n+63) and x^(n-1) modulo P as the constants (a carry-less product of
  // reflected values comes out one degree low). Four remainders, 64 bytes a step, keep the
  // multiplier busy; they are folded into one, which then takes 16 bytes a step; the last
  // remainder and the tail go through Update.
  __attribute__((target("pclmul,sse4.1"))) static Word UpdateByFolding(Word crc,
                                                                       const uint8_t* bytes,
                                                                       size_t size) {
    if (size < 32) return Update(crc, bytes, size);
    static const __m128i by_one = FoldConstants(128);
    static const __m128i by_four = FoldConstants(512);
    auto load = [](const uint8_t* at) {
      return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
    };
    const __m128i first =
        _mm_xor_si128(load(bytes), _mm_set_epi64x(0, static_cast<long long>(crc)));
    __m128i remainder = first;
    bytes += 16;
    size -= 16;
    if (size >= 112) {
      __m128i lanes[4] = {first, load(bytes), load(bytes + 16), load(bytes + 32)};
      bytes += 48;
      size -= 48;
      while (size >= 64) {
        for (int i = 0; i < 4; ++i) lanes[i] = Fold(lanes[i], by_four, load(bytes + 16 * i));
        bytes += 64;
        size -= 64;
      }
      remainder = Fold(Fold(Fold(lanes[0], by_one, lanes[1]), by_one, lanes[2]), by_one, lanes[3]);
    }
    while (size >= 16) {
      remainder = Fold(remainder, by_one, load(bytes));
      bytes += 16;
      size -= 16;
    }
    alignas(16) uint8_t last[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(last), remainder);
    return Update(Update(0, last, sizeof(last)), bytes, size);
  }

  __attribute__((target("pclmul,sse4.1"))) static __m128i Fold(__m128i remainder, __m128i constants,
                                                               __m128i next) {
    const __m128i high = _mm_clmulepi64_si128(remainder, constants, 0x00);
    const __m128i low = _mm_clmulepi64_si128(remainder, constants, 0x11);
    return _mm_xor_si128(_mm_xor_si128(high, low), next);
  }

  __attribute__((target("sse2"))) static __m128i FoldConstants(uint64_t distance_bits) {
    return _mm_set_epi64x(static_cast<long long>(Lane(XPowerOfBits(distance_bits - 1))),
                          static_cast<long long>(Lane(XPowerOfBits(distance_bits + 63))));
  }
#endif

  // CRC(A B) = CRC(A) * x^(8|B|) + CRC(B): the initial and final inversions cancel out.
  static Word Combine(Word crc_a, Word crc_b, uint64_t size_b) {
    return MultiplyModP(crc_a, XPowerOfBytes(size_b)) ^ crc_b;
  }

 private:
  // tables[k][b]: the CRC of byte b followed by k zero bytes, for eight bytes a step.
  using Tables = std::array<std::array<Word, 256>, 8>;

  static Tables MakeTables() {
    Tables tables{};
    for (uint32_t byte = 0; byte < 256; ++byte) {
      Word crc = byte;
      for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? kPolynomial : 0);
      tables[0][byte] = crc;
    }
    for (size_t k = 1; k < tables.size(); ++k) {
      for (uint32_t byte = 0; byte < 256; ++byte) {
        const Word previous = tables[k - 1][byte];
        tables[k][byte] = (previous >> 8) ^ tables[0][previous & 0xFF];
      }
    }
    return tables;
  }

  // a * b modulo the polynomial, both bit-reflected.
  static Word MultiplyModP(Word a, Word b) {
    Word product = 0;
    for (int term = 0; term < kBits; ++term) {
      if (a & (kOne >> term)) product ^= b;
      b = (b >> 1) ^ ((b & 1) ? kPolynomial : 0);  // b * x
    }
    return product;
  }

  // A polynomial of degree < kBits in a 64-bit lane (the bit for x^0 is bit 63).
  static uint64_t Lane(Word value) { return static_cast<uint64_t>(value) << (64 - kBits); }

  // x^bits modulo the polynomial, by squaring.
  static Word XPowerOfBits(uint64_t bits) {
    Word result = kOne;
    Word power = kOne >> 1;  // x
    for (; bits != 0; bits >>= 1) {
      if (bits & 1) result = MultiplyModP(result, power);
      power = MultiplyModP(power, power);
    }
    return result;
  }

  // x^(8 * bytes) modulo the polynomial: the product of x^(8 * 2^k) for the bits k of
  // `bytes`, those powers squared once into a table (a combine costs a few multiplications).
  static Word XPowerOfBytes(uint64_t bytes) {
    static const std::array<Word, 64> powers = [] {
      std::array<Word, 64> table{};
      table[0] = kOne >> 8;  // x^8: one byte
      for (size_t k = 1; k < table.size(); ++k) table[k] = MultiplyModP(table[k - 1], table[k - 1]);
      return table;
    }();
    Word result = kOne;
    for (size_t k = 0; bytes != 0; ++k, bytes >>= 1) {
      if (bytes & 1) result = MultiplyModP(result, powers[k]);
    }
    return result;
  }
};

using Crc32cMath = Reflected<uint32_t, 0x82F63B78u>;               // 0x1EDC6F41 reflected
using Crc32Math = Reflected<uint32_t, 0xEDB88320u>;                // 0x04C11DB7 reflected
using Crc64NvmeMath = Reflected<uint64_t, 0x9A6C9329AC4BC9B5ull>;  // 0xAD93D23594C93659

#if defined(__x86_64__)
// Three streams of crc32 instructions at once (its latency is three cycles, its throughput one
// a cycle) over thirds of the bytes, combined at the end; the rest one at a time.
__attribute__((target("sse4.2,crc32"))) uint32_t Crc32cWithInstruction(uint32_t crc,
                                                                       const uint8_t* bytes,
                                                                       size_t size) {
  uint64_t wide = crc;
  if (size >= 3 * 256) {
    const size_t third = size / 3 / 8 * 8;
    uint64_t b = 0, c = 0;
    for (size_t at = 0; at < third; at += 8) {
      uint64_t words[3];
      std::memcpy(&words[0], bytes + at, 8);
      std::memcpy(&words[1], bytes + third + at, 8);
      std::memcpy(&words[2], bytes + 2 * third + at, 8);
      wide = _mm_crc32_u64(wide, words[0]);
      b = _mm_crc32_u64(b, words[1]);
      c = _mm_crc32_u64(c, words[2]);
    }
    const auto ab =
        Crc32cMath::Combine(static_cast<uint32_t>(wide), static_cast<uint32_t>(b), third);
    wide = Crc32cMath::Combine(ab, static_cast<uint32_t>(c), third);
    bytes += 3 * third;
    size -= 3 * third;
  }
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

bool HasCarrylessMultiply() {
  static const bool has = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return has;
}

template <typename Math, typename Word>
Word UpdateFastest(Word crc, const uint8_t* bytes, size_t size) {
  return HasCarrylessMultiply() ? Math::UpdateByFolding(crc, bytes, size)
                                : Math::Update(crc, bytes, size);
}
#else
uint32_t Crc32cWithInstruction(uint32_t crc, const uint8_t* bytes, size_t size) {
  return Crc32cMath::Update(crc, bytes, size);
}

bool HasInstruction() { return false; }

template <typename Math, typename Word>
Word UpdateFastest(Word crc, const uint8_t* bytes, size_t size) {
  return Math::Update(crc, bytes, size);
}
#endif

uint64_t Update(CrcKind kind, uint64_t crc, const uint8_t* bytes, size_t size, bool tables_only) {
  switch (kind) {
    case CrcKind::kCrc32c: {
      const auto state = static_cast<uint32_t>(~crc);
      return static_cast<uint32_t>(~(HasInstruction() && !tables_only
                                         ? Crc32cWithInstruction(state, bytes, size)
                                         : Crc32cMath::Update(state, bytes, size)));
    }
    case CrcKind::kCrc32: {
      const auto state = static_cast<uint32_t>(~crc);
      return static_cast<uint32_t>(~(tables_only ? Crc32Math::Update(state, bytes, size)
                                                 : UpdateFastest<Crc32Math>(state, bytes, size)));
    }
    case CrcKind::kCrc64Nvme:
      return ~(tables_only ? Crc64NvmeMath::Update(~crc, bytes, size)
                           : UpdateFastest<Crc64NvmeMath>(~crc, bytes, size));
  }
  return 0;
}

}  // namespace

const char* CrcName(CrcKind kind) {
  switch (kind) {
    case CrcKind::kCrc32c:
      return "crc32c";
    case CrcKind::kCrc32:
      return "crc32";
    case CrcKind::kCrc64Nvme:
      return "crc64nvme";
  }
  return "?";
}

std::optional<CrcKind> CrcKindOf(int value) {
  if (value < static_cast<int>(CrcKind::kCrc32c) || value > static_cast<int>(CrcKind::kCrc64Nvme)) {
    return std::nullopt;
  }
  return static_cast<CrcKind>(value);
}

uint64_t Crc(CrcKind kind, uint64_t crc, const void* data, size_t size) {
  return Update(kind, crc, static_cast<const uint8_t*>(data), size, false);
}

uint64_t CrcWithTables(CrcKind kind, uint64_t crc, const void* data, size_t size) {
  return Update(kind, crc, static_cast<const uint8_t*>(data), size, true);
}

uint64_t CrcCombine(CrcKind kind, uint64_t crc_a, uint64_t crc_b, uint64_t size_b) {
  switch (kind) {
    case CrcKind::kCrc32c:
      return Crc32cMath::Combine(static_cast<uint32_t>(crc_a), static_cast<uint32_t>(crc_b),
                                 size_b);
    case CrcKind::kCrc32:
      return Crc32Math::Combine(static_cast<uint32_t>(crc_a), static_cast<uint32_t>(crc_b), size_b);
    case CrcKind::kCrc64Nvme:
      return Crc64NvmeMath::Combine(crc_a, crc_b, size_b);
  }
  return 0;
}

bool Crc32cInHardware() { return HasInstruction(); }

SegmentCrcs::SegmentCrcs(CrcKind kind, std::vector<uint64_t> sizes)
    : kind_(kind), sizes_(std::move(sizes)), crcs_(sizes_.size(), 0) {
  while (segment_ < sizes_.size() && sizes_[segment_] == 0) ++segment_;
  left_in_segment_ = segment_ < sizes_.size() ? sizes_[segment_] : 0;
}

void SegmentCrcs::Feed(const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  fed_ += size;
  while (size > 0 && segment_ < sizes_.size()) {
    const size_t take = static_cast<size_t>(std::min<uint64_t>(size, left_in_segment_));
    crcs_[segment_] = Crc(kind_, crcs_[segment_], bytes, take);
    bytes += take;
    size -= take;
    left_in_segment_ -= take;
    while (left_in_segment_ == 0 && ++segment_ < sizes_.size()) left_in_segment_ = sizes_[segment_];
  }
}

}  // namespace runai::common
