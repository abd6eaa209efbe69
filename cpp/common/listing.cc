#include "common/listing.h"

#include <cstdlib>
#include <string_view>

#include "common/xml.h"
#include "streamer/streamer.h"

namespace runai::common {

void ReadXmlListing(const std::string& body, const XmlListingNames& names, ListingPage* page) {
  for (std::string_view object : XmlElements(body, names.object)) {
    page->objects.emplace_back(XmlText(object, names.key),
                               std::strtoull(XmlText(object, names.size).c_str(), nullptr, 10));
  }
  for (std::string_view prefix : XmlElements(body, names.prefix)) {
    page->prefixes.push_back(XmlText(prefix, names.prefix_key));
  }
}

Status ListPages(const std::string& what, const std::string& uri_base, const std::string& prefix,
                 const PageFetcher& fetch, const ListingEntry& entry) {
  std::string next;
  for (;;) {
    ListingPage page;
    Status status = fetch(next, &page);
    if (!status.ok()) return status;
    for (const auto& [key, size] : page.objects) {
      if (key.empty() || key.back() == '/') continue;
      if (!entry(uri_base + key, size)) return Status::Ok();
    }
    for (const std::string& sub : page.prefixes) {
      if (sub.empty() || sub == prefix) continue;
      if (!entry(uri_base + sub, 0)) return Status::Ok();
    }
    if (page.next.empty()) return Status::Ok();
    if (page.next == next) {
      return {RUNAI_E_BACKEND,
              what + ": the listing asked for the same page again ('" + page.next + "'); stopped"};
    }
    next = page.next;
  }
}

}  // namespace runai::common
