// PopulateForWrite on its own: it faults in exactly the whole pages of a range and changes no
// byte, inside or around the range, whatever memory it is given.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "streamer/impl/allocator.h"

namespace runai::streamer {
namespace {

const size_t kPage = static_cast<size_t>(::sysconf(_SC_PAGESIZE));

class Mapping {
 public:
  Mapping(size_t size, int prot) : size_(size) {
    void* memory = ::mmap(nullptr, size, prot, MAP_PRIVATE | MAP_ANON, -1, 0);
    base_ = memory == MAP_FAILED ? nullptr : static_cast<char*>(memory);
#ifdef MADV_NOHUGEPAGE
    // Page by page, also where transparent huge pages are "always" on: a fault must not
    // bring in the pages around it.
    if (base_ != nullptr) (void)::madvise(base_, size, MADV_NOHUGEPAGE);
#endif
  }
  ~Mapping() {
    if (base_ != nullptr) ::munmap(base_, size_);
  }
  char* base() const { return base_; }

  // Which of the mapping's pages are present.
  std::vector<bool> Resident() const {
#if defined(__APPLE__)
    std::vector<char> vec(size_ / kPage);
#else
    std::vector<unsigned char> vec(size_ / kPage);
#endif
    EXPECT_EQ(::mincore(base_, size_, vec.data()), 0);
    std::vector<bool> resident;
    for (auto v : vec) resident.push_back((v & 1) != 0);
    return resident;
  }

 private:
  const size_t size_;
  char* base_;
};

#if defined(__linux__)
TEST(PopulateForWrite, FaultsInTheWholePagesInsideTheRangeOnly) {
  Mapping memory(16 * kPage, PROT_READ | PROT_WRITE);
  ASSERT_NE(memory.base(), nullptr);
  // From the middle of page 2 to the middle of page 9: pages 3..8 lie wholly inside.
  PopulateForWrite(memory.base() + 2 * kPage + 100, 7 * kPage);
  const std::vector<bool> resident = memory.Resident();
  for (size_t page = 0; page < resident.size(); ++page) {
    EXPECT_EQ(resident[page], page >= 3 && page <= 8) << "page " << page << " (Linux < 5.14?)";
  }
}

TEST(PopulateForWrite, ARangeOfSeveralSlicesIsFaultedInWithoutAGap) {
  // Populated a slice at a time (1 MiB): 3.5 MiB from the middle of page 1.
  const size_t pages = (4u << 20) / kPage + 4;
  Mapping memory(pages * kPage, PROT_READ | PROT_WRITE);
  ASSERT_NE(memory.base(), nullptr);
  const size_t size = (7u << 19);
  PopulateForWrite(memory.base() + kPage + 1, size);
  const size_t last = (kPage + 1 + size) / kPage - 1;  // the last page wholly inside
  const std::vector<bool> resident = memory.Resident();
  for (size_t page = 0; page < resident.size(); ++page) {
    ASSERT_EQ(resident[page], page >= 2 && page <= last) << "page " << page;
  }
}
#endif

TEST(PopulateForWrite, ChangesNoByte) {
  Mapping memory(8 * kPage, PROT_READ | PROT_WRITE);
  ASSERT_NE(memory.base(), nullptr);
  for (size_t i = 0; i < 8 * kPage; i += 2 * kPage) memory.base()[i + 7] = 'x';  // some pages
  std::vector<char> before(memory.base(), memory.base() + 8 * kPage);
  PopulateForWrite(memory.base() + 1, 8 * kPage - 2);
  PopulateForWrite(memory.base() + kPage, 3);      // less than a page: nothing to do
  PopulateForWrite(memory.base() + 5 * kPage, 0);  // empty
  EXPECT_EQ(std::memcmp(before.data(), memory.base(), before.size()), 0);
}

TEST(PopulateForWrite, MemoryThatRefusesWritesIsLeftAlone) {
  Mapping memory(4 * kPage, PROT_READ);
  ASSERT_NE(memory.base(), nullptr);
  PopulateForWrite(memory.base(), 4 * kPage);  // the kernel refuses: no crash, no change
  for (size_t i = 0; i < 4 * kPage; ++i) ASSERT_EQ(memory.base()[i], 0) << i;
}

}  // namespace
}  // namespace runai::streamer
