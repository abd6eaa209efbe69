// Name-value pairs in order: HTTP headers and query parameters, as the transport sends them
// and the signer signs them.
#ifndef RUNAI_STREAMER_COMMON_HEADERS_H_
#define RUNAI_STREAMER_COMMON_HEADERS_H_

#include <string>
#include <utility>
#include <vector>

namespace runai::common {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_HEADERS_H_
