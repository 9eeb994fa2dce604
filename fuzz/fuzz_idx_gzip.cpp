// libFuzzer harness: the IDX reader behind gzip. The input is compressed
// with zlib's gzip wrapper first, so that every input reaches the IDX parser
// through the streaming inflater (the raw harness mostly exercises gzip's
// own checks when it starts with the magic bytes). The same outcomes are
// allowed: a decoded array or rescnn::IoError.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "rescnn/data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
  std::vector<std::byte> gz(deflateBound(&zs, static_cast<uLong>(size)) + 32);
  zs.next_in = const_cast<Bytef*>(data);
  zs.avail_in = static_cast<uInt>(size);
  zs.next_out = reinterpret_cast<Bytef*>(gz.data());
  zs.avail_out = static_cast<uInt>(gz.size());
  const int status = deflate(&zs, Z_FINISH);
  gz.resize(zs.total_out);
  deflateEnd(&zs);
  if (status != Z_STREAM_END) return 0;
  try {
    const auto array = rescnn::data::parse_idx(gz, "fuzz.gz");
    std::uint64_t count = 1;
    for (auto d : array.dims) count *= static_cast<std::uint64_t>(d);
    if (count != array.data.size()) __builtin_trap();
  } catch (const rescnn::IoError&) {
  }
  return 0;
}
