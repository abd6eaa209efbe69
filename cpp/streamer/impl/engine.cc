#include "streamer/impl/engine.h"

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <system_error>

#include "streamer/impl/allocator.h"
#include "streamer/impl/local_file.h"

namespace runai::streamer {
namespace {

// Caps how many small ranges one task batches, so a request of many tiny
// ranges still spreads over the workers.
constexpr size_t kMaxPiecesPerTask = 256;
// Before a read of at least this many bytes, a task reports the pieces it has read: the first
// tensors of a stream, small ones in the same chunk as part of a large one, are not held back
// by that read (4 GB cold: 3-4 ms from stream_files to the first tensor instead of 4-25).
// Only before long reads, so that tasks of many small pieces do not report one by one.
constexpr uint64_t kReportBeforeBytes = uint64_t{1} << 20;
// A request's first task ends at the first boundary of this many bytes: the first tensors of a
// stream (a file starts with its small ones, the safetensors writer sorts them so) arrive
// after one short read, not after a whole chunk read while every worker's chunk shares the
// bandwidth (s3://, 16 workers: 16 x 8 MiB before the first tensor).
constexpr uint64_t kFirstTaskBytes = uint64_t{1} << 20;
// Workers run this much nicer than the thread that submits and takes the tensors. A submit
// wakes every worker; on a busy machine (two cores, a store on the same host) they took the
// CPU from the caller for 10-30 ms before it could yield the first tensor, which needs none
// of their reads. Their results are of no use until that thread takes them anyway.
constexpr int kWorkerNiceness = 5;

// Raises the calling thread's niceness by ``by`` (up to 19): no privilege needed. Linux only,
// where niceness is per thread; elsewhere PRIO_PROCESS would renice the whole process.
void MakeThisThreadNicer(int by) {
#if defined(__linux__)
  const id_t thread = static_cast<id_t>(::syscall(SYS_gettid));
  errno = 0;
  const int niceness = ::getpriority(PRIO_PROCESS, thread);  // -1 is a valid answer
  if (errno == 0) (void)::setpriority(PRIO_PROCESS, thread, std::min(niceness + by, 19));
#else
  (void)by;
#endif
}

bool IsSchemeChar(char c, bool first) {
  if (std::isalpha(static_cast<unsigned char>(c))) return true;
  if (first) return false;
  return std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
}

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool IsValidScheme(const std::string& scheme) {
  if (scheme.empty()) return false;
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (!IsSchemeChar(scheme[i], i == 0)) return false;
  }
  return true;
}

common::Status InvalidArgument(const std::string& message) {
  return {RUNAI_E_INVALID_ARGUMENT, message};
}

}  // namespace

std::string UriScheme(const std::string& path) {
  size_t separator = path.find("://");
  if (separator == std::string::npos) return "";
  std::string scheme = path.substr(0, separator);
  return IsValidScheme(scheme) ? Lower(scheme) : "";
}

Engine::Engine(const runai_streamer_config_t& config) : config_(config) {}

common::Status Engine::Create(const runai_streamer_config_t& config, std::unique_ptr<Engine>* out) {
  std::unique_ptr<Engine> engine(new Engine(config));
  engine->local_reads_ = LocalReadsOf(config);
  try {
    for (int32_t i = 0; i < config.concurrency; ++i) {
      engine->workers_.emplace_back(&Engine::WorkerLoop, engine.get());
    }
  } catch (const std::system_error& error) {
    // The destructor stops the workers already started.
    return {RUNAI_E_INTERNAL, std::string("cannot start worker threads: ") + error.what()};
  }
  *out = std::move(engine);
  return common::Status::Ok();
}

Engine::~Engine() {
  std::vector<Task> dropped;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    shutting_down_ = true;
    for (auto& entry : requests_) entry.second->cancelled = true;
    dropped.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    work_cv_.notify_all();
    done_cv_.notify_all();
    done_cv_.wait(lock, [&] { return waiters_ == 0; });
  }
  for (std::thread& worker : workers_) worker.join();
  FinishTasks(dropped);
  requests_.clear();
}

