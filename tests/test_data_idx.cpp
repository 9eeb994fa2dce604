// Tests for rescnn/data/idx.hpp and rescnn/data/fashion_mnist.hpp: the IDX
// reader on good and hostile input, raw and gzipped, and the real
// Fashion-MNIST files installed by scripts/install-deps.sh.
#include <zlib.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <unistd.h>

#include "rescnn/data/fashion_mnist.hpp"
#include "rescnn/data/idx.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
namespace data = rescnn::data;
using Catch::Matchers::Contains;
using rescnn::IoError;
using rescnn::ValueError;

namespace {

using Bytes = std::vector<std::uint8_t>;

// Each test writes into its own directory, removed afterwards.
struct TempDir : rescnn::testing::TempDir {
  TempDir() : rescnn::testing::TempDir("rescnn_test_data_idx") {}
};

// The header of an IDX file: 0 0 type ndim, then big-endian u32 extents.
Bytes idx_header(const std::vector<std::uint32_t>& dims, std::uint8_t type = 0x08) {
  Bytes b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
  return b;
}

// A complete unsigned-byte IDX file whose element i is (i * 7 + 3) mod 256.
Bytes idx_file(const std::vector<std::uint32_t>& dims) {
  Bytes b = idx_header(dims);
  std::size_t n = 1;
  for (auto d : dims) n *= d;
  for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>((i * 7 + 3) % 256));
  return b;
}

// gzip of `prefix` followed by `zeros` zero bytes (streamed: no buffer of
// that size is ever made, so a large zip bomb is cheap to build).
Bytes gzip(const Bytes& prefix, std::size_t zeros = 0, int level = 9) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);  // +16: gzip wrapper
  Bytes out;
  std::vector<std::uint8_t> chunk(1 << 16), zero(1 << 16, 0);
  auto pump = [&](const std::uint8_t* p, std::size_t n, int flush) {
    zs.next_in = const_cast<Bytef*>(p);
    zs.avail_in = static_cast<uInt>(n);
    int ret;
    do {
      zs.next_out = chunk.data();
      zs.avail_out = static_cast<uInt>(chunk.size());
      ret = deflate(&zs, flush);
      REQUIRE(ret != Z_STREAM_ERROR);
      out.insert(out.end(), chunk.data(), chunk.data() + (chunk.size() - zs.avail_out));
    } while (zs.avail_out == 0 || (flush == Z_FINISH && ret != Z_STREAM_END));
  };
  pump(prefix.data(), prefix.size(), Z_NO_FLUSH);
  while (zeros > 0) {
    const std::size_t n = std::min(zeros, zero.size());
    pump(zero.data(), n, Z_NO_FLUSH);
    zeros -= n;
  }
  pump(nullptr, 0, Z_FINISH);
  deflateEnd(&zs);
  return out;
}

data::IdxArray parse(const Bytes& b, const std::string& name = "mem.idx") {
  return data::parse_idx(std::as_bytes(std::span<const std::uint8_t>(b)), name);
}

void write(const fs::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out.good());
}

// Writes a Fashion-MNIST style split (raw files) into `dir`.
void write_split(const fs::path& dir, const std::string& prefix, std::uint32_t n, std::uint32_t h, std::uint32_t w,
                 std::uint32_t label_count, const Bytes& labels) {
  write(dir / (prefix + "-images-idx3-ubyte"), idx_file({n, h, w}));
  Bytes l = idx_header({label_count});
  l.insert(l.end(), labels.begin(), labels.end());
  write(dir / (prefix + "-labels-idx1-ubyte"), l);
}

const fs::path kRealData = "/usr/share/datasets/fashion-mnist";

}  // namespace

TEST_CASE("parse_idx decodes raw files of rank 1 to 4", "[data][idx]") {
  for (const auto& dims : std::vector<std::vector<std::uint32_t>>{{5}, {2, 3}, {2, 3, 4}, {1, 2, 3, 2}, {0, 28, 28}}) {
    const Bytes file = idx_file(dims);
    const data::IdxArray a = parse(file);
    REQUIRE(a.dims == std::vector<std::int64_t>(dims.begin(), dims.end()));
    REQUIRE(a.data == Bytes(file.begin() + static_cast<std::ptrdiff_t>(4 + 4 * dims.size()), file.end()));
  }
}

