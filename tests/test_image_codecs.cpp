// PNG and JPEG decoding (data/image_codecs.hpp) against PIL's decoding of the
// same files (tests/golden/make_image_golden.py): every PNG kind and JPEG
// kind the decoders handle, converted to RGB and to gray as torchvision's
// loader converts them, must give PIL's pixels exactly. Then every kind of
// bad file must be refused with an IoError naming it and saying why. Last,
// real photographs (Debian's python3-skimage) decode, and resize through
// torchvision's eval transform, to PIL's and torchvision's pixels.
#include <zlib.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "rescnn/data/image.hpp"
#include "rescnn/data/image_codecs.hpp"
#include "rescnn/data/image_loader.hpp"
#include "rescnn/data/image_transforms.hpp"
#include "rescnn/io/png_writer.hpp"
#include "support/golden.hpp"
#include "support/netpbm.hpp"
#include "support/skip.hpp"
#include "support/temp_dir.hpp"

namespace rn = rescnn;
namespace fs = std::filesystem;
using rn::testing::differing;
using rn::testing::read_netpbm;

namespace {

fs::path images_dir() { return rn::testing::golden_dir() / "images"; }

}  // namespace

TEST_CASE("Every PNG and JPEG kind decodes to PIL's pixels, as RGB and as gray", "[image][codecs]") {
  const fs::path dir = images_dir() / "codecs";
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto ext = entry.path().extension();
    if (ext != ".png" && ext != ".jpg") continue;
    ++files;
    const auto stem = entry.path().stem().string();
    DYNAMIC_SECTION(entry.path().filename().string()) {
      const auto rgb = rn::data::read_image(entry.path(), {.channels = 3});
      CHECK(differing(rgb, read_netpbm(dir / (stem + ".rgb.ppm"))) == 0);
      const auto gray = rn::data::read_image(entry.path(), {.channels = 1});
      CHECK(differing(gray, read_netpbm(dir / (stem + ".l.pgm"))) == 0);
    }
  }
  CHECK(files == 15);
}

TEST_CASE("Images keep their own channels on request, and convert to RGBA as PIL does", "[image][codecs]") {
  const fs::path dir = images_dir() / "codecs";
  CHECK(rn::data::read_image(dir / "gray8.png", {.channels = 0}).channels == 1);
  CHECK(rn::data::read_image(dir / "gray_alpha.png", {.channels = 0}).channels == 2);
  CHECK(rn::data::read_image(dir / "rgb8.png", {.channels = 0}).channels == 3);
  CHECK(rn::data::read_image(dir / "rgba8.png", {.channels = 0}).channels == 4);
  CHECK(rn::data::read_image(dir / "palette_trns.png", {.channels = 0}).channels == 4);  // tRNS becomes alpha
  CHECK(rn::data::read_image(dir / "gray.jpg", {.channels = 0}).channels == 1);

  // RGBA: the colour channels are the RGB conversion's, alpha the file's.
  const auto rgba = rn::data::read_image(dir / "rgba8.png", {.channels = 4});
  const auto rgb = read_netpbm(dir / "rgba8.rgb.ppm");
  const auto native = rn::data::read_image(dir / "rgba8.png", {.channels = 0});
  for (int y = 0; y < rgba.height; ++y)
    for (int x = 0; x < rgba.width; ++x) {
      for (int c = 0; c < 3; ++c) REQUIRE(rgba.at(y, x, c) == rgb.at(y, x, c));
      REQUIRE(rgba.at(y, x, 3) == native.at(y, x, 3));
    }
  const auto gray_as_rgba = rn::data::read_image(dir / "gray8.png", {.channels = 4});
  for (int y = 0; y < gray_as_rgba.height; ++y)
    for (int x = 0; x < gray_as_rgba.width; ++x) REQUIRE(gray_as_rgba.at(y, x, 3) == 255);

  // Detection is by content: a PNG named .jpg decodes.
  const fs::path renamed = fs::temp_directory_path() / "rescnn_png_named.jpg";
  fs::copy_file(dir / "rgb8.png", renamed, fs::copy_options::overwrite_existing);
  CHECK(differing(rn::data::read_image(renamed), read_netpbm(dir / "rgb8.rgb.ppm")) == 0);
  fs::remove(renamed);
}