common::Status Engine::ResolveBackend(const std::string& path,
                                      std::shared_ptr<BackendPlugin>* backend) {
  std::string scheme = UriScheme(path);
  backend->reset();
  if (scheme.empty()) return common::Status::Ok();
  std::lock_guard<std::mutex> lock(backends_mutex_);
  auto found = backends_.find(scheme);
  if (found == backends_.end()) {
    return {RUNAI_E_UNSUPPORTED_SCHEME,
            "no backend registered for scheme '" + scheme + "' of '" + path + "'"};
  }
  *backend = found->second;
  return common::Status::Ok();
}

common::Status Engine::RegisterBackend(const std::string& scheme, const std::string& library_path,
                                       BackendPlugin::Options options) {
  if (!IsValidScheme(scheme)) {
    return InvalidArgument("invalid URI scheme '" + scheme +
                           "' (expected a letter followed by letters, digits, '+', '-', '.')");
  }
  bool has_timeout = false;
  for (const auto& option : options) {
    if (option.first == RUNAI_BACKEND_OPTION_TIMEOUT_MS) has_timeout = true;
  }
  if (!has_timeout) {
    options.emplace_back(RUNAI_BACKEND_OPTION_TIMEOUT_MS,
                         std::to_string(config_.backend_timeout_ms));
  }
  std::shared_ptr<BackendPlugin> plugin;
  common::Status status = BackendPlugin::Load(library_path, options, &plugin);
  if (!status.ok()) return status;
  std::lock_guard<std::mutex> lock(backends_mutex_);
  // Requests already submitted keep the plugin they resolved.
  backends_[Lower(scheme)] = std::move(plugin);
  return common::Status::Ok();
}

common::Status Engine::FileSize(const std::string& path, uint64_t* size) {
  std::shared_ptr<BackendPlugin> backend;
  common::Status status = ResolveBackend(path, &backend);
  if (!status.ok()) return status;
  if (backend != nullptr) return backend->Size(path, size);
  return LocalFileSize(path, size);
}

common::Status Engine::ObjectInfo(const std::string& path, runai_object_info_t* info) {
  std::shared_ptr<BackendPlugin> backend;
  common::Status status = ResolveBackend(path, &backend);
  if (!status.ok()) return status;
  if (backend != nullptr) return backend->Stat(path, info);
  common::ObjectInfo local;
  status = LocalFileInfo(path, &local);
  if (status.ok()) common::ExportObjectInfo(local, info);
  return status;
}

common::Status Engine::List(const std::string& path, const ListEntry& entry) {
  std::shared_ptr<BackendPlugin> backend;
  common::Status status = ResolveBackend(path, &backend);
  if (!status.ok()) return status;
  if (backend == nullptr) return ListLocalDirectory(path, entry);
  std::string prefix = path;
  if (prefix.back() != '/') prefix += '/';
  return backend->List(prefix, entry);
}

