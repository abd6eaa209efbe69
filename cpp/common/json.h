// Just enough JSON for object-storage responses (GCS listings and errors): a strict parser into
// a small tree. Numbers are kept as their text; strings are decoded (\uXXXX and surrogate
// pairs to UTF-8). Nesting is bounded, so no input can exhaust the stack.
#ifndef RUNAI_STREAMER_COMMON_JSON_H_
#define RUNAI_STREAMER_COMMON_JSON_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace runai::common {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  std::string text;                                        // string, number or true/false
  std::vector<JsonValue> items;                            // array elements
  std::vector<std::pair<std::string, JsonValue>> members;  // object members, in order

  // The member `name` of an object, or nullptr.
  const JsonValue* Find(std::string_view name) const;
  // The text of member `name` when it is a string or number, else "".
  std::string Text(std::string_view name) const;
};

// Parses a whole JSON document; false with *why on any error.
bool ParseJson(std::string_view input, JsonValue* out, std::string* why);

}  // namespace runai::common

#endif  // RUNAI_STREAMER_COMMON_JSON_H_
