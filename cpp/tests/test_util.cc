#include "test_util.h"

#include <ftw.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace runai::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && base[0] != '\0' ? base : "/tmp") + "/streamer_test_XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << " failed";
    return;
  }
  path_ = buffer.data();
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  ::nftw(
      path_.c_str(),
      [](const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

std::string TempDir::Write(const std::string& name, const std::vector<uint8_t>& content) const {
  std::string full = path_ + "/" + name;
  std::ofstream out(full, std::ios::binary);
  out.write(reinterpret_cast<const char*>(content.data()),
            static_cast<std::streamsize>(content.size()));
  EXPECT_TRUE(out.good()) << "cannot write " << full;
  return full;
}

std::vector<uint8_t> RandomBytes(size_t size, std::mt19937_64& rng) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(rng());
  return bytes;
}

ScopedEnv::ScopedEnv(const char* name, const char* value) : name_(name) {
  const char* old = std::getenv(name);
  had_value_ = old != nullptr;
  if (had_value_) old_value_ = old;
  if (value != nullptr) {
    ::setenv(name, value, 1);
  } else {
    ::unsetenv(name);
  }
}

ScopedEnv::~ScopedEnv() {
  if (had_value_) {
    ::setenv(name_.c_str(), old_value_.c_str(), 1);
  } else {
    ::unsetenv(name_.c_str());
  }
}

Streamer::Streamer(int32_t concurrency, int64_t chunk_bytesize) {
  runai_streamer_config_t config;
  EXPECT_EQ(runai_streamer_config_default(&config), RUNAI_OK) << runai_streamer_last_error();
  config.concurrency = concurrency;
  config.chunk_bytesize = chunk_bytesize;
  EXPECT_EQ(runai_streamer_create(&config, &streamer_), RUNAI_OK) << runai_streamer_last_error();
}

Streamer::~Streamer() { Destroy(); }

void Streamer::Destroy() {
  runai_streamer_destroy(streamer_);
  streamer_ = nullptr;
}

std::map<std::pair<uint32_t, uint32_t>, Result> WaitAll(runai_streamer_t* streamer,
                                                        uint64_t request_id,
                                                        size_t expected_ranges) {
  std::map<std::pair<uint32_t, uint32_t>, Result> results;
  runai_completion_t completions[64];
  for (;;) {
    size_t count = 0;
    int status = runai_streamer_wait(streamer, request_id, completions, 64, 20000, &count);
    if (status == RUNAI_E_IDLE) break;
    if (status != RUNAI_OK) {
      ADD_FAILURE() << "wait: " << runai_streamer_status_name(status) << " "
                    << runai_streamer_last_error();
      break;
    }
    for (size_t i = 0; i < count; ++i) {
      const runai_completion_t& c = completions[i];
      EXPECT_EQ(c.request_id, request_id);
      EXPECT_EQ(c.status == RUNAI_OK, c.message == nullptr);
      auto key = std::make_pair(c.file_index, c.range_index);
      EXPECT_EQ(results.count(key), 0u)
          << "range reported twice: file " << c.file_index << " range " << c.range_index;
      results[key] = Result{c.status, c.message != nullptr ? c.message : ""};
    }
  }
  EXPECT_EQ(results.size(), expected_ranges);
  return results;
}

}  // namespace runai::testing
