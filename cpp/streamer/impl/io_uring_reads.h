// Whole-block O_DIRECT reads with many in flight from one thread, through io_uring (Linux
// 5.1+), set up with raw syscalls: no liburing, and the kernel's UAPI layout declared in the
// .cc because manylinux2014's kernel headers predate io_uring.
#ifndef RUNAI_STREAMER_STREAMER_IMPL_IO_URING_READS_H_
#define RUNAI_STREAMER_STREAMER_IMPL_IO_URING_READS_H_

#include <cstdint>

namespace runai::streamer {

// The outcome of reading [offset, offset + size) of whole blocks, either way (io_uring or
// one pread after another): error is 0, an errno (EINVAL: the filesystem refuses direct
// reads), or kFileEnded; `at` is the file offset where it went wrong.
struct BlockReads {
  static constexpr int kFileEnded = -1;
  int error = 0;
  uint64_t at = 0;
};

class IoUringReads {
 public:
  // The calling thread's ring, set up on first use; null where io_uring is not offered (not
  // Linux, an old kernel, io_uring_disabled, seccomp, RLIMIT_MEMLOCK): the caller preads.
  static IoUringReads* ForThisThread();

  // Reads size bytes at offset (both block-aligned) into dst (block-aligned) from fd (opened
  // O_DIRECT, blocking), in pieces submitted together; returns once no piece is in flight.
  BlockReads Read(int fd, uint64_t offset, uint64_t size, char* dst);

  ~IoUringReads();
  IoUringReads(const IoUringReads&) = delete;
  IoUringReads& operator=(const IoUringReads&) = delete;

 private:
  struct Ring;
  explicit IoUringReads(Ring* ring) : ring_(ring) {}
  Ring* const ring_;
};

}  // namespace runai::streamer

#endif  // RUNAI_STREAMER_STREAMER_IMPL_IO_URING_READS_H_
