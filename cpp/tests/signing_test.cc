#include <gtest/gtest.h>

#include <random>
#include <string>

#include "common/sha256.h"
#include "common/sigv4.h"

namespace runai::common {
namespace {

std::string Sha256Hex(std::string_view data) { return Hex(Sha256Of(data)); }

// FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA256_2.pdf") and the long-message vector.
TEST(Sha256, NistVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklm"
                      "nopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PaddingBoundaries) {
  // 55, 56 and 64 bytes: the length fits the last block, needs one more, fills one exactly.
  EXPECT_EQ(Sha256Hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(Sha256Hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(Sha256Hex(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(Sha256, IncrementalUpdatesInRandomPiecesEqualOneShot) {
  std::mt19937 random(7);
  std::string data(10000, '\0');
  for (char& c : data) c = static_cast<char>(random());
  const std::string expected = Sha256Hex(data);
  for (int round = 0; round < 50; ++round) {
    Sha256 hash;
    size_t at = 0;
    while (at < data.size()) {
      const size_t piece = std::min<size_t>(random() % 150, data.size() - at);
      hash.Update(data.data() + at, piece);
      at += piece;
    }
    EXPECT_EQ(Hex(hash.Finish()), expected);
  }
}

// RFC 4231 section 4 (test case 5, a truncated output, does not apply).
TEST(HmacSha256, Rfc4231Vectors) {
  struct Case {
    std::string key, data, expected;
  };
  std::string key4;
  for (int i = 1; i <= 25; ++i) key4.push_back(static_cast<char>(i));
  const Case cases[] = {
      {std::string(20, '\x0b'), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {std::string(20, '\xaa'), std::string(50, '\xdd'),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {key4, std::string(50, '\xcd'),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {std::string(131, '\xaa'),
       "This is a test using a larger than block-size key and a larger than block-size data. "
       "The key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  for (const Case& c : cases) EXPECT_EQ(Hex(HmacSha256(c.key, c.data)), c.expected) << c.data;
}

TEST(UriEncode, KeepsUnreservedAndEncodesUtf8Bytes) {
  EXPECT_EQ(UriEncode("AZaz09-._~", false), "AZaz09-._~");
  EXPECT_EQ(UriEncode("a b+c/d=e&f%", false), "a%20b%2Bc%2Fd%3De%26f%25");
  EXPECT_EQ(UriEncode("/dir/my key+1.safetensors", true), "/dir/my%20key%2B1.safetensors");
  EXPECT_EQ(UriEncode("\xe1\x88\xb4", true), "%E1%88%B4");
}

TEST(UriDecode, UndoesUriEncodeAndKeepsMalformedEscapes) {
  for (const char* text : {"refs/pr/1", "a b+c=d&e%", "\xe1\x88\xb4", ""}) {
    EXPECT_EQ(UriDecode(UriEncode(text, false)), text);
  }
  EXPECT_EQ(UriDecode("refs%2fpr%2F1"), "refs/pr/1");
  EXPECT_EQ(UriDecode("100%"), "100%");
  EXPECT_EQ(UriDecode("%zz%4"), "%zz%4");
}

TEST(QueryValue, FindsOneParameterByItsWholeName) {
  const std::string url = "https://cdn/x?Key-Pair-Id=k&Expires=1700000000&X-Amz-Expires=60";
  EXPECT_EQ(QueryValue(url, "Expires"), "1700000000");
  EXPECT_EQ(QueryValue(url, "X-Amz-Expires"), "60");
  EXPECT_EQ(QueryValue(url, "Key"), "");
  EXPECT_EQ(QueryValue("https://cdn/x", "Expires"), "");
  EXPECT_EQ(QueryValue("https://cdn/x?Expires=", "Expires"), "");
}

struct Vector {
  const char* name;
  const char* method;
  const char* path;
  HeaderList query;
  HeaderList headers;
  const char* body;
  AwsCredentials credentials;
  const char* region;
  const char* service;
  const char* timestamp;
  const char* canonical_request;
  const char* signature;
};

const Vector kVectors[] = {
#include "sigv4_test_vectors.inc"
};

TEST(SignV4, AwsTestSuite) {
  for (const Vector& v : kVectors) {
    SigV4Request request{v.method, v.path, v.query, v.headers, Sha256Hex(v.body)};
    const SigV4Signature signed_request =
        SignV4(request, v.credentials, v.region, v.service, v.timestamp);
    EXPECT_EQ(signed_request.canonical_request, v.canonical_request) << v.name;
    EXPECT_EQ(signed_request.signature, v.signature) << v.name;
    EXPECT_NE(signed_request.authorization.find("Signature=" + std::string(v.signature)),
              std::string::npos)
        << v.name;
  }
}

TEST(SignV4, SessionTokenAndDateAreAddedAndSigned) {
  const SigV4Request request{
      "GET", "/bucket/key", {}, {{"Host", "s3.example"}}, "UNSIGNED-PAYLOAD"};
  const SigV4Signature result =
      SignV4(request, {"AK", "SK", "TOKEN"}, "us-east-1", "s3", "20260101T000000Z");
  EXPECT_EQ(result.added_headers,
            (HeaderList{{"x-amz-date", "20260101T000000Z"}, {"x-amz-security-token", "TOKEN"}}));
  EXPECT_NE(result.authorization.find("SignedHeaders=host;x-amz-date;x-amz-security-token,"),
            std::string::npos)
      << result.authorization;
  EXPECT_NE(result.authorization.find("Credential=AK/20260101/us-east-1/s3/aws4_request"),
            std::string::npos);
  // The secret never appears in what is sent.
  EXPECT_EQ(result.authorization.find("SK"), std::string::npos);
}

TEST(SignV4, GoogleSchemeRenamesTheAlgorithm) {
  const SigV4Scheme google{"GOOG4-HMAC-SHA256", "GOOG4", "goog4_request", "x-goog-"};
  const SigV4Request request{
      "GET", "/b/o", {}, {{"host", "storage.googleapis.com"}}, "UNSIGNED-PAYLOAD"};
  const SigV4Signature result =
      SignV4(request, {"GOOGKEY", "secret", ""}, "auto", "storage", "20260101T000000Z", google);
  EXPECT_EQ(result.authorization.rfind("GOOG4-HMAC-SHA256 Credential=GOOGKEY/20260101/auto/"
                                       "storage/goog4_request, SignedHeaders=host;x-goog-date,",
                                       0),
            0u)
      << result.authorization;
}

TEST(SigV4Timestamp, FormatsUtc) { EXPECT_EQ(SigV4Timestamp(1440938160), "20150830T123600Z"); }

}  // namespace
}  // namespace runai::common
