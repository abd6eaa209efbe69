// The CRCs against published check values (RFC 3720's vectors for CRC32C, the CRC catalogue's
// "123456789" for each), the tables against the instruction, and CrcCombine against the CRC of
// the whole on random splits.
#include "common/crc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace runai::common {
namespace {

constexpr CrcKind kAll[] = {CrcKind::kCrc32c, CrcKind::kCrc32, CrcKind::kCrc64Nvme};

TEST(Crc, Rfc3720VectorsForCrc32c) {
  std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF), up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<uint8_t>(i);
    down[i] = static_cast<uint8_t>(31 - i);
  }
  const CrcKind c = CrcKind::kCrc32c;
  EXPECT_EQ(Crc(c, 0, zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(Crc(c, 0, ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc(c, 0, up.data(), up.size()), 0x46DD794Eu);
  EXPECT_EQ(Crc(c, 0, down.data(), down.size()), 0x113FDB5Cu);
}

TEST(Crc, CatalogueCheckValues) {
  const std::string check = "123456789";
  EXPECT_EQ(Crc(CrcKind::kCrc32c, 0, check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(Crc(CrcKind::kCrc32, 0, check.data(), check.size()), 0xCBF43926u);
  EXPECT_EQ(Crc(CrcKind::kCrc64Nvme, 0, check.data(), check.size()), 0xAE8B14860A799888ull);
  for (CrcKind kind : kAll) {
    EXPECT_EQ(Crc(kind, 0, nullptr, 0), 0u) << CrcName(kind);
    EXPECT_EQ(CrcWithTables(kind, 0, check.data(), check.size()),
              Crc(kind, 0, check.data(), check.size()))
        << CrcName(kind);
  }
}

TEST(Crc, NamesAndNumbers) {
  EXPECT_STREQ(CrcName(CrcKind::kCrc32c), "crc32c");
  EXPECT_STREQ(CrcName(CrcKind::kCrc32), "crc32");
  EXPECT_STREQ(CrcName(CrcKind::kCrc64Nvme), "crc64nvme");
  EXPECT_EQ(CrcKindOf(1), CrcKind::kCrc32c);
  EXPECT_EQ(CrcKindOf(3), CrcKind::kCrc64Nvme);
  EXPECT_FALSE(CrcKindOf(0).has_value());
  EXPECT_FALSE(CrcKindOf(4).has_value());
}

TEST(Crc, TheInstructionsAndTheTablesAgree) {
  // CRC32C's crc32 instruction (three streams from 768 bytes), CRC32's and CRC64/NVME's
  // carry-less multiplication (folding from 32 bytes, four lanes from 128), on several
  // alignments and every length around those sizes.
  std::mt19937_64 rng(3720);
  std::vector<uint8_t> data(70000);
  for (auto& byte : data) byte = static_cast<uint8_t>(rng());
  for (CrcKind kind : kAll) {
    for (size_t start : {0, 1, 5, 8, 13}) {
      for (size_t size : {0,  1,  7,  8,   9,   15,  16,  17,  31,  32,  33,   47,   48,
                          63, 64, 65, 127, 128, 129, 191, 767, 768, 769, 1000, 4095, 60000}) {
        EXPECT_EQ(Crc(kind, 0x12345678u, data.data() + start, size),
                  CrcWithTables(kind, 0x12345678u, data.data() + start, size))
            << CrcName(kind) << " start " << start << " size " << size;
      }
    }
  }
}

TEST(Crc, PiecesContinueAndCombineIntoTheWhole) {
  std::mt19937_64 rng(28);
  std::vector<uint8_t> data(300000);
  for (auto& byte : data) byte = static_cast<uint8_t>(rng());
  for (CrcKind kind : kAll) {
    const uint64_t whole = Crc(kind, 0, data.data(), data.size());
    for (int round = 0; round < 100; ++round) {
      const size_t cut = std::uniform_int_distribution<size_t>(0, data.size())(rng);
      const uint64_t a = Crc(kind, 0, data.data(), cut);
      const uint64_t b = Crc(kind, 0, data.data() + cut, data.size() - cut);
      EXPECT_EQ(Crc(kind, a, data.data() + cut, data.size() - cut), whole) << cut;
      EXPECT_EQ(CrcCombine(kind, a, b, data.size() - cut), whole) << CrcName(kind) << cut;
    }
    EXPECT_EQ(CrcCombine(kind, whole, 0, 0), whole);
    // Unaligned starts and every tail length go through the same paths.
    for (size_t start = 0; start < 16; ++start) {
      for (size_t size = 0; size < 40; ++size) {
        const uint64_t piecewise = Crc(kind, Crc(kind, 0, data.data() + start, size / 2),
                                       data.data() + start + size / 2, size - size / 2);
        EXPECT_EQ(piecewise, Crc(kind, 0, data.data() + start, size)) << start << " " << size;
      }
    }
  }
}

TEST(SegmentCrcs, PiecesOfAnyShapeGiveEachSegmentsCrc) {
  std::mt19937_64 rng(33);
  std::vector<uint8_t> data(100000);
  for (auto& byte : data) byte = static_cast<uint8_t>(rng());
  const std::vector<uint64_t> sizes = {0, 1, 4095, 0, 50000, 45904, 0};  // sums to 100000
  for (CrcKind kind : kAll) {
    for (int round = 0; round < 20; ++round) {
      SegmentCrcs crcs(kind, sizes);
      size_t at = 0;
      while (at < data.size()) {  // pieces as a socket delivers them: any size
        const size_t piece = std::min<size_t>(data.size() - at, 1 + rng() % 9000);
        crcs.Feed(data.data() + at, piece);
        at += piece;
      }
      EXPECT_EQ(crcs.fed(), data.size());
      size_t start = 0;
      for (size_t s = 0; s < sizes.size(); ++s) {
        EXPECT_EQ(crcs.crcs()[s], Crc(kind, 0, data.data() + start, sizes[s])) << s;
        start += sizes[s];
      }
    }
  }
}

}  // namespace
}  // namespace runai::common
