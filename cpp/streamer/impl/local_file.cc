#include "streamer/impl/local_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "streamer/streamer.h"

namespace runai::streamer {
namespace {

// One pread call never asks for more than this: macOS rejects sizes above
// INT_MAX and Linux caps a call at about 2 GiB anyway.
constexpr uint64_t kMaxSingleRead = uint64_t{1} << 30;

common::Status ErrnoStatus(const std::string& what, int err) {
  return {common::StatusCodeFromErrno(err), what + ": " + common::ErrnoText(err)};
}

common::Status NotRegular(const std::string& path, mode_t mode) {
  const char* kind = S_ISDIR(mode) ? "a directory" : "not a regular file";
  return {RUNAI_E_NOT_A_FILE, "cannot read '" + path + "': " + kind};
}

}  // namespace

common::Status OpenLocalFile(const std::string& path, int* fd, uint64_t* size) {
  int opened;
  do {
    opened = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (opened < 0 && errno == EINTR);
  if (opened < 0) return ErrnoStatus("cannot open '" + path + "'", errno);
  struct stat st;
  if (::fstat(opened, &st) != 0) {
    int err = errno;
    ::close(opened);
    return ErrnoStatus("cannot stat '" + path + "'", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(opened);
    return NotRegular(path, st.st_mode);
  }
  *fd = opened;
  *size = static_cast<uint64_t>(st.st_size);
  return common::Status::Ok();
}

common::Status LocalFileSize(const std::string& path, uint64_t* size) {
  common::ObjectInfo info;
  common::Status status = LocalFileInfo(path, &info);
  if (status.ok()) *size = info.size;
  return status;
}

common::Status LocalFileInfo(const std::string& path, common::ObjectInfo* info) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("cannot stat '" + path + "'", errno);
  if (!S_ISREG(st.st_mode)) return NotRegular(path, st.st_mode);
  info->size = static_cast<uint64_t>(st.st_size);
  common::ObjectInfo::Add(&info->version, "mtime", std::to_string(common::ModificationTimeNs(st)));
  common::ObjectInfo::Add(&info->version, "inode", std::to_string(st.st_ino));
  return common::Status::Ok();
}

common::Status ListLocalDirectory(const std::string& dir,
                                  const std::function<bool(const std::string&, uint64_t)>& entry) {
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) {
    int err = errno;
    if (err == ENOTDIR) return {RUNAI_E_NOT_A_FILE, "cannot list '" + dir + "': not a directory"};
    return ErrnoStatus("cannot list '" + dir + "'", err);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* item = ::readdir(handle)) {
    std::string name = item->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
    errno = 0;
  }
  int err = errno;
  ::closedir(handle);
  if (err != 0) return ErrnoStatus("cannot list '" + dir + "'", err);
  std::sort(names.begin(), names.end());
  std::string prefix = dir;
  if (prefix.empty() || prefix.back() != '/') prefix += '/';
  for (const std::string& name : names) {
    std::string full = prefix + name;
    struct stat st;
    // Follows symlinks: model caches link files into snapshot directories.
    if (::stat(full.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (!entry(full + "/", 0)) break;  // a sub-prefix, as backends report them
      continue;
    }
    if (!S_ISREG(st.st_mode)) continue;
    if (!entry(full, static_cast<uint64_t>(st.st_size))) break;
  }
  return common::Status::Ok();
}

common::Status PreadFailed(uint64_t offset, int err) {
  return {common::StatusCodeFromErrno(err),
          "pread at offset " + std::to_string(offset) + ": " + common::ErrnoText(err)};
}

common::Status FileEndedAt(uint64_t offset) {
  return {RUNAI_E_EOF, "file ended at offset " + std::to_string(offset) +
                           " (was it truncated while being read?)"};
}

common::Status ReadFully(int fd, uint64_t offset, uint64_t size, char* dst) {
  uint64_t done = 0;
  while (done < size) {
    size_t want = static_cast<size_t>(std::min(size - done, kMaxSingleRead));
    ssize_t got = ::pread(fd, dst + done, want, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return PreadFailed(offset + done, errno);
    }
    if (got == 0) return FileEndedAt(offset + done);
    done += static_cast<uint64_t>(got);
  }
  return common::Status::Ok();
}

}  // namespace runai::streamer
