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
// file's order and never augments. Both resize and normalize alike and keep
// their last, smaller batch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <utility>

#include "rescnn/data/fashion_mnist.hpp"
#include "rescnn/data/loader.hpp"

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
        train_(std::make_shared<const ImageSet>(load_fashion_mnist(opt_.root, Split::Train, opt_.limit)),
               loader_options(opt_, /*train=*/true)),
        test_(load_test(opt_), loader_options(opt_, /*train=*/false)) {}

  DataLoader& train() { return train_; }
  DataLoader& test() { return test_; }
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
    return o;
  }

  static std::shared_ptr<const ImageSet> load_test(const FashionMnistOptions& o) {
    return std::make_shared<const ImageSet>(load_fashion_mnist(o.root, Split::Test, o.test_limit));
  }

  FashionMnistOptions opt_;
  DataLoader train_, test_;
};

}  // namespace rescnn::data
