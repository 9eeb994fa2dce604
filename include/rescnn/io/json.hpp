// rescnn/io/json.hpp — a small, strict JSON reader and writer.
//
// Enough JSON for file headers (safetensors, checkpoints): objects, arrays,
// strings, numbers, true/false/null, exactly as RFC 8259 defines them and
// nothing more. The reader is meant for untrusted input:
//  - anything outside the grammar is rejected (trailing commas, single quotes,
//    comments, leading zeros, "+1", NaN, unescaped control characters, invalid
//    UTF-8, lone surrogates in \u escapes, text after the value, ...);
//  - duplicate keys in one object are rejected (a file that names a tensor
//    twice is ambiguous);
//  - nesting deeper than `ParseOptions::max_depth` is rejected before it can
//    exhaust the stack (recursion depth is bounded by that limit).
// Errors throw json::ParseError (an IoError) with the byte offset, line and
// column of the problem.
//
// Numbers keep both forms: `as_int()` is exact for integers that fit in
// int64 (written without fraction or exponent); `as_double()` works for all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"

namespace rescnn::io::json {

class ParseError : public IoError {
 public:
  using IoError::IoError;
};

class Value;
using Array = std::vector<Value>;
using Member = std::pair<std::string, Value>;
using Object = std::vector<Member>;  // in document order; keys are unique

class Value {
 public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : kind_(Kind::Bool), bool_(b) {}
  Value(int v) : Value(static_cast<std::int64_t>(v)) {}
  Value(std::int64_t v) : kind_(Kind::Number), integral_(true), int_(v), double_(static_cast<double>(v)) {}
  Value(double v) : kind_(Kind::Number), integral_(false), double_(v) {}
  Value(std::string s) : kind_(Kind::String), string_(std::move(s)) {}
  Value(const char* s) : Value(std::string(s)) {}
  Value(json::Array a) : kind_(Kind::Array), array_(std::move(a)) {}
  Value(json::Object o) : kind_(Kind::Object), object_(std::move(o)) {}

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Number; }
  // A number written without fraction or exponent that fits in int64.
  bool is_int() const { return kind_ == Kind::Number && integral_; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }

  bool as_bool() const {
    expect(Kind::Bool);
    return bool_;
  }
  std::int64_t as_int() const {
    check<ParseError>(is_int(), "json: expected an integer, got ", describe());
    return int_;
  }
  double as_double() const {
    expect(Kind::Number);
    return double_;
  }
  const std::string& as_string() const {
    expect(Kind::String);
    return string_;
  }
  const json::Array& as_array() const {
    expect(Kind::Array);
    return array_;
  }
  json::Array& as_array() {
    expect(Kind::Array);
    return array_;
  }
  const json::Object& as_object() const {
    expect(Kind::Object);
    return object_;
  }
  json::Object& as_object() {
    expect(Kind::Object);
    return object_;
  }

  // The member named `key` of an object, or nullptr (linear search).
  const Value* find(std::string_view key) const {
    expect(Kind::Object);
    for (const auto& [k, v] : object_)
      if (k == key) return &v;
    return nullptr;
  }

  // "an integer", "a string", ...: for error messages.
  std::string describe() const { return kind_name(kind_, integral_); }

  static std::string kind_name(Kind k, bool integral = false) {
    switch (k) {
      case Kind::Null: return "null";
      case Kind::Bool: return "a boolean";
      case Kind::Number: return integral ? "an integer" : "a number";
      case Kind::String: return "a string";
      case Kind::Array: return "an array";
      case Kind::Object: return "an object";
    }
    return "?";
  }

 private:
  void expect(Kind k) const { check<ParseError>(kind_ == k, "json: expected ", kind_name(k), ", got ", describe()); }

  Kind kind_ = Kind::Null;
  bool bool_ = false;
  bool integral_ = false;
  std::int64_t int_ = 0;
  double double_ = 0;
  std::string string_;
  json::Array array_;
  json::Object object_;
};

struct ParseOptions {
  int max_depth = 64;  // arrays/objects nested deeper than this are rejected
};

