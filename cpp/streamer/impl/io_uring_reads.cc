#include "streamer/impl/io_uring_reads.h"

#include <cerrno>

#if defined(__linux__)
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "common/status.h"
#include "streamer/impl/config.h"
#endif

namespace runai::streamer {

#if defined(__linux__)
namespace {

// The kernel's io_uring ABI (include/uapi/linux/io_uring.h): the parts used here.
constexpr long kSysIoUringSetup = 425;  // the same number on every architecture
constexpr long kSysIoUringEnter = 426;
constexpr uint8_t kOpReadv = 1;  // IORING_OP_READV (5.1); IORING_OP_READ needs 5.6
constexpr unsigned kEnterGetEvents = 1u << 0;
constexpr uint32_t kFeatSingleMmap = 1u << 0;
constexpr off_t kOffSqRing = 0;
constexpr off_t kOffCqRing = 0x8000000;
constexpr off_t kOffSqes = 0x10000000;

struct SqRingOffsets {
  uint32_t head, tail, ring_mask, ring_entries, flags, dropped, array, resv1;
  uint64_t resv2;
};
struct CqRingOffsets {
  uint32_t head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1;
  uint64_t resv2;
};
struct Params {
  uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd;
  uint32_t resv[3];
  SqRingOffsets sq_off;
  CqRingOffsets cq_off;
};
struct Sqe {
  uint8_t opcode, flags;
  uint16_t ioprio;
  int32_t fd;
  uint64_t off, addr;
  uint32_t len, rw_flags;
  uint64_t user_data;
  uint64_t pad[3];
};
struct Cqe {
  uint64_t user_data;
  int32_t res;
  uint32_t flags;
};
static_assert(sizeof(Params) == 120 && sizeof(Sqe) == 64 && sizeof(Cqe) == 16);

constexpr uint32_t kEntries = 32;          // pieces in flight per thread
constexpr uint64_t kPieceBytes = 1 << 20;  // a worker's 8 MiB chunk: 8 reads in flight
constexpr uint64_t kAlign = 4096;

// Once setup fails for a reason every thread shares (no io_uring here), nobody tries again.
std::atomic<bool> not_offered{false};
std::atomic<bool> announced{false};

void Announce(int err) {
  if (!DebugLogging() || announced.exchange(true)) return;
  if (err == 0) {
    std::fprintf(stderr, "runai-model-streamer: direct reads through io_uring\n");
  } else {
    std::fprintf(stderr, "runai-model-streamer: no io_uring (%s): direct reads with pread\n",
                 common::ErrnoText(err).c_str());
  }
}

bool Transient(int err) { return err == EINTR || err == EAGAIN || err == EBUSY || err == ENOMEM; }

}  // namespace

struct IoUringReads::Ring {
  struct Piece {
    uint64_t offset = 0, size = 0;
    char* dst = nullptr;
    iovec iov{};
  };

  int fd = -1;
  void* sq_map = MAP_FAILED;
  size_t sq_map_size = 0;
  void* cq_map = MAP_FAILED;  // sq_map where the kernel maps both rings at once
  size_t cq_map_size = 0;
  Sqe* sqes = nullptr;
  size_t sqes_size = 0;
  uint32_t *sq_head = nullptr, *sq_tail = nullptr, *sq_array = nullptr, sq_mask = 0;
  uint32_t *cq_head = nullptr, *cq_tail = nullptr, cq_mask = 0;
  Cqe* cqes = nullptr;
  Piece pieces[kEntries];

  // 0, or the errno of the step that failed.
  int SetUp() {
    Params params{};
    const long ring = ::syscall(kSysIoUringSetup, kEntries, &params);
    if (ring < 0) return errno;
    fd = static_cast<int>(ring);
    sq_map_size = params.sq_off.array + params.sq_entries * sizeof(uint32_t);
    cq_map_size = params.cq_off.cqes + params.cq_entries * sizeof(Cqe);
    const bool single = (params.features & kFeatSingleMmap) != 0;
    if (single) sq_map_size = cq_map_size = std::max(sq_map_size, cq_map_size);
    sq_map = ::mmap(nullptr, sq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    kOffSqRing);
    if (sq_map == MAP_FAILED) return errno;
    cq_map = single ? sq_map
                    : ::mmap(nullptr, cq_map_size, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_POPULATE, fd, kOffCqRing);
    if (cq_map == MAP_FAILED) return errno;
    sqes_size = params.sq_entries * sizeof(Sqe);
    void* sqe_map =
        ::mmap(nullptr, sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, kOffSqes);
    if (sqe_map == MAP_FAILED) return errno;
    sqes = static_cast<Sqe*>(sqe_map);
    char* sq = static_cast<char*>(sq_map);
    sq_head = reinterpret_cast<uint32_t*>(sq + params.sq_off.head);
    sq_tail = reinterpret_cast<uint32_t*>(sq + params.sq_off.tail);
    sq_array = reinterpret_cast<uint32_t*>(sq + params.sq_off.array);
    sq_mask = *reinterpret_cast<uint32_t*>(sq + params.sq_off.ring_mask);
    char* cq = static_cast<char*>(cq_map);
    cq_head = reinterpret_cast<uint32_t*>(cq + params.cq_off.head);
    cq_tail = reinterpret_cast<uint32_t*>(cq + params.cq_off.tail);
    cq_mask = *reinterpret_cast<uint32_t*>(cq + params.cq_off.ring_mask);
    cqes = reinterpret_cast<Cqe*>(cq + params.cq_off.cqes);
    return 0;
  }

