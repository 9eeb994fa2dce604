// Tests for rescnn/data/loader.hpp and rescnn/data/fashion_mnist_data.hpp:
// batching, per-epoch order, determinism independent of prefetching, the
// background thread's start/stop, option validation, and the Fashion-MNIST
// bundle on the installed data set.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "rescnn/data/fashion_mnist_data.hpp"
#include "rescnn/data/loader.hpp"

namespace data = rescnn::data;
using Catch::Matchers::Contains;
using rescnn::index_t;
using rescnn::ValueError;

namespace {

// n images of h x w whose pixels encode the sample index: pixel 0 = i % 256,
// pixel 1 = i / 256, the rest (i * 31 + k) % 256; label = i (the loader does
// not restrict the label range, which lets a label name its sample).
std::shared_ptr<const data::ImageSet> indexed_set(index_t n, index_t h = 4, index_t w = 4) {
  auto s = std::make_shared<data::ImageSet>();
  s->height = h;
  s->width = w;
  for (index_t i = 0; i < n; ++i) {
    s->labels.push_back(i);
    for (index_t k = 0; k < h * w; ++k) {
      const index_t v = k == 0 ? i % 256 : k == 1 ? i / 256 : (i * 31 + k) % 256;
      s->pixels.push_back(static_cast<std::uint8_t>(v));
    }
  }
  return s;
}

// n images where every pixel of image i is i + 1 (n <= 254): constant
// images survive resizing, cropping leaves i + 1 or 0, flipping changes
// nothing, so each image still names its sample after augmentation.
std::shared_ptr<const data::ImageSet> constant_set(index_t n, index_t size = 8) {
  auto s = std::make_shared<data::ImageSet>();
  s->height = size;
  s->width = size;
  for (index_t i = 0; i < n; ++i) {
    s->labels.push_back(i);
    s->pixels.insert(s->pixels.end(), static_cast<std::size_t>(size * size), static_cast<std::uint8_t>(i + 1));
  }
  return s;
}

index_t decode_index(const float* img) { return std::lround(img[0] * 255.0f) + 256 * std::lround(img[1] * 255.0f); }

struct Epoch {
  std::vector<std::int64_t> labels;
  std::vector<float> images;
  std::vector<index_t> batch_sizes;
};

Epoch run_epoch(data::DataLoader& loader, std::int64_t epoch) {
  Epoch e;
  loader.start_epoch(epoch);
  std::int64_t expected_index = 0;
  while (auto b = loader.next()) {
    REQUIRE(b->index == expected_index++);
    REQUIRE(b->images.rank() == 4);
    REQUIRE(b->images.dim(0) == b->labels.dim(0));
    REQUIRE(b->images.dim(1) == 1);
    REQUIRE(b->images.dim(2) == loader.image_height());
    REQUIRE(b->images.dim(3) == loader.image_width());
    e.batch_sizes.push_back(b->labels.dim(0));
    const auto l = b->labels.to_vector();
    const auto im = b->images.to_vector();
    e.labels.insert(e.labels.end(), l.begin(), l.end());
    e.images.insert(e.images.end(), im.begin(), im.end());
  }
  REQUIRE(expected_index == loader.num_batches());
  REQUIRE_FALSE(loader.next());  // stays exhausted
  return e;
}

bool is_permutation_of_range(std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] != static_cast<std::int64_t>(i)) return false;
  return true;
}

}  // namespace