// True when `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF).
inline bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
      cp = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      cp = b0 & 0x0Fu;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      cp = b0 & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const unsigned char b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

namespace detail {

class Parser {
 public:
  Parser(std::string_view text, ParseOptions options) : s_(text), opt_(options) {}

  Value parse_document() {
    skip_ws();
    Value v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }

  [[noreturn]] void fail_at(std::size_t at, const std::string& what) const {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw ParseError(
        rescnn::detail::concat("invalid JSON at byte ", at, " (line ", line, ", column ", col, "): ", what));
  }

  std::string describe_here() const {
    if (pos_ >= s_.size()) return "end of input";
    const unsigned char c = static_cast<unsigned char>(s_[pos_]);
    if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
    return buf;
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }

  void skip_ws() {
    while (!at_end()) {
      const char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
        ++pos_;
      else
        break;
    }
  }

  void expect_char(char c, const char* context) {
    if (peek() != c || at_end())
      fail(rescnn::detail::concat("expected '", c, "' ", context, ", found ", describe_here()));
    ++pos_;
  }

  Value parse_value(int depth) {
    if (at_end()) fail("expected a value, found end of input");
    switch (s_[pos_]) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return Value(parse_string());
      case 't': parse_literal("true"); return Value(true);
      case 'f': parse_literal("false"); return Value(false);
      case 'n': parse_literal("null"); return Value();
      default:
        if (s_[pos_] == '-' || (s_[pos_] >= '0' && s_[pos_] <= '9')) return parse_number();
        fail("expected a value, found " + describe_here());
    }
  }

  void parse_literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) fail("invalid literal (expected '" + std::string(word) + "')");
    pos_ += word.size();
  }

  void check_depth(int depth) const {
    if (depth > opt_.max_depth)
      fail(rescnn::detail::concat("nesting deeper than the limit of ", opt_.max_depth, " levels"));
  }

  Value parse_object(int depth) {
    check_depth(depth);
    ++pos_;  // '{'
    Object members;
    std::unordered_set<std::string> keys;
    skip_ws();
    if (peek() == '}' && !at_end()) {
      ++pos_;
      return Value(std::move(members));
    }
    for (;;) {
      skip_ws();
      if (peek() != '"' || at_end()) fail("expected a string key in object, found " + describe_here());
      const std::size_t key_pos = pos_;
      std::string key = parse_string();
      if (!keys.insert(key).second) fail_at(key_pos, "duplicate key \"" + key + "\" in object");
      skip_ws();
      expect_char(':', "after object key");
      skip_ws();
      Value v = parse_value(depth);
      members.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (peek() == ',' && !at_end()) {
        ++pos_;
        continue;
      }
      if (peek() == '}' && !at_end()) {
        ++pos_;
        return Value(std::move(members));
      }
      fail("expected ',' or '}' in object, found " + describe_here());
    }
  }

  Value parse_array(int depth) {
    check_depth(depth);
    ++pos_;  // '['
    Array items;
    skip_ws();
    if (peek() == ']' && !at_end()) {
      ++pos_;
      return Value(std::move(items));
    }
    for (;;) {
      skip_ws();
      items.push_back(parse_value(depth));
      skip_ws();
      if (peek() == ',' && !at_end()) {
        ++pos_;
        continue;
      }
      if (peek() == ']' && !at_end()) {
        ++pos_;
        return Value(std::move(items));
      }
      fail("expected ',' or ']' in array, found " + describe_here());
    }
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  Value parse_number() {
    const std::size_t start = pos_;
    bool negative = false;
    if (peek() == '-') {
      negative = true;
      ++pos_;
    }
    if (at_end() || !is_digit(s_[pos_])) fail("expected a digit in number");
    if (s_[pos_] == '0') {
      ++pos_;
      if (!at_end() && is_digit(s_[pos_])) fail_at(start, "number with a leading zero");
    } else {
      while (!at_end() && is_digit(s_[pos_])) ++pos_;
    }
    bool integral = true;
    if (!at_end() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (at_end() || !is_digit(s_[pos_])) fail("expected a digit after the decimal point");
      while (!at_end() && is_digit(s_[pos_])) ++pos_;
    }
    if (!at_end() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (!at_end() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (at_end() || !is_digit(s_[pos_])) fail("expected a digit in the exponent");
      while (!at_end() && is_digit(s_[pos_])) ++pos_;
    }
    const std::string text(s_.substr(start, pos_ - start));
    if (integral) {
      // Exact int64 when it fits; otherwise fall through to a double.
      std::uint64_t mag = 0;
      bool overflow = false;
      for (std::size_t i = negative ? 1 : 0; i < text.size(); ++i) {
        const std::uint64_t d = static_cast<std::uint64_t>(text[i] - '0');
        if (mag > (std::numeric_limits<std::uint64_t>::max() - d) / 10) {
          overflow = true;
          break;
        }
        mag = mag * 10 + d;
      }
      const std::uint64_t limit = negative ? std::uint64_t{1} << 63 : (std::uint64_t{1} << 63) - 1;
      if (!overflow && mag <= limit) {
        const std::int64_t v = negative ? static_cast<std::int64_t>(0 - mag) : static_cast<std::int64_t>(mag);
        return Value(v);
      }
    }
    return Value(std::strtod(text.c_str(), nullptr));
  }

  unsigned parse_hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<unsigned>(c - 'A' + 10);
      else {
        --pos_;
        fail("invalid hex digit in \\u escape");
      }
    }
    return v;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // Validates one UTF-8 sequence starting at pos_ (first byte >= 0x80) and
  // copies it to `out`.
  void copy_utf8(std::string& out) {
    const unsigned char b0 = static_cast<unsigned char>(s_[pos_]);
    const std::size_t len = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
    const std::string_view seq = s_.substr(pos_, len);
    if (seq.size() != len || !is_valid_utf8(seq)) fail("invalid UTF-8 in string");
    out.append(seq);
    pos_ += len;
  }

  std::string parse_string() {
    const std::size_t start = pos_;
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail_at(start, "unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("unescaped control character in string");
      if (c >= 0x80) {
        copy_utf8(out);
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      ++pos_;  // backslash
      if (at_end()) fail_at(start, "unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = parse_hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") fail("unpaired high surrogate in \\u escape");
            pos_ += 2;
            const std::uint32_t lo = parse_hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired high surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: --pos_; fail("invalid escape sequence in string");
      }
    }
  }

  std::string_view s_;
  ParseOptions opt_;
  std::size_t pos_ = 0;
};

