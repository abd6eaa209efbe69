// Backend plugins: registration failures, and the engine reading through the
// streamer_testfs plugin (data, errors, timeouts, cancellation).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "streamer/backend.h"
#include "test_util.h"

namespace runai::testing {
namespace {

using ::testing::HasSubstr;

int Register(runai_streamer_t* streamer, const char* scheme, const char* library,
             const std::vector<std::pair<std::string, std::string>>& options) {
  std::vector<const char*> keys, values;
  for (const auto& option : options) {
    keys.push_back(option.first.c_str());
    values.push_back(option.second.c_str());
  }
  return runai_streamer_register_backend(streamer, scheme, library, keys.data(), values.data(),
                                         options.size());
}

TEST(Plugin, MissingLibrary) {
  Streamer streamer;
  const char* library = "/nonexistent/libstreamer_nothing.so";
  EXPECT_EQ(Register(streamer.get(), "x", library, {}), RUNAI_E_PLUGIN);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr(library));
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("cannot load"));
}

TEST(Plugin, RelativePath) {
  Streamer streamer;
  EXPECT_EQ(Register(streamer.get(), "x", "libstreamer_testfs.so", {}), RUNAI_E_PLUGIN);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("libstreamer_testfs.so"));
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("must be absolute"));
}

TEST(Plugin, MissingSymbol) {
  Streamer streamer;
  EXPECT_EQ(Register(streamer.get(), "x", NO_READ_PLUGIN, {}), RUNAI_E_PLUGIN);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr(NO_READ_PLUGIN));
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("missing symbol runai_backend_read"));
}

TEST(Plugin, AbiMismatch) {
  Streamer streamer;
  EXPECT_EQ(Register(streamer.get(), "x", BAD_ABI_PLUGIN, {}), RUNAI_E_PLUGIN);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr(BAD_ABI_PLUGIN));
  const std::string abi = std::to_string(RUNAI_BACKEND_ABI_VERSION);
  EXPECT_THAT(runai_streamer_last_error(),
              HasSubstr("ABI version " + std::to_string(RUNAI_BACKEND_ABI_VERSION + 100) +
                        ", expected " + abi));
}

TEST(Plugin, CreateFailures) {
  Streamer streamer;
  EXPECT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, {}), RUNAI_E_PLUGIN);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr(TESTFS_PLUGIN));
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("option 'root' is required"));
  TempDir dir;
  EXPECT_EQ(
      Register(streamer.get(), "tfs", TESTFS_PLUGIN, {{"root", dir.path()}, {"colour", "red"}}),
      RUNAI_E_PLUGIN);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("unknown option 'colour'"));
  EXPECT_EQ(
      Register(streamer.get(), "tfs", TESTFS_PLUGIN, {{"root", dir.path()}, {"delay_ms", "x"}}),
      RUNAI_E_PLUGIN);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("delay_ms='x'"));
  EXPECT_EQ(Register(streamer.get(), "bad scheme", TESTFS_PLUGIN, {{"root", dir.path()}}),
            RUNAI_E_INVALID_ARGUMENT);
  // Nothing was registered by the failures.
  uint64_t size = 0;
  EXPECT_EQ(runai_streamer_file_size(streamer.get(), "tfs://a", &size), RUNAI_E_UNSUPPORTED_SCHEME);
}

// A plugin stays mapped after its streamer is gone: one that links its own OpenSSL leaves an
// atexit handler behind, which must still point at code when the process exits.
TEST(Plugin, StaysLoadedAfterTheStreamerIsDestroyed) {
  TempDir dir;
  {
    Streamer streamer;
    ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, {{"root", dir.path()}}), RUNAI_OK)
        << runai_streamer_last_error();
  }
  void* handle = dlopen(TESTFS_PLUGIN, RTLD_NOW | RTLD_NOLOAD);
  EXPECT_NE(handle, nullptr) << TESTFS_PLUGIN << " was unloaded";
  if (handle != nullptr) dlclose(handle);
}

class TestfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(42);
    content_ = RandomBytes(64 * 1024, rng);
    dir_.Write("model.bin", content_);
    other_ = RandomBytes(1000, rng);
    dir_.Write("other.bin", other_);
  }

  std::vector<std::pair<std::string, std::string>> Options(
      std::vector<std::pair<std::string, std::string>> extra = {}) {
    extra.emplace_back("root", dir_.path());
    return extra;
  }

  TempDir dir_;
  std::vector<uint8_t> content_;
  std::vector<uint8_t> other_;
};

