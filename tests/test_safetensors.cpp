// Tests for rescnn/io/json.hpp and rescnn/io/safetensors.hpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "rescnn/io/json.hpp"
#include "rescnn/io/safetensors.hpp"
#include "support/temp_dir.hpp"

#ifndef RESCNN_GOLDEN_DIR
#error "RESCNN_GOLDEN_DIR must name tests/golden/fixtures"
#endif

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using rescnn::Cpu;
using rescnn::IoError;
using rescnn::Shape;
using rescnn::Tensor;
using rescnn::ValueError;
using rescnn::io::DType;
using rescnn::io::SafeTensors;
namespace json = rescnn::io::json;

namespace {

using rescnn::testing::TempDir;

std::vector<std::byte> read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  if (!chars.empty()) std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

void write_all(const fs::path& p, const std::vector<std::byte>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A file image from a header text (used verbatim; no padding) and data bytes.
std::vector<std::byte> make_file(const std::string& header, std::size_t data_bytes = 0, std::uint64_t length = 0,
                                 bool explicit_length = false) {
  const std::uint64_t n = explicit_length ? length : header.size();
  std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte{0});
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  for (std::size_t i = 0; i < data_bytes; ++i) out[8 + header.size() + i] = static_cast<std::byte>(i & 0xff);
  return out;
}

SafeTensors parse_header(const std::string& header, std::size_t data_bytes) {
  return SafeTensors::parse(make_file(header, data_bytes), "test.safetensors");
}

template <class T>
std::vector<T> values_of(const Tensor<T, Cpu>& t) {
  return t.to_vector();
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

TEST_CASE("json parses objects, arrays, strings, numbers and literals", "[io][json]") {
  const json::Value v = json::parse(
      " {\"a\": [1, -2, 0, 9223372036854775807, -9223372036854775808], \"b\": \"x\\\"y\\\\z\\/\\n\\t\","
      " \"c\": {\"d\": true, \"e\": false, \"f\": null}, \"g\": 1.5e2, \"h\": [], \"i\": {}} \n");
  REQUIRE(v.is_object());
  const auto& a = v.find("a")->as_array();
  REQUIRE(a.size() == 5);
  CHECK(a[0].as_int() == 1);
  CHECK(a[1].as_int() == -2);
  CHECK(a[2].as_int() == 0);
  CHECK(a[3].as_int() == INT64_MAX);
  CHECK(a[4].as_int() == INT64_MIN);
  CHECK(v.find("b")->as_string() == "x\"y\\z/\n\t");
  CHECK(v.find("c")->find("d")->as_bool());
  CHECK_FALSE(v.find("c")->find("e")->as_bool());
  CHECK(v.find("c")->find("f")->is_null());
  CHECK(v.find("g")->as_double() == 150.0);
  CHECK_FALSE(v.find("g")->is_int());
  CHECK(v.find("h")->as_array().empty());
  CHECK(v.find("i")->as_object().empty());
  CHECK(v.find("zz") == nullptr);
  // Integers beyond int64 are still numbers, but not integers.
  CHECK_FALSE(json::parse("18446744073709551616").is_int());
  CHECK_THROWS_AS(json::parse("1.0").as_int(), json::ParseError);
}

TEST_CASE("json decodes \\u escapes, surrogate pairs and raw UTF-8", "[io][json]") {
  CHECK(json::parse(R"("\u0041\u00e9\u20AC")").as_string() == "A\xC3\xA9\xE2\x82\xAC");
  CHECK(json::parse(R"("\ud83d\ude00")").as_string() == "\xF0\x9F\x98\x80");  // U+1F600
  CHECK(json::parse("\"caf\xC3\xA9\"").as_string() == "caf\xC3\xA9");
  CHECK(json::parse(R"("\u0000")").as_string() == std::string(1, '\0'));
}

TEST_CASE("json rejects malformed documents", "[io][json]") {
  const char* bad[] = {
      "",                    // empty
      "{",                   // unterminated object
      "{\"a\":}",            // missing value
      "{\"a\":1,}",          // trailing comma
      "[1,]",                // trailing comma in array
      "[1 2]",               // missing comma
      "{'a':1}",             // single quotes
      "{a:1}",               // bare key
      "{\"a\" 1}",           // missing colon
      "{\"a\":1}x",          // text after the value
      "{\"a\":1}{}",         // two values
      "01",                  // leading zero
      "-",                   // lone minus
      "+1",                  // plus sign
      "1.",                  // no fraction digits
      ".5",                  // no integer part
      "1e",                  // no exponent digits
      "NaN",                 // not JSON
      "Infinity",            // not JSON
      "tru",                 // truncated literal
      "nul",                 // truncated literal
      "\"abc",               // unterminated string
      "\"a\tb\"",            // unescaped control character
      "\"\\x41\"",           // unknown escape
      "\"\\u12\"",           // short \u escape
      "\"\\u12G4\"",         // bad hex digit
      "\"\\ud83d\"",         // lone high surrogate
      "\"\\ude00\"",         // lone low surrogate
      "\"\\ud83d\\u0041\"",  // high surrogate followed by a non-surrogate
      "\"\xC3\"",            // truncated UTF-8
      "\"\xC0\xAF\"",        // overlong UTF-8
      "\"\xED\xA0\x80\"",    // UTF-8-encoded surrogate
      "\"\xFF\"",            // invalid byte
      "{\"a\":1,\"a\":2}",   // duplicate key
      "[1] // comment",      // comments
  };
  for (const char* text : bad) {
    INFO("input: " << text);
    CHECK_THROWS_AS(json::parse(text), json::ParseError);
  }
  CHECK_THROWS_WITH(json::parse("{\"a\":1,}"), Contains("invalid JSON") && Contains("byte 7"));
  CHECK_THROWS_WITH(json::parse("{\"k\":1,\"k\":2}"), Contains("duplicate key \"k\""));
}

TEST_CASE("json limits nesting depth instead of overflowing the stack", "[io][json]") {
  CHECK_NOTHROW(json::parse(std::string(64, '[') + std::string(64, ']')));
  CHECK_THROWS_WITH(json::parse(std::string(65, '[') + std::string(65, ']')), Contains("nesting deeper"));
  // Hostile input: a million open brackets fails fast and cleanly.
  CHECK_THROWS_AS(json::parse(std::string(1'000'000, '[')), json::ParseError);
  CHECK_THROWS_AS(json::parse(std::string(1'000'000, '{')), json::ParseError);
  CHECK_NOTHROW(json::parse("[[[1]]]", {.max_depth = 3}));
  CHECK_THROWS_AS(json::parse("[[[1]]]", {.max_depth = 2}), json::ParseError);
}

TEST_CASE("json dump writes compact text that parses back", "[io][json]") {
  json::Object o;
  o.emplace_back("s", json::Value("q\"b\\n\n\x01\xC3\xA9"));
  o.emplace_back("i", json::Value(std::int64_t{-42}));
  o.emplace_back("a", json::Value(json::Array{json::Value(1), json::Value(true), json::Value()}));
  o.emplace_back("d", json::Value(0.1));
  const std::string text = json::dump(json::Value(o));
  CHECK(text == "{\"s\":\"q\\\"b\\\\n\\n\\u0001\xC3\xA9\",\"i\":-42,\"a\":[1,true,null],\"d\":0.10000000000000001}");
  const json::Value back = json::parse(text);
  CHECK(back.find("s")->as_string() == "q\"b\\n\n\x01\xC3\xA9");
  CHECK(back.find("d")->as_double() == 0.1);
  CHECK(json::is_valid_utf8("caf\xC3\xA9"));
  CHECK_FALSE(json::is_valid_utf8("caf\xC3"));
}

// ---------------------------------------------------------------------------
// safetensors: round trips
// ---------------------------------------------------------------------------

TEST_CASE("safetensors round-trips several dtypes and metadata through save and load", "[io]") {
  TempDir dir;
  const fs::path file = dir.path / "model.safetensors";

  SafeTensors out;
  out.add("conv.weight",
          Tensor<float, Cpu>::from_vector({2, 1, 2, 2}, {1.5f, -2.f, 3.25f, 0.f, -0.f, 1e-30f, 3.4e38f, -7.f}));
  out.add("f64", Tensor<double, Cpu>::from_vector({3}, {0.1, -1e300, 2.5}));
  out.add("i64", Tensor<std::int64_t, Cpu>::from_vector({2, 2}, {INT64_MIN, -1, 0, INT64_MAX}));
  out.add("i32", Tensor<std::int32_t, Cpu>::from_vector({3}, {-5, 7, INT32_MAX}));
  out.add("u8", Tensor<std::uint8_t, Cpu>::from_vector({1, 3}, {0, 128, 255}));
  out.add("scalar", Tensor<float, Cpu>::from_vector(Shape{}, {42.f}));
  out.add("empty", Tensor<float, Cpu>::zeros({0, 3}));
  const std::uint16_t half[] = {0x3C00, 0xC000};  // 1.0, -2.0 as F16 bits
  out.add("half", DType::F16, {2}, std::as_bytes(std::span<const std::uint16_t>(half)));
  const std::uint8_t five_d[32] = {};
  out.add("rank5", DType::U8, {1, 2, 2, 2, 4}, std::as_bytes(std::span<const std::uint8_t>(five_d)));
  out.set_metadata("format", "pt");
  out.set_metadata("note", "quote \" backslash \\ newline \n unicode \xC3\xA9");
  out.save(file);

  // No temporary left next to it.
  CHECK(files_in(dir.path) == std::vector<std::string>{"model.safetensors"});

  const SafeTensors in = SafeTensors::load(file);
  CHECK(in.source() == file.string());
  CHECK(in.names() ==
        std::vector<std::string>{"conv.weight", "empty", "f64", "half", "i32", "i64", "rank5", "scalar", "u8"});
  CHECK(in.contains("f64"));
  CHECK_FALSE(in.contains("nope"));

  const auto w = in.tensor<float>("conv.weight");
  CHECK(w.shape() == Shape{2, 1, 2, 2});
  CHECK(values_of(w) == std::vector<float>{1.5f, -2.f, 3.25f, 0.f, -0.f, 1e-30f, 3.4e38f, -7.f});
  CHECK(std::signbit(w[4]));
  CHECK(values_of(in.tensor<double>("f64")) == std::vector<double>{0.1, -1e300, 2.5});
  CHECK(values_of(in.tensor<std::int64_t>("i64")) == std::vector<std::int64_t>{INT64_MIN, -1, 0, INT64_MAX});
  CHECK(values_of(in.tensor<std::int32_t>("i32")) == std::vector<std::int32_t>{-5, 7, INT32_MAX});
  CHECK(in.tensor<std::uint8_t>("u8").shape() == Shape{1, 3});
  CHECK(values_of(in.tensor<std::uint8_t>("u8")) == std::vector<std::uint8_t>{0, 128, 255});
  const auto s = in.tensor<float>("scalar");
  CHECK(s.shape() == Shape{});
  CHECK(s.rank() == 0);
  CHECK(s.item() == 42.f);
  CHECK(in.tensor<float>("empty").shape() == Shape{0, 3});

  const auto& h = in.record("half");
  CHECK(h.dtype == DType::F16);
  CHECK(h.shape == std::vector<std::int64_t>{2});
  REQUIRE(h.bytes.size() == 4);
  CHECK(std::memcmp(h.bytes.data(), half, 4) == 0);
  CHECK(in.record("rank5").shape == std::vector<std::int64_t>{1, 2, 2, 2, 4});

  CHECK(in.metadata().size() == 2);
  CHECK(in.meta("format") == "pt");
  CHECK(in.meta("note") == "quote \" backslash \\ newline \n unicode \xC3\xA9");

  // Loading and saving again gives the same bytes.
  CHECK(in.serialize() == read_all(file));
}

TEST_CASE("safetensors serialize pads the header and aligns the data", "[io]") {
  SafeTensors st;
  st.add("a_u8", Tensor<std::uint8_t, Cpu>::from_vector({3}, {1, 2, 3}));
  st.add("b_f32", Tensor<float, Cpu>::from_vector({3}, {1, 2, 3}));
  st.add("c_f64", Tensor<double, Cpu>::from_vector({1}, {4}));
  st.add("d_i32", Tensor<std::int32_t, Cpu>::from_vector({1}, {5}));
  const std::vector<std::byte> bytes = st.serialize();
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  CHECK(bytes.size() == 8 + n + 3 + 12 + 8 + 4);
  const std::string header(reinterpret_cast<const char*>(bytes.data()) + 8, n);
  CHECK(header.front() == '{');
  CHECK(header.find_last_not_of(' ') == header.find_last_of('}'));
  // Wider elements first, so every tensor sits at a multiple of its item size.
  const json::Value h = json::parse(header);
  CHECK(h.find("c_f64")->find("data_offsets")->as_array()[0].as_int() == 0);
  for (const char* name : {"a_u8", "b_f32", "c_f64", "d_i32"}) {
    const auto& rec = st.record(name);
    const auto begin = h.find(name)->find("data_offsets")->as_array()[0].as_int();
    CHECK(begin % static_cast<std::int64_t>(rescnn::io::itemsize(rec.dtype)) == 0);
  }
  // The header lists tensors by name.
  CHECK(header.find("a_u8") < header.find("b_f32"));
  CHECK(header.find("b_f32") < header.find("c_f64"));
  const SafeTensors back = SafeTensors::parse(bytes, "memory");
  CHECK(values_of(back.tensor<std::uint8_t>("a_u8")) == std::vector<std::uint8_t>{1, 2, 3});
  CHECK(values_of(back.tensor<std::int32_t>("d_i32")) == std::vector<std::int32_t>{5});
  // An empty file set is valid too.
  CHECK(SafeTensors::parse(SafeTensors().serialize(), "empty").names().empty());
}

TEST_CASE("safetensors reads the file written by the Python generator", "[io]") {
  const SafeTensors st = SafeTensors::load(fs::path(RESCNN_GOLDEN_DIR) / "safetensors_roundtrip.safetensors");
  CHECK(st.names() == std::vector<std::string>{"f32", "f64", "i64", "u8"});
  CHECK(st.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "roundtrip"}});
  const auto f32 = st.tensor<float>("f32");
  CHECK(f32.shape() == Shape{2, 3});
  CHECK(values_of(f32) == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f});
  const auto f64 = st.tensor<double>("f64");
  CHECK(f64.shape() == Shape{4});
  CHECK(values_of(f64) == std::vector<double>{0.25, 1.25, 2.25, 3.25});
  CHECK(values_of(st.tensor<std::int64_t>("i64")) == std::vector<std::int64_t>{-1, 0, std::int64_t{1} << 40});
  const auto u8 = st.tensor<std::uint8_t>("u8");
  CHECK(u8.shape() == Shape{2, 2});
  CHECK(values_of(u8) == std::vector<std::uint8_t>{0, 1, 254, 255});
  // Our writer produces the same layout as the Python one, byte for byte.
  SafeTensors again;
  again.add("f32", st.tensor<float>("f32"));
  again.add("f64", st.tensor<double>("f64"));
  again.add("i64", st.tensor<std::int64_t>("i64"));
  again.add("u8", st.tensor<std::uint8_t>("u8"));
  again.set_metadata("format", "pt");
  again.set_metadata("note", "roundtrip");
  CHECK(again.serialize() == read_all(fs::path(RESCNN_GOLDEN_DIR) / "safetensors_roundtrip.safetensors"));
}