TEST_CASE("DataLoader batches in order without shuffle", "[data][loader]") {
  for (int prefetch : {0, 2}) {
    INFO("prefetch " << prefetch);
    data::DataLoader loader(indexed_set(10), {.batch_size = 4, .prefetch = prefetch});
    REQUIRE(loader.num_samples() == 10);
    REQUIRE(loader.num_batches() == 3);
    REQUIRE(loader.image_height() == 4);
    const Epoch e = run_epoch(loader, 0);
    REQUIRE(e.batch_sizes == std::vector<index_t>{4, 4, 2});  // the last, partial batch is kept
    std::vector<std::int64_t> expected(10);
    std::iota(expected.begin(), expected.end(), 0);
    REQUIRE(e.labels == expected);
    for (std::size_t k = 0; k < e.labels.size(); ++k) {
      REQUIRE(decode_index(e.images.data() + k * 16) == e.labels[k]);  // images travel with their labels
      REQUIRE(e.images[k * 16 + 5] == static_cast<float>((e.labels[k] * 31 + 5) % 256) / 255.0f);
    }
    REQUIRE(run_epoch(loader, 7).labels == expected);  // every epoch, same order
  }
}

TEST_CASE("DataLoader drop_last and batch counts", "[data][loader]") {
  auto count = [](index_t n, index_t bs, bool drop) {
    data::DataLoader l(indexed_set(n), {.batch_size = bs, .drop_last = drop, .prefetch = 1});
    const Epoch e = run_epoch(l, 0);
    REQUIRE(static_cast<index_t>(e.batch_sizes.size()) == l.num_batches());
    return e.batch_sizes;
  };
  REQUIRE(count(10, 4, true) == std::vector<index_t>{4, 4});
  REQUIRE(count(8, 4, true) == std::vector<index_t>{4, 4});
  REQUIRE(count(8, 4, false) == std::vector<index_t>{4, 4});
  REQUIRE(count(3, 4, false) == std::vector<index_t>{3});
  REQUIRE(count(3, 4, true).empty());
  REQUIRE(count(0, 4, false).empty());
  REQUIRE(count(7, 1, false) == std::vector<index_t>(7, 1));
}

TEST_CASE("DataLoader shuffles each epoch by (seed, epoch) only", "[data][loader]") {
  const auto set = indexed_set(1000);
  data::LoaderOptions opt{.batch_size = 64, .shuffle = true, .seed = 5};
  data::DataLoader a(set, opt);
  const Epoch e0 = run_epoch(a, 0), e1 = run_epoch(a, 1), e2 = run_epoch(a, 2);
  for (const Epoch* e : {&e0, &e1, &e2}) {
    REQUIRE(is_permutation_of_range(e->labels));
    for (std::size_t k = 0; k < e->labels.size(); ++k) REQUIRE(decode_index(e->images.data() + k * 16) == e->labels[k]);
  }
  REQUIRE(e0.labels != e1.labels);
  REQUIRE(e1.labels != e2.labels);
  std::vector<std::int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  REQUIRE(e0.labels != identity);
  REQUIRE(a.order() == e2.labels);

  // A fresh loader jumping straight to epoch 2, or revisiting epoch 0.
  data::DataLoader b(set, opt);
  REQUIRE(run_epoch(b, 2).labels == e2.labels);
  REQUIRE(run_epoch(b, 0).labels == e0.labels);
  // Another seed, another order.
  opt.seed = 6;
  data::DataLoader c(set, opt);
  REQUIRE(run_epoch(c, 0).labels != e0.labels);
}

TEST_CASE("DataLoader output does not depend on prefetching or batch size", "[data][loader]") {
  const auto set = indexed_set(300, 12, 12);
  data::LoaderOptions opt{.batch_size = 32,
                          .shuffle = true,
                          .seed = 99,
                          .resize = 20,
                          .antialias = false,
                          .normalize = std::pair{0.3f, 0.7f},
                          .crop_padding = 3,
                          .horizontal_flip = true};
  std::vector<Epoch> runs;
  for (int prefetch : {0, 2, 5}) {
    opt.prefetch = prefetch;
    data::DataLoader l(set, opt);
    runs.push_back(run_epoch(l, 3));
  }
  REQUIRE(runs[1].labels == runs[0].labels);
  REQUIRE(runs[2].labels == runs[0].labels);
  REQUIRE(runs[1].images == runs[0].images);  // bit for bit
  REQUIRE(runs[2].images == runs[0].images);
  // Augmentation follows the sample's position in the epoch, not its batch.
  opt.batch_size = 7;
  opt.prefetch = 3;
  data::DataLoader other(set, opt);
  const Epoch e = run_epoch(other, 3);
  REQUIRE(e.labels == runs[0].labels);
  REQUIRE(e.images == runs[0].images);
  // And it differs from epoch to epoch.
  opt.shuffle = false;
  data::DataLoader fixed(set, opt);
  REQUIRE(run_epoch(fixed, 0).images != run_epoch(fixed, 1).images);
}

