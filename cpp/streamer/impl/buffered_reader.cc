// Reads through the page cache with pread.
#include <unistd.h>

#include "streamer/impl/file_reader.h"
#include "streamer/impl/local_file.h"

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

}  // namespace runai::streamer
