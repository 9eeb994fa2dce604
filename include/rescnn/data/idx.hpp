// rescnn/data/idx.hpp — reader for the IDX format of MNIST and Fashion-MNIST.
//
// The format (http://yann.lecun.com/exdb/mnist/):
//   2 bytes     zero
//   1 byte      element type (0x08 unsigned byte, 0x09 signed byte, 0x0B
//               i16, 0x0C i32, 0x0D f32, 0x0E f64); only 0x08 is supported,
//               the type of every MNIST-style image and label file
//   1 byte      number of dimensions, 1 to 4 here
//   4 * ndim    the extents, big-endian u32
//   the rest    the elements, row-major
// Files are usually distributed gzipped; gzip input is recognised by its magic
// bytes 1f 8b and inflated from memory.
//
// Both forms go through one streaming parser (IdxParser), so the checks are the
// same: nothing is allocated from a header field before it has been checked
// against the bytes actually present, and a gzip stream is inflated chunk by
// chunk and abandoned as soon as it produces more than the header promises (a
// small file cannot make us allocate gigabytes). Every malformed input throws
// IoError with a message that starts with "idx '<file>': ".
#pragma once

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"

namespace rescnn::data {

// A decoded IDX file: its extents and its bytes, row-major.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> data;
};

namespace detail {

inline const char* idx_type_name(unsigned code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "16-bit integer";
    case 0x0C: return "32-bit integer";
    case 0x0D: return "32-bit float";
    case 0x0E: return "64-bit float";
    default: return "unknown";
  }
}

inline std::string hex_byte(unsigned v) {
  static constexpr char digits[] = "0123456789abcdef";
  return std::string("0x") + digits[(v >> 4) & 0xF] + digits[v & 0xF];
}

// Consumes the (decompressed) bytes of an IDX file in pieces of any size.
class IdxParser {
 public:
  // `streaming`: the input comes from an inflater, so when it overruns the
  // header's promise we stop early and cannot count the excess exactly.
  IdxParser(std::string where, bool streaming, std::uint64_t size_hint)
      : where_(std::move(where)), streaming_(streaming), size_hint_(size_hint) {}

  void feed(const std::uint8_t* p, std::size_t n) {
    while (n > 0 && !header_done_) {
      header_.push_back(*p++);
      --n;
      if (header_.size() == 4) check_magic();
      if (header_.size() >= 4 && header_.size() == 4 + 4 * std::size_t{header_[3]}) finish_header();
    }
    if (n == 0) return;
    const std::uint64_t room = expected_ - out_.data.size();
    if (n > room) {
      if (streaming_)
        throw IoError(where_ + "gzip content is larger than its header says: more than the " +
                      std::to_string(expected_) + " data bytes of " + shape_text() +
                      " (stopped inflating; corrupt file or zip bomb)");
      throw IoError(where_ + std::to_string(n - room) + " trailing bytes after the " + std::to_string(expected_) +
                    " data bytes of " + shape_text());
    }
    out_.data.insert(out_.data.end(), p, p + n);
  }

  IdxArray finish() {
    if (!header_done_) {
      const std::size_t need = header_.size() < 4 ? 4 : 4 + 4 * std::size_t{header_[3]};
      throw IoError(where_ + "truncated header: " + std::to_string(header_.size()) + " bytes, the header needs " +
                    std::to_string(need));
    }
    check<IoError>(out_.data.size() == expected_, where_, "truncated: expected ", expected_, " data bytes (",
                   shape_text(), "), found ", out_.data.size());
    return std::move(out_);
  }

 private:
  void check_magic() {
    check<IoError>(header_[0] == 0 && header_[1] == 0, where_, "bad magic: the file starts with ", hex_byte(header_[0]),
                   " ", hex_byte(header_[1]), ", an IDX file starts with 0x00 0x00 (not an IDX file?)");
    check<IoError>(header_[2] == 0x08, where_, "unsupported element type ", hex_byte(header_[2]), " (",
                   idx_type_name(header_[2]), "): only 0x08 (unsigned byte) is supported");
    check<IoError>(header_[3] >= 1 && header_[3] <= 4, where_, "number of dimensions ", unsigned{header_[3]},
                   " is outside 1..4");
  }

  void finish_header() {
    header_done_ = true;
    for (std::size_t i = 0; i < header_[3]; ++i) {
      const std::uint8_t* b = header_.data() + 4 + 4 * i;
      out_.dims.push_back((std::int64_t{b[0]} << 24) | (std::int64_t{b[1]} << 16) | (std::int64_t{b[2]} << 8) |
                          std::int64_t{b[3]});
    }
    // The element count must fit a signed 64-bit index and a size_t.
    constexpr std::uint64_t limit =
        std::min<std::uint64_t>(std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::size_t>::max());
    std::uint64_t total = 1;
    for (const std::int64_t dim : out_.dims) {
      const auto d = static_cast<std::uint64_t>(dim);
      check<IoError>(d == 0 || total <= limit / d, where_, "dimensions ", shape_text(),
                     " overflow: their product does not fit in 64 bits");
      total *= d;
    }
    expected_ = total;
    // Reserve only what the input can actually supply; larger claims are
    // caught by finish() as truncation, after reading, not by allocating.
    out_.data.reserve(static_cast<std::size_t>(std::min(expected_, size_hint_)));
  }