TEST_CASE("safetensors parses every golden fixture", "[io]") {
  int count = 0;
  for (const auto& e : fs::directory_iterator(RESCNN_GOLDEN_DIR)) {
    if (e.path().extension() != ".safetensors") continue;
    INFO("fixture: " << e.path());
    const SafeTensors st = SafeTensors::load(e.path());
    ++count;
    // Layer fixtures (make_golden.py) carry "layer" and "case"; block, model
    // and name-list fixtures (make_model_golden.py) are checked by their tests.
    if (!st.metadata().contains("layer")) continue;
    const std::string stem = e.path().stem().string();
    CHECK(stem == st.meta("layer") + "__" + st.meta("case"));
    for (const char* name : {"input", "output", "grad_output", "grad_input"}) {
      REQUIRE(st.contains(name));
      CHECK(st.record(name).dtype == DType::F32);
    }
    CHECK(st.record("output").shape == st.record("grad_output").shape);
    CHECK(st.record("input").shape == st.record("grad_input").shape);
    if (st.meta("layer") == "cross_entropy") {
      CHECK(st.tensor<float>("loss").shape() == Shape{});
      CHECK(st.record("labels").dtype == DType::I64);
    }
  }
  CHECK(count >= 40);
}

// ---------------------------------------------------------------------------
// safetensors: malformed input
// ---------------------------------------------------------------------------

