// Random requests over a corpus of files, checked byte for byte (random_test.cc,
// read_strategies_test.cc): every range must hold the file's bytes, and bytes outside the
// ranges must stay as they were.
#ifndef RUNAI_STREAMER_TESTS_RANDOM_READS_H_
#define RUNAI_STREAMER_TESTS_RANDOM_READS_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace runai::testing {

constexpr uint8_t kUntouched = 0xAA;

struct Corpus {
  TempDir dir;
  std::vector<std::string> paths;
  std::vector<std::vector<uint8_t>> contents;
};

inline void MakeCorpus(Corpus* corpus, size_t files, uint64_t seed,
                       const std::string& prefix = "") {
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < files; ++i) {
    // Sizes from empty to several chunks of 4 KiB, not page multiples.
    size_t size = i == 0 ? 0 : std::uniform_int_distribution<size_t>(1, 200000)(rng);
    corpus->contents.push_back(RandomBytes(size, rng));
    std::string name = "file" + std::to_string(i) + ".bin";
    corpus->dir.Write(name, corpus->contents.back());
    corpus->paths.push_back(prefix.empty() ? corpus->dir.path() + "/" + name : prefix + name);
  }
}

// One random request over the corpus and the buffer its ranges land in.
class RandomRequest {
 public:
  RandomRequest(const Corpus& corpus, size_t num_ranges, uint64_t seed) : corpus_(corpus) {
    std::mt19937_64 rng(seed);
    struct Planned {
      size_t file;
      uint64_t offset, size, dst_offset;
    };
    std::vector<Planned> planned;
    uint64_t buffer_size = 0;
    for (size_t i = 0; i < num_ranges; ++i) {
      int kind = std::uniform_int_distribution<int>(0, 9)(rng);
      Planned p{};
      if (kind < 3 && !planned.empty() &&
          planned.back().offset + planned.back().size <
              corpus.contents[planned.back().file].size()) {
        // Continues the previous range in the file, and (mergeable) in memory
        // or (not mergeable) after a gap in memory.
        const Planned& prev = planned.back();
        p.file = prev.file;
        p.offset = prev.offset + prev.size;
        uint64_t left = corpus.contents[p.file].size() - p.offset;
        p.size = std::uniform_int_distribution<uint64_t>(1, std::min<uint64_t>(left, 9000))(rng);
        if (kind == 0) buffer_size += std::uniform_int_distribution<uint64_t>(1, 5)(rng);
        p.dst_offset = buffer_size;
      } else {
        p.file = std::uniform_int_distribution<size_t>(0, corpus.contents.size() - 1)(rng);
        uint64_t file_size = corpus.contents[p.file].size();
        p.offset = std::uniform_int_distribution<uint64_t>(0, file_size)(rng);
        uint64_t left = file_size - p.offset;
        if (kind == 3 || left == 0) {
          p.size = 0;
        } else if (kind == 4) {
          p.size = left;  // to the end of the file, often several chunks
        } else {
          p.size = std::uniform_int_distribution<uint64_t>(1, std::min<uint64_t>(left, 20000))(rng);
        }
        buffer_size += std::uniform_int_distribution<uint64_t>(0, 7)(rng);  // a gap
        p.dst_offset = buffer_size;
      }
      buffer_size += p.size;
      planned.push_back(p);
    }
    buffer_.assign(buffer_size + 1, kUntouched);
    ranges_.resize(corpus.contents.size());
    for (const Planned& p : planned) {
      ranges_[p.file].push_back(runai_range_t{p.offset, p.size, buffer_.data() + p.dst_offset});
    }
    for (auto& file_ranges : ranges_) std::shuffle(file_ranges.begin(), file_ranges.end(), rng);
    for (size_t f = 0; f < ranges_.size(); ++f) {
      files_.push_back(runai_file_request_t{corpus.paths[f].c_str(), ranges_[f].data(),
                                            ranges_[f].size(), RUNAI_CHECKSUM_NONE, 0});
    }
    num_ranges_ = num_ranges;
  }

