// Checksums through the C API: the CRC of every range the engine read (split into chunks read
// by several workers, pieces finishing in any order), combining them into the whole file's,
// and what runai_streamer_object_info says of local files and of a plugin's objects. The
// expected values come from a bit-at-a-time CRC written here, not from the library.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace runai::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The reflected CRC with all-ones initial value and final XOR, one bit at a time.
uint64_t ReferenceCrc(int32_t kind, const uint8_t* data, size_t size) {
  const uint64_t polynomial = kind == RUNAI_CHECKSUM_CRC32C  ? 0x82F63B78ull
                              : kind == RUNAI_CHECKSUM_CRC32 ? 0xEDB88320ull
                                                             : 0x9A6C9329AC4BC9B5ull;
  const uint64_t mask = kind == RUNAI_CHECKSUM_CRC64NVME ? ~0ull : 0xFFFFFFFFull;
  uint64_t crc = mask;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? polynomial : 0);
  }
  return ~crc & mask;
}

std::vector<runai_completion_t> WaitFor(runai_streamer_t* streamer, uint64_t id, size_t count) {
  std::vector<runai_completion_t> all;
  runai_completion_t batch[16];
  while (all.size() < count) {
    size_t got = 0;
    int status = runai_streamer_wait(streamer, id, batch, 16, 10000, &got);
    EXPECT_EQ(status, RUNAI_OK) << runai_streamer_last_error();
    if (status != RUNAI_OK) break;
    all.insert(all.end(), batch, batch + got);
  }
  return all;
}

TEST(Checksum, EveryRangeCarriesTheCrcOfItsBytesAndTheyCombineIntoTheFile) {
  TempDir dir;
  std::mt19937_64 rng(28);
  const auto content = RandomBytes(300001, rng);
  const std::string path = dir.Write("model.bin", content);
  // 4 KiB chunks over 4 workers: the large ranges are read in many pieces, in any order.
  Streamer streamer(4, 4096);
  const uint64_t bounds[] = {0, 1, 1000, 150000, 300001};
  for (int32_t kind : {RUNAI_CHECKSUM_CRC32C, RUNAI_CHECKSUM_CRC32, RUNAI_CHECKSUM_CRC64NVME}) {
    std::vector<uint8_t> out(content.size());
    std::vector<runai_range_t> ranges;
    for (size_t r = 0; r + 1 < std::size(bounds); ++r) {
      ranges.push_back({bounds[r], bounds[r + 1] - bounds[r], out.data() + bounds[r]});
    }
    ranges.push_back({5, 0, nullptr});  // an empty range's checksum is that of no bytes: 0
    runai_file_request_t file{path.c_str(), ranges.data(), ranges.size(), kind, 0};
    uint64_t id = 0;
    ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
    std::vector<uint64_t> crcs(ranges.size(), 1);
    for (const runai_completion_t& done : WaitFor(streamer.get(), id, ranges.size())) {
      ASSERT_EQ(done.status, RUNAI_OK) << done.message;
      crcs[done.range_index] = done.checksum;
    }
    ASSERT_EQ(out, content);
    uint64_t whole = 0;
    for (size_t r = 0; r < ranges.size(); ++r) {
      const auto* start = content.data() + ranges[r].offset;
      EXPECT_EQ(crcs[r], ReferenceCrc(kind, start, ranges[r].size)) << kind << " range " << r;
      uint64_t combined = 0;
      ASSERT_EQ(runai_streamer_checksum_combine(kind, whole, crcs[r], ranges[r].size, &combined),
                RUNAI_OK);
      whole = combined;
    }
    EXPECT_EQ(whole, ReferenceCrc(kind, content.data(), content.size())) << kind;
    EXPECT_EQ(runai_streamer_release(streamer.get(), id), RUNAI_OK);
  }
}

TEST(Checksum, NoneAskedIsZeroAndAnUnknownKindIsRefused) {
  TempDir dir;
  std::mt19937_64 rng(1);
  const auto content = RandomBytes(5000, rng);
  const std::string path = dir.Write("a.bin", content);
  Streamer streamer(2, 4096);
  std::vector<uint8_t> out(content.size());
  runai_range_t range{0, content.size(), out.data()};
  runai_file_request_t file{path.c_str(), &range, 1, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  auto done = WaitFor(streamer.get(), id, 1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, RUNAI_OK);
  EXPECT_EQ(done[0].checksum, 0u);
  runai_file_request_t bad{path.c_str(), &range, 1, 4, 0};
  EXPECT_EQ(runai_streamer_submit(streamer.get(), &bad, 1, &id), RUNAI_E_INVALID_ARGUMENT);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("unknown checksum 4"));
}