TEST_CASE("safetensors load names a missing file", "[io]") {
  TempDir dir;
  const fs::path missing = dir.path / "absent.safetensors";
  CHECK_THROWS_AS(SafeTensors::load(missing), IoError);
  CHECK_THROWS_WITH(SafeTensors::load(missing), Contains("absent.safetensors") && Contains("no such file"));
  CHECK_THROWS_WITH(SafeTensors::load(dir.path), Contains("directory"));
}

TEST_CASE("safetensors rejects a truncated header length", "[io]") {
  TempDir dir;
  const fs::path file = dir.path / "short.safetensors";
  write_all(file, std::vector<std::byte>(5, std::byte{1}));
  CHECK_THROWS_AS(SafeTensors::load(file), IoError);
  CHECK_THROWS_WITH(SafeTensors::load(file), Contains("short.safetensors") && Contains("truncated header length"));
  write_all(file, {});
  CHECK_THROWS_WITH(SafeTensors::load(file), Contains("truncated header length"));
}

TEST_CASE("safetensors rejects a header length beyond the file or the limit", "[io]") {
  TempDir dir;
  const fs::path file = dir.path / "long.safetensors";
  write_all(file, make_file("{}", 0, 1000, true));
  CHECK_THROWS_AS(SafeTensors::load(file), IoError);
  CHECK_THROWS_WITH(SafeTensors::load(file),
                    Contains("long.safetensors") && Contains("header length 1000 exceeds the file"));
  // Absurd lengths are refused before any allocation.
  CHECK_THROWS_WITH(SafeTensors::parse(make_file("{}", 0, ~std::uint64_t{0}, true), "huge"),
                    Contains("exceeds the limit"));
  CHECK_THROWS_WITH(SafeTensors::parse(make_file("{}", 0, (std::uint64_t{100} << 20) + 1, true), "huge"),
                    Contains("exceeds the limit"));
}