TEST_F(TestfsTest, ServesDataSizeAndListThroughTheEngine) {
  Streamer streamer(4, 4096);
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options()), RUNAI_OK)
      << runai_streamer_last_error();
  uint64_t size = 0;
  ASSERT_EQ(runai_streamer_file_size(streamer.get(), "tfs://model.bin", &size), RUNAI_OK);
  EXPECT_EQ(size, content_.size());
  EXPECT_EQ(runai_streamer_file_size(streamer.get(), "tfs://missing.bin", &size),
            RUNAI_E_NOT_FOUND);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("tfs://missing.bin"));

  std::vector<std::string> names;
  auto collect = [](const char* path, uint64_t, void* context) {
    static_cast<std::vector<std::string>*>(context)->push_back(path);
    return 0;
  };
  ASSERT_EQ(runai_streamer_list(streamer.get(), "tfs://", collect, &names), RUNAI_OK)
      << runai_streamer_last_error();
  EXPECT_EQ(names, (std::vector<std::string>{"tfs://model.bin", "tfs://other.bin"}));

  std::vector<uint8_t> buffer(content_.size());
  runai_range_t ranges[] = {{0, 30000, buffer.data()},
                            {30000, content_.size() - 30000, buffer.data() + 30000}};
  runai_file_request_t file{"tfs://model.bin", ranges, 2, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  auto results = WaitAll(streamer.get(), id, 2);
  for (const auto& entry : results)
    EXPECT_EQ(entry.second.status, RUNAI_OK) << entry.second.message;
  EXPECT_EQ(buffer, content_);
}

TEST_F(TestfsTest, AnObjectsSizeGivenWithTheRequestIsTakenWithoutAskingTheBackend) {
  Streamer streamer(4, 4096);
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options()), RUNAI_OK);
  std::vector<uint8_t> buffer(content_.size());
  runai_range_t whole{0, content_.size(), buffer.data()};
  runai_file_request_t known{"tfs://model.bin", &whole, 1, RUNAI_CHECKSUM_NONE, content_.size()};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &known, 1, &id), RUNAI_OK);
  for (const auto& entry : WaitAll(streamer.get(), id, 1)) {
    EXPECT_EQ(entry.second.status, RUNAI_OK) << entry.second.message;
  }
  EXPECT_EQ(buffer, content_);
  // A smaller size given is believed (the backend would have said the whole size): the range
  // runs past it.
  runai_file_request_t smaller{"tfs://model.bin", &whole, 1, RUNAI_CHECKSUM_NONE, 1000};
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &smaller, 1, &id), RUNAI_OK);
  for (const auto& entry : WaitAll(streamer.get(), id, 1)) {
    EXPECT_EQ(entry.second.status, RUNAI_E_EOF) << entry.second.message;
  }
}

TEST_F(TestfsTest, EveryReadLiesInOneChunkAlignedSlotOfTheFile) {
  Streamer streamer(4, 4096);
  const std::string log = dir_.path() + "/reads.log";
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options({{"read_log", log}})), RUNAI_OK);
  std::vector<uint8_t> buffer(content_.size());
  // An unaligned start, a neighbour (merged into the same read) and one after a gap.
  runai_range_t ranges[] = {{100, 20000, buffer.data() + 100},
                            {20100, 300, buffer.data() + 20100},
                            {30000, 5000, buffer.data() + 30000}};
  runai_file_request_t file{"tfs://model.bin", ranges, 3, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  for (const auto& entry : WaitAll(streamer.get(), id, 3)) {
    EXPECT_EQ(entry.second.status, RUNAI_OK) << entry.second.message;
  }
  for (const runai_range_t& range : ranges) {
    EXPECT_EQ(0, std::memcmp(range.dst, content_.data() + range.offset, range.size));
  }
  std::ifstream lines(log);
  uint64_t offset = 0, size = 0, total = 0;
  std::string uri;
  std::vector<uint64_t> starts;
  while (lines >> offset >> size >> uri) {
    EXPECT_EQ(offset / 4096, (offset + size - 1) / 4096) << offset << " +" << size;
    starts.push_back(offset);
    total += size;
  }
  EXPECT_EQ(total, 20000u + 300u + 5000u);
  std::sort(starts.begin(), starts.end());
  EXPECT_EQ(starts, (std::vector<uint64_t>{100, 4096, 8192, 12288, 16384, 30000, 32768}));
}