  std::string shape_text() const {
    std::string s;
    for (std::size_t i = 0; i < out_.dims.size(); ++i) s += (i ? " x " : "") + std::to_string(out_.dims[i]);
    return s.empty() ? "(no dimensions)" : s;
  }

  std::string where_;
  bool streaming_;
  std::uint64_t size_hint_;
  std::vector<std::uint8_t> header_;
  bool header_done_ = false;
  std::uint64_t expected_ = 0;
  IdxArray out_;
};

// Deflate cannot compress better than about 1032:1, so a gzip stream of n
// bytes inflates to at most this many: a safe bound for reserve().
inline std::uint64_t max_inflated_size(std::size_t compressed) {
  constexpr std::uint64_t kMaxDeflateRatio = 1032;
  const std::uint64_t n = compressed;
  return n > std::numeric_limits<std::uint64_t>::max() / kMaxDeflateRatio ? std::numeric_limits<std::uint64_t>::max()
                                                                          : n * kMaxDeflateRatio;
}

inline IdxArray parse_gzip_idx(std::span<const std::byte> bytes, const std::string& where) {
  z_stream zs{};
  // 15 + 32: maximum window, and let zlib detect the gzip (or zlib) wrapper;
  // it then also verifies the gzip trailer's CRC-32 and length.
  int ret = inflateInit2(&zs, 15 + 32);
  check<IoError>(ret == Z_OK, where, "cannot start the gzip decoder: ", zs.msg ? zs.msg : zError(ret));
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&zs};

  IdxParser parser(where, /*streaming=*/true, max_inflated_size(bytes.size()));
  std::array<std::uint8_t, 64 * 1024> chunk;
  std::size_t consumed = 0;                               // input handed to zlib so far
  constexpr std::size_t kMaxFeed = std::size_t{1} << 30;  // avail_in is 32-bit
  while (ret != Z_STREAM_END) {
    if (zs.avail_in == 0 && consumed < bytes.size()) {
      const std::size_t n = std::min(kMaxFeed, bytes.size() - consumed);
      zs.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(bytes.data() + consumed));
      zs.avail_in = static_cast<uInt>(n);
      consumed += n;
    }
    zs.next_out = chunk.data();
    zs.avail_out = static_cast<uInt>(chunk.size());
    ret = inflate(&zs, Z_NO_FLUSH);
    const std::size_t produced = chunk.size() - zs.avail_out;
    if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_MEM_ERROR || ret == Z_STREAM_ERROR)
      throw IoError(where + "corrupt gzip data: zlib: " + (zs.msg ? zs.msg : zError(ret)));
    parser.feed(chunk.data(), produced);
    // Z_BUF_ERROR: no progress possible. With all input given to zlib, that
    // means the stream ended early.
    const bool input_exhausted = zs.avail_in == 0 && consumed == bytes.size();
    if (ret == Z_BUF_ERROR || (ret == Z_OK && produced == 0 && input_exhausted))
      throw IoError(where + "truncated gzip stream: the compressed data ends before the end of the stream (zlib: " +
                    (zs.msg ? zs.msg : "unexpected end of file") + ")");
  }
  const std::size_t left = zs.avail_in + (bytes.size() - consumed);
  check<IoError>(left == 0, where, left,
                 " bytes after the end of the gzip stream (multi-member gzip files are not supported)");
  return parser.finish();
}

}  // namespace detail

// Decodes an IDX file held in memory, raw or gzipped. `source_name` names it
// in error messages.
inline IdxArray parse_idx(std::span<const std::byte> bytes, const std::string& source_name) {
  const std::string where = "idx '" + source_name + "': ";
  if (bytes.size() >= 2 && bytes[0] == std::byte{0x1f} && bytes[1] == std::byte{0x8b})
    return detail::parse_gzip_idx(bytes, where);
  detail::IdxParser parser(where, /*streaming=*/false, bytes.size());
  parser.feed(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  return parser.finish();
}

// Reads and decodes an IDX file (raw or gzipped).
inline IdxArray read_idx(const std::filesystem::path& file) {
  namespace fs = std::filesystem;
  const std::string name = file.string();
  const std::string where = "idx '" + name + "': ";
  std::error_code ec;
  const fs::file_status st = fs::status(file, ec);
  check<IoError>(st.type() != fs::file_type::not_found, where, "no such file");
  check<IoError>(!ec, where, "cannot access the file: ", ec.message());
  check<IoError>(st.type() != fs::file_type::directory, where, "it is a directory, not a file");

  errno = 0;
  std::ifstream in(file, std::ios::binary);
  check<IoError>(in.is_open(), where,
                 "cannot open the file: ", std::error_code(errno, std::generic_category()).message());
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  check<IoError>(size >= 0, where, "cannot determine the size of the file");
  in.seekg(0, std::ios::beg);
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  if (size > 0) in.read(reinterpret_cast<char*>(bytes.data()), size);
  check<IoError>(in.good() || (size == 0 && !in.bad()), where, "cannot read the file: read ", in.gcount(), " of ", size,
                 " bytes");
  return parse_idx(bytes, name);
}

}  // namespace rescnn::data
