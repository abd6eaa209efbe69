// The C API on local files: reads, errors, requests, cancellation, listing and
// the allocator (configuration: config_test.cc).
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include <gmock/gmock.h>

#include "test_util.h"

namespace runai::testing {
namespace {

using ::testing::HasSubstr;

// Reads one range of one file and returns its completion.
Result ReadOne(runai_streamer_t* streamer, const std::string& path, uint64_t offset, uint64_t size,
               void* dst) {
  runai_range_t range{offset, size, dst};
  runai_file_request_t file{path.c_str(), &range, 1, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  EXPECT_EQ(runai_streamer_submit(streamer, &file, 1, &id), RUNAI_OK)
      << runai_streamer_last_error();
  auto results = WaitAll(streamer, id, 1);
  EXPECT_EQ(runai_streamer_release(streamer, id), RUNAI_OK);
  return results.empty() ? Result{-1, "no completion"} : results.begin()->second;
}

TEST(Api, VersionAndNames) {
  EXPECT_STREQ(runai_streamer_version(), STREAMER_VERSION_EXPECTED);
  EXPECT_EQ(runai_streamer_api_version(), RUNAI_STREAMER_API_VERSION);
  EXPECT_STREQ(runai_streamer_status_name(RUNAI_E_CANCELLED), "RUNAI_E_CANCELLED");
  EXPECT_STREQ(runai_streamer_status_name(999), "RUNAI_E_UNKNOWN_STATUS");
}

TEST(Read, WholeFileAndRanges) {
  TempDir dir;
  std::mt19937_64 rng(7);
  auto content = RandomBytes(50000, rng);
  std::string path = dir.Write("a.bin", content);
  Streamer streamer(4, 4096);
  std::vector<uint8_t> whole(content.size());
  Result result = ReadOne(streamer.get(), path, 0, content.size(), whole.data());
  ASSERT_EQ(result.status, RUNAI_OK) << result.message;
  EXPECT_EQ(whole, content);
  std::vector<uint8_t> part(10);
  result = ReadOne(streamer.get(), path, content.size() - 10, 10, part.data());
  ASSERT_EQ(result.status, RUNAI_OK) << result.message;
  EXPECT_EQ(0, std::memcmp(part.data(), content.data() + content.size() - 10, 10));
}

TEST(Read, MissingFileNamesPathRangeAndCause) {
  TempDir dir;
  Streamer streamer;
  std::string path = dir.path() + "/missing.bin";
  char byte;
  Result result = ReadOne(streamer.get(), path, 5, 1, &byte);
  EXPECT_EQ(result.status, RUNAI_E_NOT_FOUND);
  EXPECT_THAT(result.message, HasSubstr(path));
  EXPECT_THAT(result.message, HasSubstr("[5, 6)"));
  EXPECT_THAT(result.message, HasSubstr("No such file or directory"));
}

TEST(Read, DirectoryIsNotAFile) {
  TempDir dir;
  Streamer streamer;
  char byte;
  Result result = ReadOne(streamer.get(), dir.path(), 0, 1, &byte);
  EXPECT_EQ(result.status, RUNAI_E_NOT_A_FILE);
  EXPECT_THAT(result.message, HasSubstr(dir.path()));
  EXPECT_THAT(result.message, HasSubstr("directory"));
}

TEST(Read, FifoIsNotAFileAndDoesNotHang) {
  TempDir dir;
  std::string path = dir.path() + "/pipe";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  Streamer streamer;
  char byte;
  Result result = ReadOne(streamer.get(), path, 0, 1, &byte);
  EXPECT_EQ(result.status, RUNAI_E_NOT_A_FILE);
  EXPECT_THAT(result.message, HasSubstr(path));
}

// Reads one byte of a mode-000 file; returns a non-empty string naming what
// was wrong, empty when the read failed as it should.
std::string CheckPermissionDenied(const std::string& path) {
  Streamer streamer;
  char byte;
  Result result = ReadOne(streamer.get(), path, 0, 1, &byte);
  if (result.status != RUNAI_E_PERMISSION) return "status " + std::to_string(result.status);
  if (result.message.find(path) == std::string::npos) return "path missing: " + result.message;
  if (result.message.find("Permission denied") == std::string::npos) {
    return "cause missing: " + result.message;
  }
  return "";
}

TEST(Read, PermissionDenied) {
  TempDir dir;
  std::string path = dir.Write("secret.bin", std::vector<uint8_t>(10, 1));
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  if (::geteuid() != 0) {
    EXPECT_EQ(CheckPermissionDenied(path), "");
    return;
  }
  // Root ignores file modes: read as "nobody" in a child process instead.
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    std::string failure = (::setgid(65534) == 0 && ::setuid(65534) == 0)
                              ? CheckPermissionDenied(path)
                              : "could not drop privileges";
    ssize_t written = ::write(pipe_fds[1], failure.data(), failure.size());
    ::_exit(written == static_cast<ssize_t>(failure.size()) ? 0 : 1);
  }
  ::close(pipe_fds[1]);
  std::string failure;
  char buffer[256];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) failure.append(buffer, n);
  ::close(pipe_fds[0]);
  int wait_status = 0;
  ASSERT_EQ(::waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0);
  EXPECT_EQ(failure, "");
}

TEST(Read, RangePastEndOfFileIsAnErrorNotZeros) {
  TempDir dir;
  std::mt19937_64 rng(8);
  auto content = RandomBytes(100, rng);
  std::string path = dir.Write("short.bin", content);
  Streamer streamer(2, 4096);
  // Adjacent in file and memory, so a naive merge would read them together.
  std::vector<uint8_t> buffer(120, 0xEE);
  runai_range_t ranges[] = {
      {0, 90, buffer.data()}, {90, 20, buffer.data() + 90}, {100, 1, buffer.data() + 110}};
  runai_file_request_t file{path.c_str(), ranges, 3, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  auto results = WaitAll(streamer.get(), id, 3);
  const Result& first = results[{0, 0}];
  EXPECT_EQ(first.status, RUNAI_OK) << first.message;
  EXPECT_EQ(0, std::memcmp(buffer.data(), content.data(), 90));
  for (uint32_t r : {1u, 2u}) {
    const Result& eof = results[{0, r}];
    EXPECT_EQ(eof.status, RUNAI_E_EOF);
    EXPECT_THAT(eof.message, HasSubstr(path));
    EXPECT_THAT(eof.message, HasSubstr("file size 100"));
  }
  EXPECT_THAT((results[{0, 1}].message), HasSubstr("[90, 110)"));
  EXPECT_THAT((results[{0, 2}].message), HasSubstr("[100, 101)"));
  EXPECT_EQ(buffer[110], 0xEE);  // nothing invented for the failed range
}

TEST(Read, EmptyRangesCompleteAtOnceEvenForMissingFiles) {
  Streamer streamer;
  runai_range_t range{0, 0, nullptr};
  runai_file_request_t file{"/nonexistent/file", &range, 1, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
  runai_completion_t completion;
  size_t count = 0;
  ASSERT_EQ(runai_streamer_wait(streamer.get(), id, &completion, 1, 0, &count), RUNAI_OK);
  EXPECT_EQ(count, 1u);
  EXPECT_EQ(completion.status, RUNAI_OK);
  EXPECT_EQ(runai_streamer_wait(streamer.get(), id, &completion, 1, 0, &count), RUNAI_E_IDLE);
}

TEST(Submit, RejectsBadArgumentsAndReadsNothing) {
  TempDir dir;
  std::string path = dir.Write("f.bin", std::vector<uint8_t>(100, 3));
  Streamer streamer;
  uint64_t id = 0;
  std::vector<uint8_t> buffer(10, 0);
  runai_range_t good{0, 10, buffer.data()};
  runai_range_t null_dst{0, 10, nullptr};
  runai_range_t overflow{UINT64_MAX - 5, 10, buffer.data()};
  const runai_range_t* bad_ranges[] = {&null_dst, &overflow};
  for (const runai_range_t* bad : bad_ranges) {
    runai_range_t ranges[] = {good, *bad};
    runai_file_request_t file{path.c_str(), ranges, 2, RUNAI_CHECKSUM_NONE, 0};
    EXPECT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_E_INVALID_ARGUMENT);
    EXPECT_THAT(runai_streamer_last_error(), HasSubstr(path));
  }
  runai_file_request_t null_path{nullptr, &good, 1, RUNAI_CHECKSUM_NONE, 0};
  EXPECT_EQ(runai_streamer_submit(streamer.get(), &null_path, 1, &id), RUNAI_E_INVALID_ARGUMENT);
  runai_file_request_t null_ranges{path.c_str(), nullptr, 1, RUNAI_CHECKSUM_NONE, 0};
  EXPECT_EQ(runai_streamer_submit(streamer.get(), &null_ranges, 1, &id), RUNAI_E_INVALID_ARGUMENT);
  EXPECT_EQ(runai_streamer_submit(streamer.get(), nullptr, 1, &id), RUNAI_E_INVALID_ARGUMENT);
  EXPECT_EQ(runai_streamer_submit(nullptr, &null_path, 1, &id), RUNAI_E_INVALID_ARGUMENT);
  size_t count = 0;
  runai_completion_t completion;
  EXPECT_EQ(runai_streamer_wait(streamer.get(), 0, &completion, 1, 0, &count), RUNAI_E_IDLE);
  EXPECT_EQ(buffer, std::vector<uint8_t>(10, 0));
}

TEST(Submit, UnsupportedSchemeFailsAtSubmit) {
  Streamer streamer;
  char byte;
  runai_range_t range{0, 1, &byte};
  runai_file_request_t file{"s3://bucket/model.safetensors", &range, 1, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  EXPECT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_E_UNSUPPORTED_SCHEME);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("s3://bucket/model.safetensors"));
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("'s3'"));
  uint64_t size = 0;
  EXPECT_EQ(runai_streamer_file_size(streamer.get(), "gs://b/o", &size),
            RUNAI_E_UNSUPPORTED_SCHEME);
}

