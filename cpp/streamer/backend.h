/* runai-model-streamer: the backend plugin C ABI.
 *
 * An object-storage backend is a shared library exporting the functions below
 * (plain C symbols). libstreamer dlopens it by absolute path when a caller
 * registers it for a URI scheme (runai_streamer_register_backend) and calls
 * it from its worker threads: every function except create/destroy may run
 * concurrently on one backend instance.
 *
 * Every function returns a runai_status_t code (streamer.h). On failure the
 * plugin writes a NUL-terminated message into `error` (at most error_size
 * bytes, truncated if needed) naming the URI and the cause (HTTP status,
 * service error code, curl error...).
 */
#ifndef RUNAI_STREAMER_BACKEND_H_
#define RUNAI_STREAMER_BACKEND_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change of this ABI.
 * 2: list also reports the sub-prefixes ("directories") under a prefix.
 * 3: stat (size, version and checksums of an object), read_checked. */
#define RUNAI_BACKEND_ABI_VERSION 3

typedef struct runai_backend runai_backend_t; /* defined by each plugin */

/* Options the streamer hands every backend in addition to the caller's. */
#define RUNAI_BACKEND_OPTION_TIMEOUT_MS "timeout_ms"

/* Returns RUNAI_BACKEND_ABI_VERSION the plugin was built with. */
typedef int (*runai_backend_abi_version_fn)(void);

/* Creates an instance configured by key/value options (credentials,
 * endpoint, region, timeout_ms...). Unknown keys are an error. */
typedef int (*runai_backend_create_fn)(const char* const* option_keys,
                                       const char* const* option_values, size_t num_options,
                                       runai_backend_t** out, char* error, size_t error_size);

typedef void (*runai_backend_destroy_fn)(runai_backend_t* backend);

/* Size of the object at uri. */
typedef int (*runai_backend_size_fn)(runai_backend_t* backend, const char* uri, uint64_t* size,
                                     char* error, size_t error_size);

/* Size, version and checksums of the object at uri, in runai_object_info_t's terms
 * (streamer.h): the plugin fills a zeroed struct. */
struct runai_object_info;
typedef int (*runai_backend_stat_fn)(runai_backend_t* backend, const char* uri,
                                     struct runai_object_info* info, char* error,
                                     size_t error_size);

/* Reads exactly `size` bytes at `offset` of uri into dst. A short or
 * mislabelled response is an error, never partial data reported as success.
 * Transient failures are retried inside the plugin. */
typedef int (*runai_backend_read_fn)(runai_backend_t* backend, const char* uri, uint64_t offset,
                                     uint64_t size, void* dst, char* error, size_t error_size);

/* As read, and the CRC (a runai_checksum_t, streamer.h) of each of the `num_segments`
 * consecutive segments of the bytes read (sizes in segment_sizes, summing to `size`) into
 * segment_crcs, computed as the bytes arrive (while they are in cache). */
typedef int (*runai_backend_read_checked_fn)(runai_backend_t* backend, const char* uri,
                                             uint64_t offset, uint64_t size, void* dst,
                                             int32_t checksum, const uint64_t* segment_sizes,
                                             uint64_t* segment_crcs, size_t num_segments,
                                             char* error, size_t error_size);

/* Lists what is directly under uri_prefix (non-recursive; uri_prefix ends
 * with '/'), calling entry(name, size, context) for each object and for each
 * sub-prefix; `name` is the full URI, and a sub-prefix's ends with '/' (its
 * size is 0), so a caller can descend. A non-zero return from entry stops the
 * listing. */
typedef int (*runai_backend_list_entry_fn)(const char* uri, uint64_t size, void* context);
typedef int (*runai_backend_list_fn)(runai_backend_t* backend, const char* uri_prefix,
                                     runai_backend_list_entry_fn entry, void* context, char* error,
                                     size_t error_size);

/* The symbol names a plugin exports. */
#define RUNAI_BACKEND_SYM_ABI_VERSION "runai_backend_abi_version"
#define RUNAI_BACKEND_SYM_CREATE "runai_backend_create"
#define RUNAI_BACKEND_SYM_DESTROY "runai_backend_destroy"
#define RUNAI_BACKEND_SYM_SIZE "runai_backend_size"
#define RUNAI_BACKEND_SYM_STAT "runai_backend_stat"
#define RUNAI_BACKEND_SYM_READ "runai_backend_read"
#define RUNAI_BACKEND_SYM_READ_CHECKED "runai_backend_read_checked"
#define RUNAI_BACKEND_SYM_LIST "runai_backend_list"

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RUNAI_STREAMER_BACKEND_H_ */
