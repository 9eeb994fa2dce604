// ImageFolder (data/image_folder.hpp) on a real image folder written by the
// test: Fashion-MNIST test images saved as PNG and JPEG by PIL
// (tests/golden/make_image_golden.py), in three class folders, plus a nested
// folder, an upper-case extension, files that are not images, and corrupt
// files. Checked against torchvision's conventions: sorted classes and
// class_to_idx, per-folder sorted files, exact PNG pixels.
#include <zlib.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "rescnn/data/image_codecs.hpp"
#include "rescnn/data/image_folder.hpp"
#include "rescnn/data/image_loader.hpp"
#include "rescnn/io/state_dict.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/models/transfer.hpp"
#include "rescnn/optim/optim.hpp"
#include "rescnn/train/train.hpp"
#include "support/golden.hpp"
#include "support/netpbm.hpp"
#include "support/temp_dir.hpp"

namespace rn = rescnn;
namespace fs = std::filesystem;

namespace {

fs::path images_dir() { return rn::testing::golden_dir() / "images"; }

// root/<class>/... from the Fashion-MNIST fixtures, plus what `extra` adds.
fs::path make_folder(const rn::testing::TempDir& tmp) {
  const fs::path root = tmp / "folder";
  fs::copy(images_dir() / "fashion", root, fs::copy_options::recursive);
  fs::create_directories(root / "T-shirt_top" / "sub");
  fs::copy_file(images_dir() / "fashion" / "T-shirt_top" / "0.png", root / "T-shirt_top" / "sub" / "extra.PNG");
  std::ofstream(root / "notes.txt") << "not a class\n";
  std::ofstream(root / "Trouser" / "readme.txt") << "not an image\n";
  return root;
}

}  // namespace

TEST_CASE("ImageFolder finds classes and images as torchvision does", "[image][folder]") {
  rn::testing::TempDir tmp("rescnn_folder");
  const fs::path root = make_folder(tmp);
  const rn::data::ImageFolder folder(root, {.decode = {.channels = 1}});
  CHECK(folder.classes() == std::vector<std::string>{"Ankle_boot", "T-shirt_top", "Trouser"});
  CHECK(folder.class_to_idx().at("Ankle_boot") == 0);
  CHECK(folder.class_to_idx().at("T-shirt_top") == 1);
  CHECK(folder.class_to_idx().at("Trouser") == 2);
  REQUIRE(folder.size() == 25);

  // Per class: the folder's own files sorted, then the nested folder's.
  std::vector<std::string> names;
  for (const auto& s : folder.samples()) names.push_back(fs::relative(s.path, root).generic_string());
  CHECK(names[0] == "Ankle_boot/0.jpg");
  CHECK(names[1] == "Ankle_boot/0.png");
  CHECK(names[7] == "Ankle_boot/3.png");
  CHECK(names[8] == "T-shirt_top/0.jpg");
  CHECK(names[16] == "T-shirt_top/sub/extra.PNG");
  CHECK(names[17] == "Trouser/0.jpg");
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto label = folder.samples()[i].label;
    CHECK(names[i].rfind(folder.classes()[static_cast<std::size_t>(label)] + "/", 0) == 0);
  }

  // The PNGs are the IDX pixels exactly; the JPEGs (quality 95) close to them.
  const auto expected = rn::testing::read_netpbm(images_dir() / "fashion_pixels.pgm");  // 12 images of 28x28, stacked
  int png = 0;
  for (std::int64_t i = 0; i < folder.size(); ++i) {
    const auto& path = folder.samples()[static_cast<std::size_t>(i)].path;
    if (path.filename() == "extra.PNG") continue;
    const auto img = folder.load(i);
    REQUIRE(img.width == 28);
    REQUIRE(img.height == 28);
    REQUIRE(img.channels == 1);
    const int k =
        std::stoi(path.stem().string()) + 4 * static_cast<int>(folder.samples()[static_cast<std::size_t>(i)].label);
    double diff = 0;
    std::size_t differ = 0;
    for (std::size_t p = 0; p < img.pixels.size(); ++p) {
      const int e = expected.pixels[static_cast<std::size_t>(k) * 784 + p];
      diff += std::abs(img.pixels[p] - e);
      differ += img.pixels[p] != e;
    }
    INFO(path);
    if (path.extension() == ".png") {
      ++png;
      CHECK(differ == 0);
    } else {
      CHECK(diff / 784 < 3.0);
    }
  }
  CHECK(png == 12);
  // RGB by default: gray files are replicated into three channels.
  const rn::data::ImageFolder rgb(root);
  const auto img = rgb.load(1);
  REQUIRE(img.channels == 3);
  CHECK(img.at(10, 10, 0) == img.at(10, 10, 2));
  CHECK_THROWS_AS(rgb.load(25), rn::ValueError);
}