TEST_CASE("DataLoader augmentation keeps each image with its label", "[data][loader]") {
  const auto set = constant_set(200, 8);
  data::DataLoader l(
      set, {.batch_size = 50, .shuffle = true, .seed = 1, .resize = 16, .crop_padding = 5, .horizontal_flip = true});
  REQUIRE(l.image_height() == 16);
  REQUIRE(l.image_width() == 16);
  const Epoch e = run_epoch(l, 0);
  REQUIRE(is_permutation_of_range(e.labels));
  std::size_t zeros = 0;
  for (std::size_t k = 0; k < e.labels.size(); ++k) {
    const float value = static_cast<float>(e.labels[k] + 1) / 255.0f;
    bool some_value = false;
    for (std::size_t p = 0; p < 256; ++p) {
      const float v = e.images[k * 256 + p];
      if (v == 0.0f) {
        ++zeros;
      } else {
        REQUIRE(v == Approx(value).margin(1e-6));
        some_value = true;
      }
    }
    REQUIRE(some_value);  // padding 5 < 16: the crop always keeps part of the image
  }
  REQUIRE(zeros > 0);  // some crops did shift
}

TEST_CASE("DataLoader resize and normalize match the transforms", "[data][loader]") {
  const auto set = indexed_set(5, 28, 28);
  for (bool aa : {false, true}) {
    data::DataLoader l(
        set, {.batch_size = 5, .resize = 20, .antialias = aa, .normalize = std::pair{0.5f, 0.25f}, .prefetch = 0});
    l.start_epoch(0);
    const auto b = l.next();
    REQUIRE(b);
    REQUIRE(b->images.shape() == rescnn::Shape({5, 1, 20, 20}));
    for (index_t i = 0; i < 5; ++i) {
      std::vector<float> unit(28 * 28), expected(20 * 20);
      data::to_unit_range(set->pixels.data() + i * 784, unit.data(), 784);
      data::resize_bilinear(unit.data(), 28, 28, expected.data(), 20, 20, aa);
      data::normalize(expected.data(), 400, 0.5f, 0.25f);
      REQUIRE(std::equal(expected.begin(), expected.end(), b->images.data() + i * 400));
    }
  }
  // resize equal to the native size changes nothing.
  data::DataLoader same(set, {.batch_size = 5, .resize = 28});
  data::DataLoader native(set, {.batch_size = 5});
  REQUIRE(run_epoch(same, 0).images == run_epoch(native, 0).images);
}

