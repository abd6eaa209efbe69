#include "streamer/impl/config.h"

#include <cstdlib>
#include <cstring>
#include <strings.h>
#include <string>

#include "common/parse.h"

namespace runai::streamer {
namespace {

// Reads one variable if set; a set but invalid value is an error.
common::Status ReadEnv(const char* name, int64_t min, int64_t max, int64_t* value) {
  const char* text = std::getenv(name);
  if (text == nullptr) return common::Status::Ok();
  std::string why;
  if (!common::ParseInt64InRange(text, min, max, value, &why)) {
    return {RUNAI_E_CONFIG, std::string("environment variable ") + name + "='" + text + "' " + why};
  }
  return common::Status::Ok();
}

common::Status CheckField(const char* field, int64_t value, int64_t min, int64_t max) {
  if (value >= min && value <= max) return common::Status::Ok();
  return {RUNAI_E_CONFIG, std::string("config.") + field + "=" + std::to_string(value) +
                              " is out of range " + std::to_string(min) + ".." +
                              std::to_string(max)};
}

}  // namespace

common::Status ConfigFromEnvironment(runai_streamer_config_t* config) {
  int64_t concurrency = kDefaultConcurrency;
  int64_t chunk = kDefaultChunkBytesize;
  int64_t timeout = kDefaultBackendTimeoutMs;
  common::Status status = ReadEnv(kEnvConcurrency, kMinConcurrency, kMaxConcurrency, &concurrency);
  if (status.ok()) status = ReadEnv(kEnvChunkBytesize, kMinChunkBytesize, kMaxChunkBytesize, &chunk);
  if (status.ok()) {
    status = ReadEnv(kEnvBackendTimeoutMs, kMinBackendTimeoutMs, kMaxBackendTimeoutMs, &timeout);
  }
  if (!status.ok()) return status;
  config->concurrency = static_cast<int32_t>(concurrency);
  config->chunk_bytesize = chunk;
  config->backend_timeout_ms = timeout;
  return status;
}

common::Status ValidateConfig(const runai_streamer_config_t& config) {
  common::Status status =
      CheckField("concurrency", config.concurrency, kMinConcurrency, kMaxConcurrency);
  if (status.ok()) {
    status = CheckField("chunk_bytesize", config.chunk_bytesize, kMinChunkBytesize,
                        kMaxChunkBytesize);
  }
  if (status.ok()) {
    status = CheckField("backend_timeout_ms", config.backend_timeout_ms, kMinBackendTimeoutMs,
                        kMaxBackendTimeoutMs);
  }
  return status;
}

common::Status LocalReadsFromEnvironment(LocalReads* reads) {
  const char* text = std::getenv(kEnvFsStrategy);
  if (text == nullptr || *text == '\0' || std::strcmp(text, "auto") == 0) {
    reads->strategy = FsStrategy::kAuto;
  } else if (std::strcmp(text, "buffered") == 0) {
    reads->strategy = FsStrategy::kBuffered;
  } else if (std::strcmp(text, "direct") == 0) {
    reads->strategy = FsStrategy::kDirect;
  } else {
    return {RUNAI_E_CONFIG, std::string("environment variable ") + kEnvFsStrategy + "='" + text +
                                "' must be auto, buffered or direct"};
  }
  text = std::getenv(kEnvIoUring);
  if (text == nullptr || *text == '\0' || std::strcmp(text, "1") == 0) {
    reads->io_uring = true;
  } else if (std::strcmp(text, "0") == 0) {
    reads->io_uring = false;
  } else {
    return {RUNAI_E_CONFIG,
            std::string("environment variable ") + kEnvIoUring + "='" + text + "' must be 0 or 1"};
  }
  return common::Status::Ok();
}

bool DebugLogging() {
  const char* level = std::getenv("RUNAI_STREAMER_LOG_LEVEL");
  return level != nullptr && strcasecmp(level, "DEBUG") == 0;
}

}  // namespace runai::streamer
