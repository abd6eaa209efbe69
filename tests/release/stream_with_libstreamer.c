/* Streams a whole file through libstreamer's C API and compares it with a plain read.
 * Used by `scripts/rehearse-release --qemu` to run the linux-aarch64 wheels' libraries under
 * qemu-aarch64 (built with zig for aarch64-linux-gnu.2.17).
 *
 *   stream_with_libstreamer LIBRARY FILE [URI PLUGIN [KEY=VALUE...]]
 *
 * streams FILE, or with URI and PLUGIN streams URI through that backend plugin (registered for
 * the URI's scheme with the given options) and compares it with FILE. Prints "stream: ok ..."
 * and exits 0 on success. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamer/streamer.h"

#define LOAD(name) \
  name##_fn name = (name##_fn)dlsym(library, #name); \
  if (!name) { fprintf(stderr, "missing %s: %s\n", #name, dlerror()); return 1; }

typedef const char* (*runai_streamer_version_fn)(void);
typedef const char* (*runai_streamer_last_error_fn)(void);
typedef int (*runai_streamer_create_fn)(const runai_streamer_config_t*, runai_streamer_t**);
typedef void (*runai_streamer_destroy_fn)(runai_streamer_t*);
typedef int (*runai_streamer_submit_fn)(runai_streamer_t*, const runai_file_request_t*, size_t, uint64_t*);
typedef int (*runai_streamer_register_backend_fn)(runai_streamer_t*, const char*, const char*,
                                                  const char* const*, const char* const*, size_t);
typedef int (*runai_streamer_wait_fn)(runai_streamer_t*, uint64_t, runai_completion_t*, size_t,
                                      int64_t, size_t*);

int main(int argc, char** argv) {
  if (argc != 3 && argc < 5) {
    fprintf(stderr, "usage: %s LIBRARY FILE [URI PLUGIN [KEY=VALUE...]]\n", argv[0]);
    return 2;
  }
  void* library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!library) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
  LOAD(runai_streamer_version) LOAD(runai_streamer_last_error) LOAD(runai_streamer_create)
  LOAD(runai_streamer_destroy) LOAD(runai_streamer_submit) LOAD(runai_streamer_wait)
  LOAD(runai_streamer_register_backend)
  const char* source = argc >= 5 ? argv[3] : argv[2];

  FILE* file = fopen(argv[2], "rb");
  if (!file) { perror(argv[2]); return 1; }
  fseek(file, 0, SEEK_END);
  long size = ftell(file);
  fseek(file, 0, SEEK_SET);
  char* expected = malloc((size_t)size);
  char* got = calloc(1, (size_t)size);
  if (fread(expected, 1, (size_t)size, file) != (size_t)size) { perror("fread"); return 1; }
  fclose(file);

  /* Four ranges, out of order, so several workers and chunks take part. */
  enum { N = 4 };
  runai_range_t ranges[N];
  uint64_t quarter = (uint64_t)size / N;
  for (int i = 0; i < N; ++i) {
    int k = N - 1 - i;
    ranges[i].offset = k * quarter;
    ranges[i].size = k == N - 1 ? (uint64_t)size - k * quarter : quarter;
    ranges[i].dst = got + k * quarter;
  }
  runai_file_request_t request = {source, ranges, N, RUNAI_CHECKSUM_NONE, 0};
  runai_streamer_t* streamer = NULL;
  uint64_t id = 0;
  if (runai_streamer_create(NULL, &streamer) != RUNAI_OK) {
    fprintf(stderr, "libstreamer: %s\n", runai_streamer_last_error());
    return 1;
  }
  if (argc >= 5) {
    enum { MAX_OPTIONS = 32 };
    const char* keys[MAX_OPTIONS];
    const char* values[MAX_OPTIONS];
    size_t count = 0;
    for (int i = 5; i < argc && count < MAX_OPTIONS; ++i, ++count) {
      char* equals = strchr(argv[i], '=');
      if (!equals) { fprintf(stderr, "option without '=': %s\n", argv[i]); return 2; }
      *equals = '\0';
      keys[count] = argv[i];
      values[count] = equals + 1;
    }
    char scheme[16] = {0};
    const char* colon = strstr(source, "://");
    if (!colon || colon - source >= (long)sizeof(scheme)) { fprintf(stderr, "not a URI: %s\n", source); return 2; }
    memcpy(scheme, source, (size_t)(colon - source));
    if (runai_streamer_register_backend(streamer, scheme, argv[4], keys, values, count) != RUNAI_OK) {
      fprintf(stderr, "register %s: %s\n", argv[4], runai_streamer_last_error());
      return 1;
    }
  }
  if (runai_streamer_submit(streamer, &request, 1, &id) != RUNAI_OK) {
    fprintf(stderr, "libstreamer: %s\n", runai_streamer_last_error());
    return 1;
  }
  int done = 0;
  while (done < N) {
    runai_completion_t completions[N];
    size_t count = 0;
    int status = runai_streamer_wait(streamer, id, completions, N, 60000, &count);
    if (status != RUNAI_OK) { fprintf(stderr, "wait: %d %s\n", status, runai_streamer_last_error()); return 1; }
    for (size_t i = 0; i < count; ++i) {
      if (completions[i].status != RUNAI_OK) { fprintf(stderr, "range: %s\n", completions[i].message); return 1; }
    }
    done += (int)count;
  }
  runai_streamer_destroy(streamer);
  if (memcmp(expected, got, (size_t)size) != 0) { fprintf(stderr, "stream: bytes differ\n"); return 1; }
  printf("stream: ok, %ld bytes of %s in %d ranges, libstreamer %s\n", size, source, N,
         runai_streamer_version());
  return 0;
}