TEST_CASE("Sharded loaders together serve the unsharded loader's global batches", "[data][loader][dist]") {
  // 301 samples over 3 ranks: 1 dropped each epoch, the last global batch
  // (300 - 2 * 144 = 12) partial; augmentation must follow the position.
  const auto set = indexed_set(301, 12, 12);
  const data::LoaderOptions base{.batch_size = 48,
                                 .shuffle = true,
                                 .seed = 5,
                                 .resize = 16,
                                 .crop_padding = 2,
                                 .horizontal_flip = true,
                                 .prefetch = 1};
  data::LoaderOptions whole_options = base;
  whole_options.batch_size = 3 * 48;
  data::DataLoader whole(set, whole_options);
  const Epoch reference = run_epoch(whole, 2);
  std::vector<Epoch> ranks;
  for (std::int64_t r = 0; r < 3; ++r) {
    data::LoaderOptions o = base;
    o.shard = {.rank = r, .world = 3};
    data::DataLoader shard(set, o);
    REQUIRE(shard.num_batches() == 3);
    REQUIRE(shard.shard().world == 3);
    ranks.push_back(run_epoch(shard, 2));
    REQUIRE(ranks.back().batch_sizes == std::vector<index_t>{48, 48, 4});
  }
  // Global batch k of one process is the concatenation of every rank's batch k.
  const std::size_t plane = 16 * 16;
  std::size_t at = 0;
  for (std::size_t k = 0; k < 3; ++k) {
    for (std::size_t r = 0; r < 3; ++r) {
      const std::size_t before = k == 0 ? 0 : 48 * k;
      const std::size_t n = static_cast<std::size_t>(ranks[r].batch_sizes[k]);
      for (std::size_t i = 0; i < n; ++i, ++at) {
        REQUIRE(ranks[r].labels[before + i] == reference.labels[at]);
        REQUIRE(std::equal(ranks[r].images.begin() + static_cast<std::ptrdiff_t>((before + i) * plane),
                           ranks[r].images.begin() + static_cast<std::ptrdiff_t>((before + i + 1) * plane),
                           reference.images.begin() + static_cast<std::ptrdiff_t>(at * plane)));
      }
    }
  }
  REQUIRE(at == 300);  // the permutation's last sample is the one dropped
  REQUIRE(reference.labels.size() == 301);

  // Evaluation shards: contiguous, in order, every sample exactly once.
  std::vector<std::int64_t> seen;
  for (std::int64_t r = 0; r < 3; ++r) {
    data::DataLoader shard(set,
                           {.batch_size = 40, .shard = {.rank = r, .world = 3, .mode = data::ShardMode::evaluation}});
    const Epoch e = run_epoch(shard, 0);
    seen.insert(seen.end(), e.labels.begin(), e.labels.end());
  }
  std::vector<std::int64_t> all(301);
  std::iota(all.begin(), all.end(), 0);
  REQUIRE(seen == all);
}

TEST_CASE("DataLoader random erasing: one rectangle of the value, the rest as without it", "[data][loader][erasing]") {
  const auto set = constant_set(120, 8);
  data::LoaderOptions plain{.batch_size = 32,
                            .shuffle = true,
                            .seed = 4,
                            .resize = 16,
                            .normalize = std::pair{0.5f, 0.25f},
                            .crop_padding = 2,
                            .horizontal_flip = true};
  data::LoaderOptions erasing = plain;
  erasing.random_erasing = data::RandomErasingOptions{.p = 1, .value = -100.0f};
  data::DataLoader a(set, plain), b(set, erasing);
  const Epoch without = run_epoch(a, 1), with = run_epoch(b, 1);
  REQUIRE(with.labels == without.labels);
  const std::size_t plane = 16 * 16;
  for (std::size_t k = 0; k < with.labels.size(); ++k) {
    index_t erased = 0, top = 16, bottom = -1, left = 16, right = -1;
    for (index_t y = 0; y < 16; ++y)
      for (index_t x = 0; x < 16; ++x) {
        const std::size_t i = k * plane + static_cast<std::size_t>(y * 16 + x);
        if (with.images[i] == -100.0f) {
          ++erased;
          top = std::min(top, y), bottom = std::max(bottom, y), left = std::min(left, x), right = std::max(right, x);
        } else {
          REQUIRE(with.images[i] == without.images[i]);  // the crop and flip draws are unchanged
        }
      }
    REQUIRE(erased > 0);                                         // p = 1 on 16x16 always fits
    REQUIRE(erased == (bottom - top + 1) * (right - left + 1));  // one filled rectangle
  }
  // Validation names the option.
  erasing.random_erasing->p = 2;
  REQUIRE_THROWS_WITH(data::DataLoader(set, erasing), Contains("RandomErasing: p 2"));
}

