// Internals of the engine that the C API cannot reach directly.
#include <gtest/gtest.h>

#include "streamer/impl/engine.h"

namespace runai::streamer {
namespace {

TEST(UriScheme, RecognisesSchemesOnly) {
  EXPECT_EQ(UriScheme("s3://bucket/key"), "s3");
  EXPECT_EQ(UriScheme("GS://bucket/key"), "gs");
  EXPECT_EQ(UriScheme("az+blob.v2-x://container/blob"), "az+blob.v2-x");
  EXPECT_EQ(UriScheme("/models/a.safetensors"), "");
  EXPECT_EQ(UriScheme("relative/path"), "");
  // Local paths that merely contain "://" are not URIs.
  EXPECT_EQ(UriScheme("/tmp/odd://name"), "");
  EXPECT_EQ(UriScheme("./s3://bucket"), "");
  EXPECT_EQ(UriScheme("1s3://bucket"), "");
  EXPECT_EQ(UriScheme("://bucket"), "");
}

}  // namespace
}  // namespace runai::streamer
