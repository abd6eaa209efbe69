// Reads that bypass the page cache: O_DIRECT (macOS: F_NOCACHE) into the destination where the
// destination and the file offset share their alignment, through a per-thread bounce buffer
// for unaligned heads and tails (tensor offsets in safetensors are not aligned). Under "auto"
// each read first asks which of its pages are cached: cachestat() (Linux >= 6.5) counts them
// without touching the address space, and only a read that is partly cached asks mincore()
// which pages; cached pages are copied from the page cache (warm loads stay as fast as
// buffered ones), only the others are read direct. Neither starts I/O, unlike a
// preadv2(RWF_NOWAIT) probe, whose miss queues readahead of the very bytes about to be read
// direct. Whole blocks go through the thread's io_uring where the kernel offers it (many
// pieces in flight at once), else one pread after another.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "streamer/impl/file_reader.h"
#include "streamer/impl/io_uring_reads.h"
#include "streamer/impl/local_file.h"
#include "streamer/streamer.h"

namespace runai::streamer {
namespace {

constexpr uint64_t kAlign = 4096;              // offset, length and address alignment
constexpr uint64_t kBounceBytes = 1 << 20;     // per worker thread
constexpr uint64_t kMaxDirectRead = 64 << 20;  // per syscall

#if defined(__APPLE__)
using MincoreByte = char;
#else
using MincoreByte = unsigned char;
#endif

// cachestat(2): Linux 6.5 uapi, one number on every architecture; older headers lack it.
#if defined(__linux__) && !defined(__NR_cachestat)
#define __NR_cachestat 451
#endif

enum class Cached { kAll, kNone, kSome, kUnknown };

#if defined(__NR_cachestat)
struct CachestatRange {
  uint64_t off;
  uint64_t len;
};
struct Cachestat {
  uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};
// Cleared at the first failure: an older kernel (ENOSYS) or a seccomp filter (EPERM) refuses
// every call, so the process stops asking.
std::atomic<bool> cachestat_works{true};
#endif

// How many of the pages [start, start + length) of fd holds in the page cache.
Cached CountCached(int fd, uint64_t start, uint64_t length, uint64_t page) {
#if defined(__NR_cachestat)
  if (cachestat_works.load(std::memory_order_relaxed)) {
    CachestatRange range{start, length};
    Cachestat stat{};
    if (::syscall(__NR_cachestat, fd, &range, &stat, 0) == 0) {
      const uint64_t pages = (length + page - 1) / page;
      if (stat.nr_cache >= pages) return Cached::kAll;
      return stat.nr_cache == 0 ? Cached::kNone : Cached::kSome;
    }
    cachestat_works.store(false, std::memory_order_relaxed);
  }
#else
  (void)fd;
  (void)start;
  (void)length;
  (void)page;
#endif
  return Cached::kUnknown;
}

uint64_t AlignDown(uint64_t value) { return value & ~(kAlign - 1); }
uint64_t AlignUp(uint64_t value) { return AlignDown(value + kAlign - 1); }

char* BounceBuffer() {
  struct Freer {
    void operator()(char* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<char, Freer> buffer;
  if (buffer == nullptr) {
    void* memory = nullptr;
    if (posix_memalign(&memory, kAlign, kBounceBytes) != 0) return nullptr;
    buffer.reset(static_cast<char*>(memory));
  }
  return buffer.get();
}

class DirectReader : public FileReader {
 public:
  // `by_residency` ("auto"): each read asks which of its pages are cached; else every read
  // is direct.
  DirectReader(int buffered_fd, int direct_fd, uint64_t size, bool by_residency, bool io_uring)
      : buffered_fd_(buffered_fd),
        direct_fd_(direct_fd),
        size_(size),
        by_residency_(by_residency),
        io_uring_(io_uring) {}
  ~DirectReader() override {
    if (map_ != nullptr) ::munmap(map_, size_);
    ::close(buffered_fd_);
    ::close(direct_fd_);
  }

  common::Status Read(uint64_t offset, uint64_t size, char* dst) override {
    if (!by_residency_) return ReadDirect(offset, size, dst);
    const uint64_t page = page_size_;
    const uint64_t start = offset / page * page;
    const uint64_t length = offset + size - start;
    switch (CountCached(buffered_fd_, start, length, page)) {
      case Cached::kAll:
        return ReadFully(buffered_fd_, offset, size, dst);
      case Cached::kNone:
        return ReadDirect(offset, size, dst);
      case Cached::kSome:
      case Cached::kUnknown:
        break;
    }
    // Runs of pages that are (not) in the page cache, each read its own way.
    char* const map = Map();
    thread_local std::vector<MincoreByte> resident;
    resident.resize((length + page - 1) / page);
    if (map == nullptr || ::mincore(map + start, length, resident.data()) != 0) {
      return ReadDirect(offset, size, dst);
    }
    size_t first = 0;
    while (first < resident.size()) {
      const bool cached = resident[first] & 1;
      size_t last = first + 1;
      while (last < resident.size() && (resident[last] & 1) == cached) ++last;
      const uint64_t from = std::max(offset, start + first * page);
      const uint64_t to = std::min(offset + size, start + last * page);
      char* into = dst + (from - offset);
      common::Status status = cached ? ReadFully(buffered_fd_, from, to - from, into)
                                     : ReadDirect(from, to - from, into);
      if (!status.ok()) return status;
      first = last;
    }
    return common::Status::Ok();
  }

 private:
  common::Status ReadDirect(uint64_t offset, uint64_t size, char* dst) {
    if (direct_refused_.load(std::memory_order_relaxed)) {
      return ReadFully(buffered_fd_, offset, size, dst);
    }
    const uint64_t end = offset + size;
    const uint64_t first = AlignUp(offset), last = AlignDown(end);
    const bool congruent = (reinterpret_cast<uintptr_t>(dst) - offset) % kAlign == 0;
    if (!congruent || first >= last) return ReadBounced(offset, size, dst);
    common::Status status;
    if (offset < first) status = ReadBounced(offset, first - offset, dst);
    if (status.ok()) {
      IoUringReads* ring = io_uring_ ? IoUringReads::ForThisThread() : nullptr;
      char* into = dst + (first - offset);
      const BlockReads blocks = ring != nullptr ? ring->Read(direct_fd_, first, last - first, into)
                                                : PreadBlocks(first, last - first, into);
      if (blocks.error == EINVAL) return Refused(offset, size, dst);
      if (blocks.error == BlockReads::kFileEnded) return FileEndedAt(blocks.at);
      if (blocks.error != 0) return PreadFailed(blocks.at, blocks.error);
    }
    if (status.ok() && last < end) status = ReadBounced(last, end - last, dst + (last - offset));
    return status;
  }

  // Whole blocks straight into dst, one pread after another.
  BlockReads PreadBlocks(uint64_t offset, uint64_t size, char* dst) const {
    for (uint64_t at = offset; at < offset + size;) {
      const size_t want = static_cast<size_t>(std::min(offset + size - at, kMaxDirectRead));
      const ssize_t got = ::pread(direct_fd_, dst + (at - offset), want, static_cast<off_t>(at));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return {errno, at};
      if (got == 0 || static_cast<uint64_t>(got) % kAlign != 0) {
        return {BlockReads::kFileEnded, at + static_cast<uint64_t>(got)};
      }
      at += static_cast<uint64_t>(got);
    }
    return {};
  }

  // Whole aligned blocks into the bounce buffer, the wanted bytes copied out.
  common::Status ReadBounced(uint64_t offset, uint64_t size, char* dst) {
    char* bounce = BounceBuffer();
    if (bounce == nullptr) return ReadFully(buffered_fd_, offset, size, dst);
    uint64_t done = 0;
    while (done < size) {
      const uint64_t at = offset + done;
      const uint64_t block = AlignDown(at);
      const size_t want =
          static_cast<size_t>(std::min(kBounceBytes, AlignUp(offset + size) - block));
      const ssize_t got = ::pread(direct_fd_, bounce, want, static_cast<off_t>(block));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && errno == EINVAL) return Refused(at, size - done, dst + done);
      if (got < 0) return PreadFailed(at, errno);
      if (static_cast<uint64_t>(got) <= at - block) return FileEndedAt(block + got);
      const uint64_t take = std::min(static_cast<uint64_t>(got) - (at - block), size - done);
      std::memcpy(dst + done, bounce + (at - block), take);
      done += take;
    }
    return common::Status::Ok();
  }

  // Where mincore() looks up which pages of a partly cached read are cached (null: the file
  // could not be mapped, residency unknown). Mapped once per file, on the first read that
  // needs it (with cachestat(), only a partly cached one), since an mmap or munmap takes the
  // address-space lock for writing and stalls the other workers filling their destinations.
  // (A mutex, not std::call_once: that brings libstdc++'s TLS symbols into the exports of a
  // library linked with a static libstdc++.)
  char* Map() {
    std::lock_guard<std::mutex> lock(map_mutex_);
    if (!map_tried_) {
      map_tried_ = true;
      void* map = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, buffered_fd_, 0);
      map_ = map == MAP_FAILED ? nullptr : static_cast<char*>(map);
    }
    return map_;
  }

  // The filesystem accepted O_DIRECT at open but refuses these reads: buffered from now on.
  common::Status Refused(uint64_t offset, uint64_t size, char* dst) {
    direct_refused_.store(true, std::memory_order_relaxed);
    return ReadFully(buffered_fd_, offset, size, dst);
  }

  const int buffered_fd_;
  const int direct_fd_;
  const uint64_t size_;
  const bool by_residency_;
  const bool io_uring_;
  std::mutex map_mutex_;
  bool map_tried_ = false;  // under map_mutex_
  char* map_ = nullptr;     // under map_mutex_
  const uint64_t page_size_ = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  std::atomic<bool> direct_refused_{false};
};

// A second descriptor of the same file that bypasses the page cache, or -1 (errno set).
int OpenUncached(const std::string& path, int fd) {
#if defined(O_DIRECT)
  int direct = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_DIRECT);
#else
  int direct = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
#if defined(F_NOCACHE)
  if (direct >= 0 && ::fcntl(direct, F_NOCACHE, 1) != 0) {
    const int err = errno;
    ::close(direct);
    errno = err;
    return -1;
  }
#endif
#endif
  if (direct < 0) return -1;
  struct stat a, b;  // the path may name another file by now
  if (::fstat(fd, &a) != 0 || ::fstat(direct, &b) != 0 || a.st_dev != b.st_dev ||
      a.st_ino != b.st_ino) {
    ::close(direct);
    errno = ESTALE;
    return -1;
  }
  // The same regular file: reads may block now (io_uring answers EAGAIN to O_NONBLOCK files
  // instead of waiting for the device).
  const int flags = ::fcntl(direct, F_GETFL);
  if (flags == -1 || ::fcntl(direct, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    const int err = errno;
    ::close(direct);
    errno = err;
    return -1;
  }
  return direct;
}

}  // namespace

std::unique_ptr<FileReader> MakeLocalReader(const std::string& path, int fd, uint64_t size,
                                            const LocalReads& reads) {
  if (reads.strategy == FsStrategy::kBuffered || size == 0) return MakeBufferedReader(fd);
  const int direct = OpenUncached(path, fd);
  if (direct < 0) {
    if (DebugLogging()) {
      std::fprintf(stderr, "runai-model-streamer: %s: no direct I/O (%s): buffered reads\n",
                   path.c_str(), common::ErrnoText(errno).c_str());
    }
    return MakeBufferedReader(fd);
  }
  return std::make_unique<DirectReader>(fd, direct, size, reads.strategy == FsStrategy::kAuto,
                                        reads.io_uring);
}

}  // namespace runai::streamer
