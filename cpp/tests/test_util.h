// Helpers for the libstreamer tests: temporary files, environment, and a
// streamer driven through the public C API.
#ifndef RUNAI_STREAMER_TESTS_TEST_UTIL_H_
#define RUNAI_STREAMER_TESTS_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "streamer/streamer.h"

namespace runai::testing {

// A directory under $TMPDIR removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes `content` to path()/name and returns the full path.
  std::string Write(const std::string& name, const std::vector<uint8_t>& content) const;

 private:
  std::string path_;
};

std::vector<uint8_t> RandomBytes(size_t size, std::mt19937_64& rng);

// Sets (or unsets, for nullptr) an environment variable for its lifetime.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value);
  ~ScopedEnv();

 private:
  std::string name_;
  bool had_value_;
  std::string old_value_;
};

// A streamer that is destroyed with its scope.
class Streamer {
 public:
  explicit Streamer(int32_t concurrency = 4, int64_t chunk_bytesize = 4096);
  ~Streamer();
  Streamer(const Streamer&) = delete;
  Streamer& operator=(const Streamer&) = delete;
  runai_streamer_t* get() const { return streamer_; }
  // Destroys now (for destroy-while-busy tests).
  void Destroy();

 private:
  runai_streamer_t* streamer_ = nullptr;
};

struct Result {
  int32_t status;
  std::string message;
};

// Waits for every range of request_id, checking each completes exactly once.
// Keyed by (file index, range index).
std::map<std::pair<uint32_t, uint32_t>, Result> WaitAll(runai_streamer_t* streamer,
                                                        uint64_t request_id,
                                                        size_t expected_ranges);

}  // namespace runai::testing

#endif  // RUNAI_STREAMER_TESTS_TEST_UTIL_H_
