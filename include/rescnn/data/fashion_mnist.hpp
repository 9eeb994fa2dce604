// rescnn/data/fashion_mnist.hpp — the Fashion-MNIST data set as an ImageSet.
//
// Fashion-MNIST (Xiao et al. 2017): 28x28 grey images of clothing in 10
// classes, 60000 for training and 10000 for testing, stored as four IDX files.
// Debian's `dataset-fashion-mnist` package installs them, gzipped, in
// /usr/share/datasets/fashion-mnist; `default_root()` points there unless the
// environment variable RESCNN_FASHION_MNIST names another directory.
#pragma once

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/data/idx.hpp"

namespace rescnn::data {

// d2l's names for the ten classes, by label.
inline constexpr std::array<std::string_view, 10> kFashionMnistClasses = {
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"};

// The training images' pixel mean and standard deviation on [0, 1], which
// train_fashion_mnist --normalize uses (and predict must use again).
inline constexpr float kFashionMnistMean = 0.2860f, kFashionMnistStd = 0.3530f;

// Grey images of one size with integer labels, kept as the file stores them
// (uint8, 0..255); the loader converts batches to float.
struct ImageSet {
  std::int64_t height = 0, width = 0;
  std::vector<std::uint8_t> pixels;  // N * height * width, image after image, row-major
  std::vector<std::int64_t> labels;  // N
  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
};

enum class Split { Train, Test };

inline const char* split_name(Split s) { return s == Split::Train ? "train" : "test"; }

// $RESCNN_FASHION_MNIST if set (and not empty), else where Debian's
// dataset-fashion-mnist package puts the files.
inline std::filesystem::path default_root() {
  const char* env = std::getenv("RESCNN_FASHION_MNIST");
  if (env && *env) return env;
  return "/usr/share/datasets/fashion-mnist";
}

namespace detail {

// `stem` in `root`, gzipped or not (the .gz name wins when both exist).
inline std::filesystem::path find_idx_file(const std::filesystem::path& root, const std::string& stem) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const fs::path& p : {root / (stem + ".gz"), root / stem})
    if (fs::exists(p, ec)) return p;
  const bool have_dir = fs::is_directory(root, ec);
  throw IoError("fashion-mnist: cannot find '" + stem + ".gz' or '" + stem + "' in " +
                (have_dir ? "the directory '" : "'") + root.string() + "'" +
                (have_dir ? "" : " (the directory does not exist)") +
                "; `apt-get install dataset-fashion-mnist` provides them in /usr/share/datasets/fashion-mnist, or "
                "pass another directory with --data DIR (the `root` argument, or the RESCNN_FASHION_MNIST "
                "environment variable)");
}

// Keeps the first n images of a set.
inline void keep_first(ImageSet& set, std::int64_t n) {
  set.labels.resize(static_cast<std::size_t>(n));
  set.pixels.resize(static_cast<std::size_t>(n * set.height * set.width));
  set.labels.shrink_to_fit();
  set.pixels.shrink_to_fit();
}

}  // namespace detail

// Loads one split from `root`. `limit` > 0 keeps only the first `limit`
// images (quick runs); it must not exceed the split's size.
inline ImageSet load_fashion_mnist(const std::filesystem::path& root, Split split, std::int64_t limit = 0) {
  check(limit >= 0, "load_fashion_mnist: limit ", limit, " is negative (0 keeps the whole ", split_name(split),
        " split)");
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  const auto image_file = detail::find_idx_file(root, prefix + "-images-idx3-ubyte");
  const auto label_file = detail::find_idx_file(root, prefix + "-labels-idx1-ubyte");
  IdxArray images = read_idx(image_file);
  IdxArray labels = read_idx(label_file);

  const std::string img = "fashion-mnist '" + image_file.string() + "': ";
  const std::string lab = "fashion-mnist '" + label_file.string() + "': ";
  check<IoError>(images.dims.size() == 3, img, "expected 3 dimensions (count, height, width), found ",
                 images.dims.size());
  check<IoError>(labels.dims.size() == 1, lab, "expected 1 dimension (count), found ", labels.dims.size());
  check<IoError>(images.dims[1] > 0 && images.dims[2] > 0, img, "images of size ", images.dims[1], "x", images.dims[2],
                 " are empty");
  check<IoError>(images.dims[0] == labels.dims[0], img, "holds ", images.dims[0], " images but '", label_file.string(),
                 "' holds ", labels.dims[0], " labels");
  for (std::size_t i = 0; i < labels.data.size(); ++i)
    check<IoError>(labels.data[i] <= 9, lab, "label ", unsigned{labels.data[i]}, " at index ", i, " is outside 0..9");

  ImageSet set;
  set.height = images.dims[1];
  set.width = images.dims[2];
  set.pixels = std::move(images.data);
  set.labels.assign(labels.data.begin(), labels.data.end());
  check(limit <= set.size(), "load_fashion_mnist: limit ", limit, " exceeds the ", set.size(), " images of the ",
        split_name(split), " split");
  if (limit > 0 && limit < set.size()) detail::keep_first(set, limit);
  return set;
}

}  // namespace rescnn::data