TEST_CASE("safetensors rejects invalid JSON headers", "[io]") {
  const char* bad[] = {
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}",    // unterminated
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],}}",  // trailing comma
      "{\"a\":{'dtype':\"F32\"}}",                                          // single quotes
      "{\"a\":1} x",                                                        // garbage after
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}",  // leading zero
  };
  for (const char* header : bad) {
    INFO("header: " << header);
    CHECK_THROWS_AS(parse_header(header, 4), IoError);
    CHECK_THROWS_WITH(parse_header(header, 4), Contains("test.safetensors") && Contains("not valid JSON"));
  }
  CHECK_THROWS_WITH(parse_header("[1, 2]  ", 0), Contains("does not start with '{'"));
  CHECK_THROWS_WITH(parse_header("        ", 0), Contains("does not start with '{'"));
  CHECK_THROWS_WITH(parse_header("", 0), Contains("does not start with '{'"));
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "{\"a\":";
  CHECK_THROWS_WITH(parse_header(deep, 0), Contains("not valid JSON") && Contains("nesting"));
  // Duplicate tensor names are ambiguous.
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                                 "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                                 2),
                    Contains("duplicate key"));
}

TEST_CASE("safetensors accepts trailing spaces after the header", "[io]") {
  const SafeTensors st = parse_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}     ", 2);
  CHECK(values_of(st.tensor<std::uint8_t>("a")) == std::vector<std::uint8_t>{0, 1});
}

