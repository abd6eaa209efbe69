// Absolute path of a file in a Bazel test's runfiles, for tests that need
// absolute paths (plugin libraries are registered by absolute path). The
// CMake build passes those paths as string literals; cpp/BUILD.bazel
// force-includes this header and defines the same macros as calls to it.
#ifndef RUNAI_STREAMER_BAZEL_RUNFILES_PATH_H_
#define RUNAI_STREAMER_BAZEL_RUNFILES_PATH_H_

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

inline const char* runai_bazel_runfile(const char* relative) {
  static std::mutex mutex;
  static std::map<std::string, std::string> paths;  // kept for the process
  std::lock_guard<std::mutex> lock(mutex);
  std::string& path = paths[relative];
  if (path.empty()) {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    path = std::string(srcdir ? srcdir : ".") + "/" +
           (workspace ? workspace : "runai_model_streamer") + "/" + relative;
  }
  return path.c_str();
}

#endif  // RUNAI_STREAMER_BAZEL_RUNFILES_PATH_H_