TEST_F(TestfsTest, TheFirstReadOfARequestEndsAtItsFirstMebibyte) {
  // So the first tensors arrive after a short read, whatever the chunk size; the rest of the
  // first chunk-aligned slot is the next read.
  std::mt19937_64 rng(11);
  const std::vector<uint8_t> content = RandomBytes(4 << 20, rng);
  dir_.Write("big.bin", content);
  Streamer streamer(2, 8 << 20);
  const std::string log = dir_.path() + "/reads.log";
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options({{"read_log", log}})), RUNAI_OK);
  std::vector<uint8_t> buffer((3 << 20) + 100);
  runai_range_t range{100, buffer.size(), buffer.data()};
  runai_file_request_t file{"tfs://big.bin", &range, 1, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  for (const auto& entry : WaitAll(streamer.get(), id, 1)) {
    EXPECT_EQ(entry.second.status, RUNAI_OK) << entry.second.message;
  }
  EXPECT_EQ(0, std::memcmp(buffer.data(), content.data() + 100, buffer.size()));
  std::ifstream lines(log);
  uint64_t offset = 0, size = 0;
  std::string uri;
  std::vector<std::pair<uint64_t, uint64_t>> reads;
  while (lines >> offset >> size >> uri) reads.emplace_back(offset, size);
  std::sort(reads.begin(), reads.end());
  const uint64_t mib = 1 << 20;
  EXPECT_EQ(reads,
            (std::vector<std::pair<uint64_t, uint64_t>>{{100, mib - 100}, {mib, 2 * mib + 200}}));
}

TEST_F(TestfsTest, TwoSchemesServedAtOnce) {
  TempDir second;
  std::vector<uint8_t> second_content(5000, 0x77);
  second.Write("model.bin", second_content);
  Streamer streamer(4, 4096);
  ASSERT_EQ(Register(streamer.get(), "tfa", TESTFS_PLUGIN, Options()), RUNAI_OK);
  ASSERT_EQ(Register(streamer.get(), "tfb", TESTFS_PLUGIN, {{"root", second.path()}}), RUNAI_OK);
  std::vector<uint8_t> a(5000), b(5000);
  runai_range_t range_a{0, 5000, a.data()};
  runai_range_t range_b{0, 5000, b.data()};
  runai_file_request_t files[] = {{"tfa://model.bin", &range_a, 1, RUNAI_CHECKSUM_NONE, 0},
                                  {"tfb://model.bin", &range_b, 1, RUNAI_CHECKSUM_NONE, 0}};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), files, 2, &id), RUNAI_OK);
  auto results = WaitAll(streamer.get(), id, 2);
  for (const auto& entry : results)
    EXPECT_EQ(entry.second.status, RUNAI_OK) << entry.second.message;
  EXPECT_EQ(0, std::memcmp(a.data(), content_.data(), 5000));
  EXPECT_EQ(b, second_content);
}

TEST_F(TestfsTest, ReRegisteringReplacesTheScheme) {
  TempDir second;
  second.Write("model.bin", std::vector<uint8_t>(10, 0x11));
  Streamer streamer;
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options()), RUNAI_OK);
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, {{"root", second.path()}}), RUNAI_OK);
  uint64_t size = 0;
  ASSERT_EQ(runai_streamer_file_size(streamer.get(), "tfs://model.bin", &size), RUNAI_OK);
  EXPECT_EQ(size, 10u);
}

TEST_F(TestfsTest, PathEscapeIsRejected) {
  Streamer streamer;
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options()), RUNAI_OK);
  char byte;
  runai_range_t range{0, 1, &byte};
  runai_file_request_t file{"tfs://sub/../../etc/passwd", &range, 1, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  auto results = WaitAll(streamer.get(), id, 1);
  const Result& result = results[{0, 0}];
  EXPECT_EQ(result.status, RUNAI_E_INVALID_ARGUMENT);
  EXPECT_THAT(result.message, HasSubstr("escapes"));
}

