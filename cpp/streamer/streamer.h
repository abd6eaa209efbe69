/* runai-model-streamer: the public C API of libstreamer.
 *
 * This header is the only interface the library exports. Everything else is
 * hidden (visibility + version script), so the ABI is exactly what is here.
 *
 * Model: a streamer owns a pool of workers. A caller submits a request that
 * lists files and, for each file, byte ranges with their own destination
 * address. Each range completes exactly once, as soon as all its bytes are in
 * the destination, and the caller collects completions with a timeout.
 *
 * Thread safety: every function may be called from any thread, on any number
 * of streamers at once. The engine writes only into destinations the caller
 * gave it, and never after the range completed, the request was cancelled or
 * released, or the streamer was destroyed.
 *
 * Errors: functions return a runai_status_t. On failure a message naming the
 * cause (path, variable, value...) is kept per thread and returned by
 * runai_streamer_last_error(). A failed range carries its own message.
 */
#ifndef RUNAI_STREAMER_STREAMER_H_
#define RUNAI_STREAMER_STREAMER_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define RUNAI_STREAMER_EXPORT __declspec(dllexport)
#else
#define RUNAI_STREAMER_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change of this header. Python checks it.
 * 3: checksums of ranges (runai_file_request_t.checksum, runai_completion_t.checksum),
 *    runai_streamer_checksum(_combine) and runai_streamer_object_info.
 * 4: runai_file_request_t.size. */
#define RUNAI_STREAMER_API_VERSION 4

typedef enum runai_status {
  RUNAI_OK = 0,
  RUNAI_E_INVALID_ARGUMENT = 1,   /* null pointer, bad range, bad value */
  RUNAI_E_CONFIG = 2,             /* bad configuration or environment value */
  RUNAI_E_NOT_FOUND = 3,          /* file or object does not exist (ENOENT, 404) */
  RUNAI_E_PERMISSION = 4,         /* EACCES/EPERM, 401/403 */
  RUNAI_E_NOT_A_FILE = 5,         /* a directory or other non-regular file */
  RUNAI_E_EOF = 6,                /* range ends past the end of the file */
  RUNAI_E_IO = 7,                 /* any other read error (errno text in message) */
  RUNAI_E_BACKEND = 8,            /* object-storage error (HTTP status, service code) */
  RUNAI_E_UNSUPPORTED_SCHEME = 9, /* URI scheme with no registered backend */
  RUNAI_E_PLUGIN = 10,            /* plugin library missing, bad, or lacking a symbol */
  RUNAI_E_CANCELLED = 11,         /* range not read because its request was cancelled */
  RUNAI_E_TIMEOUT = 12,           /* runai_streamer_wait: nothing completed in time */
  RUNAI_E_IDLE = 13,              /* runai_streamer_wait: nothing is in flight to wait for */
  RUNAI_E_UNKNOWN_REQUEST = 14,   /* request id not known (never submitted or released) */
  RUNAI_E_NO_MEMORY = 15,
  RUNAI_E_INTERNAL = 16
} runai_status_t;

/* Library version ("MAJOR.MINOR.PATCH") and API version of the loaded library. */
RUNAI_STREAMER_EXPORT const char* runai_streamer_version(void);
RUNAI_STREAMER_EXPORT int runai_streamer_api_version(void);

/* Human-readable name of a status code ("RUNAI_E_EOF"...); never NULL. */
RUNAI_STREAMER_EXPORT const char* runai_streamer_status_name(int status);

/* Message of the last failed call on this thread ("" when none). Valid until
 * the next call into the library on this thread. */
RUNAI_STREAMER_EXPORT const char* runai_streamer_last_error(void);

/* ---- configuration ------------------------------------------------------ */

/* How local files are read (runai_streamer_config_t.fs_strategy). */
typedef enum runai_fs_strategy {
  RUNAI_FS_AUTO = 0,     /* per read: cached pages from the page cache, the others O_DIRECT */
  RUNAI_FS_BUFFERED = 1, /* always through the page cache */
  RUNAI_FS_DIRECT = 2,   /* always O_DIRECT, where the filesystem allows it */
} runai_fs_strategy_t;

typedef struct runai_streamer_config {
  /* Worker threads. Env RUNAI_STREAMER_CONCURRENCY; default 16; 1..1024. */
  int32_t concurrency;
  /* Bytes one worker reads in one call; bigger ranges are split into chunks
   * read by several workers. Env RUNAI_STREAMER_CHUNK_BYTESIZE; default
   * 8 MiB; 4 KiB..1 GiB. */
  int64_t chunk_bytesize;
  /* Timeout for one backend operation (object storage), milliseconds.
   * Env RUNAI_STREAMER_TIMEOUT_MS; default 60000; 1..86400000. */
  int64_t backend_timeout_ms;
  /* A runai_fs_strategy_t. Env RUNAI_STREAMER_FS_STRATEGY: auto (default),
   * buffered or direct, or upstream's names (io_uring_direct, libaio_direct:
   * direct; io_uring_buffered, sync_buffered: buffered) and comma-separated
   * lists of them (the first decides). */
  int32_t fs_strategy;
  /* 1: direct reads go through io_uring where the kernel offers it (many in
   * flight per worker); 0: one pread after another. Env
   * RUNAI_STREAMER_IO_URING; default 1. */
  int32_t io_uring;
} runai_streamer_config_t;

