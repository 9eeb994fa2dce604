// rescnn/data/image_loader.hpp — batches of an ImageFolder, decoded and
// transformed on a pool of background threads. Link rescnn::images.
//
//   auto folder = std::make_shared<const rn::data::ImageFolder>("photos");
//   auto split = rn::data::split_by_class(*folder, 0.1, 1);
//   rn::data::ImageFolderLoader train(folder, split.train, rn::data::train_transform(128),
//                                     {.batch_size = 64, .shuffle = true, .seed = 1});
//   rn::data::ImageFolderLoader val(folder, split.val, rn::data::eval_transform(128), {.batch_size = 64});
//
// The batches are data::Batch (loader.hpp): images (N, C, H, W) float,
// labels (N) int64, so a Trainer takes these loaders as it takes the
// Fashion-MNIST ones.
//
// Determinism, as DataLoader's: the order of epoch e is a function of
// (seed, e), and the transform of the sample at position i of epoch e gets a
// Generator of (seed, e, i) only, so the batches do not depend on the number
// of workers or on their timing, and a resumed run sees the same data.
//
// Threads: `workers` threads (default: all cores) each build whole batches,
// claimed in order, at most workers + prefetch batches ahead of the
// consumer; next() hands them out in order. A decoding or transform error is
// re-thrown by next() at that batch's turn, naming the file. start_epoch and
// the destructor cancel and join the workers wherever they are.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/core/rng.hpp"
#include "rescnn/core/tensor.hpp"
#include "rescnn/data/image_folder.hpp"
#include "rescnn/data/image_transforms.hpp"
#include "rescnn/data/loader.hpp"

namespace rescnn::data {

// One sample's transform: the decoded image and the sample's own generator
// to a CHW float tensor. Every sample of a loader must come out the same
// shape. It is called from several worker threads at once.
using ImageTransform = std::function<Tensor<float>(const Image&, Generator&)>;

// torchvision's training pipeline: RandomResizedCrop(size), a horizontal
// flip with p = 0.5, ToTensor and Normalize (ImageNet's by default).
inline ImageTransform train_transform(int size, std::optional<Normalize> normalize = Normalize::imagenet()) {
  return [size, normalize](const Image& image, Generator& gen) {
    auto t = to_tensor(RandomHorizontalFlip{}(RandomResizedCrop(size)(image, gen), gen));
    if (normalize) (*normalize)(t);
    return t;
  };
}

// torchvision's evaluation pipeline: Resize(size / 0.875) (256 for 224),
// CenterCrop(size), ToTensor and Normalize.
inline ImageTransform eval_transform(int size, std::optional<Normalize> normalize = Normalize::imagenet()) {
  return [size, normalize](const Image& image, Generator&) {
    auto t = to_tensor(CenterCrop(size)(Resize{static_cast<int>(size / 0.875)}(image)));
    if (normalize) (*normalize)(t);
    return t;
  };
}

struct ImageLoaderOptions {
  std::int64_t batch_size = 32;
  bool shuffle = false;
  bool drop_last = false;  // drop the last batch when it is smaller than batch_size
  std::uint64_t seed = 0;  // order and augmentation
  int workers = 0;         // decoding threads; 0: one per core
  int prefetch = 2;        // batches ready beyond one per worker
};

class ImageFolderLoader {
 public:
  // `indices`: the samples of `folder` to serve (e.g. FolderSplit::train);
  // empty serves them all.
  ImageFolderLoader(std::shared_ptr<const ImageFolder> folder, std::vector<std::int64_t> indices,
                    ImageTransform transform, ImageLoaderOptions options = {})
      : folder_(std::move(folder)), indices_(std::move(indices)), transform_(std::move(transform)), opt_(options) {
    check<ValueError>(folder_ != nullptr, "ImageFolderLoader: the folder is null");
    check<ValueError>(static_cast<bool>(transform_), "ImageFolderLoader: the transform is empty");
    check<ValueError>(opt_.batch_size >= 1, "ImageFolderLoader: batch_size ", opt_.batch_size, " must be at least 1");
    check<ValueError>(opt_.workers >= 0, "ImageFolderLoader: workers ", opt_.workers, " is negative (0: one per core)");
    check<ValueError>(opt_.prefetch >= 0, "ImageFolderLoader: prefetch ", opt_.prefetch, " is negative");
    if (indices_.empty()) {
      indices_.resize(static_cast<std::size_t>(folder_->size()));
      std::iota(indices_.begin(), indices_.end(), std::int64_t{0});
    }
    for (const auto i : indices_)
      check<ValueError>(i >= 0 && i < folder_->size(), "ImageFolderLoader: sample index ", i, " is out of range (",
                        folder_->size(), " samples)");
    const auto n = static_cast<std::int64_t>(indices_.size());
    num_batches_ = opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
    workers_ = opt_.workers > 0 ? opt_.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  ~ImageFolderLoader() { stop(); }
  ImageFolderLoader(const ImageFolderLoader&) = delete;
  ImageFolderLoader& operator=(const ImageFolderLoader&) = delete;

  std::int64_t num_samples() const { return static_cast<std::int64_t>(indices_.size()); }
  std::int64_t num_batches() const { return num_batches_; }
  const ImageFolder& folder() const { return *folder_; }
  const ImageLoaderOptions& options() const { return opt_; }

  void start_epoch(std::int64_t epoch) {
    check<ValueError>(epoch >= 0, "ImageFolderLoader::start_epoch: epoch ", epoch, " is negative");
    stop();
    epoch_ = epoch;
    order_ = indices_;
    if (opt_.shuffle) {  // Fisher-Yates, from a generator of (seed, epoch) only, as DataLoader
      Generator gen(detail::stream_seed(opt_.seed, detail::kShuffleStream, static_cast<std::uint64_t>(epoch)));
      for (std::size_t i = order_.size(); i > 1; --i)
        std::swap(order_[i - 1], order_[static_cast<std::size_t>(gen.uniform_int(i))]);
    }
    {
      std::lock_guard lock(mutex_);
      cancel_ = false;
      claimed_ = consumed_ = 0;
      ready_.clear();
    }
    started_ = true;
    const int threads = static_cast<int>(std::min<std::int64_t>(workers_, std::max<std::int64_t>(num_batches_, 1)));
    for (int t = 0; t < threads; ++t) pool_.emplace_back([this] { work(); });
  }

  // The next batch of the epoch, in order, or nullopt after the last one.
  std::optional<Batch> next() {
    check<ValueError>(started_, "ImageFolderLoader::next: call start_epoch first");
    std::unique_lock lock(mutex_);
    if (consumed_ >= num_batches_) return std::nullopt;
    const std::int64_t b = consumed_;
    ready_cv_.wait(lock, [&] { return ready_.count(b) > 0; });
    Slot slot = std::move(ready_.at(b));
    ready_.erase(b);
    ++consumed_;
    lock.unlock();
    claim_cv_.notify_all();
    if (slot.failure) std::rethrow_exception(slot.failure);
    return std::move(slot.batch);
  }

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr failure;
  };

