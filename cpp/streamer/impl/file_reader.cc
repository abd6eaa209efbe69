// What every FileReader does unless it knows better (file_reader.h).
#include "streamer/impl/file_reader.h"

namespace runai::streamer {

// The local readers: the CRCs from the destination right after the read (still in cache).
common::Status FileReader::ReadChecked(uint64_t offset, uint64_t size, char* dst,
                                       common::CrcKind kind, const std::vector<uint64_t>& sizes,
                                       std::vector<uint64_t>* crcs) {
  common::Status status = Read(offset, size, dst);
  if (!status.ok()) return status;
  crcs->clear();
  for (uint64_t segment : sizes) {
    crcs->push_back(common::Crc(kind, 0, dst, segment));
    dst += segment;
  }
  return status;
}

}  // namespace runai::streamer
