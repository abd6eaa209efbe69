// The exported C functions: argument checks, exception barrier and the
// per-thread last error around the engine.
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "common/crc.h"
#include "common/status.h"
#include "streamer/impl/allocator.h"
#include "streamer/impl/config.h"
#include "streamer/impl/engine.h"
#include "streamer/streamer.h"

#ifndef RUNAI_STREAMER_VERSION
#error "RUNAI_STREAMER_VERSION must be defined by the build"
#endif

struct runai_streamer {
  std::unique_ptr<runai::streamer::Engine> engine;
};

namespace {

using runai::common::Status;

thread_local std::string last_error;

int Report(const Status& status) {
  if (!status.ok()) last_error = status.message;
  return status.code;
}

// Runs body, turning exceptions into status codes: none may cross the C ABI.
template <typename Body>
int Guarded(Body body) {
  try {
    return Report(body());
  } catch (const std::bad_alloc&) {
    return Report({RUNAI_E_NO_MEMORY, "out of memory"});
  } catch (const std::exception& error) {
    return Report({RUNAI_E_INTERNAL, std::string("internal error: ") + error.what()});
  } catch (...) {
    return Report({RUNAI_E_INTERNAL, "internal error"});
  }
}

Status NullStreamer() { return {RUNAI_E_INVALID_ARGUMENT, "streamer is NULL"}; }

}  // namespace

