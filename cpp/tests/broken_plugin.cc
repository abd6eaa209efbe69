// A backend plugin that is wrong on purpose: built once without the read
// function and once reporting a wrong ABI version.
#include <cstddef>

#include "streamer/backend.h"
#include "streamer/streamer.h"

#define BROKEN_EXPORT extern "C" __attribute__((visibility("default")))

struct runai_backend {
  int unused;
};

BROKEN_EXPORT int runai_backend_abi_version(void) {
#ifdef BROKEN_PLUGIN_WRONG_ABI
  return RUNAI_BACKEND_ABI_VERSION + 100;
#else
  return RUNAI_BACKEND_ABI_VERSION;
#endif
}

BROKEN_EXPORT int runai_backend_create(const char* const*, const char* const*, size_t,
                                       runai_backend_t** out, char*, size_t) {
  *out = new runai_backend{0};
  return RUNAI_OK;
}

BROKEN_EXPORT void runai_backend_destroy(runai_backend_t* backend) { delete backend; }

BROKEN_EXPORT int runai_backend_size(runai_backend_t*, const char*, uint64_t* size, char*, size_t) {
  *size = 0;
  return RUNAI_OK;
}

BROKEN_EXPORT int runai_backend_stat(runai_backend_t*, const char*, runai_object_info_t*, char*,
                                     size_t) {
  return RUNAI_OK;
}

#ifndef BROKEN_PLUGIN_OMIT_READ
BROKEN_EXPORT int runai_backend_read(runai_backend_t*, const char*, uint64_t, uint64_t, void*,
                                     char*, size_t) {
  return RUNAI_OK;
}
#endif

BROKEN_EXPORT int runai_backend_read_checked(runai_backend_t*, const char*, uint64_t, uint64_t,
                                             void*, int32_t, const uint64_t*, uint64_t*, size_t,
                                             char*, size_t) {
  return RUNAI_OK;
}

BROKEN_EXPORT int runai_backend_list(runai_backend_t*, const char*, runai_backend_list_entry_fn,
                                     void*, char*, size_t) {
  return RUNAI_OK;
}
