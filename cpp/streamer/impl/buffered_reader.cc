// Reads through the page cache with pread.
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "streamer/impl/file_reader.h"
#include "streamer/impl/local_file.h"
#include "streamer/streamer.h"

namespace runai::streamer {
namespace {

class BufferedReader : public FileReader {
 public:
  explicit BufferedReader(int fd) : fd_(fd) {}
  ~BufferedReader() override { ::close(fd_); }

  common::Status Read(uint64_t offset, uint64_t size, char* dst) override {
    return ReadFully(fd_, offset, size, dst);
  }

 private:
  const int fd_;
};

}  // namespace

std::unique_ptr<FileReader> MakeBufferedReader(int fd) {
  return std::make_unique<BufferedReader>(fd);
}

common::Status FsStrategyFromEnvironment(FsStrategy* strategy) {
  const char* text = std::getenv(kEnvFsStrategy);
  if (text == nullptr || *text == '\0' || std::strcmp(text, "auto") == 0) {
    *strategy = FsStrategy::kAuto;
  } else if (std::strcmp(text, "buffered") == 0) {
    *strategy = FsStrategy::kBuffered;
  } else if (std::strcmp(text, "direct") == 0) {
    *strategy = FsStrategy::kDirect;
  } else {
    return {RUNAI_E_CONFIG, std::string("environment variable ") + kEnvFsStrategy + "='" + text +
                                "' must be auto, buffered or direct"};
  }
  return common::Status::Ok();
}

}  // namespace runai::streamer
