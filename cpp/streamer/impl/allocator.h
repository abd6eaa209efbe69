// Destination memory: huge pages where available, faulted in by threads.
#ifndef RUNAI_STREAMER_STREAMER_IMPL_ALLOCATOR_H_
#define RUNAI_STREAMER_STREAMER_IMPL_ALLOCATOR_H_

#include <cstdint>

#include "common/status.h"

namespace runai::streamer {

common::Status AllocateDestination(uint64_t size, int32_t prefault_threads, void** out);
common::Status FreeDestination(void* ptr, uint64_t size);

// Faults in the whole pages of [dst, dst + size) for writing, in one call (Linux >= 5.14:
// MADV_POPULATE_WRITE), so that the read which fills them next copies into present pages
// instead of taking one page fault per 4 KiB. Best effort: nothing happens where the kernel
// lacks it, and memory that refuses it (device or locked mappings) is faulted as before.
void PopulateForWrite(char* dst, uint64_t size);

}  // namespace runai::streamer

#endif  // RUNAI_STREAMER_STREAMER_IMPL_ALLOCATOR_H_
