// Local POSIX file access: open, size, list and full reads with pread.
#ifndef RUNAI_STREAMER_STREAMER_IMPL_LOCAL_FILE_H_
#define RUNAI_STREAMER_STREAMER_IMPL_LOCAL_FILE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "common/object_info.h"
#include "common/status.h"

namespace runai::streamer {

// Opens a regular file read-only (O_CLOEXEC; never blocks on a FIFO) and
// returns its size. The message names the path and the cause.
common::Status OpenLocalFile(const std::string& path, int* fd, uint64_t* size);

// Size of a regular file.
common::Status LocalFileSize(const std::string& path, uint64_t* size);
// Its size and version (mtime in ns and inode); local files keep no checksums.
common::Status LocalFileInfo(const std::string& path, common::ObjectInfo* info);

// Calls entry(full_path, size) for each regular file directly under dir, in
// name order; stops when entry returns false.
common::Status ListLocalDirectory(const std::string& dir,
                                  const std::function<bool(const std::string&, uint64_t)>& entry);

// Reads exactly size bytes at offset, retrying EINTR and short reads. The
// message is the cause only (errno text, or where the file ended); callers
// add path and range.
common::Status ReadFully(int fd, uint64_t offset, uint64_t size, char* dst);

// The causes ReadFully reports, for the other readers of local files.
common::Status PreadFailed(uint64_t offset, int err);
common::Status FileEndedAt(uint64_t offset);

}  // namespace runai::streamer

#endif  // RUNAI_STREAMER_STREAMER_IMPL_LOCAL_FILE_H_