/* Fills *config with defaults, overridden by the environment variables named
 * above (the only place the library reads them: a streamer is made from its
 * config alone). A malformed or out-of-range variable fails with RUNAI_E_CONFIG and a
 * message naming the variable and its value. */
RUNAI_STREAMER_EXPORT int runai_streamer_config_default(runai_streamer_config_t* config);

/* ---- streamer ----------------------------------------------------------- */

typedef struct runai_streamer runai_streamer_t;

/* Creates a streamer. config may be NULL (then runai_streamer_config_default
 * is used). Values are validated; a bad one fails with RUNAI_E_CONFIG. */
RUNAI_STREAMER_EXPORT int runai_streamer_create(const runai_streamer_config_t* config,
                                                runai_streamer_t** out);

/* Cancels everything in flight, waits until no worker touches caller memory,
 * then frees the streamer. Safe with requests in flight. NULL is a no-op. */
RUNAI_STREAMER_EXPORT void runai_streamer_destroy(runai_streamer_t* streamer);

/* Registers the backend plugin library serving URIs "<scheme>://...".
 * library_path must be absolute. options are key/value strings handed to the
 * plugin (credentials, endpoint, region...). Fails with RUNAI_E_PLUGIN naming
 * the library and the cause (dlopen error, missing symbol, ABI mismatch,
 * plugin's own error). Re-registering a scheme replaces it for requests
 * submitted afterwards. */
RUNAI_STREAMER_EXPORT int runai_streamer_register_backend(
    runai_streamer_t* streamer, const char* scheme, const char* library_path,
    const char* const* option_keys, const char* const* option_values, size_t num_options);

/* Size in bytes of a local file or object URI (synchronous). */
RUNAI_STREAMER_EXPORT int runai_streamer_file_size(runai_streamer_t* streamer, const char* path,
                                                   uint64_t* size);

/* What the storage says of a file or object (runai_streamer_object_info). Strings are
 * NUL-terminated. */
#define RUNAI_OBJECT_INFO_TEXT_SIZE 512
typedef struct runai_object_info {
  uint64_t size;
  /* The service's version of the object ("etag=...,version=..." for S3, "generation=..." for
   * GCS, "etag=..." for Azure; "" for a local file): what changes when the object does. */
  char version[RUNAI_OBJECT_INFO_TEXT_SIZE];
  /* Checksums the service keeps of the whole object, comma-separated "name=value" with values
   * in lowercase hex: crc32c, crc32, crc64nvme (checkable by combining range checksums), md5,
   * and "composite-<crc>=<hex>-<parts>" for S3 multipart checksums of parts, with the sizes of
   * the parts where the store told them, "parts=<size>*<count>/..." (runs, in order); "" when
   * none. */
  char checksums[RUNAI_OBJECT_INFO_TEXT_SIZE];
} runai_object_info_t;

/* Size, version and checksums of a local file or object URI (synchronous: one HEAD). Text
 * that does not fit is cut at a comma, so every entry left is whole. */
RUNAI_STREAMER_EXPORT int runai_streamer_object_info(runai_streamer_t* streamer, const char* path,
                                                     runai_object_info_t* info);

/* Lists the entries directly under a local directory or a URI prefix of a
 * registered backend (non-recursive), calling entry(path, size, context) for
 * each regular file/object and each subdirectory/sub-prefix (whose path ends
 * with '/', size 0); a non-zero return from entry stops the listing. */
typedef int (*runai_list_entry_fn)(const char* path, uint64_t size, void* context);
RUNAI_STREAMER_EXPORT int runai_streamer_list(runai_streamer_t* streamer, const char* path,
                                              runai_list_entry_fn entry, void* context);

/* ---- requests ----------------------------------------------------------- */

typedef struct runai_range {
  uint64_t offset; /* byte offset in the file */
  uint64_t size;   /* bytes to read; 0 completes at once */
  void* dst;       /* caller memory of at least `size` bytes */
} runai_range_t;

/* Checksums the engine computes of the bytes of each range it read (a runai_checksum_t). All
 * three are the reflected CRCs with initial value and final XOR all ones, as object stores keep
 * them; the checksums of ranges combine into the whole object's with
 * runai_streamer_checksum_combine. */