TEST_CASE("ImageFolder refuses an empty root or class folder, naming them", "[image][folder][errors]") {
  rn::testing::TempDir tmp("rescnn_folder");
  CHECK_THROWS_WITH(rn::data::ImageFolder(tmp / "missing"), Catch::Contains("is not a directory"));
  fs::create_directories(tmp / "none");
  std::ofstream(tmp / "none" / "a.png") << "x";
  CHECK_THROWS_WITH(rn::data::ImageFolder(tmp / "none"), Catch::Contains("has no class folders"));
  const fs::path root = make_folder(tmp);
  fs::create_directories(root / "Bag");
  fs::create_directories(root / "Coat");
  std::ofstream(root / "Coat" / "list.csv") << "not an image\n";
  CHECK_THROWS_WITH(rn::data::ImageFolder(root),
                    Catch::Contains("no .png, .jpg or .jpeg files in the class folders 'Bag', 'Coat'"));
}

TEST_CASE("Unreadable files: an error naming the file, or skipped with one warning", "[image][folder][errors]") {
  rn::testing::TempDir tmp("rescnn_folder");
  const fs::path root = make_folder(tmp);
  fs::copy_file(images_dir() / "bad" / "truncated.png", root / "Trouser" / "9_truncated.png");
  fs::copy_file(images_dir() / "bad" / "corrupt.jpg", root / "Trouser" / "9_corrupt.jpg");
  const rn::data::ImageFolder strict(root);
  REQUIRE(strict.size() == 27);
  std::int64_t bad = -1;
  for (std::int64_t i = 0; i < strict.size(); ++i)
    if (strict.samples()[static_cast<std::size_t>(i)].path.filename() == "9_truncated.png") bad = i;
  REQUIRE(bad >= 0);
  CHECK_THROWS_WITH(strict.load(bad), Catch::Contains("9_truncated.png") && Catch::Contains("truncated"));

  std::ostringstream warnings;
  const rn::data::ImageFolder lenient(root, {.skip_unreadable = true, .warnings = &warnings});
  CHECK(lenient.size() == 25);
  CHECK(lenient.skipped() == 2);
  INFO(warnings.str());
  CHECK(warnings.str().find("skipped 2 of 27 files") != std::string::npos);
  CHECK(warnings.str().find("9_corrupt.jpg") != std::string::npos);  // the first, in sample order
  const std::string text = warnings.str();
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);

  // A class left with no readable file is an error even when skipping.
  fs::create_directories(root / "Bag");
  fs::copy_file(images_dir() / "bad" / "text.jpg", root / "Bag" / "0.jpg");
  CHECK_THROWS_WITH(rn::data::ImageFolder(root, {.skip_unreadable = true, .warnings = nullptr}),
                    Catch::Contains("class folder 'Bag'"));
}

TEST_CASE("split_by_class holds out a seeded fraction of every class", "[image][folder][split]") {
  rn::testing::TempDir tmp("rescnn_folder");
  const rn::data::ImageFolder folder(make_folder(tmp));  // 8, 9 and 8 images
  const auto split = rn::data::split_by_class(folder, 0.25, 3);
  CHECK(split.val.size() == 2 + 2 + 2);  // round(0.25 * 8) = 2, round(0.25 * 9) = 2
  std::set<std::int64_t> all(split.train.begin(), split.train.end());
  for (auto i : split.val) CHECK(all.insert(i).second);  // disjoint
  CHECK(static_cast<std::int64_t>(all.size()) == folder.size());
  CHECK(std::is_sorted(split.val.begin(), split.val.end()));
  std::vector<int> per_class(3, 0);
  for (auto i : split.val) ++per_class[static_cast<std::size_t>(folder.samples()[static_cast<std::size_t>(i)].label)];
  CHECK(per_class == std::vector<int>{2, 2, 2});

  CHECK(rn::data::split_by_class(folder, 0.25, 3).val == split.val);  // the same seed, the same files
  bool differs = false;
  for (std::uint64_t seed = 4; seed < 8; ++seed)
    differs |= rn::data::split_by_class(folder, 0.25, seed).val != split.val;
  CHECK(differs);
  CHECK(rn::data::split_by_class(folder, 0.0).val.empty());
  CHECK(rn::data::split_by_class(folder, 0.01).val.size() == 3);  // at least one of each class
  CHECK_THROWS_AS(rn::data::split_by_class(folder, 1.0), rn::ValueError);
  CHECK_THROWS_AS(rn::data::split_by_class(folder, -0.1), rn::ValueError);
}

