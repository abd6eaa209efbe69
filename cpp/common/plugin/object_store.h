// An object-storage backend behind the plugin C ABI (streamer/backend.h). A plugin implements
// ObjectStore and defines CreateObjectStore (with CreateConfiguredStore); plugin_exports.cc,
// compiled into every plugin library, exports the C functions around them (messages copied out,
// codes returned).
#ifndef RUNAI_STREAMER_COMMON_PLUGIN_OBJECT_STORE_H_
#define RUNAI_STREAMER_COMMON_PLUGIN_OBJECT_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/crc.h"
#include "common/object_info.h"
#include "common/status.h"

namespace runai::common {

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Size, version and whole-object checksums (one HEAD).
  virtual Status Stat(const std::string& uri, ObjectInfo* info) = 0;
  // The size alone (a store whose Stat asks more than one HEAD asks less here).
  virtual Status Size(const std::string& uri, uint64_t* size) {
    ObjectInfo info;
    Status status = Stat(uri, &info);
    if (status.ok()) *size = info.size;
    return status;
  }
  // Exactly `size` (> 0) bytes at `offset` into dst; with `crcs`, the CRCs of its segments,
  // computed as the bytes land.
  virtual Status Read(const std::string& uri, uint64_t offset, uint64_t size, char* dst,
                      SegmentCrcs* crcs) = 0;
  // What is directly under `prefix` (ends with '/'): objects and sub-prefixes (their URIs end
  // with '/', size 0). `entry` returns false to stop.
  using ListEntry = std::function<bool(const std::string& uri, uint64_t size)>;
  virtual Status List(const std::string& prefix, const ListEntry& entry) = 0;
};

using PluginOptions = std::vector<std::pair<std::string, std::string>>;

// Defined by each plugin, as CreateConfiguredStore<ItsStore>.
Status CreateObjectStore(const PluginOptions& options, std::unique_ptr<ObjectStore>* out);

// A `Store` made and set up by its `Status Configure(const PluginOptions&)`; *out is set only
// when that succeeded.
template <typename Store>
Status CreateConfiguredStore(const PluginOptions& options, std::unique_ptr<ObjectStore>* out) {
  auto store = std::make_unique<Store>();
  Status status = store->Configure(options);
  if (status.ok()) *out = std::move(store);
  return status;
}

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_PLUGIN_OBJECT_STORE_H_