TEST(Submit, OnlyRealSchemesAreUris) {
  Streamer streamer;
  char byte;
  uint64_t id = 0;
  // Upper case schemes are schemes too.
  runai_range_t range{0, 1, &byte};
  runai_file_request_t upper{"S3://bucket/key", &range, 1, RUNAI_CHECKSUM_NONE, 0};
  EXPECT_EQ(runai_streamer_submit(streamer.get(), &upper, 1, &id), RUNAI_E_UNSUPPORTED_SCHEME);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("'s3'"));
  // Paths that merely contain "://" are local files.
  for (const char* path : {"/nonexistent/odd://name", "./s3://bucket", "1s3://bucket", "://x"}) {
    runai_file_request_t file{path, &range, 1, RUNAI_CHECKSUM_NONE, 0};
    ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK) << path;
    auto results = WaitAll(streamer.get(), id, 1);
    const Result& result = results[{0, 0}];
    EXPECT_EQ(result.status, RUNAI_E_NOT_FOUND) << path << ": " << result.message;
    EXPECT_THAT(result.message, HasSubstr(path));
  }
}

TEST(Wait, IdleUnknownAndBadArguments) {
  Streamer streamer;
  runai_completion_t completion;
  size_t count = 7;
  EXPECT_EQ(runai_streamer_wait(streamer.get(), 0, &completion, 1, 100, &count), RUNAI_E_IDLE);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(runai_streamer_wait(streamer.get(), 12345, &completion, 1, 100, &count),
            RUNAI_E_UNKNOWN_REQUEST);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("12345"));
  EXPECT_EQ(runai_streamer_cancel(streamer.get(), 12345), RUNAI_E_UNKNOWN_REQUEST);
  EXPECT_EQ(runai_streamer_release(streamer.get(), 12345), RUNAI_E_UNKNOWN_REQUEST);
  EXPECT_EQ(runai_streamer_wait(streamer.get(), 0, nullptr, 1, 0, &count),
            RUNAI_E_INVALID_ARGUMENT);
  EXPECT_EQ(runai_streamer_wait(streamer.get(), 0, &completion, 0, 0, &count),
            RUNAI_E_INVALID_ARGUMENT);
}

