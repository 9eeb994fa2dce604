// rescnn/data/image_folder.hpp — a folder of images as a classification data
// set, with torchvision's ImageFolder layout and conventions. Link
// rescnn::images.
//
//   root/cat/001.jpg          rn::data::ImageFolder train("root");
//   root/cat/sub/002.png      train.classes()       {"cat", "dog"}
//   root/dog/003.jpeg         train.class_to_idx()  {{"cat", 0}, {"dog", 1}}
//                             train.samples()[i]    {path, label}
//
// As torchvision's: the classes are the sub-folders of root, sorted (so the
// label of a class is its rank); each class's images are found recursively,
// following symbolic links, ordered by folder and then by file name; the
// extensions are .png, .jpg and .jpeg in any case. Other files are ignored.
// A root without class folders, or a class folder without images, is an
// IoError naming them; a file that cannot be decoded is an IoError naming it
// when it is loaded, or, with skip_unreadable, is dropped when the folder is
// scanned (every file is decoded once then, on all cores) and counted in one
// warning.
//
// split_by_class holds out a seeded fraction of each class for validation
// (the same files for the same seed, whatever the machine).
#pragma once

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/core/rng.hpp"
#include "rescnn/data/image.hpp"
#include "rescnn/data/image_codecs.hpp"
#include "rescnn/data/loader.hpp"
#include "rescnn/data/split.hpp"

namespace rescnn::data {

struct ImageFolderOptions {
  DecodeOptions decode{};        // 3 channels (RGB) by default, as torchvision's loader
  bool skip_unreadable = false;  // decode every file at scan time; drop those that fail, with one warning
  std::ostream* warnings = &std::cerr;
};

inline bool is_image_file(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

class ImageFolder {
 public:
  struct Sample {
    std::filesystem::path path;
    std::int64_t label = 0;
  };

  explicit ImageFolder(const std::filesystem::path& root, ImageFolderOptions options = {})
      : root_(root), options_(std::move(options)) {
    namespace fs = std::filesystem;
    std::error_code ec;
    check<IoError>(fs::is_directory(root_, ec), "ImageFolder: '", root_.string(), "' is not a directory");
    try {
      for (const auto& entry : fs::directory_iterator(root_))
        if (entry.is_directory()) classes_.push_back(entry.path().filename().string());
      std::sort(classes_.begin(), classes_.end());
      check<IoError>(!classes_.empty(), "ImageFolder: '", root_.string(),
                     "' has no class folders (expected root/<class>/<image>.png|jpg|jpeg)");
      std::vector<std::string> empty;
      for (std::size_t c = 0; c < classes_.size(); ++c) {
        class_to_idx_[classes_[c]] = static_cast<std::int64_t>(c);
        const auto found = class_files(root_ / classes_[c]);
        if (found.empty()) empty.push_back(classes_[c]);
        for (const auto& path : found) samples_.push_back({path, static_cast<std::int64_t>(c)});
      }
      if (!empty.empty()) fail_empty(empty);
    } catch (const fs::filesystem_error& e) {
      throw IoError(rescnn::detail::concat("ImageFolder: cannot read '", root_.string(), "': ", e.what()));
    }
    if (options_.skip_unreadable) drop_unreadable();
  }

  const std::filesystem::path& root() const { return root_; }
  const std::vector<std::string>& classes() const { return classes_; }
  const std::map<std::string, std::int64_t>& class_to_idx() const { return class_to_idx_; }
  const std::vector<Sample>& samples() const { return samples_; }
  std::int64_t size() const { return static_cast<std::int64_t>(samples_.size()); }
  std::int64_t skipped() const { return skipped_; }
  const ImageFolderOptions& options() const { return options_; }

  // Sample i, decoded (an IoError naming the file if it cannot be).
  Image load(std::int64_t i) const {
    check<ValueError>(i >= 0 && i < size(), "ImageFolder::load: index ", i, " is out of range (", size(), " samples)");
    return read_image(samples_[static_cast<std::size_t>(i)].path, options_.decode);
  }

 private:
  // torchvision: os.walk(dir, followlinks=True) sorted by folder, then each
  // folder's file names sorted.
  static std::vector<std::filesystem::path> class_files(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::vector<std::pair<std::string, std::string>> found;  // (folder, name)
    for (const auto& entry : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
      if (entry.is_regular_file() && is_image_file(entry.path()))
        found.emplace_back(entry.path().parent_path().string(), entry.path().filename().string());
    std::sort(found.begin(), found.end());
    std::vector<fs::path> paths;
    for (const auto& [folder, name] : found) paths.push_back(fs::path(folder) / name);
    return paths;
  }

  [[noreturn]] void fail_empty(const std::vector<std::string>& empty) const {
    std::string list;
    for (const auto& c : empty) list += (list.empty() ? "'" : ", '") + c + "'";
    throw IoError(rescnn::detail::concat("ImageFolder: no .png, .jpg or .jpeg files in the class folder",
                                         empty.size() > 1 ? "s " : " ", list, " of '", root_.string(), "'"));
  }

  // Decodes every file once, on all cores; keeps those that decode.
  void drop_unreadable() {
    const std::size_t n = samples_.size();
    std::vector<std::string> errors(n);
    std::atomic<std::size_t> next{0};
    const auto work = [&] {
      for (std::size_t i; (i = next.fetch_add(1)) < n;) {
        try {
          read_image(samples_[i].path, options_.decode);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      }
    };
    const unsigned threads = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), 16));
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    std::vector<Sample> kept;
    std::string first;
    for (std::size_t i = 0; i < n; ++i) {
      if (errors[i].empty()) {
        kept.push_back(samples_[i]);
      } else {
        ++skipped_;
        if (first.empty()) first = errors[i];
      }
    }
    if (skipped_ > 0 && options_.warnings)
      *options_.warnings << "ImageFolder: skipped " << skipped_ << " of " << n << " files in '" << root_.string()
                         << "' that could not be decoded (the first: " << first << ")\n";
    std::vector<std::string> empty;
    for (std::size_t c = 0; c < classes_.size(); ++c)
      if (std::none_of(kept.begin(), kept.end(),
                       [&](const Sample& s) { return s.label == static_cast<std::int64_t>(c); }))
        empty.push_back(classes_[c]);
    if (!empty.empty()) fail_empty(empty);
    samples_ = std::move(kept);
  }

  std::filesystem::path root_;
  ImageFolderOptions options_;
  std::vector<std::string> classes_;
  std::map<std::string, std::int64_t> class_to_idx_;
  std::vector<Sample> samples_;
  std::int64_t skipped_ = 0;
};

// Sample indices of an ImageFolder, split into training and validation
// (data/split.hpp: a seeded fraction of each class).
using FolderSplit = IndexSplit;

inline FolderSplit split_by_class(const ImageFolder& folder, double val_fraction = 0.1, std::uint64_t seed = 0) {
  std::vector<std::int64_t> labels;
  labels.reserve(folder.samples().size());
  for (const auto& s : folder.samples()) labels.push_back(s.label);
  return split_by_class(std::span<const std::int64_t>(labels), val_fraction, seed);
}

}  // namespace rescnn::data