inline void dump_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;  // UTF-8 passes through unchanged
        }
    }
  }
  out += '"';
}

inline void dump_value(std::string& out, const Value& v, int depth) {
  check<ValueError>(depth <= 1024, "json::dump: value nested deeper than 1024 levels");
  switch (v.kind()) {
    case Value::Kind::Null: out += "null"; break;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; break;
    case Value::Kind::Number:
      if (v.is_int()) {
        out += std::to_string(v.as_int());
      } else {
        const double d = v.as_double();
        check<ValueError>(d == d && d - d == 0, "json::dump: NaN and infinity have no JSON form");
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", d);
        out += buf;
      }
      break;
    case Value::Kind::String: dump_string(out, v.as_string()); break;
    case Value::Kind::Array: {
      out += '[';
      bool first = true;
      for (const Value& item : v.as_array()) {
        if (!first) out += ',';
        first = false;
        dump_value(out, item, depth + 1);
      }
      out += ']';
      break;
    }
    case Value::Kind::Object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.as_object()) {
        if (!first) out += ',';
        first = false;
        dump_string(out, key);
        out += ':';
        dump_value(out, item, depth + 1);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace detail

// Parses one complete JSON document (surrounding whitespace allowed).
inline Value parse(std::string_view text, ParseOptions options = {}) {
  return detail::Parser(text, options).parse_document();
}

// Compact JSON text (no spaces); object members in their stored order.
// Strings are written as given (expected to be UTF-8); control characters,
// quotes and backslashes are escaped.
inline std::string dump(const Value& v) {
  std::string out;
  detail::dump_value(out, v, 0);
  return out;
}

}  // namespace rescnn::io::json
