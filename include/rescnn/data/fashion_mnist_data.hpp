// rescnn/data/fashion_mnist_data.hpp — Fashion-MNIST train and test loaders
// in one object, configured as d2l's `load_data_fashion_mnist`.
//
//   rn::data::FashionMNIST data({.batch_size = 256, .resize = 96});
//   data.train().start_epoch(0);
//   while (auto batch = data.train().next()) ...
//
// The train loader shuffles and (with `augment`) applies a random crop with
// padding 4 at 28x28 -- round(4 * size / 28) at other sizes, the same fraction
// of the image -- and a random horizontal flip. The test loader keeps the
// file's order and never augments. All loaders resize and normalize alike
// and keep their last, smaller batch.
//
// With `val_fraction` > 0 that fraction of each class of the training images
// (data/split.hpp, seeded by `seed`) is held out as a validation set, which
// validation() loads like the test set; the trainer then validates on it and
// the test set is only read at the end. Without it validation() is the test
// loader, as in d2l.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "rescnn/data/fashion_mnist.hpp"
#include "rescnn/data/loader.hpp"
#include "rescnn/data/split.hpp"

namespace rescnn::data {

struct FashionMnistOptions {
  std::filesystem::path root = default_root();
  std::int64_t batch_size = 128;
  std::int64_t resize = 0;  // 0 = native 28x28
  bool antialias = false;   // see LoaderOptions::antialias
  bool augment = false;     // train only: random crop (padding round(4 * size / 28)) + horizontal flip
  // Train only: RandomErasing after normalisation (unset: none).
  std::optional<RandomErasingOptions> random_erasing = std::nullopt;
  std::optional<std::pair<float, float>> normalize = std::nullopt;  // (mean, std) after scaling to [0, 1]
  std::int64_t limit = 0;       // > 0: train on the first `limit` images only (at most 60000)
  double val_fraction = 0;      // in [0, 1): of each class, hold out this fraction for validation
  std::int64_t test_limit = 0;  // > 0: evaluate on the first `test_limit` test images (at most 10000)
  std::uint64_t seed = 0;       // shuffling and augmentation of the train loader
  int prefetch = 2;
  // In a data-parallel job: this process's rank and the number of ranks.
  // batch_size is then per rank; the train loader takes its slice of every
  // global batch, the test loader a contiguous slice of the test set.
  std::int64_t rank = 0, world = 1;
};

class FashionMNIST {
 public:
  explicit FashionMNIST(FashionMnistOptions options)
      : opt_(validated(std::move(options))),
        sets_(load_train(opt_)),
        train_(sets_.train, loader_options(opt_, /*train=*/true)),
        test_(load_test(opt_), loader_options(opt_, /*train=*/false)) {
    if (sets_.val) val_.emplace(sets_.val, loader_options(opt_, /*train=*/false));
  }

  DataLoader& train() { return train_; }
  DataLoader& test() { return test_; }
  // The held-out part of the training images, or the test loader without val_fraction.
  DataLoader& validation() { return val_ ? *val_ : test_; }
  bool has_validation_split() const { return val_.has_value(); }
  const FashionMnistOptions& options() const { return opt_; }

  // The crop padding `augment` uses for images of `size` (4 at 28).
  static std::int64_t augment_padding(std::int64_t size) {
    return static_cast<std::int64_t>(std::lround(4.0 * static_cast<double>(size) / 28.0));
  }

 private:
  static LoaderOptions loader_options(const FashionMnistOptions& o, bool train) {
    LoaderOptions l;
    l.batch_size = o.batch_size;
    l.shuffle = train;
    l.drop_last = false;
    l.seed = o.seed;
    l.resize = o.resize;
    l.antialias = o.antialias;
    l.normalize = o.normalize;
    l.prefetch = o.prefetch;
    l.shard = {.rank = o.rank, .world = o.world, .mode = train ? ShardMode::training : ShardMode::evaluation};
    if (train) l.random_erasing = o.random_erasing;
    if (train && o.augment) {
      l.crop_padding = augment_padding(o.resize > 0 ? o.resize : 28);
      l.horizontal_flip = true;
    }
    return l;
  }

  // Option mistakes surface before 50 MB of images are read.
  static FashionMnistOptions validated(FashionMnistOptions o) {
    detail::validate(loader_options(o, /*train=*/true));
    check(o.limit >= 0, "FashionMNIST: limit ", o.limit, " is negative (0 keeps every image)");
    check(o.test_limit >= 0, "FashionMNIST: test_limit ", o.test_limit, " is negative (0 keeps every image)");
    check(std::isfinite(o.val_fraction) && o.val_fraction >= 0 && o.val_fraction < 1, "FashionMNIST: val_fraction ",
          o.val_fraction, " must be in [0, 1) (0: validate on the test set)");
    return o;
  }

  struct TrainSets {
    std::shared_ptr<const ImageSet> train, val;  // val: null without val_fraction
  };

  static TrainSets load_train(const FashionMnistOptions& o) {
    ImageSet all = load_fashion_mnist(o.root, Split::Train, o.limit);
    if (o.val_fraction == 0) return {std::make_shared<const ImageSet>(std::move(all)), nullptr};
    const IndexSplit split = split_by_class(std::span<const std::int64_t>(all.labels), o.val_fraction, o.seed);
    check(!split.val.empty(), "FashionMNIST: val_fraction ", o.val_fraction, " of ", all.size(),
          " training images holds out none (each class needs 2 or more)");
    return {std::make_shared<const ImageSet>(subset(all, split.train)),
            std::make_shared<const ImageSet>(subset(all, split.val))};
  }

  static ImageSet subset(const ImageSet& all, const std::vector<std::int64_t>& indices) {
    ImageSet out;
    out.height = all.height;
    out.width = all.width;
    const std::int64_t plane = all.height * all.width;
    out.pixels.resize(indices.size() * static_cast<std::size_t>(plane));
    out.labels.reserve(indices.size());
    for (std::size_t k = 0; k < indices.size(); ++k) {
      const std::int64_t i = indices[k];
      std::copy_n(all.pixels.begin() + i * plane, plane, out.pixels.begin() + static_cast<std::int64_t>(k) * plane);
      out.labels.push_back(all.labels[static_cast<std::size_t>(i)]);
    }
    return out;
  }

  static std::shared_ptr<const ImageSet> load_test(const FashionMnistOptions& o) {
    return std::make_shared<const ImageSet>(load_fashion_mnist(o.root, Split::Test, o.test_limit));
  }

  FashionMnistOptions opt_;
  TrainSets sets_;
  DataLoader train_, test_;
  std::optional<DataLoader> val_;
};

}  // namespace rescnn::data