TEST_F(TestfsTest, ServerFailureSurfacesAsFailedRanges) {
  Streamer streamer(1, 4096);  // one worker: bytes are served in a known order
  ASSERT_EQ(
      Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options({{"fail_after_bytes", "16384"}})),
      RUNAI_OK);
  std::vector<uint8_t> buffer(content_.size());
  std::vector<runai_range_t> ranges;
  for (uint64_t offset = 0; offset < content_.size(); offset += 8192) {
    ranges.push_back({offset, 8192, buffer.data() + offset + 0});
  }
  // Keep the ranges apart in memory so each is its own read.
  std::vector<std::vector<uint8_t>> destinations(ranges.size(), std::vector<uint8_t>(8192));
  for (size_t i = 0; i < ranges.size(); ++i) ranges[i].dst = destinations[i].data();
  runai_file_request_t file{"tfs://model.bin", ranges.data(), ranges.size(), RUNAI_CHECKSUM_NONE,
                            0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  auto results = WaitAll(streamer.get(), id, ranges.size());
  int ok = 0, failed = 0;
  for (const auto& [key, result] : results) {
    const runai_range_t& range = ranges[key.second];
    if (result.status == RUNAI_OK) {
      ++ok;
      EXPECT_EQ(0, std::memcmp(range.dst, content_.data() + range.offset, range.size));
    } else {
      ++failed;
      EXPECT_EQ(result.status, RUNAI_E_BACKEND);
      EXPECT_THAT(result.message, HasSubstr("simulated server failure"));
      EXPECT_THAT(result.message, HasSubstr("tfs://model.bin"));
      EXPECT_THAT(result.message, HasSubstr("[" + std::to_string(range.offset) + ", " +
                                            std::to_string(range.offset + range.size) + ")"));
    }
  }
  EXPECT_EQ(ok, 2);  // 16 KiB served = the first two ranges of 8 KiB
  EXPECT_EQ(failed, static_cast<int>(ranges.size()) - 2);
}

TEST_F(TestfsTest, WaitTimesOut) {
  Streamer streamer(1, 4096);
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options({{"delay_ms", "1000"}})),
            RUNAI_OK);
  char byte;
  runai_range_t range{0, 1, &byte};
  runai_file_request_t file{"tfs://model.bin", &range, 1, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  runai_completion_t completion;
  size_t count = 9;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(runai_streamer_wait(streamer.get(), id, &completion, 1, 50, &count), RUNAI_E_TIMEOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(runai_streamer_wait(streamer.get(), 0, &completion, 1, 0, &count), RUNAI_E_TIMEOUT);
  // Then it completes.
  ASSERT_EQ(runai_streamer_wait(streamer.get(), id, &completion, 1, 10000, &count), RUNAI_OK);
  EXPECT_EQ(completion.status, RUNAI_OK);
  EXPECT_EQ(static_cast<uint8_t>(byte), content_[0]);
}

TEST_F(TestfsTest, CancelMidRequestReportsEveryRangeOnceAndStopsWriting) {
  Streamer streamer(2, 4096);
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options({{"delay_ms", "50"}})),
            RUNAI_OK);
  const size_t kRanges = 16;
  std::vector<std::vector<uint8_t>> destinations(kRanges, std::vector<uint8_t>(4096, 0xCC));
  std::vector<runai_range_t> ranges;
  for (size_t i = 0; i < kRanges; ++i) ranges.push_back({i * 4096, 4096, destinations[i].data()});
  runai_file_request_t file{"tfs://model.bin", ranges.data(), ranges.size(), RUNAI_CHECKSUM_NONE,
                            0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  runai_completion_t first;
  size_t count = 0;
  ASSERT_EQ(runai_streamer_wait(streamer.get(), id, &first, 1, 10000, &count), RUNAI_OK);
  ASSERT_EQ(runai_streamer_cancel(streamer.get(), id), RUNAI_OK);
  auto snapshot = destinations;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(snapshot, destinations) << "a worker wrote after cancel returned";

  auto results = WaitAll(streamer.get(), id, kRanges - 1);
  EXPECT_EQ(results.count({0, first.range_index}), 0u) << "first range reported twice";
  results[{0, first.range_index}] = Result{first.status, ""};
  int cancelled = 0;
  for (const auto& [key, result] : results) {
    const runai_range_t& range = ranges[key.second];
    if (result.status == RUNAI_OK) {
      EXPECT_EQ(0, std::memcmp(range.dst, content_.data() + range.offset, range.size));
    } else {
      EXPECT_EQ(result.status, RUNAI_E_CANCELLED);
      EXPECT_THAT(result.message, HasSubstr("tfs://model.bin"));
      ++cancelled;
    }
  }
  EXPECT_GT(cancelled, 0);
  EXPECT_EQ(runai_streamer_cancel(streamer.get(), id), RUNAI_OK);  // again: nothing new
  runai_completion_t completion;
  EXPECT_EQ(runai_streamer_wait(streamer.get(), id, &completion, 1, 0, &count), RUNAI_E_IDLE);
}

