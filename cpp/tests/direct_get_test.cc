// DirectGet against a scripted HTTP server on 127.0.0.1: each connection reads request heads
// and answers each with the next scripted reply, byte for byte.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/http/direct_get.h"
#include "common/http/http_client.h"

namespace runai::common {
namespace {

struct Reply {
  std::string bytes;
  bool close = false;  // close the connection after sending (without saying so)
  int stall_ms = 0;    // before closing: a server that stops sending
};

class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<Reply> replies) : replies_(replies.begin(), replies.end()) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(listener_, 16), 0);
    socklen_t size = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }

  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }

  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string Host() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  bool Readable(int fd) const {
    pollfd entry{fd, POLLIN, 0};
    return ::poll(&entry, 1, 50) > 0;
  }

  void Serve() {
    while (!stop_) {
      if (!Readable(listener_)) continue;
      const int client = ::accept(listener_, nullptr, nullptr);
      if (client < 0) continue;
      ++connections_;
      ServeConnection(client);
      ::close(client);
    }
  }

  void ServeConnection(int client) {
    std::string received;
    while (!stop_) {
      size_t end;
      while ((end = received.find("\r\n\r\n")) == std::string::npos) {
        if (stop_) return;
        if (!Readable(client)) continue;
        char buffer[4096];
        const ssize_t got = ::recv(client, buffer, sizeof buffer, 0);
        if (got <= 0) return;
        received.append(buffer, static_cast<size_t>(got));
      }
      Reply reply;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(received.substr(0, end + 4));
        if (replies_.empty()) return;
        reply = replies_.front();
        replies_.pop_front();
      }
      received.erase(0, end + 4);
      for (size_t sent = 0; sent < reply.bytes.size();) {
        const ssize_t wrote =
            ::send(client, reply.bytes.data() + sent, reply.bytes.size() - sent, MSG_NOSIGNAL);
        if (wrote <= 0) return;
        sent += static_cast<size_t>(wrote);
      }
      if (reply.stall_ms > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(reply.stall_ms));
      if (reply.close) return;
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::mutex mutex_;
  std::deque<Reply> replies_;
  std::vector<std::string> requests_;
  std::atomic<int> connections_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string RandomBytes(size_t size) {
  std::mt19937 random(static_cast<unsigned>(size));
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(random());
  return out;
}

std::string Partial(const std::string& body, const std::string& extra_headers = "") {
  return "HTTP/1.1 206 Partial Content\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nContent-Range: bytes 0-" + std::to_string(body.size() - 1) + "/" +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

constexpr const char* kProxyVariables[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                           "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};

class DirectGetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitHttp().ok());
    for (const char* name : kProxyVariables) ::unsetenv(name);  // the curl path must not proxy
  }

  DirectGet::Outcome Get(ScriptedServer& server, std::string* dst, const std::string& path = "/b/k",
                         HeaderList headers = {{"Range", "bytes=0-1"}}) {
    return direct_.Perform(server.Url(path), headers, settings_, dst->data(), dst->size(),
                           &response_);
  }

  DirectGet direct_;
  HttpSettings settings_;
  HttpResponse response_;
};

TEST_F(DirectGetTest, ReceivesTheBodyIntoTheDestinationAndSendsTheRequestAsCurlWould) {
  const std::string body = RandomBytes(3 << 20);  // many receives
  ScriptedServer server({{Partial(body, "x-amz-request-id: R1\r\n")}});
  std::string dst(body.size(), '\0');
  ASSERT_EQ(Get(server, &dst, "/b/a%20key+%E2%82%AC?x-id=GetObject",
                {{"Range", "bytes=0-3145727"}, {"x-amz-date", "20261202T000000Z"}, {"Empty", ""}}),
            DirectGet::Outcome::kComplete)
      << response_.transport_error;
  EXPECT_EQ(response_.status, 206);
  EXPECT_EQ(response_.received, body.size());
  EXPECT_EQ(response_.content_length, static_cast<int64_t>(body.size()));
  EXPECT_EQ(response_.content_range, "bytes 0-3145727/3145728");
  EXPECT_EQ(response_.request_id, "R1");
  EXPECT_TRUE(dst == body);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0],
            "GET /b/a%20key+%E2%82%AC?x-id=GetObject HTTP/1.1\r\nHost: " + server.Host() +
                "\r\nRange: bytes=0-3145727\r\nx-amz-date: 20261202T000000Z\r\n\r\n");
}