TEST_CASE("safetensors rejects malformed tensor entries", "[io]") {
  CHECK_THROWS_WITH(parse_header("{\"a\":5}", 0), Contains("tensor 'a'") && Contains("not an object"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4),
                    Contains("missing field 'data_offsets'"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4),
                    Contains("unexpected field 'x'"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                    Contains("unknown dtype 'Q7'"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4),
                    Contains("non-negative integer"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4),
                    Contains("non-negative integer"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4),
                    Contains("two integers"));
  CHECK_THROWS_WITH(parse_header("{\"__metadata__\":{\"k\":1}}", 0), Contains("metadata value for key 'k'"));
  CHECK_THROWS_WITH(parse_header("{\"__metadata__\":[]}", 0), Contains("__metadata__"));
}

TEST_CASE("safetensors rejects data offsets out of range", "[io]") {
  CHECK_THROWS_AS(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4), IoError);
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4),
                    Contains("test.safetensors") && Contains("tensor 'a'") && Contains("out of range"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[3,2]}}", 4),
                    Contains("out of range"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
                                 "\"data_offsets\":[9223372036854775807,9223372036854775807]}}",
                                 4),
                    Contains("out of range"));
  // Overlap, gap and uncovered trailing bytes.
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                                 "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
                                 6),
                    Contains("overlap"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                                 "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}",
                                 6),
                    Contains("gap"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 5),
                    Contains("trailing bytes"));
}