  Batch make_batch(std::int64_t b) const {
    const std::int64_t first = b * opt_.batch_size;
    const std::int64_t count = std::min<std::int64_t>(opt_.batch_size, num_samples() - first);
    std::vector<Tensor<float>> images;
    std::vector<std::int64_t> labels, samples;
    for (std::int64_t k = 0; k < count; ++k) {
      if (cancel_.load()) return {};
      const std::int64_t position = first + k;
      const std::int64_t sample = order_[static_cast<std::size_t>(position)];
      const auto& s = folder_->samples()[static_cast<std::size_t>(sample)];
      Generator gen(detail::stream_seed(opt_.seed, detail::kAugmentStream, static_cast<std::uint64_t>(epoch_),
                                        static_cast<std::uint64_t>(position)));
      Tensor<float> t = transform_(folder_->load(sample), gen);
      check<ShapeError>(t.rank() == 3, "ImageFolderLoader: the transform of '", s.path.string(), "' gave shape ",
                        t.shape(), ", not CHW");
      check<ShapeError>(images.empty() || t.shape() == images.front().shape(), "ImageFolderLoader: the transform of '",
                        s.path.string(), "' gave shape ", t.shape(), ", the batch's first sample ",
                        images.empty() ? Shape{} : images.front().shape(),
                        " (the transform must give every image one size: crop or resize to a fixed size)");
      images.push_back(std::move(t));
      labels.push_back(s.label);
      samples.push_back(sample);
    }
    const Shape one = images.front().shape();
    auto batch_images = Tensor<float>::empty({count, one[0], one[1], one[2]});
    const index_t per = one.numel();
    for (std::int64_t k = 0; k < count; ++k)
      std::copy(images[static_cast<std::size_t>(k)].data(), images[static_cast<std::size_t>(k)].data() + per,
                batch_images.data() + k * per);
    return {std::move(batch_images), Tensor<std::int64_t>::from_vector({count}, labels), b, std::move(samples)};
  }

  void work() {
    const std::int64_t window = workers_ + opt_.prefetch;
    for (;;) {
      std::int64_t b;
      {
        std::unique_lock lock(mutex_);
        claim_cv_.wait(lock, [&] { return cancel_ || claimed_ >= num_batches_ || claimed_ < consumed_ + window; });
        if (cancel_ || claimed_ >= num_batches_) return;
        b = claimed_++;
      }
      Slot slot;
      try {
        slot.batch = make_batch(b);
      } catch (...) {
        slot.failure = std::current_exception();
      }
      {
        std::lock_guard lock(mutex_);
        ready_.emplace(b, std::move(slot));
      }
      ready_cv_.notify_all();
    }
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      cancel_ = true;
    }
    claim_cv_.notify_all();
    for (auto& t : pool_) t.join();
    pool_.clear();
    started_ = false;
  }

  std::shared_ptr<const ImageFolder> folder_;
  std::vector<std::int64_t> indices_, order_;
  ImageTransform transform_;
  ImageLoaderOptions opt_;
  std::int64_t num_batches_ = 0;
  int workers_ = 1;
  std::int64_t epoch_ = 0;
  bool started_ = false;

  std::mutex mutex_;
  std::condition_variable claim_cv_, ready_cv_;
  std::atomic<bool> cancel_{false};
  std::int64_t claimed_ = 0, consumed_ = 0;
  std::map<std::int64_t, Slot> ready_;
  std::vector<std::thread> pool_;
};

}  // namespace rescnn::data