TEST(Wait, ReleasedRequestIsUnknownAndAnyRequestFilterWorks) {
  TempDir dir;
  std::mt19937_64 rng(9);
  auto content = RandomBytes(30000, rng);
  std::string path = dir.Write("f.bin", content);
  Streamer streamer(2, 4096);
  std::vector<uint8_t> a(content.size()), b(content.size());
  runai_range_t range_a{0, content.size(), a.data()};
  runai_range_t range_b{0, content.size(), b.data()};
  runai_file_request_t file_a{path.c_str(), &range_a, 1, RUNAI_CHECKSUM_NONE, 0};
  runai_file_request_t file_b{path.c_str(), &range_b, 1, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id_a = 0, id_b = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file_a, 1, &id_a), RUNAI_OK);
  ASSERT_EQ(runai_streamer_submit(streamer.get(), &file_b, 1, &id_b), RUNAI_OK);
  EXPECT_NE(id_a, id_b);
  std::set<uint64_t> seen;
  runai_completion_t completions[4];
  size_t count = 0;
  int status;
  while ((status = runai_streamer_wait(streamer.get(), 0, completions, 4, 10000, &count)) ==
         RUNAI_OK) {
    for (size_t i = 0; i < count; ++i) {
      EXPECT_EQ(completions[i].status, RUNAI_OK);
      EXPECT_TRUE(seen.insert(completions[i].request_id).second);
    }
  }
  EXPECT_EQ(status, RUNAI_E_IDLE);
  EXPECT_EQ(seen, (std::set<uint64_t>{id_a, id_b}));
  EXPECT_EQ(a, content);
  EXPECT_EQ(b, content);
  EXPECT_EQ(runai_streamer_wait(streamer.get(), id_a, completions, 4, 0, &count), RUNAI_E_IDLE);
  EXPECT_EQ(runai_streamer_release(streamer.get(), id_a), RUNAI_OK);
  EXPECT_EQ(runai_streamer_wait(streamer.get(), id_a, completions, 4, 0, &count),
            RUNAI_E_UNKNOWN_REQUEST);
  EXPECT_EQ(runai_streamer_release(streamer.get(), id_a), RUNAI_E_UNKNOWN_REQUEST);
  EXPECT_EQ(runai_streamer_cancel(streamer.get(), id_b), RUNAI_OK);  // already done: no-op
  EXPECT_EQ(runai_streamer_wait(streamer.get(), id_b, completions, 4, 0, &count), RUNAI_E_IDLE);
}