TEST_CASE("safetensors rejects dtype and shape that do not match the byte size", "[io]") {
  CHECK_THROWS_AS(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20), IoError);
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20),
                    Contains("size mismatch") && Contains("needs 24 bytes"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,12]}}", 12),
                    Contains("size mismatch"));
  // A range longer than the tensor is refused too, even when it tiles the
  // buffer (the extra bytes would be silently dropped or misread).
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12),
                    Contains("size mismatch") && Contains("needs 8 bytes"));
  // Shape products that overflow are caught, not wrapped around to a match.
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                                 "\"data_offsets\":[0,0]}}",
                                 0),
                    Contains("overflows"));
  CHECK_THROWS_WITH(parse_header("{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],"
                                 "\"data_offsets\":[0,0]}}",
                                 0),
                    Contains("overflows"));
  // A zero extent makes everything else irrelevant.
  CHECK_NOTHROW(
      parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,4294967296,4294967296],"
                   "\"data_offsets\":[0,0]}}",
                   0));
}

TEST_CASE("safetensors tensor<T> checks the dtype, the rank and the name", "[io]") {
  SafeTensors st;
  st.add("w", Tensor<float, Cpu>::from_vector({2}, {1, 2}));
  const std::uint8_t five_d[2] = {};
  st.add("deep", DType::U8, {1, 1, 1, 1, 2}, std::as_bytes(std::span<const std::uint8_t>(five_d)));
  const SafeTensors in = SafeTensors::parse(st.serialize(), "weights.safetensors");

  CHECK_THROWS_AS(in.tensor<double>("w"), IoError);
  CHECK_THROWS_WITH(in.tensor<double>("w"),
                    Contains("weights.safetensors") && Contains("'w'") && Contains("dtype F32") && Contains("F64"));
  CHECK_THROWS_WITH(in.tensor<std::int32_t>("w"), Contains("dtype F32"));
  CHECK_THROWS_WITH(in.tensor<std::uint8_t>("deep"), Contains("rank 5"));
  CHECK_NOTHROW(in.record("deep"));

  CHECK_THROWS_AS(in.tensor<float>("missing"), IoError);
  CHECK_THROWS_WITH(in.tensor<float>("missing"),
                    Contains("no tensor named 'missing'") && Contains("weights.safetensors"));
  CHECK_THROWS_WITH(in.record("missing"), Contains("no tensor named 'missing'") && Contains("deep, w"));
  CHECK_THROWS_AS(in.meta("absent"), IoError);
  CHECK_THROWS_WITH(in.meta("absent"), Contains("no metadata key 'absent'") && Contains("weights.safetensors"));
}

