// The ways of reading a file's bytes, behind one interface: the engine's workers call Read on
// the reader of a request's file, concurrently, and know nothing of how it reads.
//   buffered   pread through the page cache (buffered_reader.cc)
//   direct     O_DIRECT into the destination, bounce buffers for unaligned edges; under
//              "auto", only the pages not cached (cachestat, then mincore for a read that
//              is partly cached) (direct_reader.cc); whole
//              blocks many at a time through io_uring where the kernel offers it
//              (io_uring_reads.cc), else with pread
//   plugin     an object-storage backend (plugin_reader.cc)
#ifndef RUNAI_STREAMER_STREAMER_IMPL_FILE_READER_H_
#define RUNAI_STREAMER_STREAMER_IMPL_FILE_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/crc.h"
#include "common/status.h"
#include "streamer/impl/backend_plugin.h"
#include "streamer/impl/config.h"

namespace runai::streamer {

class FileReader {
 public:
  virtual ~FileReader() = default;
  // Reads exactly [offset, offset + size) into dst; the message is the cause only (callers
  // add the path and range). Safe to call from many threads at once.
  virtual common::Status Read(uint64_t offset, uint64_t size, char* dst) = 0;
  // Read, and the CRC `kind` of each segment (sizes summing to size) into crcs. By default
  // from the destination after the read; a plugin takes them as the bytes arrive.
  virtual common::Status ReadChecked(uint64_t offset, uint64_t size, char* dst,
                                     common::CrcKind kind, const std::vector<uint64_t>& sizes,
                                     std::vector<uint64_t>* crcs);
};

// Takes ownership of fd (open, read-only, regular file of `size` bytes).
std::unique_ptr<FileReader> MakeBufferedReader(int fd);
// The reader of a local file for `reads.strategy`, owning fd: buffered, or direct (per read
// under auto; through io_uring where the kernel offers it and reads.io_uring); buffered too
// when the filesystem refuses O_DIRECT (tmpfs, some FUSE), with a line on stderr when
// RUNAI_STREAMER_LOG_LEVEL=DEBUG.
std::unique_ptr<FileReader> MakeLocalReader(const std::string& path, int fd, uint64_t size,
                                            const LocalReads& reads);
std::unique_ptr<FileReader> MakePluginReader(std::shared_ptr<BackendPlugin> backend,
                                             std::string uri);

}  // namespace runai::streamer

#endif  // RUNAI_STREAMER_STREAMER_IMPL_FILE_READER_H_
