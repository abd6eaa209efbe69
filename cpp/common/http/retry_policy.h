// When a request to object storage is tried again, and after how long: the one place that
// decides what is transient (transport errors, HTTP statuses, a service's throttling codes)
// and how retries back off.
//
// One RetryPolicy serves every worker of a client (all requests of a registered backend), so
// that they behave as one caller towards the service:
// - a response that asks to slow down (429, 503, or a service code such as S3's SlowDown)
//   pauses every worker's next attempt for the backoff, not only the worker that got it;
// - retries draw on a shared budget (the token bucket of the AWS SDKs' standard retry mode): a
//   retry costs kRetryCost tokens, a request that then succeeds gives them back, and one that
//   succeeds at once adds one. A service that keeps failing empties the bucket and requests
//   fail at their first error instead of multiplying the load by max_attempts.
#ifndef RUNAI_STREAMER_COMMON_HTTP_RETRY_POLICY_H_
#define RUNAI_STREAMER_COMMON_HTTP_RETRY_POLICY_H_

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/http/http_client.h"

namespace runai::common {

// 408, 429 and the 5xx a retry can cure (500, 502, 503, 504).
bool IsTransientHttpStatus(long status);
// A libcurl result (CURLcode) worth another attempt: connection errors, timeouts, cut bodies.
bool IsTransientTransportError(int curl_code);
// Milliseconds to wait before retry number `attempt` (1, 2, ...): full jitter, random in
// [0, min(cap, base * 2^attempt)].
long BackoffMs(const HttpSettings& settings, int attempt);
void SleepMs(long ms);

class RetryPolicy {
 public:
  static constexpr int kBudget = 500;
  static constexpr int kRetryCost = 5;

  // `throttling_codes`: the service's error codes that mean "slow down" whatever the status.
  explicit RetryPolicy(std::vector<std::string> throttling_codes = {})
      : throttling_codes_(std::move(throttling_codes)) {}
  RetryPolicy(const RetryPolicy&) = delete;
  RetryPolicy& operator=(const RetryPolicy&) = delete;

  // The attempts of one request. Begin() before each; then Succeeded(), or Again() to learn
  // whether to try once more (it sleeps the backoff first).
  class Attempts {
   public:
    Attempts(RetryPolicy* policy, const HttpSettings& settings)
        : policy_(policy), settings_(settings) {}
    // A request that failed for good keeps its tokens spent: that is what empties the budget.
    ~Attempts() = default;
    Attempts(const Attempts&) = delete;
    Attempts& operator=(const Attempts&) = delete;

    // Waits while the client is paused (a worker was asked to slow down), then counts one.
    void Begin();
    void Succeeded();
    // A cut body that delivered bytes: the next attempt resumes it and counts as a first one.
    void Progressed() { count_ = 0; }
    // Whether `response` (a failed attempt) is tried again: transient, attempts and budget
    // left. True after the backoff; false with *why_not saying what stopped it when that was
    // the budget. `service_code` gives the service's error code of the response (asked only
    // when the status alone does not decide).
    bool Again(const HttpResponse& response, const std::function<std::string()>& service_code,
               std::string* why_not);
    int count() const { return count_; }

   private:
    RetryPolicy* policy_;
    const HttpSettings& settings_;
    int count_ = 0;
    int tokens_held_ = 0;
    bool done_ = false;
  };

  // Tokens left in the shared budget (for tests and messages).
  int tokens() const;

 private:
  bool Throttling(const HttpResponse& response,
                  const std::function<std::string()>& service_code) const;
  void WaitOutPause() const;
  bool Take(int tokens);
  void Give(int tokens);
  void Pause(long ms);

  const std::vector<std::string> throttling_codes_;
  mutable std::mutex mutex_;
  int tokens_ = kBudget;
  std::chrono::steady_clock::time_point paused_until_{};
};

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_HTTP_RETRY_POLICY_H_