TEST_F(DirectGetTest, SendsThePathAsWrittenWithDotSegmentsAndEmptySegments) {
  ScriptedServer server({{Partial("ab")}});
  std::string dst(2, '\0');
  ASSERT_EQ(Get(server, &dst, "/b/a/../x/./y//z"), DirectGet::Outcome::kComplete);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].find("GET /b/a/../x/./y//z HTTP/1.1\r\n"), 0u)
      << server.requests()[0];
}

TEST_F(DirectGetTest, AGivenHostHeaderIsTheOnlyOne) {
  ScriptedServer server({{Partial("ab")}});
  std::string dst(2, '\0');
  ASSERT_EQ(Get(server, &dst, "/k", {{"host", "bucket.localhost:1"}}),
            DirectGet::Outcome::kComplete);
  EXPECT_EQ(server.requests()[0], "GET /k HTTP/1.1\r\nhost: bucket.localhost:1\r\n\r\n");
}

TEST_F(DirectGetTest, KeepsTheConnectionForTheNextRequest) {
  ScriptedServer server({{Partial("first")}, {Partial("other")}});
  std::string dst(5, '\0');
  ASSERT_EQ(Get(server, &dst), DirectGet::Outcome::kComplete);
  EXPECT_EQ(dst, "first");
  ASSERT_EQ(Get(server, &dst), DirectGet::Outcome::kComplete);
  EXPECT_EQ(dst, "other");
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(DirectGetTest, ConnectsAgainWhenTheServerClosedTheConnection) {
  // One says so, one just closes: either way the next request goes on a new connection.
  ScriptedServer server({{Partial("one", "Connection: close\r\n")},
                         {Partial("two"), /*close=*/true},
                         {Partial("six")}});
  std::string dst(3, '\0');
  for (const char* expected : {"one", "two", "six"}) {
    ASSERT_EQ(Get(server, &dst), DirectGet::Outcome::kComplete) << response_.transport_error;
    EXPECT_EQ(dst, expected);
  }
  EXPECT_EQ(server.connections(), 3);
}

TEST_F(DirectGetTest, SkipsInformationalHeads) {
  ScriptedServer server(
      {{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"}});
  std::string dst(5, '\0');
  ASSERT_EQ(Get(server, &dst), DirectGet::Outcome::kComplete);
  EXPECT_EQ(response_.status, 200);
  EXPECT_EQ(dst, "hello");
}

TEST_F(DirectGetTest, AnErrorBodyGoesIntoTheResponseNotTheDestination) {
  const std::string xml = "<Error><Code>NoSuchKey</Code></Error>";
  ScriptedServer server({{"HTTP/1.1 404 Not Found\r\nContent-Length: " +
                          std::to_string(xml.size()) + "\r\n\r\n" + xml}});
  std::string dst(4, 'x');
  ASSERT_EQ(Get(server, &dst), DirectGet::Outcome::kComplete);
  EXPECT_EQ(response_.status, 404);
  EXPECT_EQ(response_.body, xml);
  EXPECT_EQ(response_.received, 0u);
  EXPECT_EQ(dst, "xxxx");
}

TEST_F(DirectGetTest, LeavesChunkedBodiesToCurl) {
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  ScriptedServer server({{chunked}, {chunked}, {chunked}});
  std::string dst(5, '\0');
  EXPECT_EQ(Get(server, &dst), DirectGet::Outcome::kUnhandled);
  // HttpConnection tries its own DirectGet, then sends the request again through curl.
  HttpConnection connection;
  ASSERT_TRUE(connection.Perform("GET", server.Url("/k"), {}, settings_, dst.data(), dst.size(),
                                 &response_));
  EXPECT_EQ(dst, "abcde");
  EXPECT_EQ(response_.received, 5u);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST_F(DirectGetTest, ACutBodyReportsWhatArrivedAndIsWorthRetrying) {
  const std::string body = RandomBytes(1000);
  ScriptedServer server({{Partial(body).substr(0, Partial(body).size() - 600), /*close=*/true}});
  std::string dst(1000, '\0');
  ASSERT_EQ(Get(server, &dst), DirectGet::Outcome::kIncomplete);
  EXPECT_EQ(response_.status, 206);
  EXPECT_EQ(response_.received, 400u);
  EXPECT_EQ(dst.substr(0, 400), body.substr(0, 400));
  EXPECT_TRUE(response_.transient);
  EXPECT_NE(response_.transport_error.find("600 bytes remaining"), std::string::npos)
      << response_.transport_error;
}

TEST_F(DirectGetTest, ALongerBodyThanAskedForIsAnError) {
  ScriptedServer server({{Partial(std::string(2000, 'a'))}});
  std::string dst(1000, '\0');
  ASSERT_EQ(Get(server, &dst), DirectGet::Outcome::kIncomplete);
  EXPECT_TRUE(response_.too_long);
  EXPECT_EQ(response_.received, 0u);
}

TEST_F(DirectGetTest, AStallPastTheLowSpeedLimitFailsInTime) {
  settings_.low_speed_bytes = 1000;
  settings_.low_speed_seconds = 1;
  const std::string body = RandomBytes(10000);
  ScriptedServer server({{Partial(body).substr(0, 200), /*close=*/true, /*stall_ms=*/4000}});
  std::string dst(body.size(), '\0');
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(Get(server, &dst), DirectGet::Outcome::kIncomplete);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(3500));
  EXPECT_TRUE(response_.transient);
  EXPECT_NE(response_.transport_error.find("too slow"), std::string::npos)
      << response_.transport_error;
}

TEST_F(DirectGetTest, ANonHttpReplyIsAnErrorNotData) {
  ScriptedServer server({{"SSH-2.0-OpenSSH\r\n\r\n"}});
  std::string dst(4, 'x');
  ASSERT_EQ(Get(server, &dst), DirectGet::Outcome::kIncomplete);
  EXPECT_FALSE(response_.transient);
  EXPECT_NE(response_.transport_error.find("no HTTP status line"), std::string::npos);
  EXPECT_EQ(dst, "xxxx");
}

TEST_F(DirectGetTest, ARefusedConnectionIsWorthRetrying) {
  int port = 0;
  {
    ScriptedServer server({});
    port = std::stoi(server.Host().substr(server.Host().find(':') + 1));
  }
  std::string dst(4, '\0');
  ASSERT_EQ(direct_.Perform("http://127.0.0.1:" + std::to_string(port) + "/k", {}, settings_,
                            dst.data(), dst.size(), &response_),
            DirectGet::Outcome::kIncomplete);
  EXPECT_EQ(response_.status, 0);
  EXPECT_TRUE(response_.transient) << response_.transport_error;
}

TEST(ProxyInEnvironment, SeesEveryProxyVariable) {
  for (const char* name : kProxyVariables) ::unsetenv(name);
  EXPECT_FALSE(ProxyInEnvironment());
  for (const char* name : kProxyVariables) {
    ::setenv(name, "http://127.0.0.1:1", 1);
    EXPECT_TRUE(ProxyInEnvironment()) << name;
    ::setenv(name, "", 1);
    EXPECT_FALSE(ProxyInEnvironment()) << name;
    ::unsetenv(name);
  }
}

}  // namespace
}  // namespace runai::common