TEST_CASE("DataLoader restarts epochs mid-way and stops its thread cleanly", "[data][loader]") {
  const auto set = indexed_set(500, 8, 8);
  const data::LoaderOptions opt{
      .batch_size = 10, .shuffle = true, .seed = 3, .crop_padding = 2, .horizontal_flip = true, .prefetch = 3};
  data::DataLoader reference(set, opt);
  const Epoch full0 = run_epoch(reference, 0), full1 = run_epoch(reference, 1);

  data::DataLoader l(set, opt);
  l.start_epoch(0);
  REQUIRE(l.next());
  REQUIRE(l.next());
  l.start_epoch(0);  // restart the same epoch mid-way
  REQUIRE(run_epoch(l, 0).images == full0.images);
  l.start_epoch(1);
  REQUIRE(l.next()->index == 0);
  l.start_epoch(0);  // go back while the producer is ahead
  l.start_epoch(1);  // twice in a row, nothing consumed
  const Epoch again1 = run_epoch(l, 1);
  REQUIRE(again1.labels == full1.labels);
  REQUIRE(again1.images == full1.images);

  // Destruction mid-epoch (queue full, producer waiting), right after
  // start_epoch, and without any epoch.
  for (int consumed : {0, 1, 25}) {
    data::DataLoader d(set, opt);
    d.start_epoch(4);
    for (int i = 0; i < consumed; ++i) REQUIRE(d.next());
  }
  { data::DataLoader never_started(set, opt); }
  SUCCEED("every loader stopped and joined its producer");
}

TEST_CASE("DataLoader::next before start_epoch is an error", "[data][loader]") {
  data::DataLoader l(indexed_set(4), {});
  REQUIRE_THROWS_AS(l.next(), rescnn::Error);
  REQUIRE_THROWS_WITH(l.next(), Contains("DataLoader::next: no epoch started") && Contains("start_epoch"));
  REQUIRE_THROWS_WITH(l.start_epoch(-1), Contains("start_epoch: epoch -1 is negative"));
}

TEST_CASE("DataLoader validates its options and data", "[data][loader]") {
  const auto set = indexed_set(4);
  auto make = [&](data::LoaderOptions o) { data::DataLoader l(set, o); };
  REQUIRE_THROWS_AS(make({.batch_size = 0}), ValueError);
  REQUIRE_THROWS_WITH(make({.batch_size = 0}), Contains("batch_size 0 must be at least 1"));
  REQUIRE_THROWS_WITH(make({.resize = -2}), Contains("resize -2 is negative"));
  REQUIRE_THROWS_WITH(make({.normalize = std::pair{0.5f, 0.0f}}),
                      Contains("normalize std 0 must be positive and finite"));
  REQUIRE_THROWS_WITH(make({.normalize = std::pair{0.5f, NAN}}), Contains("normalize std nan"));
  REQUIRE_THROWS_WITH(make({.normalize = std::pair{INFINITY, 1.0f}}), Contains("normalize mean inf is not finite"));
  REQUIRE_THROWS_WITH(make({.crop_padding = -1}), Contains("crop_padding -1 is negative"));
  REQUIRE_THROWS_WITH(make({.prefetch = -1}), Contains("prefetch -1 is negative"));
  REQUIRE_THROWS_WITH(make({.shard = {.rank = 2, .world = 2}}), Contains("rank 2 is outside a world of 2 processes"));
  REQUIRE_THROWS_WITH(make({.shard = {.rank = 0, .world = 0}}), Contains("rank 0 is outside a world of 0 processes"));

  REQUIRE_THROWS_WITH(data::DataLoader(nullptr, {}), Contains("DataLoader: the image set is null"));
  auto bad = std::make_shared<data::ImageSet>(*set);
  bad->pixels.pop_back();
  REQUIRE_THROWS_WITH(data::DataLoader(bad, {}), Contains("63 pixels for 4 images of 4x4 (expected 64)"));
  auto empty = std::make_shared<data::ImageSet>();
  REQUIRE_THROWS_WITH(data::DataLoader(empty, {}), Contains("image size 0x0 must be positive"));
}

