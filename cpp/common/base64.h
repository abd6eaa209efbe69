// Standard base64 (RFC 4648, with padding): Azure account keys and SharedKey signatures.
#ifndef RUNAI_STREAMER_COMMON_BASE64_H_
#define RUNAI_STREAMER_COMMON_BASE64_H_

#include <string>
#include <string_view>

namespace runai::common {

std::string Base64Encode(std::string_view bytes);
// False when `text` is not padded standard base64 (whitespace is not accepted).
bool Base64Decode(std::string_view text, std::string* bytes);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_BASE64_H_
