// streamer_bench: read throughput of libstreamer against a plain read() loop.
//
//   streamer_bench [--make SIZE] [--cold] [--concurrency N] [--chunk BYTES] FILE
//
// --make writes SIZE random bytes to FILE first (SIZE may end in K, M or G).
// --cold evicts FILE from the page cache before each timed read (Linux
// posix_fadvise DONTNEED; needs no root), so the disk is measured.
// Modes, each reading the whole file:
//   reused     streamer into a buffer allocated and touched once (second of two reads)
//   alloc      streamer into new memory from runai_streamer_alloc (time includes the alloc)
//   untouched  streamer into new mmap'ed memory never touched before (page faults on write)
//   read-loop  single-threaded read() of 8 MiB blocks into the reused buffer
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "streamer/streamer.h"

namespace {

constexpr size_t kBlock = size_t{8} << 20;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "streamer_bench: %s\n", message.c_str());
  std::exit(1);
}

uint64_t ParseSize(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str()) Die("bad size '" + text + "'");
  std::string suffix = end;
  if (suffix == "K" || suffix == "k")
    value <<= 10;
  else if (suffix == "M" || suffix == "m")
    value <<= 20;
  else if (suffix == "G" || suffix == "g")
    value <<= 30;
  else if (!suffix.empty())
    Die("bad size suffix in '" + text + "'");
  return value;
}

void MakeFile(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die("cannot create " + path + ": " + std::strerror(errno));
  std::vector<uint64_t> block(kBlock / sizeof(uint64_t));
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  for (uint64_t written = 0; written < size;) {
    for (uint64_t& word : block) {  // xorshift64: fast, not compressible
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      word = state;
    }
    size_t want = static_cast<size_t>(std::min<uint64_t>(kBlock, size - written));
    ssize_t got = ::write(fd, block.data(), want);
    if (got <= 0) Die("cannot write " + path + ": " + std::strerror(errno));
    written += static_cast<uint64_t>(got);
  }
  ::close(fd);
}

bool cold = false;

// Drops the file's pages from the page cache so the next read hits the disk.
void EvictIfCold(const std::string& path) {
  if (!cold) return;
#ifdef POSIX_FADV_DONTNEED
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die("cannot open " + path + ": " + std::strerror(errno));
  ::fdatasync(fd);
  int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  if (err != 0) Die("posix_fadvise: " + std::string(std::strerror(err)));
#else
  (void)path;
  Die("--cold needs posix_fadvise(POSIX_FADV_DONTNEED), not available here");
#endif
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Check(int status, const char* what) {
  if (status != RUNAI_OK) {
    Die(std::string(what) + ": " + runai_streamer_status_name(status) + ": " +
        runai_streamer_last_error());
  }
}

// Reads the whole file into dst with one request; returns seconds.
double StreamInto(runai_streamer_t* streamer, const std::string& path, uint64_t size, void* dst) {
  EvictIfCold(path);
  auto start = std::chrono::steady_clock::now();
  runai_range_t range{0, size, dst};
  runai_file_request_t file{path.c_str(), &range, 1, RUNAI_CHECKSUM_NONE, 0};
  uint64_t id = 0;
  Check(runai_streamer_submit(streamer, &file, 1, &id), "submit");
  runai_completion_t completion;
  size_t count = 0;
  Check(runai_streamer_wait(streamer, id, &completion, 1, -1, &count), "wait");
  if (completion.status != RUNAI_OK) Die(completion.message);
  double seconds = Seconds(start);
  Check(runai_streamer_release(streamer, id), "release");
  return seconds;
}

double ReadLoop(const std::string& path, uint64_t size, char* dst) {
  EvictIfCold(path);
  auto start = std::chrono::steady_clock::now();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die("cannot open " + path + ": " + std::strerror(errno));
  uint64_t done = 0;
  while (done < size) {
    ssize_t got = ::read(fd, dst + done, std::min<uint64_t>(kBlock, size - done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) Die("read failed on " + path);
    done += static_cast<uint64_t>(got);
  }
  ::close(fd);
  return Seconds(start);
}

void Print(const char* mode, uint64_t size, double seconds) {
  std::printf("%-10s %8.2f GB/s  (%.3f s)\n", mode, static_cast<double>(size) / seconds / 1e9,
              seconds);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  uint64_t make_size = 0;
  runai_streamer_config_t config;
  Check(runai_streamer_config_default(&config), "config");
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--make" && i + 1 < argc) {
      make_size = ParseSize(argv[++i]);
    } else if (arg == "--cold") {
      cold = true;
    } else if (arg == "--concurrency" && i + 1 < argc) {
      config.concurrency = static_cast<int32_t>(ParseSize(argv[++i]));
    } else if (arg == "--chunk" && i + 1 < argc) {
      config.chunk_bytesize = static_cast<int64_t>(ParseSize(argv[++i]));
    } else if (!arg.empty() && arg[0] != '-' && path.empty()) {
      path = arg;
    } else {
      Die("usage: streamer_bench [--make SIZE] [--cold] [--concurrency N] [--chunk BYTES] FILE");
    }
  }
  if (path.empty()) Die("no FILE given");
  if (make_size > 0) MakeFile(path, make_size);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) Die("cannot stat " + path + ": " + std::strerror(errno));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) Die(path + " is empty");

  runai_streamer_t* streamer = nullptr;
  Check(runai_streamer_create(&config, &streamer), "create");
  std::printf("file %s: %.2f GB, concurrency %d, chunk %lld bytes, %s cache\n", path.c_str(),
              static_cast<double>(size) / 1e9, config.concurrency,
              static_cast<long long>(config.chunk_bytesize), cold ? "cold" : "warm");

  void* reused = runai_streamer_alloc(size, 0);
  if (reused == nullptr) Die(std::string("alloc: ") + runai_streamer_last_error());
  StreamInto(streamer, path, size, reused);  // warms the buffer (and the cache)
  Print("reused", size, StreamInto(streamer, path, size, reused));

  auto start = std::chrono::steady_clock::now();
  void* fresh = runai_streamer_alloc(size, 0);
  if (fresh == nullptr) Die(std::string("alloc: ") + runai_streamer_last_error());
  double alloc_seconds = Seconds(start);
  double total = alloc_seconds + StreamInto(streamer, path, size, fresh);
  Print("alloc", size, total);
  std::printf("           (of which runai_streamer_alloc: %.3f s)\n", alloc_seconds);
  runai_streamer_free(fresh, size);

  void* untouched = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON, -1, 0);
  if (untouched == MAP_FAILED) Die(std::string("mmap: ") + std::strerror(errno));
  Print("untouched", size, StreamInto(streamer, path, size, untouched));
  ::munmap(untouched, size);

  Print("read-loop", size, ReadLoop(path, size, static_cast<char*>(reused)));

  runai_streamer_free(reused, size);
  runai_streamer_destroy(streamer);
  return 0;
}