  ~Ring() {
    if (sqes != nullptr) ::munmap(sqes, sqes_size);
    if (cq_map != MAP_FAILED && cq_map != sq_map) ::munmap(cq_map, cq_map_size);
    if (sq_map != MAP_FAILED) ::munmap(sq_map, sq_map_size);
    if (fd >= 0) ::close(fd);
  }

  // Puts pieces[slot] in the submission queue (handed to the kernel by the next Enter).
  void Queue(int file, uint32_t slot) {
    Piece& piece = pieces[slot];
    piece.iov = {piece.dst, static_cast<size_t>(piece.size)};
    const uint32_t tail = *sq_tail;  // only this thread writes it
    const uint32_t index = tail & sq_mask;
    Sqe& sqe = sqes[index];
    std::memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = kOpReadv;
    sqe.fd = file;
    sqe.off = piece.offset;
    sqe.addr = reinterpret_cast<uint64_t>(&piece.iov);
    sqe.len = 1;
    sqe.user_data = slot;
    sq_array[index] = index;
    __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
  }
};

IoUringReads::~IoUringReads() { delete ring_; }

IoUringReads* IoUringReads::ForThisThread() {
  thread_local std::unique_ptr<IoUringReads> reads;
  thread_local bool tried = false;
  if (tried || not_offered.load(std::memory_order_relaxed)) return reads.get();
  tried = true;
  auto ring = std::make_unique<Ring>();
  const int err = ring->SetUp();
  Announce(err);
  if (err != 0) {
    // ENOSYS, EPERM, EACCES: never here. Others (ENOMEM: RLIMIT_MEMLOCK on kernels before
    // 5.12, which charge rings to it) may be this thread's alone.
    if (err == ENOSYS || err == EPERM || err == EACCES) not_offered.store(true);
    return nullptr;
  }
  reads.reset(new IoUringReads(ring.release()));
  return reads.get();
}

BlockReads IoUringReads::Read(int fd, uint64_t offset, uint64_t size, char* dst) {
  Ring& ring = *ring_;
  BlockReads result;
  auto fail = [&result](int error, uint64_t at) {
    if (result.error == 0 || at < result.at) result = {error, at};
  };
  uint32_t free_slots[kEntries];
  uint32_t free_count = 0;
  for (uint32_t slot = 0; slot < kEntries; ++slot) free_slots[free_count++] = slot;
  uint64_t queued = 0;  // bytes of the range handed to pieces so far
  uint32_t in_flight = 0, unsubmitted = 0;
  auto queue = [&](uint32_t slot) {
    ring.Queue(fd, slot);
    ++in_flight;
    ++unsubmitted;
  };
  for (;;) {
    while (result.error == 0 && queued < size && free_count > 0) {
      const uint32_t slot = free_slots[--free_count];
      Ring::Piece& piece = ring.pieces[slot];
      piece.offset = offset + queued;
      piece.size = std::min(kPieceBytes, size - queued);
      piece.dst = dst + queued;
      queued += piece.size;
      queue(slot);
    }
    if (in_flight == 0) return result;
    const long submitted =
        ::syscall(kSysIoUringEnter, ring.fd, unsubmitted, 1, kEnterGetEvents, nullptr, 0);
    if (submitted < 0) {
      const int err = errno;
      if (Transient(err)) {
        if (err != EINTR) ::sched_yield();
        continue;
      }
      // Never seen on a ring that set up: nothing was submitted by this call. Take the
      // unsubmitted pieces back; the kernel may still be writing into those submitted before.
      __atomic_store_n(ring.sq_tail, __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE),
                       __ATOMIC_RELEASE);
      in_flight -= unsubmitted;
      unsubmitted = 0;
      fail(err, offset + queued);
      if (in_flight == 0) return result;
      std::fprintf(stderr,
                   "runai-model-streamer: io_uring_enter failed (%s) with reads in flight\n",
                   common::ErrnoText(err).c_str());
      std::abort();  // returning would let the kernel write into memory given back to the caller
    }
    unsubmitted -= static_cast<uint32_t>(submitted);
    uint32_t head = *ring.cq_head;
    const uint32_t tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
    for (; head != tail; ++head) {
      const Cqe& cqe = ring.cqes[head & ring.cq_mask];
      const uint32_t slot = static_cast<uint32_t>(cqe.user_data);
      Ring::Piece& piece = ring.pieces[slot];
      --in_flight;
      bool again = false;
      if (cqe.res < 0) {
        again = cqe.res == -EINTR || cqe.res == -EAGAIN;
        if (!again) fail(-cqe.res, piece.offset);
      } else if (static_cast<uint64_t>(cqe.res) < piece.size) {
        const uint64_t got = static_cast<uint64_t>(cqe.res);
        if (got == 0 || got % kAlign != 0) {
          fail(BlockReads::kFileEnded, piece.offset + got);
        } else {  // a short read of whole blocks: the rest again
          piece.offset += got;
          piece.dst += got;
          piece.size -= got;
          again = true;
        }
      }
      if (again && result.error == 0) {
        queue(slot);
      } else {
        free_slots[free_count++] = slot;
      }
    }
    __atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
  }
}

#else  // not Linux: no io_uring

struct IoUringReads::Ring {};
IoUringReads::~IoUringReads() { delete ring_; }
IoUringReads* IoUringReads::ForThisThread() { return nullptr; }
BlockReads IoUringReads::Read(int, uint64_t offset, uint64_t, char*) { return {ENOSYS, offset}; }

#endif

}  // namespace runai::streamer
