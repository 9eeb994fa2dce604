// torchvision's transforms (data/image_transforms.hpp) against torchvision
// 0.14's own results on the same images (tests/golden/make_image_golden.py,
// transforms/manifest.txt): Resize, resize to a size, CenterCrop (with its
// padding) and resized_crop must give torchvision's bytes exactly, and
// ToTensor + Normalize its floats. The random transforms are checked by
// their properties: torch's generator is not rescnn's.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "rescnn/core/rng.hpp"
#include "rescnn/data/image.hpp"
#include "rescnn/data/image_codecs.hpp"
#include "rescnn/data/image_transforms.hpp"
#include "support/golden.hpp"
#include "support/netpbm.hpp"

namespace rn = rescnn;
namespace fs = std::filesystem;
using rn::data::Image;
using rn::testing::differing;
using rn::testing::read_netpbm;

namespace {

fs::path transforms_dir() { return rn::testing::golden_dir() / "images" / "transforms"; }

std::map<std::string, Image> sources() {
  const fs::path codecs = rn::testing::golden_dir() / "images" / "codecs";
  return {{"rgb8", rn::data::read_image(codecs / "rgb8.png", {.channels = 3})},
          {"gray8", rn::data::read_image(codecs / "gray8.png", {.channels = 1})},
          {"big", read_netpbm(transforms_dir() / "big.ppm")}};
}

}  // namespace

TEST_CASE("Resize, CenterCrop and resized_crop give torchvision's pixels exactly", "[image][transforms]") {
  const auto images = sources();
  std::ifstream manifest(transforms_dir() / "manifest.txt");
  REQUIRE(manifest);
  std::string line;
  int cases = 0;
  while (std::getline(manifest, line)) {
    std::istringstream in(line);
    std::string kind, source;
    in >> kind >> source;
    if (kind == "normalize") continue;
    ++cases;
    DYNAMIC_SECTION(line) {
      const Image& img = images.at(source);
      Image got;
      if (kind == "resize") {
        int size = 0;
        in >> size;
        got = rn::data::Resize{size}(img);
      } else if (kind == "resize_to") {
        int w = 0, h = 0;
        in >> w >> h;
        got = rn::data::resize(img, w, h);
      } else if (kind == "center_crop") {
        int h = 0, w = 0;
        in >> h >> w;
        got = rn::data::CenterCrop(h, w)(img);
      } else if (kind == "resized_crop") {
        int t = 0, l = 0, h = 0, w = 0, size = 0;
        in >> t >> l >> h >> w >> size;
        got = rn::data::RandomResizedCrop(size).apply(img, {t, l, h, w});
      } else {
        FAIL("unknown manifest kind " << kind);
      }
      std::string golden;
      in >> golden;
      CHECK(differing(got, read_netpbm(transforms_dir() / golden)) == 0);
    }
  }
  CHECK(cases == 3 * 17);
}

TEST_CASE("ToTensor and Normalize give torchvision's floats", "[image][transforms]") {
  auto t = rn::data::to_tensor(sources().at("rgb8"));
  REQUIRE(t.shape() == rn::Shape{3, 9, 13});
  rn::data::Normalize::imagenet()(t);
  std::ifstream in(transforms_dir() / "normalize_rgb8.f32", std::ios::binary);
  std::vector<float> expected(static_cast<std::size_t>(t.numel()));
  in.read(reinterpret_cast<char*>(expected.data()), static_cast<std::streamsize>(expected.size() * sizeof(float)));
  REQUIRE(in.gcount() == static_cast<std::streamsize>(expected.size() * sizeof(float)));
  const auto got = t.to_vector();
  std::size_t differ = 0;
  for (std::size_t i = 0; i < got.size(); ++i) differ += got[i] != expected[i];
  CHECK(differ == 0);

  auto gray = rn::data::to_tensor(sources().at("gray8"));
  CHECK_THROWS_WITH(rn::data::Normalize::imagenet()(gray), Catch::Contains("3 means and 3 stds for an image of 1"));
  CHECK_THROWS_AS((rn::data::Normalize{{0.5f}, {0.0f}}(gray)), rn::ValueError);
}

TEST_CASE("RandomResizedCrop draws crops inside the image within its scale and ratio", "[image][transforms]") {
  const auto images = sources();
  const Image& img = images.at("big");  // 39x27
  const rn::data::RandomResizedCrop rrc(16);
  rn::Generator gen(5);
  const double area = 39.0 * 27.0;
  std::map<int, int> widths;
  for (int i = 0; i < 2000; ++i) {
    const auto box = rrc.params(img, gen);
    INFO("crop " << box.top << "," << box.left << " " << box.height << "x" << box.width);
    REQUIRE(box.top >= 0);
    REQUIRE(box.left >= 0);
    REQUIRE(box.top + box.height <= img.height);
    REQUIRE(box.left + box.width <= img.width);
    // Rounded to whole pixels: the area and the ratio within a pixel of the draw.
    const double a = static_cast<double>(box.width) * box.height;
    REQUIRE(a <= area);
    REQUIRE(std::sqrt(a) >= std::sqrt(0.08 * area) - 1.5);
    REQUIRE((box.width + 0.5) / (box.height - 0.5) >= 3.0 / 4.0);
    REQUIRE((box.width - 0.5) / (box.height + 0.5) <= 4.0 / 3.0);
    ++widths[box.width];
    const auto out = rrc.apply(img, box);
    REQUIRE(out.width == 16);
    REQUIRE(out.height == 16);
  }
  CHECK(widths.size() > 20);  // the draw really varies
  // The same generator state, the same crops.
  rn::Generator a(9), b(9);
  for (int i = 0; i < 10; ++i) {
    const auto x = rrc.params(img, a), y = rrc.params(img, b);
    CHECK((x.top == y.top && x.left == y.left && x.height == y.height && x.width == y.width));
  }
  // Crops no draw can fit (wider than the image) fall back to the whole
  // width at the nearest allowed ratio, centred: 39 / 10 -> 4 rows.
  rn::data::RandomResizedCrop impossible(8);
  impossible.scale = {0.9, 1.0};
  impossible.ratio = {10.0, 20.0};
  const auto box = impossible.params(img, gen);
  CHECK(box.width == 39);
  CHECK(box.height == 4);
  CHECK(box.top == (27 - 4) / 2);
  CHECK(box.left == 0);
}

TEST_CASE("RandomHorizontalFlip flips with its probability; a flip twice is the image", "[image][transforms]") {
  const Image img = sources().at("rgb8");
  const Image flipped = rn::data::horizontal_flip(img);
  CHECK(differing(rn::data::horizontal_flip(flipped), img) == 0);
  for (int y = 0; y < img.height; ++y)
    for (int c = 0; c < 3; ++c) REQUIRE(flipped.at(y, 0, c) == img.at(y, img.width - 1, c));
  rn::Generator gen(1);
  int flips = 0;
  for (int i = 0; i < 1000; ++i) flips += differing(rn::data::RandomHorizontalFlip{0.5}(img, gen), img) != 0;
  CHECK(flips > 430);
  CHECK(flips < 570);
  for (int i = 0; i < 50; ++i) {
    REQUIRE(differing(rn::data::RandomHorizontalFlip{0.0}(img, gen), img) == 0);
    REQUIRE(differing(rn::data::RandomHorizontalFlip{1.0}(img, gen), flipped) == 0);
  }
}