  void Submit(runai_streamer_t* streamer) {
    ASSERT_EQ(runai_streamer_submit(streamer, files_.data(), files_.size(), &id_), RUNAI_OK)
        << runai_streamer_last_error();
    EXPECT_NE(id_, 0u);
  }

  // Collects some completions, cancels, and checks that nothing is written
  // after cancel returns and that every range is reported exactly once:
  // RUNAI_OK with the right bytes, or RUNAI_E_CANCELLED.
  void CancelAndCheck(runai_streamer_t* streamer, size_t collect_first) {
    std::map<std::pair<uint32_t, uint32_t>, Result> results;
    runai_completion_t completions[16];
    while (results.size() < collect_first) {
      size_t count = 0;
      int status = runai_streamer_wait(streamer, id_, completions, 16, 20000, &count);
      if (status == RUNAI_E_IDLE) break;
      ASSERT_EQ(status, RUNAI_OK) << runai_streamer_last_error();
      for (size_t i = 0; i < count; ++i) {
        results[{completions[i].file_index, completions[i].range_index}] =
            Result{completions[i].status, ""};
      }
    }
    ASSERT_EQ(runai_streamer_cancel(streamer, id_), RUNAI_OK);
    std::vector<uint8_t> snapshot = buffer_;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(snapshot, buffer_) << "written after cancel returned";
    auto rest = WaitAll(streamer, id_, num_ranges_ - results.size());
    for (const auto& [key, result] : rest) {
      EXPECT_EQ(results.count(key), 0u) << "range reported twice";
      results[key] = result;
    }
    ASSERT_EQ(results.size(), num_ranges_);
    for (const auto& [key, result] : results) {
      const runai_range_t& range = ranges_[key.first][key.second];
      if (result.status == RUNAI_E_CANCELLED) {
        ++cancelled_;
        continue;
      }
      ASSERT_EQ(result.status, RUNAI_OK) << result.message;
      if (range.size == 0) continue;
      ASSERT_EQ(
          std::memcmp(range.dst, corpus_.contents[key.first].data() + range.offset, range.size), 0);
    }
    EXPECT_EQ(runai_streamer_release(streamer, id_), RUNAI_OK);
  }

  size_t cancelled() const { return cancelled_; }

  void WaitAndCheck(runai_streamer_t* streamer) {
    auto results = WaitAll(streamer, id_, num_ranges_);
    std::vector<bool> covered(buffer_.size(), false);
    for (size_t f = 0; f < ranges_.size(); ++f) {
      for (size_t r = 0; r < ranges_[f].size(); ++r) {
        const runai_range_t& range = ranges_[f][r];
        auto found = results.find({static_cast<uint32_t>(f), static_cast<uint32_t>(r)});
        ASSERT_NE(found, results.end()) << "file " << f << " range " << r << " not reported";
        ASSERT_EQ(found->second.status, RUNAI_OK) << found->second.message;
        if (range.size == 0) continue;  // its dst may be anything, even NULL
        const uint8_t* expected = corpus_.contents[f].data() + range.offset;
        ASSERT_EQ(std::memcmp(range.dst, expected, range.size), 0)
            << "wrong bytes in file " << f << " range [" << range.offset << ", "
            << range.offset + range.size << ")";
        size_t start = static_cast<uint8_t*>(range.dst) - buffer_.data();
        std::fill(covered.begin() + start, covered.begin() + start + range.size, true);
      }
    }
    for (size_t i = 0; i < buffer_.size(); ++i) {
      if (!covered[i]) {
        ASSERT_EQ(buffer_[i], kUntouched) << "byte " << i << " written outside ranges";
      }
    }
    EXPECT_EQ(runai_streamer_release(streamer, id_), RUNAI_OK);
  }

 private:
  const Corpus& corpus_;
  std::vector<uint8_t> buffer_;
  std::vector<std::vector<runai_range_t>> ranges_;
  std::vector<runai_file_request_t> files_;
  size_t num_ranges_ = 0;
  size_t cancelled_ = 0;
  uint64_t id_ = 0;
};

}  // namespace runai::testing

#endif  // RUNAI_STREAMER_TESTS_RANDOM_READS_H_
