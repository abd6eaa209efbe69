// The bookkeeping of one submitted request: its files, ranges, and the
// read tasks the workers execute.
#ifndef RUNAI_STREAMER_STREAMER_IMPL_REQUEST_H_
#define RUNAI_STREAMER_STREAMER_IMPL_REQUEST_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/crc.h"
#include "common/status.h"
#include "streamer/impl/backend_plugin.h"
#include "streamer/impl/file_reader.h"
#include "streamer/streamer.h"

namespace runai::streamer {

// One file of a request. Its reader (local file or backend) is opened lazily by
// the first task that needs it and closed by the last task that finishes. An object's size
// comes from the request when the caller knew it, else from its backend.
class FileSource {
 public:
  FileSource(std::string path, std::shared_ptr<BackendPlugin> backend,
             std::vector<runai_range_t> ranges, LocalReads local_reads,
             std::optional<common::CrcKind> checksum, uint64_t known_size = 0);
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<runai_range_t>& ranges() const { return ranges_; }
  // The checksum each range's completion carries, if any.
  const std::optional<common::CrcKind>& checksum() const { return checksum_; }

  // Opens on first use; later calls return the same result.
  common::Status Open(uint64_t* size);

  // Reads [offset, offset+size) into dst; the message is the cause only. With a checksum,
  // also the CRC of each segment (sizes summing to size) into crcs.
  common::Status Read(uint64_t offset, uint64_t size, char* dst) const;
  common::Status ReadChecked(uint64_t offset, uint64_t size, char* dst,
                             const std::vector<uint64_t>& sizes, std::vector<uint64_t>* crcs) const;

  void AddTask() { tasks_left_.fetch_add(1, std::memory_order_relaxed); }
  // Called once per task when it will not run again: the last one closes.
  void TaskDone();

 private:
  const std::string path_;
  const std::shared_ptr<BackendPlugin> backend_;  // null for local files
  const std::vector<runai_range_t> ranges_;
  const LocalReads local_reads_;
  const std::optional<common::CrcKind> checksum_;
  const uint64_t known_size_;  // of an object, from the request (0: not known)

  std::mutex open_mutex_;
  bool opened_ = false;
  common::Status open_status_;
  std::unique_ptr<FileReader> reader_;
  uint64_t size_ = 0;
  std::atomic<int64_t> tasks_left_{0};
};

// Part of one range that a task reads.
struct Piece {
  uint32_t range_index;
  uint64_t file_offset;
  uint64_t size;
  char* dst;
};

class Request;

// Work for one worker: pieces of one file, at most chunk_bytesize in total.
struct Task {
  std::shared_ptr<Request> request;
  uint32_t file_index;
  std::vector<Piece> pieces;
};

struct Completion {
  uint32_t file_index;
  uint32_t range_index;
  int32_t status;
  uint64_t checksum;
  const char* message;  // owned by Request::messages_
};

// State of a request. Everything not const is guarded by the owning
// streamer's mutex, except `cancelled` (read by workers between reads).
class Request {
 public:
  // The checksum of a piece of a range, combined with the others in offset order once the
  // whole range is in (pieces finish in any order).
  struct PieceChecksum {
    uint64_t file_offset;
    uint64_t size;
    uint64_t crc;
  };
  struct RangeState {
    uint64_t bytes_left = 0;
    int32_t status = RUNAI_OK;  // first failure of any piece
    std::string cause;
    bool completed = false;
    std::vector<PieceChecksum> checksums;
  };

  Request(uint64_t id, std::vector<std::unique_ptr<FileSource>> files);

  const uint64_t id;
  const std::vector<std::unique_ptr<FileSource>> files;

  std::vector<std::vector<RangeState>> ranges;  // [file][range]
  std::deque<Completion> ready;                 // completed, not yet handed to wait()
  uint64_t unreported = 0;                      // ranges not yet handed to wait()
  int64_t running_tasks = 0;
  std::atomic<bool> cancelled{false};

  // Marks a range complete (exactly once) and queues its completion; a successful range of a
  // file with a checksum carries the combination of its pieces' checksums.
  void Complete(uint32_t file_index, uint32_t range_index, int32_t status,
                const std::string& cause);

 private:
  std::deque<std::string> messages_;  // deque: pointers stay valid as it grows
};

}  // namespace runai::streamer

#endif  // RUNAI_STREAMER_STREAMER_IMPL_REQUEST_H_
