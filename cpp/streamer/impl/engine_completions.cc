// The engine's completion side: cancelling and releasing requests, and handing their
// completions to Wait (the submission side and the workers are engine.cc).
#include <algorithm>
#include <chrono>
#include <limits>

#include "streamer/impl/engine.h"

namespace runai::streamer {
namespace {

common::Status InvalidArgument(const std::string& message) {
  return {RUNAI_E_INVALID_ARGUMENT, message};
}

}  // namespace

std::vector<Task> Engine::CancelLocked(std::unique_lock<std::mutex>& lock, Request& request) {
  request.cancelled = true;
  std::vector<Task> dropped;
  std::deque<Task> kept;
  for (Task& task : queue_) {
    if (task.request.get() == &request) {
      dropped.push_back(std::move(task));
    } else {
      kept.push_back(std::move(task));
    }
  }
  queue_.swap(kept);
  // Running tasks stop at their next read and may still complete ranges.
  done_cv_.wait(lock, [&] { return request.running_tasks == 0; });
  for (uint32_t f = 0; f < request.files.size(); ++f) {
    for (uint32_t r = 0; r < request.ranges[f].size(); ++r) {
      request.Complete(f, r, RUNAI_E_CANCELLED, "request cancelled");
    }
  }
  done_cv_.notify_all();
  return dropped;
}

common::Status Engine::Cancel(uint64_t request_id) {
  std::vector<Task> dropped;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    auto found = requests_.find(request_id);
    if (found == requests_.end()) {
      return {RUNAI_E_UNKNOWN_REQUEST, "unknown request id " + std::to_string(request_id)};
    }
    std::shared_ptr<Request> request = found->second;
    dropped = CancelLocked(lock, *request);
  }
  FinishTasks(dropped);
  return common::Status::Ok();
}

common::Status Engine::Release(uint64_t request_id) {
  std::vector<Task> dropped;
  std::shared_ptr<Request> request;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    auto found = requests_.find(request_id);
    if (found == requests_.end()) {
      return {RUNAI_E_UNKNOWN_REQUEST, "unknown request id " + std::to_string(request_id)};
    }
    request = found->second;
    dropped = CancelLocked(lock, *request);
    requests_.erase(request_id);
    done_cv_.notify_all();
  }
  FinishTasks(dropped);
  return common::Status::Ok();
}

size_t Engine::TakeLocked(Request& request, runai_completion_t* out, size_t max) {
  size_t taken = 0;
  while (taken < max && !request.ready.empty()) {
    const Completion& completion = request.ready.front();
    out[taken++] =
        runai_completion_t{request.id,        completion.file_index, completion.range_index,
                           completion.status, completion.checksum,   completion.message};
    request.ready.pop_front();
    --request.unreported;
  }
  return taken;
}

common::Status Engine::Wait(uint64_t request_id, runai_completion_t* completions,
                            size_t max_completions, int64_t timeout_ms, size_t* num_completions) {
  if (num_completions == nullptr) return InvalidArgument("num_completions is NULL");
  *num_completions = 0;
  if (completions == nullptr || max_completions == 0) {
    return InvalidArgument("completions must hold at least one entry");
  }
  // Capped so the deadline arithmetic cannot overflow; a year is "no limit" enough.
  constexpr int64_t kMaxTimeoutMs = int64_t{365} * 24 * 3600 * 1000;
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(std::clamp<int64_t>(timeout_ms, 0, kMaxTimeoutMs));
  std::unique_lock<std::mutex> lock(mutex_);
  ++waiters_;
  common::Status result;
  bool expired = false;
  for (;;) {
    if (shutting_down_) {
      result = {RUNAI_E_CANCELLED, "the streamer is being destroyed"};
      break;
    }
    size_t taken = 0;
    bool anything_left = false;
    if (request_id != 0) {
      auto found = requests_.find(request_id);
      if (found == requests_.end()) {
        result = {RUNAI_E_UNKNOWN_REQUEST, "unknown request id " + std::to_string(request_id)};
        break;
      }
      taken = TakeLocked(*found->second, completions, max_completions);
      anything_left = found->second->unreported > 0;
    } else {
      for (auto& entry : requests_) {
        taken += TakeLocked(*entry.second, completions + taken, max_completions - taken);
        anything_left = anything_left || entry.second->unreported > 0;
      }
    }
    if (taken > 0) {
      *num_completions = taken;
      break;
    }
    if (!anything_left) {
      result = {RUNAI_E_IDLE, request_id == 0 ? "no request has ranges left to report"
                                              : "request " + std::to_string(request_id) +
                                                    " has no ranges left to report"};
      break;
    }
    if (expired) {
      result = {RUNAI_E_TIMEOUT, "nothing completed within " + std::to_string(timeout_ms) + " ms"};
      break;
    }
    if (timeout_ms < 0) {
      done_cv_.wait(lock);
    } else if (done_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      expired = true;  // one more look, then give up
    }
  }
  --waiters_;
  if (shutting_down_) done_cv_.notify_all();
  return result;
}

}  // namespace runai::streamer