TEST_CASE("parse_idx decodes gzipped files like raw ones", "[data][idx]") {
  const Bytes raw = idx_file({3, 5, 7});
  const data::IdxArray a = parse(raw), b = parse(gzip(raw));
  REQUIRE(b.dims == a.dims);
  REQUIRE(b.data == a.data);
  // A large, highly compressible file goes through many inflate chunks.
  const Bytes big = gzip(idx_header({1000, 28, 28}), 1000 * 28 * 28);
  const data::IdxArray c = parse(big);
  REQUIRE(c.data.size() == 1000u * 28 * 28);
  REQUIRE(std::all_of(c.data.begin(), c.data.end(), [](std::uint8_t v) { return v == 0; }));
}

TEST_CASE("read_idx reads raw and gzipped files from disk", "[data][idx]") {
  TempDir dir;
  const Bytes raw = idx_file({4, 2, 3});
  write(dir.path / "a.idx", raw);
  write(dir.path / "a.idx.gz", gzip(raw));
  const data::IdxArray a = data::read_idx(dir.path / "a.idx"), b = data::read_idx(dir.path / "a.idx.gz");
  REQUIRE(a.dims == std::vector<std::int64_t>{4, 2, 3});
  REQUIRE(b.dims == a.dims);
  REQUIRE(b.data == a.data);
}

TEST_CASE("parse_idx rejects malformed headers", "[data][idx]") {
  SECTION("too short for the magic") {
    REQUIRE_THROWS_AS(parse({0, 0, 8}, "short.idx"), IoError);
    REQUIRE_THROWS_WITH(parse({0, 0, 8}, "short.idx"),
                        Contains("idx 'short.idx': ") && Contains("truncated header: 3 bytes, the header needs 4"));
    REQUIRE_THROWS_WITH(parse({}, "empty.idx"), Contains("idx 'empty.idx': truncated header: 0 bytes"));
  }
  SECTION("extents cut off") {
    Bytes b = idx_header({60000, 28, 28});
    b.resize(10);
    REQUIRE_THROWS_WITH(parse(b, "cut.idx"),
                        Contains("idx 'cut.idx'") && Contains("truncated header: 10 bytes, the header needs 16"));
  }
  SECTION("wrong magic") {
    Bytes b = idx_file({2, 2});
    b[0] = 0x50;
    b[1] = 0x4b;  // "PK", a zip file
    REQUIRE_THROWS_WITH(parse(b, "zip.idx"),
                        Contains("idx 'zip.idx'") && Contains("bad magic") && Contains("0x50 0x4b"));
  }
  SECTION("unsupported element type") {
    Bytes b = idx_file({2, 2});
    b[2] = 0x0D;
    REQUIRE_THROWS_WITH(parse(b, "float.idx"),
                        Contains("idx 'float.idx'") && Contains("unsupported element type 0x0d (32-bit float)"));
    b[2] = 0x42;
    REQUIRE_THROWS_WITH(parse(b, "x.idx"), Contains("unsupported element type 0x42 (unknown)"));
  }
  SECTION("ndim 0 and 5") {
    REQUIRE_THROWS_WITH(parse({0, 0, 8, 0}, "nd0.idx"),
                        Contains("idx 'nd0.idx'") && Contains("number of dimensions 0 is outside 1..4"));
    REQUIRE_THROWS_WITH(parse(idx_file({1, 1, 1, 1, 1}), "nd5.idx"),
                        Contains("idx 'nd5.idx'") && Contains("number of dimensions 5 is outside 1..4"));
  }
  SECTION("extents whose product overflows") {
    const Bytes b = idx_header({0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 2});
    REQUIRE_THROWS_AS(parse(b, "huge.idx"), IoError);
    REQUIRE_THROWS_WITH(
        parse(b, "huge.idx"),
        Contains("idx 'huge.idx'") && Contains("dimensions 4294967295 x 4294967295 x 4294967295 x 2 overflow"));
  }
  SECTION("huge extents that do not overflow are not allocated") {
    // 2^48 bytes promised, none present: reported as truncation, instantly.
    const Bytes b = idx_header({65536, 65536, 65536});
    REQUIRE_THROWS_WITH(parse(b, "big.idx"), Contains("idx 'big.idx'") &&
                                                 Contains("truncated: expected 281474976710656 data bytes") &&
                                                 Contains("found 0"));
  }
}

