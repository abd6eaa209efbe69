// Randomised reads: many files, thousands of ranges of random offsets and
// sizes in random order, several requests and streamers at once; every byte
// is checked against the file, and bytes outside the ranges must stay as
// they were.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "random_reads.h"
#include "test_util.h"

namespace runai::testing {
namespace {

TEST(RandomReads, OneRequestThousandsOfRanges) {
  Corpus corpus;
  MakeCorpus(&corpus, 12, 1);
  Streamer streamer(4, 4096);
  RandomRequest request(corpus, 3000, 2);
  request.Submit(streamer.get());
  request.WaitAndCheck(streamer.get());
}

TEST(RandomReads, ConcurrentRequestsOnOneStreamer) {
  Corpus corpus;
  MakeCorpus(&corpus, 10, 3);
  Streamer streamer(3, 8192);
  std::vector<std::unique_ptr<RandomRequest>> requests;
  for (int i = 0; i < 4; ++i) {
    requests.push_back(std::make_unique<RandomRequest>(corpus, 1500, 10 + i));
  }
  // All in flight at once, submitted and collected from several threads.
  std::vector<std::thread> threads;
  for (auto& request : requests) {
    threads.emplace_back([&streamer, &request] {
      request->Submit(streamer.get());
      request->WaitAndCheck(streamer.get());
    });
  }
  for (auto& thread : threads) thread.join();
}

TEST(RandomReads, SeveralStreamersInThreads) {
  Corpus corpus;
  MakeCorpus(&corpus, 8, 4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&corpus, t] {
      Streamer streamer(2 + t, 4096 << t);
      for (int round = 0; round < 2; ++round) {
        RandomRequest request(corpus, 1000, 100 + 10 * t + round);
        request.Submit(streamer.get());
        request.WaitAndCheck(streamer.get());
      }
    });
  }
  for (auto& thread : threads) thread.join();
}

TEST(RandomReads, CancelAtRandomPoints) {
  Corpus corpus;
  MakeCorpus(&corpus, 8, 7);
  Streamer streamer(3, 4096);
  std::mt19937_64 rng(8);
  size_t cancelled = 0;
  for (int round = 0; round < 6; ++round) {
    std::vector<std::unique_ptr<RandomRequest>> requests;
    std::vector<size_t> collect_first;
    for (int i = 0; i < 3; ++i) {
      requests.push_back(std::make_unique<RandomRequest>(corpus, 800, 1000 + 10 * round + i));
      collect_first.push_back(std::uniform_int_distribution<size_t>(0, 400)(rng));
    }
    std::vector<std::thread> threads;
    for (size_t i = 0; i < requests.size(); ++i) {
      threads.emplace_back([&, i] {
        requests[i]->Submit(streamer.get());
        requests[i]->CancelAndCheck(streamer.get(), collect_first[i]);
      });
    }
    for (auto& thread : threads) thread.join();
    for (auto& request : requests) cancelled += request->cancelled();
  }
  // Thousands of ranges are in flight when cancel lands; some must be cut off.
  EXPECT_GT(cancelled, 0u);
}

TEST(RandomReads, ThroughTestfsPlugin) {
  Corpus corpus;
  MakeCorpus(&corpus, 6, 5, "tfs://");
  Streamer streamer(4, 4096);
  const char* keys[] = {"root"};
  const char* values[] = {corpus.dir.path().c_str()};
  ASSERT_EQ(runai_streamer_register_backend(streamer.get(), "tfs", TESTFS_PLUGIN, keys, values, 1),
            RUNAI_OK)
      << runai_streamer_last_error();
  RandomRequest request(corpus, 1000, 6);
  request.Submit(streamer.get());
  request.WaitAndCheck(streamer.get());
}

}  // namespace
}  // namespace runai::testing
