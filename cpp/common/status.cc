#include "common/status.h"

#include <cerrno>
#include <cstring>

#include "streamer/streamer.h"

namespace runai::common {

int StatusCodeFromErrno(int err) {
  switch (err) {
    case 0:
      return RUNAI_OK;
    case ENOENT:
    case ENOTDIR:
      return RUNAI_E_NOT_FOUND;
    case EACCES:
    case EPERM:
      return RUNAI_E_PERMISSION;
    case EISDIR:
      return RUNAI_E_NOT_A_FILE;
    case ENOMEM:
      return RUNAI_E_NO_MEMORY;
    default:
      return RUNAI_E_IO;
  }
}

namespace {
// strerror_r has two signatures (XSI returns int, GNU returns char*); these
// overloads pick whichever the C library declares.
[[maybe_unused]] const char* StrerrorResult(int result, const char* buffer) {
  return result == 0 ? buffer : nullptr;
}
[[maybe_unused]] const char* StrerrorResult(const char* result, const char*) { return result; }
}  // namespace

std::string ErrnoText(int err) {
  char buffer[256] = {0};
  const char* text = StrerrorResult(strerror_r(err, buffer, sizeof(buffer)), buffer);
  if (text == nullptr || text[0] == '\0') return "errno " + std::to_string(err);
  return text;
}

const char* StatusName(int code) {
  switch (code) {
    case RUNAI_OK:
      return "RUNAI_OK";
    case RUNAI_E_INVALID_ARGUMENT:
      return "RUNAI_E_INVALID_ARGUMENT";
    case RUNAI_E_CONFIG:
      return "RUNAI_E_CONFIG";
    case RUNAI_E_NOT_FOUND:
      return "RUNAI_E_NOT_FOUND";
    case RUNAI_E_PERMISSION:
      return "RUNAI_E_PERMISSION";
    case RUNAI_E_NOT_A_FILE:
      return "RUNAI_E_NOT_A_FILE";
    case RUNAI_E_EOF:
      return "RUNAI_E_EOF";
    case RUNAI_E_IO:
      return "RUNAI_E_IO";
    case RUNAI_E_BACKEND:
      return "RUNAI_E_BACKEND";
    case RUNAI_E_UNSUPPORTED_SCHEME:
      return "RUNAI_E_UNSUPPORTED_SCHEME";
    case RUNAI_E_PLUGIN:
      return "RUNAI_E_PLUGIN";
    case RUNAI_E_CANCELLED:
      return "RUNAI_E_CANCELLED";
    case RUNAI_E_TIMEOUT:
      return "RUNAI_E_TIMEOUT";
    case RUNAI_E_IDLE:
      return "RUNAI_E_IDLE";
    case RUNAI_E_UNKNOWN_REQUEST:
      return "RUNAI_E_UNKNOWN_REQUEST";
    case RUNAI_E_NO_MEMORY:
      return "RUNAI_E_NO_MEMORY";
    case RUNAI_E_INTERNAL:
      return "RUNAI_E_INTERNAL";
    default:
      return "RUNAI_E_UNKNOWN_STATUS";
  }
}

void CopyMessage(const std::string& message, char* buffer, size_t buffer_size) {
  if (buffer == nullptr || buffer_size == 0) return;
  size_t n = message.size() < buffer_size - 1 ? message.size() : buffer_size - 1;
  std::memcpy(buffer, message.data(), n);
  buffer[n] = '\0';
}

}  // namespace runai::common