TEST_CASE("parse_idx requires exactly the promised data", "[data][idx]") {
  Bytes b = idx_file({2, 3, 4});
  SECTION("truncated data") {
    b.resize(b.size() - 4);
    REQUIRE_THROWS_AS(parse(b, "t.idx"), IoError);
    REQUIRE_THROWS_WITH(parse(b, "t.idx"), Contains("idx 't.idx': truncated: expected 24 data bytes (2 x 3 x 4), "
                                                    "found 20"));
  }
  SECTION("trailing bytes") {
    b.insert(b.end(), {1, 2, 3});
    REQUIRE_THROWS_WITH(parse(b, "t.idx"), Contains("idx 't.idx': 3 trailing bytes after the 24 data bytes"));
  }
  SECTION("the same in a gzip stream") {
    Bytes shorter(b.begin(), b.end() - 1);
    REQUIRE_THROWS_WITH(parse(gzip(shorter), "t.idx.gz"),
                        Contains("idx 't.idx.gz': truncated: expected 24 data bytes (2 x 3 x 4), found 23"));
  }
}

TEST_CASE("parse_idx rejects bad gzip streams", "[data][idx]") {
  const Bytes raw = idx_file({10, 28, 28});
  const Bytes gz = gzip(raw);
  SECTION("corrupt deflate data") {
    Bytes bad = gz;
    bad[10] = 0xFF;  // first deflate block header: BTYPE 11 is reserved
    REQUIRE_THROWS_AS(parse(bad, "c.gz"), IoError);
    REQUIRE_THROWS_WITH(parse(bad, "c.gz"), Contains("idx 'c.gz': corrupt gzip data: zlib: invalid block type"));
  }
  SECTION("checksum mismatch") {
    Bytes bad = gz;
    bad[bad.size() - 8] ^= 0x01;  // the trailer's CRC-32
    REQUIRE_THROWS_WITH(parse(bad, "crc.gz"), Contains("idx 'crc.gz': corrupt gzip data: zlib: incorrect data check"));
  }
  SECTION("truncated stream") {
    for (std::size_t cut : {gz.size() / 2, gz.size() - 3, std::size_t{12}}) {
      const Bytes t(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(cut));
      INFO("cut at " << cut << " of " << gz.size());
      REQUIRE_THROWS_AS(parse(t, "t.gz"), IoError);
      REQUIRE_THROWS_WITH(parse(t, "t.gz"), Contains("idx 't.gz': truncated gzip stream"));
    }
  }
  SECTION("bytes after the stream") {
    Bytes extra = gz;
    extra.insert(extra.end(), gz.begin(), gz.end());  // a second member
    REQUIRE_THROWS_WITH(parse(extra, "two.gz"),
                        Contains("idx 'two.gz'") && Contains("bytes after the end of the gzip stream"));
  }
  SECTION("content larger than the header says (zip bomb)") {
    // The header promises 10 bytes; the stream holds 64 MiB of zeros (65 kB
    // compressed) and then breaks off. Had the reader inflated everything
    // before judging the size, it would report the truncation; it must stop
    // at the first chunk that overruns the header.
    Bytes bomb = gzip(idx_header({10}), std::size_t{64} << 20, /*level=*/1);
    bomb.resize(bomb.size() - 16);
    REQUIRE_THROWS_WITH(parse(bomb, "bomb.gz"),
                        Contains("idx 'bomb.gz': gzip content is larger than its header says") &&
                            Contains("more than the 10 data bytes of 10") && Contains("stopped inflating"));
  }
}

TEST_CASE("read_idx names the path when the file cannot be read", "[data][idx]") {
  TempDir dir;
  const fs::path missing = dir.path / "nothing-here-idx1-ubyte";
  REQUIRE_THROWS_AS(data::read_idx(missing), IoError);
  REQUIRE_THROWS_WITH(data::read_idx(missing), Contains("idx '" + missing.string() + "': no such file"));
  REQUIRE_THROWS_WITH(data::read_idx(dir.path),
                      Contains("idx '" + dir.path.string() + "': it is a directory, not a file"));
}

