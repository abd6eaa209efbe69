// Reads an object through its backend plugin.
#include <utility>

#include "streamer/impl/file_reader.h"

namespace runai::streamer {

namespace {

class PluginReader : public FileReader {
 public:
  PluginReader(std::shared_ptr<BackendPlugin> backend, std::string uri)
      : backend_(std::move(backend)), uri_(std::move(uri)) {}

  common::Status Read(uint64_t offset, uint64_t size, char* dst) override {
    return backend_->Read(uri_, offset, size, dst);
  }
  common::Status ReadChecked(uint64_t offset, uint64_t size, char* dst, common::CrcKind kind,
                             const std::vector<uint64_t>& sizes,
                             std::vector<uint64_t>* crcs) override {
    return backend_->ReadChecked(uri_, offset, size, dst, static_cast<int32_t>(kind), sizes, crcs);
  }

 private:
  const std::shared_ptr<BackendPlugin> backend_;
  const std::string uri_;
};

}  // namespace

std::unique_ptr<FileReader> MakePluginReader(std::shared_ptr<BackendPlugin> backend,
                                             std::string uri) {
  return std::make_unique<PluginReader>(std::move(backend), std::move(uri));
}

}  // namespace runai::streamer
