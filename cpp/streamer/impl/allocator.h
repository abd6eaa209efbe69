// Destination memory: huge pages where available, faulted in by threads.
#ifndef RUNAI_STREAMER_STREAMER_IMPL_ALLOCATOR_H_
#define RUNAI_STREAMER_STREAMER_IMPL_ALLOCATOR_H_

#include <cstdint>

#include "common/status.h"

namespace runai::streamer {

common::Status AllocateDestination(uint64_t size, int32_t prefault_threads, void** out);
common::Status FreeDestination(void* ptr, uint64_t size);

}  // namespace runai::streamer

#endif  // RUNAI_STREAMER_STREAMER_IMPL_ALLOCATOR_H_
