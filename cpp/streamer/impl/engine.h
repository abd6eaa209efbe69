// The engine behind one runai_streamer_t: a worker pool executing read tasks
// of the submitted requests, the completions waiting to be collected, and
// the backends registered for URI schemes.
#ifndef RUNAI_STREAMER_STREAMER_IMPL_ENGINE_H_
#define RUNAI_STREAMER_STREAMER_IMPL_ENGINE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "streamer/impl/backend_plugin.h"
#include "streamer/impl/file_reader.h"
#include "streamer/impl/request.h"
#include "streamer/streamer.h"

namespace runai::streamer {

class Engine {
 public:
  using ListEntry = std::function<bool(const std::string&, uint64_t)>;

  // config must be valid (ValidateConfig).
  static common::Status Create(const runai_streamer_config_t& config, std::unique_ptr<Engine>* out);

  // Cancels all requests and joins the workers: afterwards nothing touches
  // caller memory.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  common::Status RegisterBackend(const std::string& scheme, const std::string& library_path,
                                 BackendPlugin::Options options);
  common::Status FileSize(const std::string& path, uint64_t* size);
  common::Status ObjectInfo(const std::string& path, runai_object_info_t* info);
  common::Status List(const std::string& path, const ListEntry& entry);

  common::Status Submit(const runai_file_request_t* files, size_t num_files, uint64_t* request_id);
  common::Status Wait(uint64_t request_id, runai_completion_t* completions, size_t max_completions,
                      int64_t timeout_ms, size_t* num_completions);
  common::Status Cancel(uint64_t request_id);
  common::Status Release(uint64_t request_id);

 private:
  explicit Engine(const runai_streamer_config_t& config);

  // Finds the backend serving path's scheme; null for a local path.
  common::Status ResolveBackend(const std::string& path, std::shared_ptr<BackendPlugin>* backend);
  std::vector<Task> MakeTasks(const std::shared_ptr<Request>& request) const;

  void WorkerLoop();
  // Runs without the lock; returns per piece whether it ran and its status.
  struct PieceResult {
    bool ran = false;
    common::Status status;
    uint64_t crc = 0;  // of the piece's bytes, when its file asks for a checksum
  };
  // Pieces [0, *reported) were reported already (see kReportBeforeBytes).
  std::vector<PieceResult> Execute(const Task& task, size_t* reported);
  // Applies the results of pieces [from, to) of task.
  void ApplyLocked(const Task& task, const std::vector<PieceResult>& results, size_t from,
                   size_t to);

  // Stops the request's tasks, waits for running ones, reports the rest as
  // cancelled. Returns the dropped tasks, to be finished outside the lock.
  std::vector<Task> CancelLocked(std::unique_lock<std::mutex>& lock, Request& request);
  static void FinishTasks(std::vector<Task>& tasks);
  // Moves ready completions of one request into out; returns how many.
  static size_t TakeLocked(Request& request, runai_completion_t* out, size_t max);

  const runai_streamer_config_t config_;
  LocalReads local_reads_;  // how local files are read

  std::mutex mutex_;
  std::condition_variable work_cv_;  // queue_ gained tasks, or shutting down
  std::condition_variable done_cv_;  // completions, task finished, release
  std::deque<Task> queue_;
  std::map<uint64_t, std::shared_ptr<Request>> requests_;
  uint64_t next_request_id_ = 1;
  bool shutting_down_ = false;
  int waiters_ = 0;
  std::vector<std::thread> workers_;

  std::mutex backends_mutex_;
  std::map<std::string, std::shared_ptr<BackendPlugin>> backends_;
};

// "s3" for "s3://bucket/key"; empty for a local path.
std::string UriScheme(const std::string& path);

}  // namespace runai::streamer

#endif  // RUNAI_STREAMER_STREAMER_IMPL_ENGINE_H_