TEST_CASE("load_fashion_mnist reads a split and checks it", "[data][fashion_mnist]") {
  TempDir dir;
  const Bytes labels = {0, 1, 2, 3, 9};
  write_split(dir.path, "train", 5, 3, 2, 5, labels);
  write_split(dir.path, "t10k", 5, 3, 2, 5, {9, 8, 7, 6, 5});

  SECTION("raw files") {
    const data::ImageSet s = data::load_fashion_mnist(dir.path, data::Split::Train);
    REQUIRE(s.size() == 5);
    REQUIRE(s.height == 3);
    REQUIRE(s.width == 2);
    REQUIRE(s.labels == std::vector<std::int64_t>{0, 1, 2, 3, 9});
    const Bytes file = idx_file({5, 3, 2});
    REQUIRE(s.pixels == Bytes(file.begin() + 16, file.end()));
    REQUIRE(data::load_fashion_mnist(dir.path, data::Split::Test).labels == std::vector<std::int64_t>{9, 8, 7, 6, 5});
  }
  SECTION("the .gz name is preferred") {
    Bytes l = idx_header({5});
    l.insert(l.end(), {4, 4, 4, 4, 4});
    write(dir.path / "train-labels-idx1-ubyte.gz", gzip(l));
    REQUIRE(data::load_fashion_mnist(dir.path, data::Split::Train).labels == std::vector<std::int64_t>(5, 4));
  }
  SECTION("limit keeps the first images") {
    const data::ImageSet s = data::load_fashion_mnist(dir.path, data::Split::Train, 3);
    REQUIRE(s.size() == 3);
    REQUIRE(s.pixels.size() == 3u * 3 * 2);
    REQUIRE(s.labels == std::vector<std::int64_t>{0, 1, 2});
    REQUIRE(data::load_fashion_mnist(dir.path, data::Split::Train, 5).size() == 5);
    REQUIRE_THROWS_AS(data::load_fashion_mnist(dir.path, data::Split::Train, 6), ValueError);
    REQUIRE_THROWS_WITH(data::load_fashion_mnist(dir.path, data::Split::Train, 6),
                        Contains("limit 6 exceeds the 5 images of the train split"));
    REQUIRE_THROWS_AS(data::load_fashion_mnist(dir.path, data::Split::Test, -1), ValueError);
    REQUIRE_THROWS_WITH(data::load_fashion_mnist(dir.path, data::Split::Test, -1), Contains("limit -1 is negative"));
  }
  SECTION("label out of range") {
    write_split(dir.path, "train", 5, 3, 2, 5, {0, 1, 10, 3, 11});
    REQUIRE_THROWS_AS(data::load_fashion_mnist(dir.path, data::Split::Train), IoError);
    REQUIRE_THROWS_WITH(data::load_fashion_mnist(dir.path, data::Split::Train),
                        Contains("train-labels-idx1-ubyte") && Contains("label 10 at index 2 is outside 0..9"));
  }
  SECTION("count mismatch") {
    write_split(dir.path, "train", 5, 3, 2, 4, {0, 1, 2, 3});
    REQUIRE_THROWS_WITH(data::load_fashion_mnist(dir.path, data::Split::Train), Contains("train-images-idx3-ubyte") &&
                                                                                    Contains("holds 5 images but") &&
                                                                                    Contains("holds 4 labels"));
  }
  SECTION("wrong ranks") {
    write(dir.path / "train-images-idx3-ubyte", idx_file({5, 6}));
    REQUIRE_THROWS_WITH(data::load_fashion_mnist(dir.path, data::Split::Train), Contains("train-images-idx3-ubyte") &&
                                                                                    Contains("expected 3 dimensions") &&
                                                                                    Contains("found 2"));
    write_split(dir.path, "train", 5, 3, 2, 5, labels);
    write(dir.path / "train-labels-idx1-ubyte", idx_file({5, 1}));
    REQUIRE_THROWS_WITH(data::load_fashion_mnist(dir.path, data::Split::Train),
                        Contains("train-labels-idx1-ubyte") && Contains("expected 1 dimension"));
  }
  SECTION("a file is missing") {
    fs::remove(dir.path / "t10k-labels-idx1-ubyte");
    REQUIRE_THROWS_AS(data::load_fashion_mnist(dir.path, data::Split::Test), IoError);
    REQUIRE_THROWS_WITH(data::load_fashion_mnist(dir.path, data::Split::Test),
                        Contains("t10k-labels-idx1-ubyte.gz") && Contains(dir.path.string()) &&
                            Contains("apt-get install dataset-fashion-mnist") && Contains("--data DIR"));
  }
}