TEST(Checksum, OfBytesContinuesAndChecksItsArguments) {
  const std::string check = "123456789";
  const auto* bytes = reinterpret_cast<const uint8_t*>(check.data());
  for (int32_t kind : {RUNAI_CHECKSUM_CRC32C, RUNAI_CHECKSUM_CRC32, RUNAI_CHECKSUM_CRC64NVME}) {
    uint64_t first = 0, both = 0;
    ASSERT_EQ(runai_streamer_checksum(kind, 0, bytes, 4, &first), RUNAI_OK);
    ASSERT_EQ(runai_streamer_checksum(kind, first, bytes + 4, 5, &both), RUNAI_OK);
    EXPECT_EQ(both, ReferenceCrc(kind, bytes, 9)) << kind;
  }
  uint64_t out = 0;
  EXPECT_EQ(runai_streamer_checksum(0, 0, bytes, 9, &out), RUNAI_E_INVALID_ARGUMENT);
  EXPECT_EQ(runai_streamer_checksum(RUNAI_CHECKSUM_CRC32, 0, nullptr, 9, &out),
            RUNAI_E_INVALID_ARGUMENT);
  EXPECT_EQ(runai_streamer_checksum(RUNAI_CHECKSUM_CRC32, 0, nullptr, 0, &out), RUNAI_OK);
  EXPECT_EQ(out, 0u);
  EXPECT_EQ(runai_streamer_checksum_combine(9, 0, 0, 0, &out), RUNAI_E_INVALID_ARGUMENT);
}

TEST(Checksum, APluginsRangesCarryTheirCrcsToo) {
  TempDir dir;
  std::mt19937_64 rng(29);
  const auto content = RandomBytes(200000, rng);
  dir.Write("model.bin", content);
  Streamer streamer(3, 8192);
  const char* keys[] = {"root"};
  const char* values[] = {dir.path().c_str()};
  ASSERT_EQ(runai_streamer_register_backend(streamer.get(), "tfs", TESTFS_PLUGIN, keys, values, 1),
            RUNAI_OK)
      << runai_streamer_last_error();
  std::vector<uint8_t> out(content.size());
  // Adjacent ranges: the engine reads them in one call and the plugin returns a CRC per piece.
  std::vector<runai_range_t> ranges = {
      {0, 100, out.data()}, {100, 99900, out.data() + 100}, {100000, 100000, out.data() + 100000}};
  runai_file_request_t file{"tfs://model.bin", ranges.data(), ranges.size(),
                            RUNAI_CHECKSUM_CRC64NVME, 0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  for (const runai_completion_t& done : WaitFor(streamer.get(), id, ranges.size())) {
    ASSERT_EQ(done.status, RUNAI_OK) << done.message;
    const runai_range_t& range = ranges[done.range_index];
    EXPECT_EQ(done.checksum,
              ReferenceCrc(RUNAI_CHECKSUM_CRC64NVME, content.data() + range.offset, range.size));
  }
  EXPECT_EQ(out, content);
}

TEST(ObjectInfo, LocalFilesHaveASizeAndAVersionButNoChecksums) {
  TempDir dir;
  std::mt19937_64 rng(2);
  const std::string path = dir.Write("a.bin", RandomBytes(1234, rng));
  Streamer streamer;
  runai_object_info_t info;
  ASSERT_EQ(runai_streamer_object_info(streamer.get(), path.c_str(), &info), RUNAI_OK);
  EXPECT_EQ(info.size, 1234u);
  EXPECT_THAT(info.version, StartsWith("mtime="));
  EXPECT_THAT(info.version, HasSubstr(",inode="));
  EXPECT_STREQ(info.checksums, "");
  const std::string missing = dir.path() + "/missing.bin";
  EXPECT_EQ(runai_streamer_object_info(streamer.get(), missing.c_str(), &info), RUNAI_E_NOT_FOUND);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr(missing));
  EXPECT_EQ(runai_streamer_object_info(streamer.get(), nullptr, &info), RUNAI_E_INVALID_ARGUMENT);
}

TEST(ObjectInfo, APluginReportsWhatItsStoreKeeps) {
  TempDir dir;
  std::mt19937_64 rng(3);
  dir.Write("model.bin", RandomBytes(777, rng));
  const std::string checksums = "crc32c=0a1b2c3d,md5=00112233445566778899aabbccddeeff";
  dir.Write("model.bin.checksums", std::vector<uint8_t>(checksums.begin(), checksums.end()));
  Streamer streamer;
  const char* keys[] = {"root"};
  const char* values[] = {dir.path().c_str()};
  ASSERT_EQ(runai_streamer_register_backend(streamer.get(), "tfs", TESTFS_PLUGIN, keys, values, 1),
            RUNAI_OK)
      << runai_streamer_last_error();
  runai_object_info_t info;
  ASSERT_EQ(runai_streamer_object_info(streamer.get(), "tfs://model.bin", &info), RUNAI_OK)
      << runai_streamer_last_error();
  EXPECT_EQ(info.size, 777u);
  EXPECT_STREQ(info.checksums, checksums.c_str());
  EXPECT_THAT(info.version, StartsWith("mtime="));
  EXPECT_EQ(runai_streamer_object_info(streamer.get(), "tfs://none.bin", &info), RUNAI_E_NOT_FOUND);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("tfs://none.bin"));
}

}  // namespace
}  // namespace runai::testing