TEST_CASE("Bad image files are refused naming the file and the reason", "[image][codecs][errors]") {
  const fs::path dir = images_dir() / "bad";
  const auto refused = [&](const std::string& name, const std::string& reason) {
    const fs::path path = dir / name;
    INFO(name);
    try {
      rn::data::read_image(path);
      FAIL("decoded without an error");
    } catch (const rn::IoError& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(path.string()) != std::string::npos);
      CHECK(msg.find(reason) != std::string::npos);
    }
  };
  refused("truncated.png", "truncated");
  refused("truncated.jpg", "not a valid JPEG file");
  refused("corrupt.png", "not a valid PNG file");
  refused("corrupt.jpg", "not a valid JPEG file");
  refused("cmyk.jpg", "CMYK JPEGs are not supported");
  refused("huge.png", "50000x50000 = 2500000000 pixels, more than the limit of 89478485");
  refused("empty.png", "the file is empty");
  refused("text.jpg", "not a PNG or JPEG file");
  refused("missing.png", "cannot be opened");

  // The pixel limit is checked on the header, before decoding: a normal
  // file over a lowered limit is refused the same way.
  CHECK_THROWS_WITH(rn::data::read_image(images_dir() / "codecs" / "rgb8.png", {.max_pixels = 100}),
                    Catch::Contains("13x9 = 117 pixels, more than the limit of 100"));
  CHECK_THROWS_AS(rn::data::read_image(images_dir() / "codecs" / "rgb8.png", {.channels = 2}), rn::ValueError);
  CHECK_THROWS_AS(rn::data::read_image(images_dir() / "codecs" / "rgb8.png", {.max_pixels = 0}), rn::ValueError);
}

namespace {

// zlib's CRC-32 as 8 hex digits, as make_image_golden.py writes it.
std::string crc32_hex(const std::vector<std::uint8_t>& bytes) {
  const auto crc = crc32(0L, bytes.data(), static_cast<uInt>(bytes.size()));
  char text[9];
  std::snprintf(text, sizeof text, "%08lx", static_cast<unsigned long>(crc));
  return text;
}

// Where python3-skimage keeps its sample photographs (RESCNN_PHOTO_DIR
// overrides).
fs::path photo_dir() {
  const char* dir = std::getenv("RESCNN_PHOTO_DIR");
  return dir ? fs::path(dir) : fs::path("/usr/lib/python3/dist-packages/skimage/data");
}

}  // namespace

TEST_CASE("Real photographs decode as PIL decodes them and resize as torchvision does", "[image][codecs][photos]") {
  const fs::path dir = photo_dir();
  if (!fs::exists(dir / "astronaut.png"))
    RESCNN_SKIP("no photographs in " << dir.string()
                                     << ": install python3-skimage (bash scripts/install-deps.sh --with-photos)");
  std::ifstream manifest(images_dir() / "photos" / "manifest.txt");
  REQUIRE(manifest);
  int photos = 0, refused = 0;
  std::string line;
  while (std::getline(manifest, line)) {
    std::istringstream fields(line);
    std::string name, file_crc, rgb_crc, eval_crc;
    int width = 0, height = 0;
    fields >> name;
    INFO(line);
    if (name == "truncated") {  // a real photograph cut short: PIL refuses it too
      fields >> name;
      const fs::path path = dir / name;
      REQUIRE(fs::exists(path));  // refused for being cut short, not for being missing
      CHECK_THROWS_AS(rn::data::read_image(path), rn::IoError);
      CHECK_THROWS_WITH(rn::data::read_image(path), Catch::Contains(path.string()));
      ++refused;
      continue;
    }
    fields >> file_crc >> width >> height >> rgb_crc >> eval_crc;
    const fs::path path = dir / name;
    // The goldens describe this very file (a newer package may ship another).
    REQUIRE(crc32_hex(rn::data::read_file_bytes(path)) == file_crc);
    const rn::data::Image rgb = rn::data::read_image(path, {.channels = 3});
    CHECK(rgb.width == width);
    CHECK(rgb.height == height);
    CHECK(crc32_hex(rgb.pixels) == rgb_crc);
    const rn::data::Image eval = rn::data::CenterCrop(112)(rn::data::Resize{128}(rgb));
    CHECK(eval.width == 112);
    CHECK(crc32_hex(eval.pixels) == eval_crc);
    ++photos;
  }
  CHECK(photos == 8);
  CHECK(refused == 1);
}