namespace {

std::vector<std::vector<float>> epoch_batches(rn::data::ImageFolderLoader& loader, std::int64_t epoch,
                                              std::vector<std::int64_t>* labels = nullptr) {
  std::vector<std::vector<float>> out;
  loader.start_epoch(epoch);
  while (auto b = loader.next()) {
    out.push_back(b->images.to_vector());
    if (labels)
      for (auto l : b->labels.to_vector()) labels->push_back(l);
  }
  return out;
}

}  // namespace

TEST_CASE("ImageFolderLoader: batches in order, each sample transformed as it would be alone",
          "[image][folder][loader]") {
  rn::testing::TempDir tmp("rescnn_folder");
  const auto folder = std::make_shared<const rn::data::ImageFolder>(make_folder(tmp));
  const rn::data::ImageTransform to16 = [](const rn::data::Image& img, rn::Generator&) {
    return rn::data::to_tensor(rn::data::resize(img, 16, 12));
  };
  rn::data::ImageFolderLoader loader(folder, {}, to16, {.batch_size = 4, .workers = 3});
  CHECK(loader.num_batches() == 7);  // 25 samples: 6 full batches and one of 1
  std::vector<std::int64_t> labels;
  const auto batches = epoch_batches(loader, 0, &labels);
  REQUIRE(batches.size() == 7);
  CHECK(batches.back().size() == 1 * 3 * 12 * 16);
  for (std::int64_t i = 0; i < folder->size(); ++i) {
    CHECK(labels[static_cast<std::size_t>(i)] == folder->samples()[static_cast<std::size_t>(i)].label);
    rn::Generator unused(0);
    const auto alone = to16(folder->load(i), unused).to_vector();
    const auto& batch = batches[static_cast<std::size_t>(i / 4)];
    REQUIRE(std::equal(alone.begin(), alone.end(), batch.begin() + (i % 4) * static_cast<std::int64_t>(alone.size())));
  }
  rn::data::ImageFolderLoader dropping(folder, {}, to16, {.batch_size = 4, .drop_last = true});
  CHECK(dropping.num_batches() == 6);
  // A subset (a split's indices) serves exactly those samples.
  rn::data::ImageFolderLoader subset(folder, {3, 5, 24}, to16, {.batch_size = 2});
  std::vector<std::int64_t> subset_labels;
  epoch_batches(subset, 0, &subset_labels);
  CHECK(subset_labels ==
        std::vector<std::int64_t>{folder->samples()[3].label, folder->samples()[5].label, folder->samples()[24].label});
  CHECK_THROWS_AS(rn::data::ImageFolderLoader(folder, {25}, to16), rn::ValueError);
}

TEST_CASE("ImageFolderLoader is deterministic whatever the number of workers", "[image][folder][loader]") {
  rn::testing::TempDir tmp("rescnn_folder");
  const auto folder = std::make_shared<const rn::data::ImageFolder>(make_folder(tmp));
  const auto transform = rn::data::train_transform(12, rn::data::Normalize{{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}});
  rn::data::ImageFolderLoader one(folder, {}, transform, {.batch_size = 5, .shuffle = true, .seed = 4, .workers = 1});
  rn::data::ImageFolderLoader three(folder, {}, transform,
                                    {.batch_size = 5, .shuffle = true, .seed = 4, .workers = 3, .prefetch = 0});
  for (std::int64_t epoch : {0, 1, 0}) {
    INFO("epoch " << epoch);
    CHECK(epoch_batches(one, epoch) == epoch_batches(three, epoch));
  }
  CHECK(epoch_batches(one, 0) != epoch_batches(one, 1));  // a new order and new crops each epoch
  // Cancelled mid-epoch, restarted, destroyed with work in flight: no hang.
  three.start_epoch(2);
  REQUIRE(three.next());
  three.start_epoch(3);
  REQUIRE(three.next());
}

