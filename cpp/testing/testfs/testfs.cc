// streamer_testfs: a backend plugin serving "<scheme>://relative/path" from a
// local directory, so the plugin path of the engine is tested without any
// object store. Options:
//   root              directory served (required)
//   fail_after_bytes  after this many bytes served in total, every read fails
//                     with RUNAI_E_BACKEND "simulated server failure"
//   delay_ms          sleep before each read (for cancel tests)
//   read_log          file to which every read served appends "<offset> <size> <uri>\n"
//                     (one write each, O_APPEND: several processes may share it)
//   timeout_ms        accepted (the engine always passes it) and ignored
// Stat reports "<path>.checksums", when that file exists, as the object's checksums (so the
// integrity checks are tested without a store), and its mtime as the version.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "common/crc.h"
#include "common/object_info.h"
#include "common/parse.h"
#include "common/status.h"
#include "streamer/backend.h"
#include "streamer/streamer.h"

#define TESTFS_EXPORT extern "C" __attribute__((visibility("default")))

struct runai_backend {
  std::string root;
  int64_t fail_after_bytes = -1;  // -1: never fail
  int64_t delay_ms = 0;
  int read_log = -1;  // fd of the read log, -1: none
  std::atomic<int64_t> served{0};

  ~runai_backend() {
    if (read_log >= 0) ::close(read_log);
  }
};

namespace {

using runai::common::CopyMessage;
using runai::common::ErrnoText;
using runai::common::StatusCodeFromErrno;

int Fail(int code, const std::string& message, char* error, size_t error_size) {
  CopyMessage("testfs: " + message, error, error_size);
  return code;
}

// Maps "<scheme>://a/b" to "<root>/a/b"; rejects absolute paths and "..".
bool ResolvePath(const runai_backend& backend, const std::string& uri, std::string* path,
                 std::string* why) {
  size_t separator = uri.find("://");
  if (separator == std::string::npos) {
    *why = "'" + uri + "' is not a URI";
    return false;
  }
  std::string relative = uri.substr(separator + 3);
  if (!relative.empty() && relative[0] == '/') {
    *why = "'" + uri + "' names an absolute path";
    return false;
  }
  size_t start = 0;
  while (start <= relative.size()) {
    size_t end = relative.find('/', start);
    if (end == std::string::npos) end = relative.size();
    if (relative.compare(start, end - start, "..") == 0 && end - start == 2) {
      *why = "'" + uri + "' escapes the served directory";
      return false;
    }
    start = end + 1;
  }
  *path = backend.root + "/" + relative;
  return true;
}

}  // namespace

TESTFS_EXPORT int runai_backend_abi_version(void) { return RUNAI_BACKEND_ABI_VERSION; }

