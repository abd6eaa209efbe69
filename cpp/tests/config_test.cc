// The C API's configuration: defaults, the environment variables config_default reads, the
// checks of create, and the worker threads it starts.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include <gmock/gmock.h>

#include "test_util.h"

namespace runai::testing {
namespace {

using ::testing::HasSubstr;

constexpr const char* kEnvVars[] = {"RUNAI_STREAMER_CONCURRENCY", "RUNAI_STREAMER_CHUNK_BYTESIZE",
                                    "RUNAI_STREAMER_TIMEOUT_MS", "RUNAI_STREAMER_FS_STRATEGY",
                                    "RUNAI_STREAMER_IO_URING"};

// Clears the streamer's variables so the machine's environment cannot leak in.
struct CleanEnv {
  ScopedEnv concurrency{kEnvVars[0], nullptr};
  ScopedEnv chunk{kEnvVars[1], nullptr};
  ScopedEnv timeout{kEnvVars[2], nullptr};
  ScopedEnv strategy{kEnvVars[3], nullptr};
  ScopedEnv io_uring{kEnvVars[4], nullptr};
};

TEST(Config, DefaultsWithoutEnvironment) {
  CleanEnv env;
  runai_streamer_config_t config;
  ASSERT_EQ(runai_streamer_config_default(&config), RUNAI_OK);
  EXPECT_EQ(config.concurrency, 16);
  EXPECT_EQ(config.chunk_bytesize, 8 << 20);
  EXPECT_EQ(config.backend_timeout_ms, 60000);
  EXPECT_EQ(config.fs_strategy, RUNAI_FS_AUTO);
  EXPECT_EQ(config.io_uring, 1);
}

TEST(Config, ReadsEnvironment) {
  CleanEnv env;
  ScopedEnv concurrency(kEnvVars[0], "7");
  ScopedEnv chunk(kEnvVars[1], "65536");
  ScopedEnv timeout(kEnvVars[2], "1500");
  runai_streamer_config_t config;
  ASSERT_EQ(runai_streamer_config_default(&config), RUNAI_OK) << runai_streamer_last_error();
  EXPECT_EQ(config.concurrency, 7);
  EXPECT_EQ(config.chunk_bytesize, 65536);
  EXPECT_EQ(config.backend_timeout_ms, 1500);
}

TEST(Config, BadEnvironmentValuesNameVariableAndValue) {
  struct Case {
    const char* variable;
    const char* value;
    const char* why;
  };
  const Case cases[] = {
      {kEnvVars[0], "", "not a decimal integer"},
      {kEnvVars[0], "abc", "not a decimal integer"},
      {kEnvVars[0], "12x", "not a decimal integer"},
      {kEnvVars[0], "-1", "out of range 1..1024"},
      {kEnvVars[0], "0", "out of range 1..1024"},
      {kEnvVars[0], "1025", "out of range 1..1024"},
      {kEnvVars[0], "99999999999999999999999", "out of range"},
      {kEnvVars[1], "", "not a decimal integer"},
      {kEnvVars[1], "8M", "not a decimal integer"},
      {kEnvVars[1], "-4096", "out of range"},
      {kEnvVars[1], "4095", "out of range 4096..1073741824"},
      {kEnvVars[1], "1073741825", "out of range"},
      {kEnvVars[1], "18446744073709551616", "out of range"},
      {kEnvVars[2], "", "not a decimal integer"},
      {kEnvVars[2], "1s", "not a decimal integer"},
      {kEnvVars[2], "-5", "out of range"},
      {kEnvVars[2], "0", "out of range 1..86400000"},
      {kEnvVars[2], "86400001", "out of range"},
      {kEnvVars[2], "99999999999999999999", "out of range"},
  };
  for (const Case& c : cases) {
    CleanEnv env;
    ScopedEnv bad(c.variable, c.value);
    runai_streamer_config_t config;
    EXPECT_EQ(runai_streamer_config_default(&config), RUNAI_E_CONFIG)
        << c.variable << "=" << c.value;
    std::string message = runai_streamer_last_error();
    EXPECT_THAT(message, HasSubstr(c.variable));
    EXPECT_THAT(message, HasSubstr(std::string("'") + c.value + "'"));
    EXPECT_THAT(message, HasSubstr(c.why));
    // create(NULL) uses the environment too.
    runai_streamer_t* streamer = reinterpret_cast<runai_streamer_t*>(1);
    EXPECT_EQ(runai_streamer_create(nullptr, &streamer), RUNAI_E_CONFIG);
    EXPECT_EQ(streamer, nullptr);
  }
}

TEST(Config, CreateValidatesFields) {
  CleanEnv env;
  struct Case {
    runai_streamer_config_t config;
    const char* field;
  };
  const Case cases[] = {
      {{0, 4096, 1000, RUNAI_FS_AUTO, 1}, "concurrency"},
      {{1025, 4096, 1000, RUNAI_FS_AUTO, 1}, "concurrency"},
      {{-3, 4096, 1000, RUNAI_FS_AUTO, 1}, "concurrency"},
      {{1, 4095, 1000, RUNAI_FS_AUTO, 1}, "chunk_bytesize"},
      {{1, (int64_t{1} << 30) + 1, 1000, RUNAI_FS_AUTO, 1}, "chunk_bytesize"},
      {{1, 4096, 0, RUNAI_FS_AUTO, 1}, "backend_timeout_ms"},
      {{1, 4096, 86400001, RUNAI_FS_AUTO, 1}, "backend_timeout_ms"},
      {{1, 4096, 1000, -1, 1}, "fs_strategy"},
      {{1, 4096, 1000, 3, 1}, "fs_strategy"},
      {{1, 4096, 1000, RUNAI_FS_DIRECT, 2}, "io_uring"},
  };
  for (const Case& c : cases) {
    runai_streamer_t* streamer = nullptr;
    EXPECT_EQ(runai_streamer_create(&c.config, &streamer), RUNAI_E_CONFIG) << c.field;
    EXPECT_EQ(streamer, nullptr);
    EXPECT_THAT(runai_streamer_last_error(), HasSubstr(c.field));
  }
  runai_streamer_t* streamer = nullptr;
  ASSERT_EQ(runai_streamer_create(nullptr, &streamer), RUNAI_OK);
  runai_streamer_destroy(streamer);
  runai_streamer_destroy(nullptr);  // a no-op
}

// The local-read settings travel in the config: what the environment says is read by
// config_default (and create(NULL)), and a config says it without the environment.
TEST(Config, ReadsTheLocalReadSettings) {
  CleanEnv env;
  const struct {
    const char* strategy;
    const char* io_uring;
    int32_t expected_strategy;
    int32_t expected_io_uring;
  } cases[] = {
      {"buffered", "0", RUNAI_FS_BUFFERED, 0},
      {"direct", "1", RUNAI_FS_DIRECT, 1},
      {"auto", nullptr, RUNAI_FS_AUTO, 1},
      {"io_uring_buffered,sync_buffered", nullptr, RUNAI_FS_BUFFERED, 1},
      {"libaio_direct", "0", RUNAI_FS_DIRECT, 0},
  };
  for (const auto& c : cases) {
    ScopedEnv strategy(kEnvVars[3], c.strategy);
    ScopedEnv io_uring(kEnvVars[4], c.io_uring);
    runai_streamer_config_t config;
    ASSERT_EQ(runai_streamer_config_default(&config), RUNAI_OK) << runai_streamer_last_error();
    EXPECT_EQ(config.fs_strategy, c.expected_strategy) << c.strategy;
    EXPECT_EQ(config.io_uring, c.expected_io_uring) << c.strategy;
  }
  // A bad value set after config_default does not reach a streamer made from that config.
  runai_streamer_config_t config;
  ASSERT_EQ(runai_streamer_config_default(&config), RUNAI_OK);
  ScopedEnv strategy(kEnvVars[3], "fast");
  runai_streamer_t* streamer = nullptr;
  ASSERT_EQ(runai_streamer_create(&config, &streamer), RUNAI_OK) << runai_streamer_last_error();
  runai_streamer_destroy(streamer);
  EXPECT_EQ(runai_streamer_config_default(&config), RUNAI_E_CONFIG);
}

#if defined(__linux__)
// The threads of this process whose niceness is ``niceness``.
int ThreadsOfNiceness(int niceness) {
  int count = 0;
  DIR* tasks = ::opendir("/proc/self/task");
  if (tasks == nullptr) return -1;
  while (const dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    errno = 0;
    const int value = ::getpriority(PRIO_PROCESS, static_cast<id_t>(std::atoi(entry->d_name)));
    if (errno == 0 && value == niceness) ++count;
  }
  ::closedir(tasks);
  return count;
}

TEST(Create, WorkersRunNicerThanTheCaller) {
  // They must not take the CPU from the thread that takes the tensors (a busy machine).
  errno = 0;
  const int caller = ::getpriority(PRIO_PROCESS, 0);
  ASSERT_EQ(errno, 0);
  const int expected = std::min(caller + 5, 19);
  const int before = ThreadsOfNiceness(expected);
  Streamer streamer(6);
  int nicer = 0;
  for (int i = 0; i < 500 && nicer < before + 6; ++i) {  // the workers renice as they start
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    nicer = ThreadsOfNiceness(expected);
  }
  EXPECT_EQ(nicer, before + 6);
  EXPECT_EQ(::getpriority(PRIO_PROCESS, 0), caller);  // the caller's own is left alone
}
#endif

}  // namespace
}  // namespace runai::testing
