// Tests for rescnn/data/transforms.hpp: bilinear resize against PyTorch
// (fixtures resize__*.safetensors from tests/golden/make_data_golden.py),
// and properties of the conversions and the random augmentations.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "rescnn/data/transforms.hpp"
#include "support/golden.hpp"

namespace data = rescnn::data;
using Catch::Matchers::Contains;
using rescnn::Generator;
using rescnn::index_t;
using rescnn::ValueError;
using rescnn::io::SafeTensors;

namespace {

// Values 1..h*w, all distinct and non-zero (0 marks crop padding).
std::vector<float> ramp(index_t h, index_t w) {
  std::vector<float> v(static_cast<std::size_t>(h * w));
  std::iota(v.begin(), v.end(), 1.0f);
  return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

}  // namespace

TEST_CASE("resize_bilinear matches PyTorch's interpolate and torchvision's Resize", "[data][transforms][golden]") {
  const auto cases = rescnn::testing::golden_cases("resize");
  REQUIRE(cases.size() >= 12);
  for (const auto& path : cases) {
    INFO(path.filename().string());
    const SafeTensors f = SafeTensors::load(path);
    const auto in = f.tensor<float>("input");
    const auto expected = f.tensor<float>("output");
    const index_t c = in.dim(0), h = in.dim(1), w = in.dim(2);
    const index_t oh = rescnn::testing::meta_int(f, "out_h"), ow = rescnn::testing::meta_int(f, "out_w");
    const bool aa = rescnn::testing::meta_bool(f, "antialias");
    REQUIRE(expected.shape() == rescnn::Shape({c, oh, ow}));
    std::vector<float> out(static_cast<std::size_t>(c * oh * ow));
    for (index_t p = 0; p < c; ++p)
      data::resize_bilinear(in.data() + p * h * w, h, w, out.data() + p * oh * ow, oh, ow, aa);
    const double err = max_abs_diff(out, expected.to_vector());
    INFO("max |ours - torch| = " << err);
    REQUIRE(err <= 1e-5);
    // The reusable form gives the same values.
    const data::BilinearResize resize(h, w, oh, ow, aa);
    std::vector<float> again(static_cast<std::size_t>(oh * ow)), scratch;
    resize(in.data(), again.data(), scratch);
    REQUIRE(std::equal(again.begin(), again.end(), out.begin()));
  }
}

TEST_CASE("resize_bilinear: identity, constants, and antialias only matters when shrinking", "[data][transforms]") {
  Generator gen(3);
  std::vector<float> img(28 * 28);
  for (auto& v : img) v = static_cast<float>(gen.uniform());
  for (bool aa : {false, true}) {
    std::vector<float> same(img.size());
    data::resize_bilinear(img.data(), 28, 28, same.data(), 28, 28, aa);
    REQUIRE(same == img);  // exactly
    const std::vector<float> constant(7 * 5, 0.25f);
    std::vector<float> out(13 * 3);
    data::resize_bilinear(constant.data(), 7, 5, out.data(), 13, 3, aa);
    for (float v : out) REQUIRE(v == Approx(0.25f).margin(1e-7));
  }
  std::vector<float> up_plain(96 * 96), up_aa(96 * 96), down_plain(20 * 20), down_aa(20 * 20);
  data::resize_bilinear(img.data(), 28, 28, up_plain.data(), 96, 96, false);
  data::resize_bilinear(img.data(), 28, 28, up_aa.data(), 96, 96, true);
  REQUIRE(max_abs_diff(up_plain, up_aa) <= 1e-6);
  data::resize_bilinear(img.data(), 28, 28, down_plain.data(), 20, 20, false);
  data::resize_bilinear(img.data(), 28, 28, down_aa.data(), 20, 20, true);
  REQUIRE(max_abs_diff(down_plain, down_aa) > 1e-2);
}

TEST_CASE("transforms reject sizes that are not positive", "[data][transforms]") {
  std::vector<float> buf(64);
  REQUIRE_THROWS_AS(data::resize_bilinear(buf.data(), 0, 4, buf.data(), 2, 2, false), ValueError);
  REQUIRE_THROWS_WITH(data::resize_bilinear(buf.data(), 0, 4, buf.data(), 2, 2, false),
                      Contains("resize_bilinear: input size 0x4 must be positive"));
  REQUIRE_THROWS_WITH(data::resize_bilinear(buf.data(), 4, 4, buf.data(), 2, -1, true),
                      Contains("resize_bilinear: output size 2x-1 must be positive"));
  REQUIRE_THROWS_WITH(data::BilinearResize(4, 4, 0, 0, true), Contains("output size 0x0"));
  Generator gen(1);
  REQUIRE_THROWS_WITH(data::random_crop(buf.data(), 4, 0, buf.data(), 1, gen), Contains("image size 4x0"));
  REQUIRE_THROWS_WITH(data::random_crop(buf.data(), 4, 4, buf.data(), -1, gen),
                      Contains("random_crop: padding -1 is negative"));
  REQUIRE_THROWS_WITH(data::crop_at(buf.data(), 4, 4, buf.data(), 1, {3, 0}),
                      Contains("crop_at: offset (3, 0) is outside 0..2"));
  REQUIRE_THROWS_WITH(data::horizontal_flip(buf.data(), -2, 4), Contains("horizontal_flip: image size -2x4"));
}

TEST_CASE("to_unit_range and normalize match ToTensor and Normalize", "[data][transforms]") {
  const std::vector<std::uint8_t> px = {0, 1, 51, 128, 255};
  std::vector<float> x(px.size());
  data::to_unit_range(px.data(), x.data(), 5);
  for (std::size_t i = 0; i < px.size(); ++i) REQUIRE(x[i] == static_cast<float>(px[i]) / 255.0f);
  REQUIRE(x.front() == 0.0f);
  REQUIRE(x.back() == 1.0f);
  data::normalize(x.data(), 5, 0.5f, 0.25f);
  for (std::size_t i = 0; i < px.size(); ++i) REQUIRE(x[i] == (static_cast<float>(px[i]) / 255.0f - 0.5f) / 0.25f);
  REQUIRE_THROWS_AS(data::normalize(x.data(), 5, 0.0f, 0.0f), ValueError);
  REQUIRE_THROWS_WITH(data::normalize(x.data(), 5, 0.0f, -1.0f), Contains("normalize: std -1"));
  REQUIRE_THROWS_WITH(data::normalize(x.data(), 5, 0.0f, NAN), Contains("must be positive and finite"));
  REQUIRE_THROWS_WITH(data::normalize(x.data(), 5, INFINITY, 1.0f), Contains("normalize: mean inf"));
}

TEST_CASE("random_crop with padding 0 is the identity", "[data][transforms]") {
  const auto src = ramp(5, 7);
  std::vector<float> dst(src.size());
  Generator gen(42);
  for (int i = 0; i < 5; ++i) {
    const data::CropOffset at = data::random_crop(src.data(), 5, 7, dst.data(), 0, gen);
    REQUIRE(at.top == 0);
    REQUIRE(at.left == 0);
    REQUIRE(dst == src);
  }
}

TEST_CASE("random_crop shifts the image by one offset and fills zeros", "[data][transforms]") {
  const index_t h = 6, w = 5, p = 3;
  const auto src = ramp(h, w);
  std::vector<float> dst(src.size());
  std::set<index_t> tops, lefts;
  Generator gen(7);
  for (int trial = 0; trial < 300; ++trial) {
    const data::CropOffset at = data::random_crop(src.data(), h, w, dst.data(), p, gen);
    REQUIRE(at.top >= 0);
    REQUIRE(at.top <= 2 * p);
    REQUIRE(at.left >= 0);
    REQUIRE(at.left <= 2 * p);
    tops.insert(at.top);
    lefts.insert(at.left);
    // Infer the shift from the data alone (src values are 1 + index), then
    // every pixel must be the source at that shift, or 0 outside it.
    bool have_shift = false;
    index_t dy = 0, dx = 0;
    for (index_t i = 0; i < h * w && !have_shift; ++i)
      if (dst[static_cast<std::size_t>(i)] != 0) {
        const auto s = static_cast<index_t>(dst[static_cast<std::size_t>(i)]) - 1;
        dy = s / w - i / w;
        dx = s % w - i % w;
        have_shift = true;
      }
    if (have_shift) {
      REQUIRE(dy == at.top - p);
      REQUIRE(dx == at.left - p);
    }
    for (index_t y = 0; y < h; ++y)
      for (index_t x = 0; x < w; ++x) {
        const index_t sy = y + at.top - p, sx = x + at.left - p;
        const float expected =
            (sy >= 0 && sy < h && sx >= 0 && sx < w) ? src[static_cast<std::size_t>(sy * w + sx)] : 0.0f;
        REQUIRE(dst[static_cast<std::size_t>(y * w + x)] == expected);
      }
  }
  // Every offset in [0, 2p] occurs (uniform draws; 300 trials of 7 values).
  REQUIRE(tops.size() == static_cast<std::size_t>(2 * p + 1));
  REQUIRE(lefts.size() == static_cast<std::size_t>(2 * p + 1));
}

TEST_CASE("random_crop is reproducible from the seed", "[data][transforms]") {
  const auto src = ramp(8, 8);
  auto draw = [&](std::uint64_t seed) {
    Generator gen(seed);
    std::vector<float> all, dst(src.size());
    for (int i = 0; i < 10; ++i) {
      data::random_crop(src.data(), 8, 8, dst.data(), 2, gen);
      all.insert(all.end(), dst.begin(), dst.end());
    }
    return all;
  };
  REQUIRE(draw(11) == draw(11));
  REQUIRE(draw(11) != draw(12));
}

TEST_CASE("horizontal_flip mirrors rows and is its own inverse", "[data][transforms]") {
  const auto src = ramp(3, 4);
  auto x = src;
  data::horizontal_flip(x.data(), 3, 4);
  REQUIRE(x == std::vector<float>{4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9});
  data::horizontal_flip(x.data(), 3, 4);
  REQUIRE(x == src);
  auto odd = ramp(1, 5);
  data::horizontal_flip(odd.data(), 1, 5);
  REQUIRE(odd == std::vector<float>{5, 4, 3, 2, 1});
}
