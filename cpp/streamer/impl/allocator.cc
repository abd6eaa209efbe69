#include "streamer/impl/allocator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "streamer/streamer.h"

namespace runai::streamer {
namespace {

constexpr int32_t kMaxPrefaultThreads = 16;
// Threads split the buffer on huge-page boundaries so no two fault the same page.
constexpr uint64_t kSliceAlignment = uint64_t{2} << 20;

void TouchPages(char* begin, char* end, uint64_t page_size) {
  for (volatile char* p = begin; p < end; p += page_size) *p = 0;
}

int32_t DefaultPrefaultThreads() {
  unsigned cores = std::thread::hardware_concurrency();
  if (cores == 0) cores = 1;
  return static_cast<int32_t>(std::min<unsigned>(cores, kMaxPrefaultThreads));
}

void Prefault(char* base, uint64_t size, int32_t threads, uint64_t page_size) {
  uint64_t slice = (size + threads - 1) / threads;
  slice = (slice + kSliceAlignment - 1) / kSliceAlignment * kSliceAlignment;
  std::vector<std::thread> helpers;
  uint64_t start = slice;  // the calling thread takes the first slice
  for (; start < size; start += slice) {
    char* begin = base + start;
    char* end = base + std::min(size, start + slice);
    try {
      helpers.emplace_back(TouchPages, begin, end, page_size);
    } catch (const std::system_error&) {
      TouchPages(begin, end, page_size);  // no thread to spare: do it here
    }
  }
  TouchPages(base, base + std::min(size, slice), page_size);
  for (std::thread& helper : helpers) helper.join();
}

#if defined(__linux__) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23  // Linux 5.14 uapi; older headers lack the name
#endif

#if defined(MADV_POPULATE_WRITE)
// Asked once per process: a kernel without the advice answers EINVAL for any memory.
bool KernelPopulates() {
  static const bool populates = [] {
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    void* probe = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON, -1, 0);
    if (probe == MAP_FAILED) return false;
    const bool ok = ::madvise(probe, page, MADV_POPULATE_WRITE) == 0;
    ::munmap(probe, page);
    return ok;
  }();
  return populates;
}
#endif

}  // namespace

void PopulateForWrite(char* dst, uint64_t size) {
#if defined(MADV_POPULATE_WRITE)
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(dst) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(dst) + size) & ~(page - 1);
  if (end <= begin || !KernelPopulates()) return;
  // The advice holds the address-space lock (shared) while it faults pages in. One call for
  // a whole chunk holds it for milliseconds, and longer when the thread is preempted meanwhile.
  // Every brk, mmap and mprotect of the process waits for it, and so does any thread that
  // wants the malloc arena they hold (the Python thread, inside submit: stalls of 20 ms).
  // Slices let those in between.
  constexpr uintptr_t kSlice = uintptr_t{1} << 20;
  for (uintptr_t at = begin; at < end; at += kSlice) {
    (void)::madvise(reinterpret_cast<void*>(at), std::min(kSlice, end - at), MADV_POPULATE_WRITE);
  }
#else
  (void)dst;
  (void)size;
#endif
}

common::Status AllocateDestination(uint64_t size, int32_t prefault_threads, void** out) {
  if (size == 0) return {RUNAI_E_INVALID_ARGUMENT, "cannot allocate 0 bytes"};
  if (prefault_threads < 0) {
    return {RUNAI_E_INVALID_ARGUMENT,
            "prefault_threads=" + std::to_string(prefault_threads) + " is negative"};
  }
  void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON, -1, 0);
  if (memory == MAP_FAILED) {
    int err = errno;
    return {err == ENOMEM ? RUNAI_E_NO_MEMORY : RUNAI_E_INVALID_ARGUMENT,
            "cannot allocate " + std::to_string(size) + " bytes: " + common::ErrnoText(err)};
  }
#ifdef MADV_HUGEPAGE
  // EINVAL means no transparent huge pages here; plain pages still work.
  (void)::madvise(memory, size, MADV_HUGEPAGE);
#endif
  int32_t threads = prefault_threads == 0 ? DefaultPrefaultThreads() : prefault_threads;
  threads = std::min(threads, kMaxPrefaultThreads);
  uint64_t page_size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  Prefault(static_cast<char*>(memory), size, threads, page_size);
  *out = memory;
  return common::Status::Ok();
}

common::Status FreeDestination(void* ptr, uint64_t size) {
  if (ptr == nullptr) return common::Status::Ok();
  if (::munmap(ptr, size) != 0) {
    int err = errno;
    return {RUNAI_E_INVALID_ARGUMENT,
            "cannot free " + std::to_string(size) + " bytes: " + common::ErrnoText(err)};
  }
  return common::Status::Ok();
}

}  // namespace runai::streamer