// The bundle on the installed data set (scripts/install-deps.sh installs it).
TEST_CASE("FashionMNIST bundles a shuffled, augmented train loader and a plain test loader",
          "[data][fashion_mnist][real]") {
  INFO("install the data set: apt-get install dataset-fashion-mnist");
  REQUIRE(std::filesystem::is_directory("/usr/share/datasets/fashion-mnist"));
  REQUIRE(data::FashionMNIST::augment_padding(28) == 4);
  REQUIRE(data::FashionMNIST::augment_padding(96) == 14);
  REQUIRE(data::FashionMNIST::augment_padding(224) == 32);

  data::FashionMNIST fm({.root = "/usr/share/datasets/fashion-mnist",
                         .batch_size = 100,
                         .resize = 32,
                         .augment = true,
                         .normalize = std::pair{0.2860f, 0.3530f},
                         .limit = 12000,
                         .test_limit = 3000,
                         .seed = 17});
  REQUIRE(fm.train().num_samples() == 12000);
  REQUIRE(fm.test().num_samples() == 3000);
  REQUIRE(fm.train().num_batches() == 120);
  REQUIRE(fm.test().image_height() == 32);
  const auto& tr = fm.train().options();
  REQUIRE(tr.shuffle);
  REQUIRE(tr.crop_padding == data::FashionMNIST::augment_padding(32));
  REQUIRE(tr.horizontal_flip);
  REQUIRE_FALSE(tr.drop_last);
  const auto& te = fm.test().options();
  REQUIRE_FALSE(te.shuffle);
  REQUIRE(te.crop_padding == 0);
  REQUIRE_FALSE(te.horizontal_flip);
  REQUIRE(te.normalize == tr.normalize);
  REQUIRE(te.resize == 32);

  fm.test().start_epoch(0);
  const auto first = fm.test().next();
  REQUIRE(first->labels.to_vector() ==
          std::vector<std::int64_t>(fm.test().dataset().labels.begin(),
                                    fm.test().dataset().labels.begin() + 100));  // file order
  fm.train().start_epoch(0);
  const auto shuffled = fm.train().next();
  REQUIRE(shuffled->images.shape() == rescnn::Shape({100, 1, 32, 32}));
  REQUIRE(shuffled->labels.to_vector() !=
          std::vector<std::int64_t>(fm.train().dataset().labels.begin(), fm.train().dataset().labels.begin() + 100));

  REQUIRE_THROWS_AS(data::FashionMNIST({.batch_size = 0}), ValueError);  // before any file is read
  REQUIRE_THROWS_WITH(data::FashionMNIST({.root = "/nonexistent/fm"}),
                      Contains("apt-get install dataset-fashion-mnist"));
  REQUIRE_THROWS_WITH(data::FashionMNIST({.limit = 60001}), Contains("limit 60001 exceeds the 60000 images"));
  REQUIRE_THROWS_WITH(data::FashionMNIST({.test_limit = 10001}), Contains("limit 10001 exceeds the 10000 images"));
  REQUIRE(data::FashionMNIST({.limit = 100}).test().num_samples() == 10000);  // limit is for training only
}