TEST_CASE("safetensors add validates its arguments", "[io]") {
  SafeTensors st;
  const std::byte four[4] = {};
  CHECK_THROWS_AS(st.add("x", DType::F32, {2}, four), ValueError);
  CHECK_THROWS_WITH(st.add("x", DType::F32, {2}, four), Contains("needs 8 bytes, got 4"));
  CHECK_THROWS_AS(st.add("x", DType::U8, {-4}, four), ValueError);
  CHECK_THROWS_AS(st.add("", DType::U8, {4}, four), ValueError);
  CHECK_THROWS_AS(st.add("__metadata__", DType::U8, {4}, four), ValueError);
  CHECK_THROWS_AS(st.add("bad\xFF", DType::U8, {4}, four), ValueError);
  CHECK_THROWS_AS(st.add("undefined", Tensor<float, Cpu>()), ValueError);
  st.add("x", DType::U8, {4}, four);
  CHECK_THROWS_WITH(st.add("x", DType::U8, {4}, four), Contains("already present"));
  CHECK(st.erase("x"));
  CHECK_FALSE(st.erase("x"));
  st.add("x", DType::I32, {1}, four);
  CHECK(st.record("x").dtype == DType::I32);
  CHECK_THROWS_AS(st.set_metadata("k", "\xC0\xAF"), ValueError);
  st.set_metadata("k", "1");
  st.set_metadata("k", "2");
  CHECK(st.meta("k") == "2");
}

TEST_CASE("safetensors dtype names round-trip", "[io]") {
  for (DType d : rescnn::io::kAllDTypes) {
    CHECK(rescnn::io::parse_dtype(rescnn::io::to_string(d)) == d);
    CHECK(rescnn::io::itemsize(d) >= 1);
  }
  CHECK(rescnn::io::itemsize(DType::BF16) == 2);
  CHECK_FALSE(rescnn::io::parse_dtype("f32").has_value());
}

// ---------------------------------------------------------------------------
// safetensors: atomic save
// ---------------------------------------------------------------------------

TEST_CASE("safetensors save into a missing directory fails cleanly", "[io]") {
  TempDir dir;
  const fs::path existing = dir.path / "keep.safetensors";
  SafeTensors old;
  old.add("old", Tensor<float, Cpu>::from_vector({2}, {7, 8}));
  old.save(existing);
  const std::vector<std::byte> before = read_all(existing);

  SafeTensors st;
  st.add("new", Tensor<float, Cpu>::from_vector({1}, {1}));
  const fs::path target = dir.path / "no_such_dir" / "keep.safetensors";
  CHECK_THROWS_AS(st.save(target), IoError);
  CHECK_THROWS_WITH(st.save(target), Contains(target.string()));
  CHECK_FALSE(fs::exists(dir.path / "no_such_dir"));
  CHECK(read_all(existing) == before);
  CHECK(files_in(dir.path) == std::vector<std::string>{"keep.safetensors"});
}

TEST_CASE("safetensors save leaves the target intact when the final rename fails", "[io]") {
  // The target is a non-empty directory: the temporary file is written in
  // full, then renaming it over the target fails. Nothing may change.
  TempDir dir;
  const fs::path target = dir.path / "model.safetensors";
  fs::create_directory(target);
  write_all(target / "inside.txt", {std::byte{'x'}});

  SafeTensors st;
  st.add("a", Tensor<float, Cpu>::from_vector({3}, {1, 2, 3}));
  CHECK_THROWS_AS(st.save(target), IoError);
  CHECK_THROWS_WITH(st.save(target), Contains(target.string()) && Contains("rename"));
  CHECK(fs::is_directory(target));
  CHECK(read_all(target / "inside.txt") == std::vector<std::byte>{std::byte{'x'}});
  CHECK(files_in(dir.path) == std::vector<std::string>{"model.safetensors"});  // no temporary left
}