// Open descriptors of this process (/dev/fd exists on Linux and macOS).
size_t OpenFdCount() {
  size_t count = 0;
  if (DIR* dir = ::opendir("/dev/fd")) {
    while (::readdir(dir) != nullptr) ++count;
    ::closedir(dir);
  }
  return count;
}

TEST(Read, EachFileIsClosedOnceItsRangesAreReported) {
  TempDir dir;
  std::mt19937_64 rng(11);
  std::vector<std::string> paths;
  std::vector<std::vector<uint8_t>> contents;
  for (int i = 0; i < 40; ++i) {
    contents.push_back(RandomBytes(20000 + i, rng));
    paths.push_back(dir.Write("f" + std::to_string(i), contents.back()));
  }
  Streamer streamer(4, 4096);
  const size_t fds_before = OpenFdCount();
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<std::vector<runai_range_t>> ranges;
  std::vector<runai_file_request_t> files;
  for (size_t i = 0; i < paths.size(); ++i) {
    buffers.emplace_back(contents[i].size());
    // Two ranges per file, each split over several tasks.
    ranges.push_back({{0, 10000, buffers[i].data()},
                      {10000, contents[i].size() - 10000, buffers[i].data() + 10000}});
  }
  for (size_t i = 0; i < paths.size(); ++i) {
    files.push_back({paths[i].c_str(), ranges[i].data(), ranges[i].size(), RUNAI_CHECKSUM_NONE, 0});
  }
  uint64_t id = 0;
  ASSERT_EQ(runai_streamer_submit(streamer.get(), files.data(), files.size(), &id), RUNAI_OK);
  auto results = WaitAll(streamer.get(), id, 2 * paths.size());
  for (const auto& entry : results)
    EXPECT_EQ(entry.second.status, RUNAI_OK) << entry.second.message;
  for (size_t i = 0; i < paths.size(); ++i) EXPECT_EQ(buffers[i], contents[i]) << paths[i];
  EXPECT_EQ(OpenFdCount(), fds_before) << "a file descriptor outlived its request's ranges";
  EXPECT_EQ(runai_streamer_release(streamer.get(), id), RUNAI_OK);
}