typedef enum runai_checksum {
  RUNAI_CHECKSUM_NONE = 0,
  RUNAI_CHECKSUM_CRC32C = 1,   /* Castagnoli (GCS, S3 x-amz-checksum-crc32c) */
  RUNAI_CHECKSUM_CRC32 = 2,    /* IEEE, as zlib's crc32 (S3 x-amz-checksum-crc32) */
  RUNAI_CHECKSUM_CRC64NVME = 3 /* S3 x-amz-checksum-crc64nvme */
} runai_checksum_t;

typedef struct runai_file_request {
  const char* path; /* local path, or URI "<scheme>://..." of a registered backend */
  const runai_range_t* ranges;
  size_t num_ranges;
  /* A runai_checksum_t: the checksum each completed range of this file carries. */
  int32_t checksum;
  /* The size of the object at a URI when the caller knows it (runai_streamer_object_info):
   * then nothing but its ranges is asked of the storage; 0: the engine asks first (a HEAD).
   * Local files are measured regardless. A range past the object's real end fails as the
   * storage answers it. */
  uint64_t size;
} runai_file_request_t;

/* Submits a request; the arrays are copied, the destinations must stay valid
 * until each range completes (or the request is cancelled/released).
 * Ranges may be in any order and need not be contiguous. *request_id is never 0.
 * Errors found at submit (bad arguments, unsupported scheme) fail the call and
 * nothing is read; per-file errors (missing file...) arrive as completions. */
RUNAI_STREAMER_EXPORT int runai_streamer_submit(runai_streamer_t* streamer,
                                                const runai_file_request_t* files, size_t num_files,
                                                uint64_t* request_id);

typedef struct runai_completion {
  uint64_t request_id;
  uint32_t file_index;
  uint32_t range_index;
  int32_t status; /* RUNAI_OK or an error code */
  /* With status RUNAI_OK and a checksum asked for: the checksum of the range's bytes as they
   * are in its destination; else 0. */
  uint64_t checksum;
  /* NULL when status is RUNAI_OK; else a message naming the path, the range
   * and the cause. Owned by the request: valid until it is released. */
  const char* message;
} runai_completion_t;

/* Waits up to timeout_ms (negative: no limit) for completed ranges of
 * request_id (0: of any request) and stores up to max_completions of them.
 * Returns RUNAI_OK with *num_completions > 0, RUNAI_E_TIMEOUT when none came
 * in time, RUNAI_E_IDLE at once when nothing left to report for request_id
 * (every range of it already reported), RUNAI_E_UNKNOWN_REQUEST for an
 * unknown id. */
RUNAI_STREAMER_EXPORT int runai_streamer_wait(runai_streamer_t* streamer, uint64_t request_id,
                                              runai_completion_t* completions,
                                              size_t max_completions, int64_t timeout_ms,
                                              size_t* num_completions);

/* Cancels a request: returns once no worker will write into its
 * destinations again. Ranges not yet completed are reported with
 * RUNAI_E_CANCELLED (each range still completes exactly once). */
RUNAI_STREAMER_EXPORT int runai_streamer_cancel(runai_streamer_t* streamer, uint64_t request_id);

/* Forgets a request (cancelling it first if still in flight): its messages
 * are freed and its unreported completions dropped. */
RUNAI_STREAMER_EXPORT int runai_streamer_release(runai_streamer_t* streamer, uint64_t request_id);

/* ---- checksums ---------------------------------------------------------- */

/* *out = the checksum `kind` of `size` bytes at `data`, continuing from `crc` (0 for the first
 * bytes). RUNAI_E_INVALID_ARGUMENT for an unknown kind or NULL data with size > 0. */
RUNAI_STREAMER_EXPORT int runai_streamer_checksum(int32_t kind, uint64_t crc, const void* data,
                                                  uint64_t size, uint64_t* out);

/* *out = the checksum of A then B from that of A, that of B and B's size (O(log size_b)). */
RUNAI_STREAMER_EXPORT int runai_streamer_checksum_combine(int32_t kind, uint64_t crc_a,
                                                          uint64_t crc_b, uint64_t size_b,
                                                          uint64_t* out);

/* ---- destination memory ------------------------------------------------- */

/* Allocates `size` bytes for destinations: page-aligned, backed by huge pages
 * where the OS offers them (Linux MADV_HUGEPAGE), and faulted in by up to
 * `prefault_threads` threads (0: one per core, capped at 16; 1: no helper
 * threads) so the first writes by the engine do not stall on page faults.
 * Returns NULL (with last_error) on failure. Free with runai_streamer_free. */
RUNAI_STREAMER_EXPORT void* runai_streamer_alloc(uint64_t size, int32_t prefault_threads);
RUNAI_STREAMER_EXPORT void runai_streamer_free(void* ptr, uint64_t size);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RUNAI_STREAMER_STREAMER_H_ */
