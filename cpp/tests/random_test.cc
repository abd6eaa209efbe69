// Randomised reads: many files, thousands of ranges of random offsets and
// sizes in random order, several requests and streamers at once; every byte
// is checked against the file, and bytes outside the ranges must stay as
// they were.
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

#include "test_util.h"

namespace runai::testing {
namespace {

constexpr uint8_t kUntouched = 0xAA;

struct Corpus {
  TempDir dir;
  std::vector<std::string> paths;
  std::vector<std::vector<uint8_t>> contents;
};

void MakeCorpus(Corpus* corpus, size_t files, uint64_t seed, const std::string& prefix = "") {
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < files; ++i) {
    // Sizes from empty to several chunks of 4 KiB, not page multiples.
    size_t size = i == 0 ? 0 : std::uniform_int_distribution<size_t>(1, 200000)(rng);
    corpus->contents.push_back(RandomBytes(size, rng));
    std::string name = "file" + std::to_string(i) + ".bin";
    corpus->dir.Write(name, corpus->contents.back());
    corpus->paths.push_back(prefix.empty() ? corpus->dir.path() + "/" + name : prefix + name);
  }
}

// One random request over the corpus and the buffer its ranges land in.
class RandomRequest {
 public:
  RandomRequest(const Corpus& corpus, size_t num_ranges, uint64_t seed) : corpus_(corpus) {
    std::mt19937_64 rng(seed);
    struct Planned {
      size_t file;
      uint64_t offset, size, dst_offset;
    };
    std::vector<Planned> planned;
    uint64_t buffer_size = 0;
    for (size_t i = 0; i < num_ranges; ++i) {
      int kind = std::uniform_int_distribution<int>(0, 9)(rng);
      Planned p{};
      if (kind < 3 && !planned.empty() &&
          planned.back().offset + planned.back().size <
              corpus.contents[planned.back().file].size()) {
        // Continues the previous range in the file, and (mergeable) in memory
        // or (not mergeable) after a gap in memory.
        const Planned& prev = planned.back();
        p.file = prev.file;
        p.offset = prev.offset + prev.size;
        uint64_t left = corpus.contents[p.file].size() - p.offset;
        p.size = std::uniform_int_distribution<uint64_t>(1, std::min<uint64_t>(left, 9000))(rng);
        if (kind == 0) buffer_size += std::uniform_int_distribution<uint64_t>(1, 5)(rng);
        p.dst_offset = buffer_size;
      } else {
        p.file = std::uniform_int_distribution<size_t>(0, corpus.contents.size() - 1)(rng);
        uint64_t file_size = corpus.contents[p.file].size();
        p.offset = std::uniform_int_distribution<uint64_t>(0, file_size)(rng);
        uint64_t left = file_size - p.offset;
        if (kind == 3 || left == 0) {
          p.size = 0;
        } else if (kind == 4) {
          p.size = left;  // to the end of the file, often several chunks
        } else {
          p.size = std::uniform_int_distribution<uint64_t>(1, std::min<uint64_t>(left, 20000))(rng);
        }
        buffer_size += std::uniform_int_distribution<uint64_t>(0, 7)(rng);  // a gap
        p.dst_offset = buffer_size;
      }
      buffer_size += p.size;
      planned.push_back(p);
    }
    buffer_.assign(buffer_size + 1, kUntouched);
    ranges_.resize(corpus.contents.size());
    for (const Planned& p : planned) {
      ranges_[p.file].push_back(runai_range_t{p.offset, p.size, buffer_.data() + p.dst_offset});
    }
    for (auto& file_ranges : ranges_) std::shuffle(file_ranges.begin(), file_ranges.end(), rng);
    for (size_t f = 0; f < ranges_.size(); ++f) {
      files_.push_back(
          runai_file_request_t{corpus.paths[f].c_str(), ranges_[f].data(), ranges_[f].size()});
    }
    num_ranges_ = num_ranges;
  }