extern "C" {

const char* runai_streamer_version(void) { return RUNAI_STREAMER_VERSION; }

int runai_streamer_api_version(void) { return RUNAI_STREAMER_API_VERSION; }

const char* runai_streamer_status_name(int status) { return runai::common::StatusName(status); }

const char* runai_streamer_last_error(void) { return last_error.c_str(); }

int runai_streamer_config_default(runai_streamer_config_t* config) {
  return Guarded([&]() -> Status {
    if (config == nullptr) return {RUNAI_E_INVALID_ARGUMENT, "config is NULL"};
    return runai::streamer::ConfigFromEnvironment(config);
  });
}

int runai_streamer_create(const runai_streamer_config_t* config, runai_streamer_t** out) {
  return Guarded([&]() -> Status {
    if (out == nullptr) return {RUNAI_E_INVALID_ARGUMENT, "out is NULL"};
    *out = nullptr;
    runai_streamer_config_t effective;
    if (config != nullptr) {
      effective = *config;
    } else {
      Status status = runai::streamer::ConfigFromEnvironment(&effective);
      if (!status.ok()) return status;
    }
    Status status = runai::streamer::ValidateConfig(effective);
    if (!status.ok()) return status;
    auto streamer = std::make_unique<runai_streamer>();
    status = runai::streamer::Engine::Create(effective, &streamer->engine);
    if (!status.ok()) return status;
    *out = streamer.release();
    return Status::Ok();
  });
}

void runai_streamer_destroy(runai_streamer_t* streamer) {
  try {
    delete streamer;
  } catch (...) {
    // Destructors do not throw; nothing may cross the C ABI regardless.
  }
}

int runai_streamer_register_backend(runai_streamer_t* streamer, const char* scheme,
                                    const char* library_path, const char* const* option_keys,
                                    const char* const* option_values, size_t num_options) {
  return Guarded([&]() -> Status {
    if (streamer == nullptr) return NullStreamer();
    if (scheme == nullptr) return {RUNAI_E_INVALID_ARGUMENT, "scheme is NULL"};
    if (library_path == nullptr) return {RUNAI_E_INVALID_ARGUMENT, "library_path is NULL"};
    if (num_options > 0 && (option_keys == nullptr || option_values == nullptr)) {
      return {RUNAI_E_INVALID_ARGUMENT, "option_keys/option_values is NULL"};
    }
    runai::streamer::BackendPlugin::Options options;
    for (size_t i = 0; i < num_options; ++i) {
      if (option_keys[i] == nullptr || option_values[i] == nullptr) {
        return {RUNAI_E_INVALID_ARGUMENT, "option " + std::to_string(i) + " is NULL"};
      }
      options.emplace_back(option_keys[i], option_values[i]);
    }
    return streamer->engine->RegisterBackend(scheme, library_path, std::move(options));
  });
}

int runai_streamer_file_size(runai_streamer_t* streamer, const char* path, uint64_t* size) {
  return Guarded([&]() -> Status {
    if (streamer == nullptr) return NullStreamer();
    if (path == nullptr || size == nullptr) {
      return {RUNAI_E_INVALID_ARGUMENT, "path or size is NULL"};
    }
    return streamer->engine->FileSize(path, size);
  });
}

int runai_streamer_object_info(runai_streamer_t* streamer, const char* path,
                               runai_object_info_t* info) {
  return Guarded([&]() -> Status {
    if (streamer == nullptr) return NullStreamer();
    if (path == nullptr || info == nullptr) {
      return {RUNAI_E_INVALID_ARGUMENT, "path or info is NULL"};
    }
    *info = runai_object_info_t{};
    return streamer->engine->ObjectInfo(path, info);
  });
}

int runai_streamer_list(runai_streamer_t* streamer, const char* path, runai_list_entry_fn entry,
                        void* context) {
  return Guarded([&]() -> Status {
    if (streamer == nullptr) return NullStreamer();
    if (path == nullptr || entry == nullptr) {
      return {RUNAI_E_INVALID_ARGUMENT, "path or entry is NULL"};
    }
    if (path[0] == '\0') return {RUNAI_E_INVALID_ARGUMENT, "path is empty"};
    return streamer->engine->List(path, [&](const std::string& name, uint64_t size) {
      return entry(name.c_str(), size, context) == 0;
    });
  });
}

int runai_streamer_submit(runai_streamer_t* streamer, const runai_file_request_t* files,
                          size_t num_files, uint64_t* request_id) {
  return Guarded([&]() -> Status {
    if (streamer == nullptr) return NullStreamer();
    return streamer->engine->Submit(files, num_files, request_id);
  });
}

int runai_streamer_wait(runai_streamer_t* streamer, uint64_t request_id,
                        runai_completion_t* completions, size_t max_completions, int64_t timeout_ms,
                        size_t* num_completions) {
  return Guarded([&]() -> Status {
    if (streamer == nullptr) return NullStreamer();
    return streamer->engine->Wait(request_id, completions, max_completions, timeout_ms,
                                  num_completions);
  });
}

int runai_streamer_cancel(runai_streamer_t* streamer, uint64_t request_id) {
  return Guarded([&]() -> Status {
    if (streamer == nullptr) return NullStreamer();
    return streamer->engine->Cancel(request_id);
  });
}

int runai_streamer_release(runai_streamer_t* streamer, uint64_t request_id) {
  return Guarded([&]() -> Status {
    if (streamer == nullptr) return NullStreamer();
    return streamer->engine->Release(request_id);
  });
}

int runai_streamer_checksum(int32_t kind, uint64_t crc, const void* data, uint64_t size,
                            uint64_t* out) {
  return Guarded([&]() -> Status {
    const auto crc_kind = runai::common::CrcKindOf(kind);
    if (!crc_kind) return {RUNAI_E_INVALID_ARGUMENT, "unknown checksum " + std::to_string(kind)};
    if (out == nullptr || (data == nullptr && size > 0)) {
      return {RUNAI_E_INVALID_ARGUMENT, "data or out is NULL"};
    }
    *out = runai::common::Crc(*crc_kind, crc, data, size);
    return Status::Ok();
  });
}

int runai_streamer_checksum_combine(int32_t kind, uint64_t crc_a, uint64_t crc_b, uint64_t size_b,
                                    uint64_t* out) {
  return Guarded([&]() -> Status {
    const auto crc_kind = runai::common::CrcKindOf(kind);
    if (!crc_kind) return {RUNAI_E_INVALID_ARGUMENT, "unknown checksum " + std::to_string(kind)};
    if (out == nullptr) return {RUNAI_E_INVALID_ARGUMENT, "out is NULL"};
    *out = runai::common::CrcCombine(*crc_kind, crc_a, crc_b, size_b);
    return Status::Ok();
  });
}

void* runai_streamer_alloc(uint64_t size, int32_t prefault_threads) {
  void* memory = nullptr;
  Guarded([&]() -> Status {
    return runai::streamer::AllocateDestination(size, prefault_threads, &memory);
  });
  return memory;
}

void runai_streamer_free(void* ptr, uint64_t size) {
  Guarded([&]() -> Status { return runai::streamer::FreeDestination(ptr, size); });
}

}  // extern "C"
