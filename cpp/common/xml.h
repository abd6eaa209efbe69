// Just enough XML for object-storage responses (S3 and Azure errors and listings): the text
// of elements found by name, with the five predefined entities and character references
// decoded. No DTDs, namespaces or attributes are needed there.
#ifndef RUNAI_STREAMER_COMMON_XML_H_
#define RUNAI_STREAMER_COMMON_XML_H_

#include <string>
#include <string_view>
#include <vector>

namespace runai::common {

// The raw contents of every <tag>...</tag> element of `xml`, in order (not decoded).
std::vector<std::string_view> XmlElements(std::string_view xml, std::string_view tag);
// The decoded text of the first <tag> element, or "" when there is none.
std::string XmlText(std::string_view xml, std::string_view tag);
// Decodes &amp; &lt; &gt; &quot; &apos; &#NN; &#xHH; (UTF-8 out); CDATA is kept verbatim.
std::string XmlDecode(std::string_view text);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_XML_H_
