// The ways of reading local files (RUNAI_STREAMER_FS_STRATEGY, RUNAI_STREAMER_IO_URING):
// random requests read buffered, direct and mixed (some pages cached), with io_uring and pread,
// are exact; tmpfs falls back to buffered reads; bad values are configuration errors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "random_reads.h"
#include "test_util.h"

namespace runai::testing {
namespace {

// Drops the file's pages from the page cache (clean pages: no root needed); with
// every_other, then reads every other 64 KiB back in (no readahead: partial eviction does not
// work with large folios), so that "auto" reads some runs buffered and some direct.
void Evict(const std::string& path, bool every_other) {
  int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << path;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  if (every_other) {
    struct stat st;
    ASSERT_EQ(::fstat(fd, &st), 0);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    std::vector<char> scratch(64 << 10);
    for (off_t at = 0; at < st.st_size; at += 128 << 10) {
      ASSERT_GE(::pread(fd, scratch.data(), scratch.size(), at), 0);
    }
  }
  ::close(fd);
}

// Fraction of the file's pages in the page cache.
double ResidentFraction(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_size == 0) return -1;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t pages = (static_cast<size_t>(st.st_size) + page - 1) / page;
  void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return -1;
  std::vector<unsigned char> resident(pages);
  const int ok = ::mincore(map, static_cast<size_t>(st.st_size), resident.data());
  ::munmap(map, static_cast<size_t>(st.st_size));
  if (ok != 0) return -1;
  size_t count = 0;
  for (unsigned char r : resident) count += r & 1;
  return static_cast<double>(count) / static_cast<double>(pages);
}

struct StrategyCase {
  const char* strategy;
  const char* cache;     // "warm", "cold", "mixed"
  const char* io_uring;  // RUNAI_STREAMER_IO_URING: whole blocks through io_uring or pread
};

class ReadStrategies : public ::testing::TestWithParam<StrategyCase> {};

// Thousands of random ranges at every alignment (destinations in a byte vector: mostly the
// bounce-buffer path of direct reads), files of sizes that are not block multiples.
TEST_P(ReadStrategies, RandomRangesAreExact) {
  ScopedEnv strategy("RUNAI_STREAMER_FS_STRATEGY", GetParam().strategy);
  ScopedEnv io_uring("RUNAI_STREAMER_IO_URING", GetParam().io_uring);
  Corpus corpus;
  MakeCorpus(&corpus, 10, 21);
  for (const std::string& path : corpus.paths) {
    if (std::string(GetParam().cache) != "warm") Evict(path, GetParam().cache[0] == 'm');
  }
  Streamer streamer(4, 16384);
  RandomRequest request(corpus, 2000, 22);
  request.Submit(streamer.get());
  request.WaitAndCheck(streamer.get());
}

// Destinations that share the file offset's alignment (as the Python planner lays windows
// out): the middle of each range is read straight into it, heads and tails bounced.
TEST_P(ReadStrategies, AlignedDestinationsAreExact) {
  ScopedEnv strategy("RUNAI_STREAMER_FS_STRATEGY", GetParam().strategy);
  ScopedEnv io_uring("RUNAI_STREAMER_IO_URING", GetParam().io_uring);
  TempDir dir;
  std::mt19937_64 rng(31);
  const size_t size = (3 << 20) + 1234;  // not a multiple of any block size
  const std::vector<uint8_t> content = RandomBytes(size, rng);
  const std::string path = dir.Write("model.bin", content);
  if (std::string(GetParam().cache) != "warm") Evict(path, GetParam().cache[0] == 'm');
  const double resident_before = ResidentFraction(path);
  void* memory = nullptr;
  ASSERT_EQ(posix_memalign(&memory, 4096, size + 4096), 0);
  std::unique_ptr<uint8_t, decltype(&std::free)> buffer(static_cast<uint8_t*>(memory), std::free);
  std::memset(buffer.get(), kUntouched, size + 4096);
  std::vector<runai_range_t> ranges;
  uint64_t at = 0;
  while (at < size) {  // contiguous ranges of 1 byte to 600 KiB, a few empty
    uint64_t length =
        std::min<uint64_t>(size - at, std::uniform_int_distribution<uint64_t>(0, 600 << 10)(rng));
    ranges.push_back(runai_range_t{at, length, buffer.get() + at});
    at += length;
  }
  runai_file_request_t file{path.c_str(), ranges.data(), ranges.size(), RUNAI_CHECKSUM_NONE, 0};
  Streamer streamer(4, 1 << 20);
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK)
      << runai_streamer_last_error();
  for (const auto& [key, result] : WaitAll(streamer.get(), id, ranges.size())) {
    ASSERT_EQ(result.status, RUNAI_OK) << result.message;
  }
  ASSERT_EQ(std::memcmp(buffer.get(), content.data(), size), 0);
  for (size_t i = size; i < size + 4096; ++i) ASSERT_EQ(buffer.get()[i], kUntouched) << i;
  EXPECT_EQ(runai_streamer_release(streamer.get(), id), RUNAI_OK);
  // Direct reads leave the page cache as it was; buffered ones fill it.
  const double resident = ResidentFraction(path);
  const std::string strategy_name = GetParam().strategy, cache = GetParam().cache;
  if (cache == "warm") {
    EXPECT_EQ(resident, 1.0);
  } else if (strategy_name == "buffered") {
    EXPECT_EQ(resident, 1.0);
  } else if (cache == "cold") {
    EXPECT_LT(resident, 0.05) << "read through the page cache: was O_DIRECT refused in $TMPDIR?";
  } else {  // mixed: what was cached stays, the rest is not brought in
    EXPECT_GT(resident_before, 0.2);
    EXPECT_LT(resident_before, 0.8);
    EXPECT_LT(resident, resident_before + 0.05);
  }
}