common::Status Engine::Submit(const runai_file_request_t* files, size_t num_files,
                              uint64_t* request_id) {
  if (request_id == nullptr) return InvalidArgument("request_id is NULL");
  if (files == nullptr && num_files > 0) return InvalidArgument("files is NULL");
  if (num_files > std::numeric_limits<uint32_t>::max()) return InvalidArgument("too many files");
  std::vector<std::unique_ptr<FileSource>> sources;
  sources.reserve(num_files);
  for (size_t f = 0; f < num_files; ++f) {
    const runai_file_request_t& file = files[f];
    const std::string where = "file " + std::to_string(f);
    if (file.path == nullptr) return InvalidArgument(where + ": path is NULL");
    const std::string path = file.path;
    if (path.empty()) return InvalidArgument(where + ": path is empty");
    if (file.ranges == nullptr && file.num_ranges > 0) {
      return InvalidArgument("'" + path + "': ranges is NULL");
    }
    if (file.num_ranges > std::numeric_limits<uint32_t>::max()) {
      return InvalidArgument("'" + path + "': too many ranges");
    }
    for (size_t r = 0; r < file.num_ranges; ++r) {
      const runai_range_t& range = file.ranges[r];
      if (range.size > 0 && range.dst == nullptr) {
        return InvalidArgument("'" + path + "' range " + std::to_string(r) + ": dst is NULL");
      }
      if (range.offset > std::numeric_limits<uint64_t>::max() - range.size ||
          range.offset + range.size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return InvalidArgument("'" + path + "' range " + std::to_string(r) +
                               ": offset + size overflows");
      }
    }
    std::optional<common::CrcKind> checksum;
    if (file.checksum != RUNAI_CHECKSUM_NONE) {
      checksum = common::CrcKindOf(file.checksum);
      if (!checksum) {
        return InvalidArgument("'" + path + "': unknown checksum " + std::to_string(file.checksum));
      }
    }
    std::shared_ptr<BackendPlugin> backend;
    common::Status status = ResolveBackend(path, &backend);
    if (!status.ok()) return status;
    sources.push_back(std::make_unique<FileSource>(
        path, std::move(backend),
        std::vector<runai_range_t>(file.ranges, file.ranges + file.num_ranges), local_reads_,
        checksum, file.size));
  }

  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = next_request_id_++;
  }
  auto request = std::make_shared<Request>(id, std::move(sources));
  // Empty ranges complete at once; nobody else sees the request yet.
  for (uint32_t f = 0; f < request->files.size(); ++f) {
    const auto& ranges = request->files[f]->ranges();
    for (uint32_t r = 0; r < ranges.size(); ++r) {
      if (ranges[r].size == 0) request->Complete(f, r, RUNAI_OK, "");
    }
  }
  std::vector<Task> tasks = MakeTasks(request);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    requests_.emplace(id, request);
    for (Task& task : tasks) queue_.push_back(std::move(task));
  }
  work_cv_.notify_all();
  done_cv_.notify_all();
  *request_id = id;
  return common::Status::Ok();
}

std::vector<Task> Engine::MakeTasks(const std::shared_ptr<Request>& request) const {
  const uint64_t chunk = static_cast<uint64_t>(config_.chunk_bytesize);
  std::vector<Task> tasks;
  for (uint32_t f = 0; f < request->files.size(); ++f) {
    FileSource& file = *request->files[f];
    const auto& ranges = file.ranges();
    // File order lets the worker merge neighbours into one read.
    std::vector<uint32_t> order;
    for (uint32_t r = 0; r < ranges.size(); ++r) {
      if (ranges[r].size > 0) order.push_back(r);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return ranges[a].offset < ranges[b].offset; });
    // A task covers at most one chunk-aligned slot of the file ([k * chunk, (k + 1) * chunk)):
    // whatever the ranges, reads start and end at the same file offsets, which object stores
    // keep in chunks of a similar power of two.
    Task current{request, f, {}};
    uint64_t slot_end = 0;
    auto flush = [&] {
      if (current.pieces.empty()) return;
      file.AddTask();
      tasks.push_back(std::move(current));
      current = Task{request, f, {}};
    };
    for (uint32_t r : order) {
      const runai_range_t& range = ranges[r];
      uint64_t done = 0;
      while (done < range.size) {
        const uint64_t at = range.offset + done;
        if (!current.pieces.empty() && at >= slot_end) flush();
        if (current.pieces.empty()) {
          slot_end = (at / chunk + 1) * chunk;
          if (tasks.empty())
            slot_end = std::min(slot_end, (at / kFirstTaskBytes + 1) * kFirstTaskBytes);
        }
        const uint64_t take = std::min(range.size - done, slot_end - at);
        current.pieces.push_back(Piece{r, at, take, static_cast<char*>(range.dst) + done});
        done += take;
        if (at + take == slot_end || current.pieces.size() == kMaxPiecesPerTask) flush();
      }
    }
    flush();
  }
  return tasks;
}

void Engine::WorkerLoop() {
  // A thread's first malloc makes its arena (an mmap), which waits for the address-space lock
  // behind the reads that populate destination pages (they hold it shared). Made later, under
  // mutex_, it stalled every worker and the caller's next submit 20-60 ms (perf sched traces,
  // 16 workers): made here, before any read starts. volatile: the pair is not elided.
  void* volatile first_allocation = std::malloc(1);
  std::free(first_allocation);
  MakeThisThreadNicer(kWorkerNiceness);
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return shutting_down_ || !queue_.empty(); });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
      ++task.request->running_tasks;
    }
    size_t reported = 0;
    std::vector<PieceResult> results = Execute(task, &reported);
    // Before reporting: once a file's last range is reported, its fd is closed.
    task.request->files[task.file_index]->TaskDone();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ApplyLocked(task, results, reported, results.size());
      --task.request->running_tasks;
    }
    done_cv_.notify_all();
  }
}