TESTFS_EXPORT int runai_backend_create(const char* const* option_keys,
                                       const char* const* option_values, size_t num_options,
                                       runai_backend_t** out, char* error, size_t error_size) {
  auto backend = new (std::nothrow) runai_backend();
  if (backend == nullptr) return Fail(RUNAI_E_NO_MEMORY, "out of memory", error, error_size);
  for (size_t i = 0; i < num_options; ++i) {
    std::string key = option_keys[i];
    std::string value = option_values[i];
    std::string why;
    int64_t number = 0;
    if (key == "root") {
      backend->root = value;
    } else if (key == "read_log") {
      backend->read_log = ::open(value.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (backend->read_log < 0) {
        int err = errno;
        delete backend;
        return Fail(StatusCodeFromErrno(err), "read_log '" + value + "': " + ErrnoText(err), error,
                    error_size);
      }
    } else if (key == "fail_after_bytes" || key == "delay_ms" ||
               key == RUNAI_BACKEND_OPTION_TIMEOUT_MS) {
      if (!runai::common::ParseInt64InRange(value, 0, INT64_MAX, &number, &why)) {
        delete backend;
        return Fail(RUNAI_E_INVALID_ARGUMENT, "option " + key + "='" + value + "' " + why, error,
                    error_size);
      }
      if (key == "fail_after_bytes") backend->fail_after_bytes = number;
      if (key == "delay_ms") backend->delay_ms = number;
    } else {
      delete backend;
      return Fail(RUNAI_E_INVALID_ARGUMENT, "unknown option '" + key + "'", error, error_size);
    }
  }
  struct stat st;
  if (backend->root.empty() || ::stat(backend->root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::string root = backend->root;
    delete backend;
    return Fail(
        RUNAI_E_INVALID_ARGUMENT,
        root.empty() ? "option 'root' is required" : "root '" + root + "' is not a directory",
        error, error_size);
  }
  *out = backend;
  return RUNAI_OK;
}

TESTFS_EXPORT void runai_backend_destroy(runai_backend_t* backend) { delete backend; }

namespace {

int StatObject(runai_backend_t* backend, const char* uri, struct stat* st, std::string* path,
               char* error, size_t error_size) {
  std::string why;
  if (!ResolvePath(*backend, uri, path, &why)) {
    return Fail(RUNAI_E_INVALID_ARGUMENT, why, error, error_size);
  }
  if (::stat(path->c_str(), st) != 0) {
    int err = errno;
    return Fail(StatusCodeFromErrno(err), std::string("'") + uri + "': " + ErrnoText(err), error,
                error_size);
  }
  if (!S_ISREG(st->st_mode)) {
    return Fail(RUNAI_E_NOT_A_FILE, std::string("'") + uri + "' is not an object", error,
                error_size);
  }
  return RUNAI_OK;
}

}  // namespace

TESTFS_EXPORT int runai_backend_size(runai_backend_t* backend, const char* uri, uint64_t* size,
                                     char* error, size_t error_size) {
  struct stat st;
  std::string path;
  int code = StatObject(backend, uri, &st, &path, error, error_size);
  if (code == RUNAI_OK) *size = static_cast<uint64_t>(st.st_size);
  return code;
}

TESTFS_EXPORT int runai_backend_stat(runai_backend_t* backend, const char* uri,
                                     runai_object_info_t* info, char* error, size_t error_size) {
  struct stat st;
  std::string path;
  int code = StatObject(backend, uri, &st, &path, error, error_size);
  if (code != RUNAI_OK) return code;
  info->size = static_cast<uint64_t>(st.st_size);
  const std::string version = "mtime=" + std::to_string(runai::common::ModificationTimeNs(st));
  CopyMessage(version, info->version, sizeof(info->version));
  int fd = ::open((path + ".checksums").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t got = ::read(fd, info->checksums, sizeof(info->checksums) - 1);
    info->checksums[got > 0 ? got : 0] = '\0';
    for (char& c : info->checksums) {
      if (c == '\n') c = '\0';
    }
    ::close(fd);
  }
  return RUNAI_OK;
}

TESTFS_EXPORT int runai_backend_read(runai_backend_t* backend, const char* uri, uint64_t offset,
                                     uint64_t size, void* dst, char* error, size_t error_size) {
  if (backend->delay_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(backend->delay_ms));
  }
  if (backend->fail_after_bytes >= 0) {
    int64_t before = backend->served.fetch_add(static_cast<int64_t>(size));
    if (before >= backend->fail_after_bytes) {
      return Fail(RUNAI_E_BACKEND, std::string("'") + uri + "': simulated server failure", error,
                  error_size);
    }
  }
  std::string path, why;
  if (!ResolvePath(*backend, uri, &path, &why)) {
    return Fail(RUNAI_E_INVALID_ARGUMENT, why, error, error_size);
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return Fail(StatusCodeFromErrno(err), std::string("'") + uri + "': " + ErrnoText(err), error,
                error_size);
  }
  uint64_t done = 0;
  while (done < size) {
    ssize_t got =
        ::pread(fd, static_cast<char*>(dst) + done, size - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      int err = got < 0 ? errno : 0;
      ::close(fd);
      if (got == 0) {
        return Fail(
            RUNAI_E_EOF,
            std::string("'") + uri + "': short read at offset " + std::to_string(offset + done),
            error, error_size);
      }
      return Fail(StatusCodeFromErrno(err), std::string("'") + uri + "': " + ErrnoText(err), error,
                  error_size);
    }
    done += static_cast<uint64_t>(got);
  }
  ::close(fd);
  if (backend->read_log >= 0) {
    std::string line = std::to_string(offset) + " " + std::to_string(size) + " " + uri + "\n";
    if (::write(backend->read_log, line.data(), line.size()) < 0) {
      // the log is for tests; a failed write must not fail the read it records
    }
  }
  return RUNAI_OK;
}

TESTFS_EXPORT int runai_backend_read_checked(runai_backend_t* backend, const char* uri,
                                             uint64_t offset, uint64_t size, void* dst,
                                             int32_t checksum, const uint64_t* segment_sizes,
                                             uint64_t* segment_crcs, size_t num_segments,
                                             char* error, size_t error_size) {
  const auto kind = runai::common::CrcKindOf(checksum);
  if (!kind) return Fail(RUNAI_E_INVALID_ARGUMENT, "unknown checksum", error, error_size);
  int code = runai_backend_read(backend, uri, offset, size, dst, error, error_size);
  if (code != RUNAI_OK) return code;
  const char* at = static_cast<const char*>(dst);
  for (size_t i = 0; i < num_segments; ++i) {
    segment_crcs[i] = runai::common::Crc(*kind, 0, at, segment_sizes[i]);
    at += segment_sizes[i];
  }
  return RUNAI_OK;
}

TESTFS_EXPORT int runai_backend_list(runai_backend_t* backend, const char* uri_prefix,
                                     runai_backend_list_entry_fn entry, void* context, char* error,
                                     size_t error_size) {
  std::string path, why;
  if (!ResolvePath(*backend, uri_prefix, &path, &why)) {
    return Fail(RUNAI_E_INVALID_ARGUMENT, why, error, error_size);
  }
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    int err = errno;
    return Fail(StatusCodeFromErrno(err), std::string("'") + uri_prefix + "': " + ErrnoText(err),
                error, error_size);
  }
  std::vector<std::string> names;
  while (struct dirent* item = ::readdir(dir)) names.emplace_back(item->d_name);
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  std::string prefix = uri_prefix;
  for (const std::string& name : names) {
    struct stat st;
    if (name == "." || name == "..") continue;
    if (::stat((path + "/" + name).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (entry((prefix + name + "/").c_str(), 0, context) != 0) break;
      continue;
    }
    if (!S_ISREG(st.st_mode)) continue;
    if (entry((prefix + name).c_str(), static_cast<uint64_t>(st.st_size), context) != 0) break;
  }
  return RUNAI_OK;
}