// A file rewritten in place between two loads: the second load sees the new bytes (direct
// reads write back dirty cached pages first, buffered ones read them).
TEST_P(ReadStrategies, RewrittenFileIsNeverStale) {
  ScopedEnv strategy("RUNAI_STREAMER_FS_STRATEGY", GetParam().strategy);
  ScopedEnv io_uring("RUNAI_STREAMER_IO_URING", GetParam().io_uring);
  TempDir dir;
  std::mt19937_64 rng(41);
  const size_t size = (1 << 20) + 77;
  std::vector<uint8_t> content = RandomBytes(size, rng);
  const std::string path = dir.Write("model.bin", content);
  Streamer streamer(4, 256 << 10);
  for (int round = 0; round < 2; ++round) {
    if (round == 1) {  // new bytes, same size, same inode
      content = RandomBytes(size, rng);
      int fd = ::open(path.c_str(), O_WRONLY);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::pwrite(fd, content.data(), size, 0), static_cast<ssize_t>(size));
      ::close(fd);  // not synced: the new bytes may be only in the page cache
    }
    std::vector<uint8_t> got(size + 1, kUntouched);
    runai_range_t range{5, size - 5, got.data() + 1};
    runai_file_request_t file{path.c_str(), &range, 1, RUNAI_CHECKSUM_NONE, 0};
    uint64_t id = 0;
    ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
    for (const auto& [key, result] : WaitAll(streamer.get(), id, 1)) {
      ASSERT_EQ(result.status, RUNAI_OK) << result.message;
    }
    ASSERT_EQ(std::memcmp(got.data() + 1, content.data() + 5, size - 5), 0) << "round " << round;
    EXPECT_EQ(runai_streamer_release(streamer.get(), id), RUNAI_OK);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Strategies, ReadStrategies,
    ::testing::Values(StrategyCase{"auto", "warm", "1"}, StrategyCase{"auto", "cold", "1"},
                      StrategyCase{"auto", "mixed", "1"}, StrategyCase{"direct", "warm", "1"},
                      StrategyCase{"direct", "cold", "1"}, StrategyCase{"buffered", "cold", "1"},
                      StrategyCase{"auto", "mixed", "0"}, StrategyCase{"direct", "cold", "0"}),
    [](const ::testing::TestParamInfo<StrategyCase>& info) {
      return std::string(info.param.strategy) + "_" + info.param.cache +
             (info.param.io_uring[0] == '0' ? "_pread" : "");
    });

// tmpfs refuses O_DIRECT: "direct" falls back to buffered reads there, silently.
TEST(ReadStrategies, TmpfsFallsBackToBufferedReads) {
  struct statfs fs;
  ASSERT_EQ(::statfs("/dev/shm", &fs), 0) << "/dev/shm is needed (tmpfs)";
  ASSERT_EQ(fs.f_type, 0x01021994) << "/dev/shm is not tmpfs";  // TMPFS_MAGIC
  ScopedEnv tmpdir("TMPDIR", "/dev/shm");
  ScopedEnv strategy("RUNAI_STREAMER_FS_STRATEGY", "direct");
  Corpus corpus;
  MakeCorpus(&corpus, 4, 51);
  Streamer streamer(2, 8192);
  RandomRequest request(corpus, 500, 52);
  request.Submit(streamer.get());
  request.WaitAndCheck(streamer.get());
}

// Creating a streamer with name=value set fails with RUNAI_E_CONFIG naming both.
void ExpectConfigError(const char* name, const char* value) {
  ScopedEnv variable(name, value);
  runai_streamer_t* streamer = nullptr;
  EXPECT_EQ(runai_streamer_create(nullptr, &streamer), RUNAI_E_CONFIG);
  EXPECT_NE(std::string(runai_streamer_last_error()).find(std::string(name) + "='" + value + "'"),
            std::string::npos)
      << runai_streamer_last_error();
}

TEST(ReadStrategies, BadIoUringValueIsAConfigError) {
  ExpectConfigError("RUNAI_STREAMER_IO_URING", "yes");
}

TEST(ReadStrategies, BadValueIsAConfigError) {
  ExpectConfigError("RUNAI_STREAMER_FS_STRATEGY", "fast");
}

}  // namespace
}  // namespace runai::testing
