// Status values shared by libstreamer and its plugins.
#ifndef RUNAI_STREAMER_COMMON_STATUS_H_
#define RUNAI_STREAMER_COMMON_STATUS_H_

#include <string>

namespace runai::common {

// A status code (runai_status_t value) with the message explaining it.
struct Status {
  int code = 0;  // RUNAI_OK
  std::string message;

  bool ok() const { return code == 0; }
  static Status Ok() { return Status{}; }
};

// Maps an errno value to a runai_status_t code: ENOENT/ENOTDIR -> NOT_FOUND,
// EACCES/EPERM -> PERMISSION, EISDIR -> NOT_A_FILE, ENOMEM -> NO_MEMORY,
// anything else -> IO.
int StatusCodeFromErrno(int err);

// strerror text that is safe to call from many threads.
std::string ErrnoText(int err);

// Name of a runai_status_t code ("RUNAI_E_EOF"...); "RUNAI_E_UNKNOWN_STATUS" when unknown.
const char* StatusName(int code);

// Copies message into a C buffer of buffer_size bytes, truncating, always
// NUL-terminated when buffer_size > 0.
void CopyMessage(const std::string& message, char* buffer, size_t buffer_size);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_STATUS_H_