std::vector<Engine::PieceResult> Engine::Execute(const Task& task, size_t* reported) {
  Request& request = *task.request;
  FileSource& file = *request.files[task.file_index];
  const auto& ranges = file.ranges();
  const std::vector<Piece>& pieces = task.pieces;
  std::vector<PieceResult> results(pieces.size());

  uint64_t file_size = 0;
  common::Status opened = file.Open(&file_size);
  if (!opened.ok()) {
    for (PieceResult& result : results) result = PieceResult{true, opened};
    return results;
  }
  auto past_eof = [&](const Piece& piece) {
    const runai_range_t& range = ranges[piece.range_index];
    return range.offset + range.size > file_size;
  };
  size_t i = 0;
  while (i < pieces.size()) {
    if (request.cancelled.load(std::memory_order_relaxed)) break;
    if (past_eof(pieces[i])) {
      results[i] = PieceResult{true,
                               {RUNAI_E_EOF, "ends past the end of the file (file size " +
                                                 std::to_string(file_size) + ")"}};
      ++i;
      continue;
    }
    // Pieces adjacent both in the file and in memory become one read.
    size_t end = i + 1;
    uint64_t size = pieces[i].size;
    while (end < pieces.size() && pieces[end].file_offset == pieces[i].file_offset + size &&
           pieces[end].dst == pieces[i].dst + size && !past_eof(pieces[end])) {
      size += pieces[end].size;
      ++end;
    }
    if (size >= kReportBeforeBytes && *reported < i) {
      // Pieces of this task's later reads stay unreported: its request cannot complete here,
      // so nothing releases it (or closes the file) under this worker.
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ApplyLocked(task, results, *reported, i);
      }
      *reported = i;
      done_cv_.notify_all();
    }
    // New memory faulted in by one call, not one page fault at a time inside the copy.
    PopulateForWrite(pieces[i].dst, size);
    common::Status status;
    if (file.checksum()) {
      // One CRC per piece, of the bytes as they are in the destination: what is checked is
      // what the caller gets (a plugin takes them as its bodies land, in cache).
      std::vector<uint64_t> sizes, crcs;
      for (size_t k = i; k < end; ++k) sizes.push_back(pieces[k].size);
      status = file.ReadChecked(pieces[i].file_offset, size, pieces[i].dst, sizes, &crcs);
      for (size_t k = i; k < end; ++k) {
        results[k] = PieceResult{true, status, status.ok() ? crcs[k - i] : 0};
      }
    } else {
      status = file.Read(pieces[i].file_offset, size, pieces[i].dst);
      for (size_t k = i; k < end; ++k) results[k] = PieceResult{true, status};
    }
    i = end;
  }
  return results;
}

void Engine::ApplyLocked(const Task& task, const std::vector<PieceResult>& results, size_t from,
                         size_t to) {
  Request& request = *task.request;
  for (size_t k = from; k < to; ++k) {
    if (!results[k].ran) continue;
    const Piece& piece = task.pieces[k];
    Request::RangeState& state = request.ranges[task.file_index][piece.range_index];
    if (!results[k].status.ok() && state.status == RUNAI_OK) {
      state.status = results[k].status.code;
      state.cause = results[k].status.message;
    }
    if (results[k].status.ok() && request.files[task.file_index]->checksum()) {
      state.checksums.push_back({piece.file_offset, piece.size, results[k].crc});
    }
    state.bytes_left -= piece.size;
    if (state.bytes_left == 0) {
      request.Complete(task.file_index, piece.range_index, state.status, state.cause);
    }
  }
}

void Engine::FinishTasks(std::vector<Task>& tasks) {
  for (Task& task : tasks) task.request->files[task.file_index]->TaskDone();
  tasks.clear();
}

}  // namespace runai::streamer
