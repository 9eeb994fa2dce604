// rescnn/io/protobuf_wire.hpp — the protocol-buffers wire format, written
// directly: enough to encode an ONNX model (io/onnx.hpp) with no protoc,
// no generated code and no libprotobuf.
//
// A message is a sequence of fields, each a key varint (field_number << 3 |
// wire_type) and a payload: a varint (wire type 0: integers, enums, bools),
// 4 little-endian bytes (wire type 5: float), or a length-delimited byte
// string (wire type 2: strings, bytes, nested messages, packed repeats).
// Repeated scalars are written one field each (proto2's unpacked form,
// which every parser accepts for ONNX's proto2 schema).
// https://protobuf.dev/programming-guides/encoding/
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

namespace rescnn::io::protobuf {

class Message {
 public:
  // Integer fields (int32, int64, enum, bool): negative values as their
  // 64-bit two's complement (ten bytes), as protobuf encodes int64.
  Message& add_int(int field, std::int64_t value) {
    key(field, 0);
    varint(static_cast<std::uint64_t>(value));
    return *this;
  }
  Message& add_float(int field, float value) {
    static_assert(std::endian::native == std::endian::little, "protobuf floats are little-endian");
    key(field, 5);
    char bytes[4];
    std::memcpy(bytes, &value, 4);
    data_.append(bytes, 4);
    return *this;
  }
  Message& add_bytes(int field, std::string_view bytes) {
    key(field, 2);
    varint(bytes.size());
    data_.append(bytes);
    return *this;
  }
  Message& add_string(int field, std::string_view text) { return add_bytes(field, text); }
  Message& add_message(int field, const Message& m) { return add_bytes(field, m.data_); }

  const std::string& bytes() const& { return data_; }
  // The encoded bytes, moved out (a model's weights are most of them).
  std::string take() && { return std::move(data_); }
  std::size_t size() const { return data_.size(); }

 private:
  void key(int field, int wire_type) {
    varint((static_cast<std::uint64_t>(field) << 3) | static_cast<std::uint64_t>(wire_type));
  }
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      data_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    data_.push_back(static_cast<char>(v));
  }

  std::string data_;
};

}  // namespace rescnn::io::protobuf