  void Submit(runai_streamer_t* streamer) {
    ASSERT_EQ(runai_streamer_submit(streamer, files_.data(), files_.size(), &id_), RUNAI_OK)
        << runai_streamer_last_error();
    EXPECT_NE(id_, 0u);
  }

  // Collects some completions, cancels, and checks that nothing is written
  // after cancel returns and that every range is reported exactly once:
  // RUNAI_OK with the right bytes, or RUNAI_E_CANCELLED.
  void CancelAndCheck(runai_streamer_t* streamer, size_t collect_first) {
    std::map<std::pair<uint32_t, uint32_t>, Result> results;
    runai_completion_t completions[16];
    while (results.size() < collect_first) {
      size_t count = 0;
      int status = runai_streamer_wait(streamer, id_, completions, 16, 20000, &count);
      if (status == RUNAI_E_IDLE) break;
      ASSERT_EQ(status, RUNAI_OK) << runai_streamer_last_error();
      for (size_t i = 0; i < count; ++i) {
        results[{completions[i].file_index, completions[i].range_index}] =
            Result{completions[i].status, ""};
      }
    }
    ASSERT_EQ(runai_streamer_cancel(streamer, id_), RUNAI_OK);
    std::vector<uint8_t> snapshot = buffer_;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(snapshot, buffer_) << "written after cancel returned";
    auto rest = WaitAll(streamer, id_, num_ranges_ - results.size());
    for (const auto& [key, result] : rest) {
      EXPECT_EQ(results.count(key), 0u) << "range reported twice";
      results[key] = result;
    }
    ASSERT_EQ(results.size(), num_ranges_);
    for (const auto& [key, result] : results) {
      const runai_range_t& range = ranges_[key.first][key.second];
      if (result.status == RUNAI_E_CANCELLED) {
        ++cancelled_;
        continue;
      }
      ASSERT_EQ(result.status, RUNAI_OK) << result.message;
      if (range.size == 0) continue;
      ASSERT_EQ(
          std::memcmp(range.dst, corpus_.contents[key.first].data() + range.offset, range.size), 0);
    }
    EXPECT_EQ(runai_streamer_release(streamer, id_), RUNAI_OK);
  }

  size_t cancelled() const { return cancelled_; }

  void WaitAndCheck(runai_streamer_t* streamer) {
    auto results = WaitAll(streamer, id_, num_ranges_);
    std::vector<bool> covered(buffer_.size(), false);
    for (size_t f = 0; f < ranges_.size(); ++f) {
      for (size_t r = 0; r < ranges_[f].size(); ++r) {
        const runai_range_t& range = ranges_[f][r];
        auto found = results.find({static_cast<uint32_t>(f), static_cast<uint32_t>(r)});
        ASSERT_NE(found, results.end()) << "file " << f << " range " << r << " not reported";
        ASSERT_EQ(found->second.status, RUNAI_OK) << found->second.message;
        if (range.size == 0) continue;  // its dst may be anything, even NULL
        const uint8_t* expected = corpus_.contents[f].data() + range.offset;
        ASSERT_EQ(std::memcmp(range.dst, expected, range.size), 0)
            << "wrong bytes in file " << f << " range [" << range.offset << ", "
            << range.offset + range.size << ")";
        size_t start = static_cast<uint8_t*>(range.dst) - buffer_.data();
        std::fill(covered.begin() + start, covered.begin() + start + range.size, true);
      }
    }
    for (size_t i = 0; i < buffer_.size(); ++i) {
      if (!covered[i]) {
        ASSERT_EQ(buffer_[i], kUntouched) << "byte " << i << " written outside ranges";
      }
    }
    EXPECT_EQ(runai_streamer_release(streamer, id_), RUNAI_OK);
  }

