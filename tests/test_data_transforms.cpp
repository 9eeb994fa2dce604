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

// ---- RandomErasing: torchvision's parameters, checked as properties of many draws

TEST_CASE("random_erasing erases with probability p, rectangles inside the image", "[data][transforms][erasing]") {
  Generator gen(11);
  const data::RandomErasingOptions o;  // torchvision's defaults: p 0.5, scale (0.02, 0.33), ratio (0.3, 3.3)
  const index_t h = 224, w = 224;
  int erased = 0;
  double sum_log_ratio = 0, sum_fraction = 0;
  const int draws = 4000;
  for (int i = 0; i < draws; ++i) {
    const data::EraseRect r = data::random_erasing_rect(h, w, o, gen);
    if (r.empty()) continue;
    ++erased;
    REQUIRE(r.height < h);
    REQUIRE(r.width < w);
    REQUIRE(r.top >= 0);
    REQUIRE(r.left >= 0);
    REQUIRE(r.top + r.height <= h);
    REQUIRE(r.left + r.width <= w);
    // At 224x224 the rounding of the sides moves the area by under 2 %.
    const double fraction = static_cast<double>(r.height * r.width) / static_cast<double>(h * w);
    REQUIRE(fraction >= 0.02 * 0.9);
    REQUIRE(fraction <= 0.33 * 1.05);
    const double ratio = static_cast<double>(r.height) / static_cast<double>(r.width);
    REQUIRE(ratio >= 0.3 * 0.95);
    REQUIRE(ratio <= 3.3 * 1.05);
    sum_log_ratio += std::log(ratio);
    sum_fraction += fraction;
  }
  // Binomial(4000, 0.5): standard deviation 0.008; 4 of them.
  REQUIRE(std::abs(static_cast<double>(erased) / draws - 0.5) < 0.032);
  // log(ratio) is uniform on a symmetric interval (rejections are symmetric too).
  REQUIRE(std::abs(sum_log_ratio / erased) < 0.06);
  // The area fraction is uniform on (0.02, 0.33), less the large ones that
  // do not fit at extreme ratios: its mean is below 0.175, not far below.
  const double mean_fraction = sum_fraction / erased;
  REQUIRE(mean_fraction > 0.14);
  REQUIRE(mean_fraction < 0.18);
}

TEST_CASE("random_erasing: p 0 never erases, p 1 always; too large a scale gives up after 10 tries",
          "[data][transforms][erasing]") {
  Generator gen(3);
  for (int i = 0; i < 200; ++i) REQUIRE(data::random_erasing_rect(28, 28, {.p = 0}, gen).empty());
  for (int i = 0; i < 200; ++i) REQUIRE_FALSE(data::random_erasing_rect(28, 28, {.p = 1}, gen).empty());
  // The whole image never fits (h < H and w < W are required): no erasing.
  for (int i = 0; i < 50; ++i)
    REQUIRE(data::random_erasing_rect(8, 8, {.p = 1, .scale = {1.0, 1.0}, .ratio = {1.0, 1.0}}, gen).empty());
}

TEST_CASE("erase sets exactly its rectangle; random_erasing is reproducible from the seed",
          "[data][transforms][erasing]") {
  std::vector<float> img(6 * 5);
  std::iota(img.begin(), img.end(), 1.0f);
  const auto before = img;
  data::erase(img.data(), 5, {.top = 1, .left = 2, .height = 3, .width = 2}, -4.0f);
  for (index_t y = 0; y < 6; ++y)
    for (index_t x = 0; x < 5; ++x) {
      const bool inside = y >= 1 && y < 4 && x >= 2 && x < 4;
      REQUIRE(img[static_cast<std::size_t>(y * 5 + x)] ==
              (inside ? -4.0f : before[static_cast<std::size_t>(y * 5 + x)]));
    }
  Generator a(42), b(42);
  for (int i = 0; i < 20; ++i) {
    const auto ra = data::random_erasing_rect(28, 28, {}, a), rb = data::random_erasing_rect(28, 28, {}, b);
    REQUIRE((ra.top == rb.top && ra.left == rb.left && ra.height == rb.height && ra.width == rb.width));
  }
}

TEST_CASE("RandomErasing options are validated by name", "[data][transforms][erasing][errors]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(data::validate(data::RandomErasingOptions{.p = 1.5}), Contains("RandomErasing: p 1.5"));
  CHECK_THROWS_WITH(data::validate(data::RandomErasingOptions{.scale = {0.5, 0.1}}),
                    Contains("RandomErasing: scale (0.5, 0.1)"));
  CHECK_THROWS_WITH(data::validate(data::RandomErasingOptions{.ratio = {0.0, 2.0}}),
                    Contains("RandomErasing: ratio (0, 2)"));
  CHECK_THROWS_WITH(data::validate(data::RandomErasingOptions{.value = NAN}), Contains("RandomErasing: value nan"));
  CHECK_NOTHROW(data::validate(data::RandomErasingOptions{}));
}