TEST_CASE("split_by_class holds out round(fraction * n) of each class, seeded, disjoint and in sample order",
          "[data][split]") {
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 230; ++i) labels.push_back(i % 7 == 0 ? 2 : i % 3);  // uneven classes
  std::map<std::int64_t, std::int64_t> per_class;
  for (auto l : labels) ++per_class[l];
  const auto split = data::split_by_class(labels, 0.2, 11);
  REQUIRE(split.train.size() + split.val.size() == labels.size());
  REQUIRE(std::is_sorted(split.train.begin(), split.train.end()));
  REQUIRE(std::is_sorted(split.val.begin(), split.val.end()));
  std::vector<std::int64_t> all = split.train;
  all.insert(all.end(), split.val.begin(), split.val.end());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i < all.size(); ++i) REQUIRE(all[i] == static_cast<std::int64_t>(i));  // disjoint, complete
  std::map<std::int64_t, std::int64_t> held;
  for (auto i : split.val) ++held[labels[static_cast<std::size_t>(i)]];
  for (auto [c, n] : per_class) REQUIRE(held[c] == std::llround(0.2 * static_cast<double>(n)));
  REQUIRE(data::split_by_class(labels, 0.2, 11).val == split.val);
  REQUIRE(data::split_by_class(labels, 0.2, 12).val != split.val);
  REQUIRE(data::split_by_class(labels, 0.0).val.empty());
  CHECK_THROWS_WITH(data::split_by_class(labels, 1.0), Contains("val_fraction must be in [0, 1), got 1"));
  CHECK_THROWS_WITH(data::split_by_class(std::vector<std::int64_t>{0, -1}, 0.5), Contains("label -1 at index 1"));
}

TEST_CASE("FashionMNIST's val_fraction holds out a stratified part of the training images as a validation loader",
          "[data][fashion_mnist][real][split]") {
  const data::ImageSet all = data::load_fashion_mnist(data::default_root(), data::Split::Train, 2000);
  data::FashionMNIST fm(
      {.batch_size = 50, .augment = true, .limit = 2000, .val_fraction = 0.1, .test_limit = 300, .seed = 5});
  REQUIRE(fm.has_validation_split());
  const auto split = data::split_by_class(all.labels, 0.1, 5);
  REQUIRE(fm.train().num_samples() == static_cast<std::int64_t>(split.train.size()));
  REQUIRE(fm.validation().num_samples() == static_cast<std::int64_t>(split.val.size()));
  REQUIRE(split.val.size() >= 195);
  REQUIRE(split.val.size() <= 205);
  // The validation images are the held-out ones, pixel for pixel, loaded
  // like the test set: in order, never augmented.
  const auto& val = fm.validation().dataset();
  const std::int64_t plane = 28 * 28;
  for (std::size_t k = 0; k < split.val.size(); ++k) {
    const auto i = split.val[k];
    REQUIRE(val.labels[k] == all.labels[static_cast<std::size_t>(i)]);
    REQUIRE(std::equal(val.pixels.begin() + static_cast<std::int64_t>(k) * plane,
                       val.pixels.begin() + static_cast<std::int64_t>(k + 1) * plane, all.pixels.begin() + i * plane));
  }
  const auto& train = fm.train().dataset();
  for (std::size_t k = 0; k < split.train.size(); k += 97)
    REQUIRE(std::equal(train.pixels.begin() + static_cast<std::int64_t>(k) * plane,
                       train.pixels.begin() + static_cast<std::int64_t>(k + 1) * plane,
                       all.pixels.begin() + split.train[k] * plane));
  REQUIRE_FALSE(fm.validation().options().shuffle);
  REQUIRE(fm.validation().options().crop_padding == 0);
  REQUIRE(fm.test().num_samples() == 300);
  // Without val_fraction validation() is the test loader.
  data::FashionMNIST plain({.limit = 100, .test_limit = 50});
  REQUIRE_FALSE(plain.has_validation_split());
  REQUIRE(&plain.validation() == &plain.test());
  REQUIRE_THROWS_WITH(data::FashionMNIST({.val_fraction = 1.0}),
                      Contains("FashionMNIST: val_fraction 1 must be in [0, 1)"));
  REQUIRE_THROWS_WITH(data::FashionMNIST({.limit = 1, .val_fraction = 0.5}), Contains("holds out none"));
}
