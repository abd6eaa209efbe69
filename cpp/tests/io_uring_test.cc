// IoUringReads on its own (the engine's direct reads use it under every strategy test too):
// exact bytes over many pieces in flight, and each way a read of whole blocks can go wrong.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "streamer/impl/io_uring_reads.h"

namespace runai::streamer {
namespace {

constexpr uint64_t kBlock = 4096;

// A file of random bytes under $TMPDIR (or /tmp), removed at the end.
class TempFile {
 public:
  explicit TempFile(size_t size) {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/io_uring_XXXXXX";
    const int fd = ::mkstemp(path_.data());
    std::mt19937_64 rng(61);
    content_.resize(size);
    for (uint8_t& byte : content_) byte = static_cast<uint8_t>(rng());
    if (fd >= 0) {
      written_ = ::write(fd, content_.data(), size) == static_cast<ssize_t>(size);
      ::close(fd);
    }
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  const std::vector<uint8_t>& content() const { return content_; }
  bool written() const { return written_; }

 private:
  std::string path_;
  std::vector<uint8_t> content_;
  bool written_ = false;
};

struct AlignedBuffer {
  explicit AlignedBuffer(size_t size) {
    void* memory = nullptr;
    if (posix_memalign(&memory, kBlock, size + kBlock) == 0) data.reset(static_cast<char*>(memory));
    std::memset(data.get(), 0x5A, size + kBlock);
  }
  struct Freer {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, Freer> data;
};

class IoUring : public ::testing::Test {
 protected:
  void SetUp() override {
#if !defined(__linux__)
    GTEST_SKIP() << "io_uring is Linux only";
#else
    // CI runs on Linux kernels that offer io_uring: not having it there is a failure.
    ring_ = IoUringReads::ForThisThread();
    ASSERT_NE(ring_, nullptr) << "io_uring_setup failed: is io_uring disabled or filtered?";
    ASSERT_TRUE(file_.written()) << file_.path();
    fd_ = ::open(file_.path().c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    ASSERT_GE(fd_, 0) << file_.path() << ": " << std::strerror(errno)
                      << " (O_DIRECT refused in $TMPDIR?)";
#endif
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
  }

  static constexpr size_t kFileSize = (5 << 20) + 3 * kBlock + 100;  // ends mid-block
  TempFile file_{kFileSize};
  IoUringReads* ring_ = nullptr;
  int fd_ = -1;
};

TEST_F(IoUring, ManyPiecesInFlightAreExact) {
  const uint64_t offset = 3 * kBlock, size = (5 << 20) - kBlock;  // 5 pieces, the last short
  AlignedBuffer buffer(size);
  const BlockReads result = ring_->Read(fd_, offset, size, buffer.data.get());
  ASSERT_EQ(result.error, 0) << std::strerror(result.error);
  EXPECT_EQ(std::memcmp(buffer.data.get(), file_.content().data() + offset, size), 0);
  for (uint64_t i = size; i < size + kBlock; ++i) ASSERT_EQ(buffer.data.get()[i], 0x5A) << i;
  // The ring is reused: a second read on the same thread works the same.
  const BlockReads again = ring_->Read(fd_, 0, kBlock, buffer.data.get());
  ASSERT_EQ(again.error, 0);
  EXPECT_EQ(std::memcmp(buffer.data.get(), file_.content().data(), kBlock), 0);
}

TEST_F(IoUring, AReadPastTheEndSaysWhereTheFileEnded) {
  // The last whole-block range the file would need, and more: pieces past the end read 0
  // bytes, the one across it reads the 100 bytes left; the earliest place is reported.
  const uint64_t offset = 4 << 20, size = 4 << 20;
  AlignedBuffer buffer(size);
  const BlockReads result = ring_->Read(fd_, offset, size, buffer.data.get());
  EXPECT_EQ(result.error, BlockReads::kFileEnded);
  EXPECT_EQ(result.at, kFileSize);
}

TEST_F(IoUring, AMisalignedOffsetIsEinval) {
  AlignedBuffer buffer(2 << 20);
  const BlockReads result = ring_->Read(fd_, 1, 1 << 20, buffer.data.get());
  EXPECT_EQ(result.error, EINVAL);  // what a filesystem that refuses direct reads answers too
  EXPECT_EQ(result.at, 1u);
}

TEST_F(IoUring, AClosedDescriptorIsEbadf) {
  AlignedBuffer buffer(kBlock);
  const int fd = ::dup(fd_);
  ::close(fd);
  const BlockReads result = ring_->Read(fd, kBlock, kBlock, buffer.data.get());
  EXPECT_EQ(result.error, EBADF);
  EXPECT_EQ(result.at, kBlock);
}

}  // namespace
}  // namespace runai::streamer
