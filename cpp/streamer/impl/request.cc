#include "streamer/impl/request.h"

#include <algorithm>

#include "streamer/impl/local_file.h"

namespace runai::streamer {

FileSource::FileSource(std::string path, std::shared_ptr<BackendPlugin> backend,
                       std::vector<runai_range_t> ranges, LocalReads local_reads,
                       std::optional<common::CrcKind> checksum, uint64_t known_size)
    : path_(std::move(path)),
      backend_(std::move(backend)),
      ranges_(std::move(ranges)),
      local_reads_(local_reads),
      checksum_(checksum),
      known_size_(known_size) {}

common::Status FileSource::Open(uint64_t* size) {
  std::lock_guard<std::mutex> lock(open_mutex_);
  if (!opened_) {
    opened_ = true;
    if (backend_ != nullptr) {
      // A HEAD before the first read costs a round trip; the caller that stat'ed the object
      // already knows what it would say.
      size_ = known_size_;
      if (size_ == 0) open_status_ = backend_->Size(path_, &size_);
      if (open_status_.ok()) reader_ = MakePluginReader(backend_, path_);
    } else {
      int fd = -1;
      open_status_ = OpenLocalFile(path_, &fd, &size_);
      if (open_status_.ok()) reader_ = MakeLocalReader(path_, fd, size_, local_reads_);
    }
  }
  *size = size_;
  return open_status_;
}

common::Status FileSource::Read(uint64_t offset, uint64_t size, char* dst) const {
  return reader_->Read(offset, size, dst);  // only after a successful Open
}

common::Status FileSource::ReadChecked(uint64_t offset, uint64_t size, char* dst,
                                       const std::vector<uint64_t>& sizes,
                                       std::vector<uint64_t>* crcs) const {
  return reader_->ReadChecked(offset, size, dst, *checksum_, sizes, crcs);
}

void FileSource::TaskDone() {
  if (tasks_left_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // No task of this file is queued or running any more.
  std::lock_guard<std::mutex> lock(open_mutex_);
  reader_.reset();
}

Request::Request(uint64_t id, std::vector<std::unique_ptr<FileSource>> files)
    : id(id), files(std::move(files)) {
  ranges.resize(this->files.size());
  for (size_t f = 0; f < this->files.size(); ++f) {
    const auto& file_ranges = this->files[f]->ranges();
    ranges[f].resize(file_ranges.size());
    for (size_t r = 0; r < file_ranges.size(); ++r) ranges[f][r].bytes_left = file_ranges[r].size;
    unreported += file_ranges.size();
  }
}

void Request::Complete(uint32_t file_index, uint32_t range_index, int32_t status,
                       const std::string& cause) {
  RangeState& state = ranges[file_index][range_index];
  if (state.completed) return;
  state.completed = true;
  const char* message = nullptr;
  uint64_t checksum = 0;
  const FileSource& source = *files[file_index];
  if (status == RUNAI_OK && source.checksum()) {
    std::sort(state.checksums.begin(), state.checksums.end(),
              [](const PieceChecksum& a, const PieceChecksum& b) {
                return a.file_offset < b.file_offset;
              });
    for (const PieceChecksum& piece : state.checksums) {
      checksum = common::CrcCombine(*source.checksum(), checksum, piece.crc, piece.size);
    }
  }
  state.checksums = {};
  if (status != RUNAI_OK) {
    const FileSource& file = *files[file_index];
    const runai_range_t& range = file.ranges()[range_index];
    messages_.push_back(file.path() + " range [" + std::to_string(range.offset) + ", " +
                        std::to_string(range.offset + range.size) + "): " + cause);
    message = messages_.back().c_str();
  }
  ready.push_back(Completion{file_index, range_index, status, checksum, message});
}

}  // namespace runai::streamer