TEST_CASE("A folder of real photographs loads through the training transform", "[image][codecs][photos]") {
  const fs::path dir = photo_dir();
  if (!fs::exists(dir / "astronaut.png"))
    RESCNN_SKIP("no photographs in " << dir.string()
                                     << ": install python3-skimage (bash scripts/install-deps.sh --with-photos)");
  rn::testing::TempDir tmp("rescnn_photos");
  const fs::path root = tmp.path / "photos";
  // Two classes of real photographs, PNG and JPEG of every size, gray among them.
  const std::vector<std::pair<std::string, std::string>> files{
      {"animal", "chelsea.png"}, {"animal", "astronaut.png"}, {"animal", "camera.png"},
      {"object", "coffee.png"},  {"object", "rocket.jpg"},    {"object", "hubble_deep_field.jpg"}};
  for (const auto& [cls, name] : files) {
    fs::create_directories(root / cls);
    fs::copy_file(dir / name, root / cls / name);
  }
  auto folder = std::make_shared<const rn::data::ImageFolder>(root);
  REQUIRE(folder->size() == 6);
  rn::data::ImageFolderLoader loader(folder, {}, rn::data::train_transform(64),
                                     {.batch_size = 4, .shuffle = true, .seed = 3, .workers = 2});
  loader.start_epoch(0);
  std::int64_t seen = 0;
  while (auto batch = loader.next()) {
    const auto n = batch->labels.numel();
    CHECK(batch->images.shape() == rn::Shape{n, 3, 64, 64});
    // ImageNet-normalised pixels of [0, 1] lie in [-2.12, 2.64].
    std::size_t outside = 0;
    for (const float v : batch->images.to_vector()) outside += !(v >= -2.12f && v <= 2.65f);
    CHECK(outside == 0);
    for (const auto label : batch->labels.to_vector()) CHECK((label == 0 || label == 1));
    seen += n;
  }
  CHECK(seen == 6);
  CHECK(folder->classes() == std::vector<std::string>{"animal", "object"});
}

TEST_CASE("encode_png_gray writes PNGs that libpng decodes to the same pixels", "[image][png][writer]") {
  for (const auto& [w, h] : {std::pair<int, int>{1, 1}, {28, 28}, {7, 3}, {300, 2}}) {
    INFO(w << "x" << h);
    std::vector<std::uint8_t> pixels(static_cast<std::size_t>(w * h));
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>((i * 37 + i / 5) % 256);
    const std::string png = rn::io::encode_png_gray(pixels, w, h);
    REQUIRE(png.rfind("\x89PNG\r\n\x1a\n", 0) == 0);
    const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(png.data()), png.size());
    // libpng checks every chunk's CRC and the zlib stream while decoding.
    const auto image = rn::data::decode_png(bytes, "written.png", {.channels = 0});
    REQUIRE(image.width == w);
    REQUIRE(image.height == h);
    REQUIRE(image.channels == 1);
    REQUIRE(image.pixels == pixels);
  }
  CHECK_THROWS_WITH(rn::io::encode_png_gray(std::vector<std::uint8_t>(5), 2, 3),
                    Catch::Contains("encode_png_gray: 5 pixels for a 2x3 image"));
  CHECK_THROWS_WITH(rn::io::encode_png_gray({}, 0, 1), Catch::Contains("image size 0x1"));
}

TEST_CASE("base64 matches RFC 4648's test vectors", "[image][png][writer]") {
  CHECK(rn::io::base64("") == "");
  CHECK(rn::io::base64("f") == "Zg==");
  CHECK(rn::io::base64("fo") == "Zm8=");
  CHECK(rn::io::base64("foo") == "Zm9v");
  CHECK(rn::io::base64("foob") == "Zm9vYg==");
  CHECK(rn::io::base64("fooba") == "Zm9vYmE=");
  CHECK(rn::io::base64("foobar") == "Zm9vYmFy");
  CHECK(rn::io::base64(std::string("\xff\xfe\x00", 3)) == "//4A");
}