TEST(Streamer, DestroyWithLocalReadsInFlight) {
  TempDir dir;
  std::mt19937_64 rng(10);
  auto content = RandomBytes(1 << 20, rng);
  std::string path = dir.Write("big.bin", content);
  for (int round = 0; round < 5; ++round) {
    std::vector<uint8_t> buffer(content.size() * 4);
    Streamer streamer(4, 4096);
    std::vector<runai_range_t> ranges;
    for (int i = 0; i < 4; ++i) {
      ranges.push_back({0, content.size(), buffer.data() + i * content.size()});
    }
    runai_file_request_t file{path.c_str(), ranges.data(), ranges.size(), RUNAI_CHECKSUM_NONE, 0};
    uint64_t id = 0;
    ASSERT_EQ(runai_streamer_submit(streamer.get(), &file, 1, &id), RUNAI_OK);
    streamer.Destroy();
    // After destroy returns nothing may write into the buffer any more.
    std::vector<uint8_t> snapshot = buffer;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(snapshot, buffer);
  }
}

int CollectEntry(const char* path, uint64_t size, void* context) {
  auto* entries = static_cast<std::vector<std::pair<std::string, uint64_t>>*>(context);
  entries->emplace_back(path, size);
  return 0;
}

int StopAfterFirst(const char* path, uint64_t size, void* context) {
  CollectEntry(path, size, context);
  return 1;
}

TEST(Files, SizeAndList) {
  TempDir dir;
  std::string b = dir.Write("b.bin", std::vector<uint8_t>(7, 0));
  std::string a = dir.Write("a.bin", std::vector<uint8_t>(3, 0));
  ASSERT_EQ(::mkdir((dir.path() + "/sub").c_str(), 0755), 0);
  Streamer streamer;
  uint64_t size = 0;
  ASSERT_EQ(runai_streamer_file_size(streamer.get(), b.c_str(), &size), RUNAI_OK);
  EXPECT_EQ(size, 7u);
  std::string missing = dir.path() + "/nope";
  EXPECT_EQ(runai_streamer_file_size(streamer.get(), missing.c_str(), &size), RUNAI_E_NOT_FOUND);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr(missing));
  EXPECT_EQ(runai_streamer_file_size(streamer.get(), dir.path().c_str(), &size),
            RUNAI_E_NOT_A_FILE);

  std::vector<std::pair<std::string, uint64_t>> entries;
  ASSERT_EQ(runai_streamer_list(streamer.get(), dir.path().c_str(), CollectEntry, &entries),
            RUNAI_OK);
  EXPECT_EQ(entries, (std::vector<std::pair<std::string, uint64_t>>{
                         {a, 3}, {b, 7}, {dir.path() + "/sub/", 0}}));
  entries.clear();
  ASSERT_EQ(runai_streamer_list(streamer.get(), dir.path().c_str(), StopAfterFirst, &entries),
            RUNAI_OK);
  EXPECT_EQ(entries.size(), 1u);
  EXPECT_EQ(runai_streamer_list(streamer.get(), missing.c_str(), CollectEntry, &entries),
            RUNAI_E_NOT_FOUND);
  EXPECT_EQ(runai_streamer_list(streamer.get(), a.c_str(), CollectEntry, &entries),
            RUNAI_E_NOT_A_FILE);
}

TEST(Alloc, PageAlignedZeroedWritable) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  for (int32_t threads : {0, 1, 3, 64}) {
    const uint64_t size = (5 << 20) + 123;
    auto* memory = static_cast<uint8_t*>(runai_streamer_alloc(size, threads));
    ASSERT_NE(memory, nullptr) << runai_streamer_last_error();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(memory) % page, 0u);
    EXPECT_EQ(memory[0], 0);
    EXPECT_EQ(memory[size - 1], 0);
    std::memset(memory, 0x5A, size);
    EXPECT_EQ(memory[size / 2], 0x5A);
    runai_streamer_free(memory, size);
  }
  EXPECT_EQ(runai_streamer_alloc(0, 0), nullptr);
  EXPECT_THAT(runai_streamer_last_error(), HasSubstr("0 bytes"));
  EXPECT_EQ(runai_streamer_alloc(4096, -1), nullptr);
  runai_streamer_free(nullptr, 0);  // a no-op
}

}  // namespace
}  // namespace runai::testing