TEST_CASE("ImageFolderLoader re-throws a worker's error at its batch, naming the file",
          "[image][folder][loader][errors]") {
  rn::testing::TempDir tmp("rescnn_folder");
  const fs::path root = make_folder(tmp);
  fs::copy_file(images_dir() / "bad" / "truncated.png", root / "Trouser" / "9_truncated.png");  // the last sample
  const auto folder = std::make_shared<const rn::data::ImageFolder>(root);
  rn::data::ImageFolderLoader loader(folder, {}, rn::data::eval_transform(8), {.batch_size = 4, .workers = 2});
  loader.start_epoch(0);
  for (int b = 0; b < 6; ++b) REQUIRE(loader.next());  // the 24 good samples come first
  CHECK_THROWS_WITH(loader.next(), Catch::Contains("9_truncated.png") && Catch::Contains("truncated"));

  // A transform that does not fix the size fails naming the file.
  fs::remove(root / "Trouser" / "9_truncated.png");
  fs::copy_file(images_dir() / "codecs" / "rgb8.png", root / "Trouser" / "9_small.png");
  const auto mixed = std::make_shared<const rn::data::ImageFolder>(root);
  rn::data::ImageFolderLoader unsized(
      mixed, {}, [](const rn::data::Image& img, rn::Generator&) { return rn::data::to_tensor(img); },
      {.batch_size = 32});
  unsized.start_epoch(0);
  CHECK_THROWS_WITH(unsized.next(), Catch::Contains("9_small.png") && Catch::Contains("one size"));
}

namespace {

// A gzipped fixture, inflated into `to`.
void gunzip(const fs::path& from, const fs::path& to) {
  gzFile in = gzopen(from.string().c_str(), "rb");
  REQUIRE(in != nullptr);
  std::ofstream out(to, std::ios::binary);
  std::vector<char> chunk(1 << 16);
  int n = 0;
  while ((n = gzread(in, chunk.data(), static_cast<unsigned>(chunk.size()))) > 0) out.write(chunk.data(), n);
  const bool clean = n == 0;
  gzclose(in);
  REQUIRE(clean);
}

}  // namespace

TEST_CASE("A 2-class fine-tune from a torchvision-written resnet18 lowers the loss and keeps the backbone bit for bit",
          "[image][folder][transfer]") {
  rn::testing::TempDir tmp("rescnn_finetune");
  // torchvision.models.resnet18()'s state dict, 1000 classes, written by
  // PyTorch (tests/golden/make_transfer_golden.py).
  const fs::path weights = tmp / "resnet18.safetensors";
  gunzip(rn::testing::golden_dir() / "transfer__torchvision_resnet18.safetensors.gz", weights);
  // Two classes of the Fashion-MNIST image folder, PNG and JPEG, as RGB.
  const fs::path root = tmp / "two";
  for (const char* cls : {"Ankle_boot", "Trouser"}) {
    fs::create_directories(root / cls);
    for (const auto& f : fs::directory_iterator(images_dir() / "fashion" / cls))
      fs::copy_file(f.path(), root / cls / f.path().filename());
  }
  auto folder = std::make_shared<const rn::data::ImageFolder>(root);
  REQUIRE(folder->size() == 16);
  struct Data {
    rn::data::ImageFolderLoader train_loader, test_loader;
    rn::data::ImageFolderLoader& train() { return train_loader; }
    rn::data::ImageFolderLoader& test() { return test_loader; }
  } data{rn::data::ImageFolderLoader(folder, {}, rn::data::eval_transform(32), {.batch_size = 8, .shuffle = true}),
         rn::data::ImageFolderLoader(folder, {}, rn::data::eval_transform(32), {.batch_size = 8})};

  rn::manual_seed(4);
  auto model = rn::models::create<float>("resnet18", {.num_classes = 2});
  const auto report = rn::models::load_backbone(*model, weights);
  INFO(report.summary());
  CHECK(report.excluded == std::vector<std::string>{"fc.bias", "fc.weight"});
  CHECK(report.missing.empty());
  CHECK(report.unexpected.empty());
  CHECK(rn::models::freeze_backbone(*model) == model->named_parameters().size() - 2);
  const auto before = rn::io::state_dict(*model);
  // The training loss (train mode, as the backbone's BatchNorm runs while
  // fine-tuning) of the first epoch against the last.
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.01, .momentum = 0.9});
  const auto history =
      rn::train::Trainer({.max_epochs = 8, .progress = rn::train::ProgressMode::Silent, .log = nullptr})
          .fit(*model, sgd, data);
  REQUIRE(history.size() == 8);
  INFO("train_loss " << history.epochs().front().train_loss << " -> " << history.back().train_loss);
  CHECK(history.back().train_loss < 0.8 * history.epochs().front().train_loss);
  const auto after = rn::io::state_dict(*model);
  for (auto& [name, p] : model->named_parameters()) {
    INFO(name);
    const bool head = name.rfind("fc.", 0) == 0;
    CHECK((before.record(name).bytes == after.record(name).bytes) != head);
  }
}