 private:
  const Corpus& corpus_;
  std::vector<uint8_t> buffer_;
  std::vector<std::vector<runai_range_t>> ranges_;
  std::vector<runai_file_request_t> files_;
  size_t num_ranges_ = 0;
  size_t cancelled_ = 0;
  uint64_t id_ = 0;
};

TEST(RandomReads, OneRequestThousandsOfRanges) {
  Corpus corpus;
  MakeCorpus(&corpus, 12, 1);
  Streamer streamer(4, 4096);
  RandomRequest request(corpus, 3000, 2);
  request.Submit(streamer.get());
  request.WaitAndCheck(streamer.get());
}

TEST(RandomReads, ConcurrentRequestsOnOneStreamer) {
  Corpus corpus;
  MakeCorpus(&corpus, 10, 3);
  Streamer streamer(3, 8192);
  std::vector<std::unique_ptr<RandomRequest>> requests;
  for (int i = 0; i < 4; ++i) {
    requests.push_back(std::make_unique<RandomRequest>(corpus, 1500, 10 + i));
  }
  // All in flight at once, submitted and collected from several threads.
  std::vector<std::thread> threads;
  for (auto& request : requests) {
    threads.emplace_back([&streamer, &request] {
      request->Submit(streamer.get());
      request->WaitAndCheck(streamer.get());
    });
  }
  for (auto& thread : threads) thread.join();
}

TEST(RandomReads, SeveralStreamersInThreads) {
  Corpus corpus;
  MakeCorpus(&corpus, 8, 4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&corpus, t] {
      Streamer streamer(2 + t, 4096 << t);
      for (int round = 0; round < 2; ++round) {
        RandomRequest request(corpus, 1000, 100 + 10 * t + round);
        request.Submit(streamer.get());
        request.WaitAndCheck(streamer.get());
      }
    });
  }
  for (auto& thread : threads) thread.join();
}

TEST(RandomReads, CancelAtRandomPoints) {
  Corpus corpus;
  MakeCorpus(&corpus, 8, 7);
  Streamer streamer(3, 4096);
  std::mt19937_64 rng(8);
  size_t cancelled = 0;
  for (int round = 0; round < 6; ++round) {
    std::vector<std::unique_ptr<RandomRequest>> requests;
    std::vector<size_t> collect_first;
    for (int i = 0; i < 3; ++i) {
      requests.push_back(std::make_unique<RandomRequest>(corpus, 800, 1000 + 10 * round + i));
      collect_first.push_back(std::uniform_int_distribution<size_t>(0, 400)(rng));
    }
    std::vector<std::thread> threads;
    for (size_t i = 0; i < requests.size(); ++i) {
      threads.emplace_back([&, i] {
        requests[i]->Submit(streamer.get());
        requests[i]->CancelAndCheck(streamer.get(), collect_first[i]);
      });
    }
    for (auto& thread : threads) thread.join();
    for (auto& request : requests) cancelled += request->cancelled();
  }
  // Thousands of ranges are in flight when cancel lands; some must be cut off.
  EXPECT_GT(cancelled, 0u);
}

TEST(RandomReads, ThroughTestfsPlugin) {
  Corpus corpus;
  MakeCorpus(&corpus, 6, 5, "tfs://");
  Streamer streamer(4, 4096);
  const char* keys[] = {"root"};
  const char* values[] = {corpus.dir.path().c_str()};
  ASSERT_EQ(runai_streamer_register_backend(streamer.get(), "tfs", TESTFS_PLUGIN, keys, values, 1),
            RUNAI_OK)
      << runai_streamer_last_error();
  RandomRequest request(corpus, 1000, 6);
  request.Submit(streamer.get());
  request.WaitAndCheck(streamer.get());
}

// ---- the ways of reading local files (RUNAI_STREAMER_FS_STRATEGY) ---------------------------

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
  runai_file_request_t file{path.c_str(), ranges.data(), ranges.size()};
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
    runai_file_request_t file{path.c_str(), &range, 1};
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