TEST_F(TestfsTest, PiecesReadAreReportedBeforeALongReadOfTheSameTask) {
  // One task (both ranges lie in one 8 MiB slot): a small range, then, after a gap, 2 MiB.
  // The small one is reported when it is read, not after the long read that follows it.
  std::mt19937_64 rng(7);
  const std::vector<uint8_t> content = RandomBytes(3 << 20, rng);
  dir_.Write("large.bin", content);
  Streamer streamer(1, 8 << 20);
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options({{"delay_ms", "300"}})),
            RUNAI_OK);
  std::vector<uint8_t> small(100), large(2 << 20);
  runai_range_t ranges[2] = {{0, small.size(), small.data()}, {4096, large.size(), large.data()}};
  runai_file_request_t file{"tfs://large.bin", ranges, 2, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  runai_completion_t completions[2];
  size_t count = 0;
  ASSERT_EQ(runai_streamer_wait(streamer.get(), id, completions, 2, 10000, &count), RUNAI_OK);
  ASSERT_EQ(count, 1u) << "the small range waited for the long read";
  EXPECT_EQ(completions[0].range_index, 0u);
  EXPECT_EQ(0, std::memcmp(small.data(), content.data(), small.size()));
  ASSERT_EQ(runai_streamer_wait(streamer.get(), id, completions, 2, 10000, &count), RUNAI_OK);
  ASSERT_EQ(count, 1u);
  EXPECT_EQ(completions[0].range_index, 1u);
  EXPECT_EQ(completions[0].status, RUNAI_OK);
  EXPECT_EQ(0, std::memcmp(large.data(), content.data() + 4096, large.size()));
}

TEST_F(TestfsTest, ReleaseAndDestroyWhileReading) {
  const size_t kRanges = 16;
  std::vector<std::vector<uint8_t>> destinations(kRanges, std::vector<uint8_t>(4096, 0xCC));
  std::vector<runai_range_t> ranges;
  for (size_t i = 0; i < kRanges; ++i) ranges.push_back({i * 4096, 4096, destinations[i].data()});
  runai_file_request_t file{"tfs://model.bin", ranges.data(), ranges.size(), RUNAI_CHECKSUM_NONE,
                            0};
  {
    Streamer streamer(4, 4096);
    ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options({{"delay_ms", "20"}})),
              RUNAI_OK);
    uint64_t id = 0;
    ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
    ASSERT_EQ(runai_streamer_release(streamer.get(), id), RUNAI_OK);
    auto snapshot = destinations;
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    EXPECT_EQ(snapshot, destinations) << "a worker wrote after release returned";
    runai_completion_t completion;
    size_t count = 0;
    EXPECT_EQ(runai_streamer_wait(streamer.get(), 0, &completion, 1, 0, &count), RUNAI_E_IDLE);
  }
  Streamer streamer(4, 4096);
  ASSERT_EQ(Register(streamer.get(), "tfs", TESTFS_PLUGIN, Options({{"delay_ms", "20"}})),
            RUNAI_OK);
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  // A waiter blocked on the streamer does not stop its destruction... but
  // waiting and destroying at once is the caller's race, so only destroy here.
  streamer.Destroy();
  auto snapshot = destinations;
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(snapshot, destinations) << "a worker wrote after destroy returned";
}

}  // namespace
}  // namespace runai::testing
