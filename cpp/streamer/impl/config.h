// Streamer configuration: defaults, environment overrides and validation.
#ifndef RUNAI_STREAMER_STREAMER_IMPL_CONFIG_H_
#define RUNAI_STREAMER_STREAMER_IMPL_CONFIG_H_

#include "common/status.h"
#include "streamer/streamer.h"

namespace runai::streamer {

inline constexpr int32_t kDefaultConcurrency = 16;
inline constexpr int32_t kMinConcurrency = 1;
inline constexpr int32_t kMaxConcurrency = 1024;
inline constexpr int64_t kDefaultChunkBytesize = int64_t{8} << 20;
inline constexpr int64_t kMinChunkBytesize = int64_t{4} << 10;
inline constexpr int64_t kMaxChunkBytesize = int64_t{1} << 30;
inline constexpr int64_t kDefaultBackendTimeoutMs = 60000;
inline constexpr int64_t kMinBackendTimeoutMs = 1;
inline constexpr int64_t kMaxBackendTimeoutMs = 86400000;

inline constexpr const char* kEnvConcurrency = "RUNAI_STREAMER_CONCURRENCY";
inline constexpr const char* kEnvChunkBytesize = "RUNAI_STREAMER_CHUNK_BYTESIZE";
inline constexpr const char* kEnvBackendTimeoutMs = "RUNAI_STREAMER_TIMEOUT_MS";

// Defaults overridden by the environment (every variable of the config, the only place they
// are read); RUNAI_E_CONFIG names a bad variable.
common::Status ConfigFromEnvironment(runai_streamer_config_t* config);

// How local files are read (config.fs_strategy, RUNAI_STREAMER_FS_STRATEGY).
enum class FsStrategy {
  kAuto = RUNAI_FS_AUTO,          // per read: cached pages buffered, the others direct
  kBuffered = RUNAI_FS_BUFFERED,  // always through the page cache
  kDirect = RUNAI_FS_DIRECT,      // always O_DIRECT (where the filesystem allows it)
};
inline constexpr const char* kEnvFsStrategy = "RUNAI_STREAMER_FS_STRATEGY";
// RUNAI_STREAMER_IO_URING=0|1 (default 1): direct reads go through io_uring where the kernel
// offers it (many reads in flight per worker), else one pread after another.
inline constexpr const char* kEnvIoUring = "RUNAI_STREAMER_IO_URING";

struct LocalReads {
  FsStrategy strategy = FsStrategy::kAuto;
  bool io_uring = true;
};
// What a (valid) config asks for.
LocalReads LocalReadsOf(const runai_streamer_config_t& config);

// RUNAI_STREAMER_LOG_LEVEL=DEBUG: the engine says on stderr how it reads (once per file or
// process, never per read).
bool DebugLogging();

// Checks every field is in range; RUNAI_E_CONFIG names the bad field.
common::Status ValidateConfig(const runai_streamer_config_t& config);

}  // namespace runai::streamer

#endif  // RUNAI_STREAMER_STREAMER_IMPL_CONFIG_H_