TEST_CASE("load_fashion_mnist explains a missing directory", "[data][fashion_mnist]") {
  const fs::path nowhere = "/nonexistent/rescnn-fashion-mnist";
  REQUIRE_THROWS_AS(data::load_fashion_mnist(nowhere, data::Split::Train), IoError);
  REQUIRE_THROWS_WITH(data::load_fashion_mnist(nowhere, data::Split::Train),
                      Contains("train-images-idx3-ubyte.gz") && Contains("train-images-idx3-ubyte'") &&
                          Contains("'" + nowhere.string() + "' (the directory does not exist)") &&
                          Contains("apt-get install dataset-fashion-mnist") && Contains("--data DIR"));
}

TEST_CASE("default_root honours RESCNN_FASHION_MNIST", "[data][fashion_mnist]") {
  const char* old = std::getenv("RESCNN_FASHION_MNIST");
  const std::string saved = old ? old : "";
  ::unsetenv("RESCNN_FASHION_MNIST");
  REQUIRE(data::default_root() == fs::path("/usr/share/datasets/fashion-mnist"));
  ::setenv("RESCNN_FASHION_MNIST", "/data/fm", 1);
  REQUIRE(data::default_root() == fs::path("/data/fm"));
  ::setenv("RESCNN_FASHION_MNIST", "", 1);
  REQUIRE(data::default_root() == fs::path("/usr/share/datasets/fashion-mnist"));
  if (old)
    ::setenv("RESCNN_FASHION_MNIST", saved.c_str(), 1);
  else
    ::unsetenv("RESCNN_FASHION_MNIST");
  REQUIRE(data::kFashionMnistClasses[0] == "t-shirt");
  REQUIRE(data::kFashionMnistClasses[9] == "ankle boot");
}

// The real data set, installed by scripts/install-deps.sh (Debian package
// dataset-fashion-mnist). Checksums computed once with NumPy from the files.
TEST_CASE("the installed Fashion-MNIST files load with known checksums", "[data][fashion_mnist][real]") {
  INFO("install the data set: apt-get install dataset-fashion-mnist");
  REQUIRE(fs::is_directory(kRealData));

  struct Expect {
    data::Split split;
    std::int64_t n;
    std::uint64_t pixel_sum, pixel_weighted, label_weighted;
    std::vector<std::int64_t> first_labels;
  };
  const Expect expects[] = {
      {data::Split::Train, 60000, 3431114169ull, 17122113409803ull, 8087216427ull, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}},
      {data::Split::Test, 10000, 573469082ull, 2849548252993ull, 225732341ull, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7}},
  };
  for (const Expect& e : expects) {
    INFO("split " << data::split_name(e.split));
    const data::ImageSet s = data::load_fashion_mnist(kRealData, e.split);
    REQUIRE(s.size() == e.n);
    REQUIRE(s.height == 28);
    REQUIRE(s.width == 28);
    REQUIRE(s.pixels.size() == static_cast<std::size_t>(e.n * 28 * 28));
    std::uint64_t sum = 0, weighted = 0, label_weighted = 0;
    for (std::size_t i = 0; i < s.pixels.size(); ++i) {
      sum += s.pixels[i];
      weighted += s.pixels[i] * (i % 9973);
    }
    std::vector<std::int64_t> per_class(10, 0);
    for (std::size_t i = 0; i < s.labels.size(); ++i) {
      label_weighted += static_cast<std::uint64_t>(s.labels[i]) * i;
      ++per_class[static_cast<std::size_t>(s.labels[i])];
    }
    REQUIRE(sum == e.pixel_sum);
    REQUIRE(weighted == e.pixel_weighted);
    REQUIRE(label_weighted == e.label_weighted);
    REQUIRE(std::vector<std::int64_t>(s.labels.begin(), s.labels.begin() + 10) == e.first_labels);
    REQUIRE(per_class == std::vector<std::int64_t>(10, e.n / 10));  // balanced classes
  }
  const data::IdxArray raw = data::read_idx(kRealData / "t10k-labels-idx1-ubyte.gz");
  REQUIRE(raw.dims == std::vector<std::int64_t>{10000});
}
