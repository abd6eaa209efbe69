#include "streamer/impl/config.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>

#include <strings.h>

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

// Reads a variable that names one of `choices` (unset or empty: the first); *index is the
// choice's position.
common::Status ReadEnvChoice(const char* name, std::initializer_list<const char*> choices,
                             const char* must_be, size_t* index) {
  const char* text = std::getenv(name);
  *index = 0;
  if (text == nullptr || *text == '\0') return common::Status::Ok();
  for (const char* choice : choices) {
    if (std::strcmp(text, choice) == 0) return common::Status::Ok();
    ++*index;
  }
  return {RUNAI_E_CONFIG,
          std::string("environment variable ") + name + "='" + text + "' must be " + must_be};
}

common::Status CheckField(const char* field, int64_t value, int64_t min, int64_t max) {
  if (value >= min && value <= max) return common::Status::Ok();
  return {RUNAI_E_CONFIG, std::string("config.") + field + "=" + std::to_string(value) +
                              " is out of range " + std::to_string(min) + ".." +
                              std::to_string(max)};
}

// The names RUNAI_STREAMER_FS_STRATEGY takes: ours, then upstream 0.17's on ours (libaio reads
// become direct reads, through io_uring where RUNAI_STREAMER_IO_URING and the kernel allow).
struct StrategyName {
  const char* name;
  FsStrategy strategy;
};
constexpr StrategyName kStrategyNames[] = {
    {"auto", FsStrategy::kAuto},
    {"buffered", FsStrategy::kBuffered},
    {"direct", FsStrategy::kDirect},
    {"io_uring_direct", FsStrategy::kDirect},
    {"libaio_direct", FsStrategy::kDirect},
    {"io_uring_buffered", FsStrategy::kBuffered},
    {"sync_buffered", FsStrategy::kBuffered},
};

bool ParseFsStrategy(const std::string& name, FsStrategy* strategy) {
  for (const StrategyName& known : kStrategyNames) {
    if (name == known.name) {
      *strategy = known.strategy;
      return true;
    }
  }
  return false;
}

// RUNAI_STREAMER_IO_URING and RUNAI_STREAMER_FS_STRATEGY into *config.
common::Status LocalReadsFromEnvironment(runai_streamer_config_t* config) {
  size_t io_uring = 0;
  common::Status status = ReadEnvChoice(kEnvIoUring, {"1", "0"}, "0 or 1", &io_uring);
  if (!status.ok()) return status;
  config->io_uring = io_uring == 0 ? 1 : 0;
  config->fs_strategy = RUNAI_FS_AUTO;
  const char* text = std::getenv(kEnvFsStrategy);
  if (text == nullptr || *text == '\0') return common::Status::Ok();
  // Upstream takes an ordered preference list ("io_uring_buffered,sync_buffered") and uses the
  // first the host can serve; every name here can be served, so the first one decides. Every
  // name must still be one we know, so that a typo is an error and not a silent default.
  const std::string value = text;
  bool first = true;
  for (size_t start = 0; start <= value.size();) {
    const size_t comma = std::min(value.find(',', start), value.size());
    FsStrategy strategy = FsStrategy::kAuto;
    if (!ParseFsStrategy(value.substr(start, comma - start), &strategy)) {
      return {RUNAI_E_CONFIG,
              std::string("environment variable ") + kEnvFsStrategy + "='" + value +
                  "' must be auto, buffered or direct (or upstream's io_uring_direct, "
                  "io_uring_buffered, libaio_direct, sync_buffered, as a comma-separated list)"};
    }
    if (first) config->fs_strategy = static_cast<int32_t>(strategy);
    first = false;
    start = comma + 1;
  }
  return common::Status::Ok();
}

}  // namespace

common::Status ConfigFromEnvironment(runai_streamer_config_t* config) {
  int64_t concurrency = kDefaultConcurrency;
  int64_t chunk = kDefaultChunkBytesize;
  int64_t timeout = kDefaultBackendTimeoutMs;
  common::Status status = ReadEnv(kEnvConcurrency, kMinConcurrency, kMaxConcurrency, &concurrency);
  if (status.ok())
    status = ReadEnv(kEnvChunkBytesize, kMinChunkBytesize, kMaxChunkBytesize, &chunk);
  if (status.ok()) {
    status = ReadEnv(kEnvBackendTimeoutMs, kMinBackendTimeoutMs, kMaxBackendTimeoutMs, &timeout);
  }
  if (!status.ok()) return status;
  config->concurrency = static_cast<int32_t>(concurrency);
  config->chunk_bytesize = chunk;
  config->backend_timeout_ms = timeout;
  return LocalReadsFromEnvironment(config);
}

common::Status ValidateConfig(const runai_streamer_config_t& config) {
  common::Status status =
      CheckField("concurrency", config.concurrency, kMinConcurrency, kMaxConcurrency);
  if (status.ok()) {
    status =
        CheckField("chunk_bytesize", config.chunk_bytesize, kMinChunkBytesize, kMaxChunkBytesize);
  }
  if (status.ok()) {
    status = CheckField("backend_timeout_ms", config.backend_timeout_ms, kMinBackendTimeoutMs,
                        kMaxBackendTimeoutMs);
  }
  if (status.ok()) {
    status = CheckField("fs_strategy", config.fs_strategy, RUNAI_FS_AUTO, RUNAI_FS_DIRECT);
  }
  if (status.ok()) status = CheckField("io_uring", config.io_uring, 0, 1);
  return status;
}

LocalReads LocalReadsOf(const runai_streamer_config_t& config) {
  LocalReads reads;
  reads.strategy = static_cast<FsStrategy>(config.fs_strategy);
  reads.io_uring = config.io_uring != 0;
  return reads;
}

bool DebugLogging() {
  const char* level = std::getenv("RUNAI_STREAMER_LOG_LEVEL");
  return level != nullptr && strcasecmp(level, "DEBUG") == 0;
}

}  // namespace runai::streamer
