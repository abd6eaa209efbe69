// A backend plugin library loaded with dlopen and one instance created in it.
#ifndef RUNAI_STREAMER_STREAMER_IMPL_BACKEND_PLUGIN_H_
#define RUNAI_STREAMER_STREAMER_IMPL_BACKEND_PLUGIN_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "streamer/backend.h"
#include "streamer/streamer.h"

namespace runai::streamer {

class BackendPlugin {
 public:
  using Options = std::vector<std::pair<std::string, std::string>>;

  // Loads library_path (absolute), checks its ABI version and creates an
  // instance with options. Failures are RUNAI_E_PLUGIN naming the library.
  static common::Status Load(const std::string& library_path, const Options& options,
                             std::shared_ptr<BackendPlugin>* out);

  ~BackendPlugin();
  BackendPlugin(const BackendPlugin&) = delete;
  BackendPlugin& operator=(const BackendPlugin&) = delete;

  // Thread-safe calls into the plugin; messages come from the plugin.
  common::Status Size(const std::string& uri, uint64_t* size) const;
  common::Status Stat(const std::string& uri, runai_object_info_t* info) const;
  common::Status Read(const std::string& uri, uint64_t offset, uint64_t size, void* dst) const;
  // Read, and the CRC of each segment (sizes summing to size) into crcs.
  common::Status ReadChecked(const std::string& uri, uint64_t offset, uint64_t size, void* dst,
                             int32_t checksum, const std::vector<uint64_t>& sizes,
                             std::vector<uint64_t>* crcs) const;
  common::Status List(const std::string& uri_prefix,
                      const std::function<bool(const std::string&, uint64_t)>& entry) const;

  const std::string& library_path() const { return library_path_; }

 private:
  BackendPlugin() = default;

  std::string library_path_;
  void* handle_ = nullptr;
  runai_backend_t* instance_ = nullptr;
  runai_backend_destroy_fn destroy_ = nullptr;
  runai_backend_size_fn size_ = nullptr;
  runai_backend_stat_fn stat_ = nullptr;
  runai_backend_read_fn read_ = nullptr;
  runai_backend_read_checked_fn read_checked_ = nullptr;
  runai_backend_list_fn list_ = nullptr;
};

}  // namespace runai::streamer

#endif  // RUNAI_STREAMER_STREAMER_IMPL_BACKEND_PLUGIN_H_
