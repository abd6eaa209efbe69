#include "common/object_info.h"

#include <sys/stat.h>

#include <cstring>

#include "common/base64.h"
#include "streamer/streamer.h"

namespace runai::common {
namespace {

bool IsPlain(std::string_view text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == ',' || c == '=' || byte < 0x21 || byte > 0x7E) return false;
  }
  return !text.empty();
}

// Whole entries of `list` that fit in `size` bytes with the NUL.
void CopyList(const std::string& list, char* out, size_t size) {
  size_t keep = list.size();
  while (keep >= size) {
    const size_t comma = list.rfind(',', keep - 1);
    keep = comma == std::string::npos ? 0 : comma;
  }
  std::memcpy(out, list.data(), keep);
  out[keep] = '\0';
}

}  // namespace

void ObjectInfo::Add(std::string* list, std::string_view name, std::string_view value) {
  if (!IsPlain(name) || !IsPlain(value)) return;
  if (!list->empty()) *list += ',';
  list->append(name);
  *list += '=';
  list->append(value);
}

void ExportObjectInfo(const ObjectInfo& info, runai_object_info* out) {
  out->size = info.size;
  CopyList(info.version, out->version, sizeof(out->version));
  CopyList(info.checksums, out->checksums, sizeof(out->checksums));
}

std::string Unquoted(std::string_view etag) {
  if (etag.substr(0, 2) == "W/") etag.remove_prefix(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return std::string(etag);
}

std::string HexOfBase64(std::string_view base64) {
  std::string bytes;
  if (!Base64Decode(base64, &bytes) || bytes.empty()) return "";
  static const char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : bytes) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 0xF];
  }
  return hex;
}

int64_t ModificationTimeNs(const struct stat& st) {
#if defined(__APPLE__)
  const struct timespec& mtime = st.st_mtimespec;  // Darwin's name for POSIX st_mtim
#else
  const struct timespec& mtime = st.st_mtim;
#endif
  return static_cast<int64_t>(mtime.tv_sec) * 1000000000 + mtime.tv_nsec;
}

}  // namespace runai::common
