// What a store says of one object besides its bytes: its size, its version (what changes when
// the object does) and the checksums it keeps of the whole object, as runai_object_info_t
// (streamer.h) carries them.
#ifndef RUNAI_STREAMER_COMMON_OBJECT_INFO_H_
#define RUNAI_STREAMER_COMMON_OBJECT_INFO_H_

#include <cstdint>
#include <string>
#include <string_view>

struct runai_object_info;
struct stat;

namespace runai::common {

struct ObjectInfo {
  uint64_t size = 0;
  std::string version;    // "name=value,..." ("etag=...", "generation=...")
  std::string checksums;  // "name=value,..." (crc32c=<hex>, md5=<hex>...)

  // Appends "name=value" to version or checksums; a value with a comma, '=' or a control
  // character (hostile or broken headers) is left out.
  static void Add(std::string* list, std::string_view name, std::string_view value);
};

// Copies info into *out, cutting each list at a comma where it would not fit.
void ExportObjectInfo(const ObjectInfo& info, runai_object_info* out);

// An ETag without its quotes (and weak marker: W/"...").
std::string Unquoted(std::string_view etag);

// A local file's modification time in nanoseconds (its version, with the inode).
int64_t ModificationTimeNs(const struct stat& st);

// The lowercase hex of a base64 value (the checksum headers' form); "" when it is not base64.
std::string HexOfBase64(std::string_view base64);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_OBJECT_INFO_H_