TEST_CASE("safetensors save replaces an existing file completely", "[io]") {
  TempDir dir;
  const fs::path file = dir.path / "model.safetensors";
  // A larger file first: a non-truncating write would leave its tail behind.
  write_all(file, std::vector<std::byte>(10000, std::byte{0xAB}));

  SafeTensors st;
  st.add("a", Tensor<float, Cpu>::from_vector({2}, {1, 2}));
  st.set_metadata("v", "2");
  st.save(file);
  const std::vector<std::byte> expected = st.serialize();
  CHECK(fs::file_size(file) == expected.size());
  CHECK(read_all(file) == expected);
  CHECK(SafeTensors::load(file).meta("v") == "2");

  // And again over a valid file, with different contents.
  SafeTensors st2;
  st2.add("b", Tensor<double, Cpu>::from_vector({1}, {3}));
  st2.save(file);
  const SafeTensors back = SafeTensors::load(file);
  CHECK(back.names() == std::vector<std::string>{"b"});
  CHECK(back.metadata().empty());
  CHECK(files_in(dir.path) == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("BF16 and F16 tensors read and write as PyTorch's (golden)", "[io][safetensors][golden]") {
  // tests/golden/make_half_golden.py: torch's rounding of `source` to
  // bfloat16 and float16, and its widening of those back to float32.
  const auto f = SafeTensors::load(std::filesystem::path(RESCNN_GOLDEN_DIR) / "half_dtypes.safetensors");
  const auto bits_of = [](const Tensor<float>& t) {
    std::vector<std::uint32_t> out(static_cast<std::size_t>(t.numel()));
    std::memcpy(out.data(), t.data(), out.size() * 4);
    return out;
  };
  // Widening is exact: the same bits as torch's .float() (NaN-free data).
  CHECK(bits_of(f.tensor<float>("bf16")) == bits_of(f.tensor<float>("bf16_f32")));
  CHECK(bits_of(f.tensor<float>("f16")) == bits_of(f.tensor<float>("f16_f32")));
  CHECK(f.tensor<float>("bf16").shape() == f.tensor<float>("source").shape());
  // Narrowing rounds as torch does, ties and subnormals included.
  SafeTensors out;
  out.add_as("bf16", f.tensor<float>("source"), DType::BF16);
  out.add_as("f16", f.tensor<float>("f16_source"), DType::F16);
  CHECK(out.record("bf16").dtype == DType::BF16);
  CHECK(out.record("bf16").bytes == f.record("bf16").bytes);
  CHECK(out.record("f16").bytes == f.record("f16").bytes);
  // Only float reads the narrow types; a double read is still exact-only.
  CHECK_THROWS_WITH(f.tensor<double>("bf16"), Catch::Contains("has dtype BF16"));
}

TEST_CASE("Writing F16 refuses values beyond its range instead of storing infinities", "[io][safetensors]") {
  SafeTensors st;
  const auto t = Tensor<float>::from_vector({3}, {1.0f, -70000.0f, 2.0f});
  CHECK_THROWS_WITH(st.add_as("w", t, DType::F16),
                    Catch::Contains("'w'") && Catch::Contains("-70000") && Catch::Contains("65504"));
  CHECK_FALSE(st.contains("w"));
  CHECK_THROWS_WITH(st.add_as("w", t, DType::I32), Catch::Contains("cannot store floating-point values as I32"));
  // Infinities and NaN are values of every format: kept, not refused.
  st.add_as("inf", Tensor<float>::from_vector({2}, {INFINITY, NAN}), DType::F16);
  const auto back = st.tensor<float>("inf");
  CHECK(std::isinf(back.data()[0]));
  CHECK(std::isnan(back.data()[1]));
}
