// The pager of every object-storage listing (S3 ListObjectsV2, GCS JSON and XML, Azure List
// Blobs): a service fetches and parses one page, this walks the pages and hands out entries.
#ifndef RUNAI_STREAMER_COMMON_LISTING_H_
#define RUNAI_STREAMER_COMMON_LISTING_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace runai::common {

// One page of a listing as the service sent it.
struct ListingPage {
  std::vector<std::pair<std::string, uint64_t>> objects;  // key (from the bucket), size
  std::vector<std::string> prefixes;                      // sub-prefixes, ending with '/'
  std::string next;  // what asks for the page after this one; "" after the last page
};

// Fetches the page after `next` ("" for the first) into *page.
using PageFetcher = std::function<Status(const std::string& next, ListingPage* page)>;
// An entry: a URI and its size (0 for a sub-prefix); false stops the listing.
using ListingEntry = std::function<bool(const std::string& uri, uint64_t size)>;

// The element names of an XML listing: each <object> holds <key> and <size>, each <prefix>
// holds <prefix_key>.
struct XmlListingNames {
  const char* object;
  const char* key;
  const char* size;
  const char* prefix;
  const char* prefix_key;
};
inline constexpr XmlListingNames kS3ListingNames{"Contents", "Key", "Size", "CommonPrefixes",
                                                 "Prefix"};
// The objects and sub-prefixes of an XML listing page into *page (its `next` untouched).
void ReadXmlListing(const std::string& body, const XmlListingNames& names, ListingPage* page);

// Every object of the listing of `prefix` (but "folder" placeholders, keys ending with '/'),
// then every sub-prefix (but `prefix` itself), page after page, as `uri_base` + key.
// A page that asks for itself again (the same `next`) is an error naming `what`: a listing
// that never ends would otherwise loop.
Status ListPages(const std::string& what, const std::string& uri_base, const std::string& prefix,
                 const PageFetcher& fetch, const ListingEntry& entry);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_LISTING_H_
