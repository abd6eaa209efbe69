// The plugin C ABI (streamer/backend.h) around a plugin's ObjectStore. Compiled into each
// plugin library (not archived: the exported symbols are referenced by nothing inside it).
#include <algorithm>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "common/plugin/object_store.h"
#include "common/status.h"
#include "streamer/backend.h"
#include "streamer/streamer.h"

#define PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

struct runai_backend {
  std::unique_ptr<runai::common::ObjectStore> store;
};

namespace {

int Fail(const runai::common::Status& status, char* error, size_t error_size) {
  if (status.ok()) return RUNAI_OK;
  runai::common::CopyMessage(status.message, error, error_size);
  return status.code;
}

// No C++ exception may cross the C ABI: one becomes an error message.
template <typename Call>
int Guarded(Call call, char* error, size_t error_size) {
  try {
    return Fail(call(), error, error_size);
  } catch (const std::exception& exception) {
    return Fail({RUNAI_E_BACKEND, std::string("internal error: ") + exception.what()}, error,
                error_size);
  }
}

}  // namespace

PLUGIN_EXPORT int runai_backend_abi_version(void) { return RUNAI_BACKEND_ABI_VERSION; }

PLUGIN_EXPORT int runai_backend_create(const char* const* option_keys,
                                       const char* const* option_values, size_t num_options,
                                       runai_backend_t** out, char* error, size_t error_size) {
  return Guarded(
      [&] {
        runai::common::PluginOptions options;
        for (size_t i = 0; i < num_options; ++i) {
          options.emplace_back(option_keys[i], option_values[i]);
        }
        auto backend = std::make_unique<runai_backend>();
        runai::common::Status status = runai::common::CreateObjectStore(options, &backend->store);
        if (status.ok()) *out = backend.release();
        return status;
      },
      error, error_size);
}

PLUGIN_EXPORT void runai_backend_destroy(runai_backend_t* backend) { delete backend; }

PLUGIN_EXPORT int runai_backend_size(runai_backend_t* backend, const char* uri, uint64_t* size,
                                     char* error, size_t error_size) {
  return Guarded([&] { return backend->store->Size(uri, size); }, error, error_size);
}

PLUGIN_EXPORT int runai_backend_stat(runai_backend_t* backend, const char* uri,
                                     runai_object_info* info, char* error, size_t error_size) {
  return Guarded(
      [&] {
        runai::common::ObjectInfo found;
        runai::common::Status status = backend->store->Stat(uri, &found);
        if (status.ok()) runai::common::ExportObjectInfo(found, info);
        return status;
      },
      error, error_size);
}

PLUGIN_EXPORT int runai_backend_read(runai_backend_t* backend, const char* uri, uint64_t offset,
                                     uint64_t size, void* dst, char* error, size_t error_size) {
  if (size == 0) return RUNAI_OK;
  return Guarded(
      [&] { return backend->store->Read(uri, offset, size, static_cast<char*>(dst), nullptr); },
      error, error_size);
}

PLUGIN_EXPORT int runai_backend_read_checked(runai_backend_t* backend, const char* uri,
                                             uint64_t offset, uint64_t size, void* dst,
                                             int32_t checksum, const uint64_t* segment_sizes,
                                             uint64_t* segment_crcs, size_t num_segments,
                                             char* error, size_t error_size) {
  return Guarded(
      [&]() -> runai::common::Status {
        const auto kind = runai::common::CrcKindOf(checksum);
        if (!kind) {
          return {RUNAI_E_INVALID_ARGUMENT, "unknown checksum " + std::to_string(checksum)};
        }
        runai::common::SegmentCrcs crcs(
            *kind, std::vector<uint64_t>(segment_sizes, segment_sizes + num_segments));
        runai::common::Status status =
            size == 0 ? runai::common::Status::Ok()
                      : backend->store->Read(uri, offset, size, static_cast<char*>(dst), &crcs);
        if (status.ok() && crcs.fed() != size) {
          return {RUNAI_E_INTERNAL, std::string(uri) + ": " + std::to_string(crcs.fed()) +
                                        " bytes checksummed of " + std::to_string(size)};
        }
        if (status.ok()) std::copy(crcs.crcs().begin(), crcs.crcs().end(), segment_crcs);
        return status;
      },
      error, error_size);
}

PLUGIN_EXPORT int runai_backend_list(runai_backend_t* backend, const char* uri_prefix,
                                     runai_backend_list_entry_fn entry, void* context, char* error,
                                     size_t error_size) {
  return Guarded(
      [&] {
        return backend->store->List(uri_prefix, [&](const std::string& uri, uint64_t size) {
          return entry(uri.c_str(), size, context) == 0;
        });
      },
      error, error_size);
}
