#include "common/http/retry_policy.h"

#include <curl/curl.h>

#include <algorithm>
#include <random>
#include <thread>

namespace runai::common {

bool IsTransientHttpStatus(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

bool IsTransientTransportError(int curl_code) {
  switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

long BackoffMs(const HttpSettings& settings, int attempt) {
  thread_local std::mt19937_64 random(std::random_device{}());
  const long ceiling =
      std::min(settings.retry_cap_ms, settings.retry_base_ms << std::min(attempt, 20));
  return std::uniform_int_distribution<long>(0, std::max(0L, ceiling))(random);
}

void SleepMs(long ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void RetryPolicy::Attempts::Begin() {
  policy_->WaitOutPause();
  ++count_;
}

void RetryPolicy::Attempts::Succeeded() {
  if (done_) return;
  done_ = true;
  policy_->Give(tokens_held_ > 0 ? tokens_held_ : 1);
  tokens_held_ = 0;
}

bool RetryPolicy::Attempts::Again(const HttpResponse& response,
                                  const std::function<std::string()>& service_code,
                                  std::string* why_not) {
  const bool throttled = policy_->Throttling(response, service_code);
  const bool transient = throttled || response.transient || IsTransientHttpStatus(response.status);
  if (!transient || count_ >= settings_.max_attempts) return false;
  if (!policy_->Take(kRetryCost)) {
    *why_not =
        "no retry: the retry budget shared by this backend's requests is spent (too "
        "many of them failed)";
    return false;
  }
  tokens_held_ += kRetryCost;
  long wait = BackoffMs(settings_, count_);
  // A server that says when to come back is believed, up to the backoff's cap.
  if (response.retry_after_ms >= 0) {
    wait = std::max(wait, std::min(response.retry_after_ms, settings_.retry_cap_ms));
  }
  if (throttled) policy_->Pause(wait);  // every worker's next attempt waits too
  SleepMs(wait);
  return true;
}

int RetryPolicy::tokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return tokens_;
}

bool RetryPolicy::Throttling(const HttpResponse& response,
                             const std::function<std::string()>& service_code) const {
  if (response.status == 429 || response.status == 503) return true;
  if (response.status == 0 || throttling_codes_.empty()) return false;
  const std::string code = service_code();
  return std::find(throttling_codes_.begin(), throttling_codes_.end(), code) !=
         throttling_codes_.end();
}

void RetryPolicy::WaitOutPause() const {
  std::chrono::steady_clock::time_point until;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    until = paused_until_;
  }
  if (until > std::chrono::steady_clock::now()) std::this_thread::sleep_until(until);
}

bool RetryPolicy::Take(int tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (tokens_ < tokens) return false;
  tokens_ -= tokens;
  return true;
}

void RetryPolicy::Give(int tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  tokens_ = std::min(kBudget, tokens_ + tokens);
}

void RetryPolicy::Pause(long ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  paused_until_ =
      std::max(paused_until_, std::chrono::steady_clock::now() + std::chrono::milliseconds(ms));
}

}  // namespace runai::common
