#include "common/json.h"

#include <cstdint>

namespace runai::common {
namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(std::string_view input) : input_(input) {}

  bool Document(JsonValue* out, std::string* why) {
    const bool ok = Value(out, 0) && (Skip(), pos_ == input_.size() || Fail("trailing data"));
    if (!ok) *why = error_ + " at byte " + std::to_string(pos_);
    return ok;
  }

 private:
  bool Fail(const char* what) {
    if (error_.empty()) error_ = what;
    return false;
  }
  void Skip() {
    while (pos_ < input_.size() && (input_[pos_] == ' ' || input_[pos_] == '\t' ||
                                    input_[pos_] == '\n' || input_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Consume(char c) {
    Skip();
    if (pos_ < input_.size() && input_[pos_] == c) return ++pos_, true;
    return false;
  }
  bool Literal(std::string_view word) {
    if (input_.substr(pos_, word.size()) != word) return Fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool Value(JsonValue* out, int depth) {
    if (depth > kMaxDepth) return Fail("nesting too deep");
    Skip();
    if (pos_ >= input_.size()) return Fail("unexpected end");
    const char c = input_[pos_];
    if (c == '{') return Object(out, depth);
    if (c == '[') return Array(out, depth);
    if (c == '"') return out->kind = JsonValue::Kind::kString, String(&out->text);
    if (c == 't' || c == 'f') {
      out->kind = JsonValue::Kind::kBool;
      out->text = c == 't' ? "true" : "false";
      return Literal(out->text);
    }
    if (c == 'n') return out->kind = JsonValue::Kind::kNull, Literal("null");
    return Number(out);
  }

  bool Object(JsonValue* out, int depth) {
    out->kind = JsonValue::Kind::kObject;
    ++pos_;
    if (Consume('}')) return true;
    do {
      Skip();
      std::string name;
      if (pos_ >= input_.size() || input_[pos_] != '"' || !String(&name)) {
        return Fail("expected a member name");
      }
      if (!Consume(':')) return Fail("expected ':'");
      JsonValue value;
      if (!Value(&value, depth + 1)) return false;
      out->members.emplace_back(std::move(name), std::move(value));
    } while (Consume(','));
    return Consume('}') || Fail("expected ',' or '}'");
  }

  bool Array(JsonValue* out, int depth) {
    out->kind = JsonValue::Kind::kArray;
    ++pos_;
    if (Consume(']')) return true;
    do {
      out->items.emplace_back();
      if (!Value(&out->items.back(), depth + 1)) return false;
    } while (Consume(','));
    return Consume(']') || Fail("expected ',' or ']'");
  }

  bool Number(JsonValue* out) {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < input_.size() && input_[pos_] >= '0' && input_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (pos_ < input_.size() && input_[pos_] == '-') ++pos_;
    if (!digits()) return Fail("invalid value");
    if (pos_ < input_.size() && input_[pos_] == '.' && (++pos_, !digits())) {
      return Fail("invalid number");
    }
    if (pos_ < input_.size() && (input_[pos_] == 'e' || input_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < input_.size() && (input_[pos_] == '+' || input_[pos_] == '-')) ++pos_;
      if (!digits()) return Fail("invalid number");
    }
    out->kind = JsonValue::Kind::kNumber;
    out->text = std::string(input_.substr(start, pos_ - start));
    return true;
  }

  bool Hex4(uint32_t* out) {
    if (pos_ + 4 > input_.size()) return Fail("truncated \\u escape");
    *out = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = input_[pos_++];
      *out <<= 4;
      if (c >= '0' && c <= '9')
        *out |= c - '0';
      else if (c >= 'a' && c <= 'f')
        *out |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        *out |= c - 'A' + 10;
      else
        return Fail("invalid \\u escape");
    }
    return true;
  }

  static void AppendUtf8(uint32_t code, std::string* out) {
    if (code < 0x80) {
      *out += static_cast<char>(code);
    } else if (code < 0x800) {
      *out += static_cast<char>(0xC0 | (code >> 6));
      *out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      *out += static_cast<char>(0xE0 | (code >> 12));
      *out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | (code >> 18));
      *out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  bool String(std::string* out) {
    ++pos_;  // the opening quote
    while (pos_ < input_.size()) {
      const char c = input_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in a string");
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (pos_ >= input_.size()) break;
      const char e = input_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          *out += e;
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'n':
          *out += '\n';
          break;
        case 'r':
          *out += '\r';
          break;
        case 't':
          *out += '\t';
          break;
        case 'u': {
          uint32_t code = 0;
          if (!Hex4(&code)) return false;
          if (code >= 0xD800 && code < 0xDC00) {  // a surrogate pair
            uint32_t low = 0;
            if (input_.substr(pos_, 2) != "\\u" || (pos_ += 2, !Hex4(&low)) || low < 0xDC00 ||
                low > 0xDFFF) {
              return Fail("unpaired surrogate");
            }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          } else if (code >= 0xDC00 && code <= 0xDFFF) {
            return Fail("unpaired surrogate");
          }
          AppendUtf8(code, out);
          break;
        }
        default:
          return Fail("invalid escape");
      }
    }
    return Fail("unterminated string");
  }

  std::string_view input_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

const JsonValue* JsonValue::Find(std::string_view name) const {
  for (const auto& [member, value] : members) {
    if (member == name) return &value;
  }
  return nullptr;
}

std::string JsonValue::Text(std::string_view name) const {
  const JsonValue* value = Find(name);
  if (value == nullptr) return "";
  return value->kind == Kind::kString || value->kind == Kind::kNumber ? value->text : "";
}

bool ParseJson(std::string_view input, JsonValue* out, std::string* why) {
  *out = JsonValue();
  return Parser(input).Document(out, why);
}

}  // namespace runai::common
