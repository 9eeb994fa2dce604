// libFuzzer harness: the IDX reader on arbitrary bytes (raw, or gzip when
// the input starts with gzip's magic bytes).
//
// Every input must end in a decoded array or rescnn::IoError, the reader's
// documented exception. Anything else (another exception, a crash, a
// sanitizer report, a hang, an allocation beyond libFuzzer's -malloc_limit_mb)
// is a finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include "rescnn/data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto array = rescnn::data::parse_idx(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz");
    // A decoded array is consistent: its extents multiply to its size.
    std::uint64_t count = 1;
    for (auto d : array.dims) count *= static_cast<std::uint64_t>(d);
    if (count != array.data.size()) __builtin_trap();
  } catch (const rescnn::IoError&) {
  }
  return 0;
}
