// CRC32C against RFC 3720's vectors (section B.4), and Crc32cCombine against the CRC of the
// whole on random splits.
#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace runai::common {
namespace {

TEST(Crc32c, Rfc3720Vectors) {
  std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF), up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<uint8_t>(i);
    down[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(0, zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(0, ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(0, up.data(), up.size()), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(0, down.data(), down.size()), 0x113FDB5Cu);
  const std::string check = "123456789";  // the CRC catalogue's check value
  EXPECT_EQ(Crc32c(0, check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(Crc32c(0, nullptr, 0), 0u);
  EXPECT_EQ(Crc32cWithTables(0, check.data(), check.size()), 0xE3069283u);
}

TEST(Crc32c, TheInstructionAndTheTablesAgree) {
  std::mt19937_64 rng(3720);
  std::vector<uint8_t> data(70000);
  for (auto& byte : data) byte = static_cast<uint8_t>(rng());
  for (size_t size : {0, 1, 7, 8, 9, 63, 64, 65, 4095, 70000}) {
    EXPECT_EQ(Crc32c(0x12345678u, data.data(), size),
              Crc32cWithTables(0x12345678u, data.data(), size))
        << size;
  }
}

TEST(Crc32c, PiecesContinueAndCombineIntoTheWhole) {
  std::mt19937_64 rng(28);
  std::vector<uint8_t> data(300000);
  for (auto& byte : data) byte = static_cast<uint8_t>(rng());
  const uint32_t whole = Crc32c(0, data.data(), data.size());
  for (int round = 0; round < 200; ++round) {
    const size_t cut = std::uniform_int_distribution<size_t>(0, data.size())(rng);
    const uint32_t a = Crc32c(0, data.data(), cut);
    const uint32_t b = Crc32c(0, data.data() + cut, data.size() - cut);
    EXPECT_EQ(Crc32c(a, data.data() + cut, data.size() - cut), whole) << cut;
    EXPECT_EQ(Crc32cCombine(a, b, data.size() - cut), whole) << cut;
  }
  EXPECT_EQ(Crc32cCombine(whole, 0, 0), whole);
  // Unaligned starts and every tail length go through the same paths.
  for (size_t start = 0; start < 16; ++start) {
    for (size_t size = 0; size < 40; ++size) {
      const uint32_t piecewise = Crc32c(Crc32c(0, data.data() + start, size / 2),
                                        data.data() + start + size / 2, size - size / 2);
      EXPECT_EQ(piecewise, Crc32c(0, data.data() + start, size)) << start << " " << size;
    }
  }
}

}  // namespace
}  // namespace runai::common
