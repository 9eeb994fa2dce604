// rescnn/data/loader.hpp — DataLoader: batches of an ImageSet, prepared ahead.
//
//   DataLoader loader(set, {.batch_size = 128, .shuffle = true, .seed = 1});
//   for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     while (auto batch = loader.next()) train_step(batch->images, batch->labels);
//   }
//
// Each sample goes uint8 -> [0, 1] -> bilinear resize -> random crop ->
// random horizontal flip -> normalize -> random erasing, each step optional
// (see LoaderOptions);
// images come out as float (N, 1, H, W), labels as int64 (N).
//
// Determinism, so that a run resumed from a checkpoint is bit for bit the run
// that was not interrupted: the order of epoch e is a function of (seed, e)
// only, and the random augmentation of the sample at position i of epoch e is
// a function of (seed, e, i) only, each drawn from its own Generator. Nothing
// depends on thread timing, on how far ahead batches were prepared, or on
// which epochs were visited before.
//
// Threading: with prefetch > 0 one producer thread prepares up to `prefetch`
// batches ahead into a bounded queue while the caller computes. It is started
// by start_epoch and stopped (cancelled and joined) by the next start_epoch or
// the destructor, wherever the consumer is in the epoch. An exception in the
// producer is re-thrown by next() once the batches before it are consumed.
// The loader does its data work on that one thread and uses no OpenMP: the
// cores belong to the compute kernels. A DataLoader itself is used from one
// thread (like any container).
#pragma once

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
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
#include "rescnn/data/distributed_sampler.hpp"
#include "rescnn/data/fashion_mnist.hpp"
#include "rescnn/data/transforms.hpp"

namespace rescnn::data {

struct Batch {
  Tensor<float> images;               // (N, 1, H, W)
  Tensor<std::int64_t> labels;        // (N)
  std::int64_t index = 0;             // position of the batch in its epoch
  std::vector<std::int64_t> samples;  // each image's index in the data set
};

struct LoaderOptions {
  std::int64_t batch_size = 128;
  bool shuffle = false;
  bool drop_last = false;   // drop the last batch when it is smaller than batch_size
  std::uint64_t seed = 0;   // order and augmentation
  std::int64_t resize = 0;  // 0 = native size; otherwise a square output of this size (bilinear)
  bool antialias = false;   // antialiased resize when downscaling (torchvision >= 0.17 default)
  std::optional<std::pair<float, float>> normalize = std::nullopt;  // (mean, std), applied after scaling to [0, 1]
  std::int64_t crop_padding = 0;  // > 0: random crop with this zero padding (augmentation)
  bool horizontal_flip = false;   // flip with probability 0.5 (augmentation)
  // RandomErasing (augmentation), after normalize as in torchvision's usual
  // pipeline (ToTensor, Normalize, RandomErasing): unset, none.
  std::optional<RandomErasingOptions> random_erasing = std::nullopt;
  int prefetch = 2;  // batches prepared ahead on the background thread; 0 = synchronous
  // In a data-parallel job, the part of each epoch this rank loads
  // (data/distributed_sampler.hpp); batch_size is then the per-rank batch.
  Shard shard{};
};

namespace detail {

// splitmix64's finaliser: a bijective, well-mixed 64-bit hash.
inline std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Seeds of independent random streams: one per (seed, purpose, epoch, index).
inline constexpr std::uint64_t kShuffleStream = 0x53485546464c4531ULL;  // "SHUFFLE1"
inline constexpr std::uint64_t kAugmentStream = 0x4155474d454e5431ULL;  // "AUGMENT1"

inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream, std::uint64_t epoch,
                                 std::uint64_t index = 0) {
  return mix64(mix64(mix64(seed ^ stream) + epoch) + index);
}

inline void validate(const LoaderOptions& o) {
  check(o.batch_size >= 1, "DataLoader: batch_size ", o.batch_size, " must be at least 1");
  check(o.resize >= 0, "DataLoader: resize ", o.resize, " is negative (0 keeps the native size)");
  check(o.crop_padding >= 0, "DataLoader: crop_padding ", o.crop_padding, " is negative (0 disables the crop)");
  check(o.prefetch >= 0, "DataLoader: prefetch ", o.prefetch, " is negative (0 prepares batches synchronously)");
  if (o.normalize) {
    const auto [mean, std] = *o.normalize;
    check(std::isfinite(mean), "DataLoader: normalize mean ", mean, " is not finite");
    check(std::isfinite(std) && std > 0, "DataLoader: normalize std ", std, " must be positive and finite");
  }
  check_shard(o.shard.rank, o.shard.world);
  if (o.random_erasing) data::validate(*o.random_erasing);
}

}  // namespace detail

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const ImageSet> set, LoaderOptions options)
      : set_(std::move(set)), opt_(std::move(options)) {
    check(set_ != nullptr, "DataLoader: the image set is null");
    detail::validate(opt_);
    check(set_->height > 0 && set_->width > 0, "DataLoader: image size ", set_->height, "x", set_->width,
          " must be positive");
    const auto n = static_cast<std::uint64_t>(set_->size());
    check(set_->pixels.size() == n * static_cast<std::uint64_t>(set_->height * set_->width),
          "DataLoader: ", set_->pixels.size(), " pixels for ", n, " images of ", set_->height, "x", set_->width,
          " (expected ", n * static_cast<std::uint64_t>(set_->height * set_->width), ")");
    out_h_ = opt_.resize > 0 ? opt_.resize : set_->height;
    out_w_ = opt_.resize > 0 ? opt_.resize : set_->width;
    // Resizing to the same size is exactly the identity in PyTorch too.
    if (out_h_ != set_->height || out_w_ != set_->width)
      resize_.emplace(set_->height, set_->width, out_h_, out_w_, opt_.antialias);
    const Shard& sh = opt_.shard;
    batches_ = sh.mode == ShardMode::training
                   ? training_batch_ranges(set_->size(), opt_.batch_size, sh.world, sh.rank, opt_.drop_last)
                   : evaluation_batch_ranges(set_->size(), opt_.batch_size, sh.world, sh.rank, opt_.drop_last);
  }

  ~DataLoader() { stop(); }
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  std::int64_t num_samples() const { return set_->size(); }  // the whole set, every rank's shard included
  std::int64_t num_batches() const { return static_cast<std::int64_t>(batches_.size()); }  // this rank's, per epoch
  const Shard& shard() const { return opt_.shard; }
  const LoaderOptions& options() const { return opt_; }
  std::int64_t image_height() const { return out_h_; }  // after resize
  std::int64_t image_width() const { return out_w_; }
  const ImageSet& dataset() const { return *set_; }

  // (Re)starts iteration over epoch `epoch`, cancelling what is left of the
  // current one. Any order of epochs is allowed.
  void start_epoch(std::int64_t epoch) {
    check(epoch >= 0, "DataLoader::start_epoch: epoch ", epoch, " is negative");
    stop();
    started_ = false;  // until the epoch is fully set up (thread creation may throw)
    epoch_ = epoch;
    next_ = 0;
    failure_ = nullptr;
    queue_.clear();
    cancel_ = false;
    order_.resize(static_cast<std::size_t>(set_->size()));
    std::iota(order_.begin(), order_.end(), std::int64_t{0});
    if (opt_.shuffle) {  // Fisher-Yates, from a generator of (seed, epoch) only
      Generator gen(detail::stream_seed(opt_.seed, detail::kShuffleStream, static_cast<std::uint64_t>(epoch)));
      for (std::size_t i = order_.size(); i > 1; --i)
        std::swap(order_[i - 1], order_[static_cast<std::size_t>(gen.uniform_int(i))]);
    }
    // The thread starts after order_ is final and is joined before it
    // changes again, so it reads order_ without a lock.
    started_ = true;
    if (opt_.prefetch > 0 && num_batches() > 0) {
      try {
        producer_ = std::thread([this] { produce(); });
      } catch (...) {
        started_ = false;
        throw;
      }
    }
  }

  // The order of the current epoch: position -> sample index.
  const std::vector<std::int64_t>& order() const { return order_; }

  // The next batch of the epoch, or nullopt after the last one.
  std::optional<Batch> next() {
    check<Error>(started_, "DataLoader::next: no epoch started; call start_epoch(epoch) first");
    if (next_ >= num_batches()) return std::nullopt;
    if (opt_.prefetch == 0) {
      Batch b = make_batch(next_);
      ++next_;
      return b;
    }
    std::unique_lock lock(mutex_);
    items_.wait(lock, [&] { return !queue_.empty() || failure_; });
    if (queue_.empty()) std::rethrow_exception(failure_);  // the producer failed at this batch
    Batch b = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    space_.notify_one();
    ++next_;
    return b;
  }

  // Prepares batch `b` of the current epoch (what next() returns for it).
  // A pure function of the options, the data, (seed, epoch) and b.
  Batch make_batch(std::int64_t b) const {
    check(started_, "DataLoader::make_batch: no epoch started");
    check(b >= 0 && b < num_batches(), "DataLoader::make_batch: batch ", b, " is outside 0..", num_batches() - 1);
    const std::int64_t first = batches_[static_cast<std::size_t>(b)].begin;
    const std::int64_t n = batches_[static_cast<std::size_t>(b)].size();
    const std::int64_t in_plane = set_->height * set_->width, out_plane = out_h_ * out_w_;
    Batch batch;
    batch.index = b;
    batch.images = Tensor<float>::empty({n, 1, out_h_, out_w_});
    batch.labels = Tensor<std::int64_t>::empty({n});
    batch.samples.resize(static_cast<std::size_t>(n));
    std::vector<float> unit(static_cast<std::size_t>(in_plane)), crop, scratch;
    if (opt_.crop_padding > 0) crop.resize(static_cast<std::size_t>(out_plane));
    for (std::int64_t k = 0; k < n; ++k) {
      const std::int64_t pos = first + k;
      const std::int64_t sample = order_[static_cast<std::size_t>(pos)];
      float* out = batch.images.data() + k * out_plane;
      batch.labels[k] = set_->labels[static_cast<std::size_t>(sample)];
      batch.samples[static_cast<std::size_t>(k)] = sample;
      const std::uint8_t* px = set_->pixels.data() + sample * in_plane;
      if (resize_) {
        to_unit_range(px, unit.data(), in_plane);
        (*resize_)(unit.data(), out, scratch);
      } else {
        to_unit_range(px, out, in_plane);
      }
      // Every random draw of a sample comes from one generator of (seed,
      // epoch, position), in a fixed order: crop, flip, erasing.
      std::optional<Generator> gen;
      if (opt_.crop_padding > 0 || opt_.horizontal_flip || opt_.random_erasing)
        gen.emplace(detail::stream_seed(opt_.seed, detail::kAugmentStream, static_cast<std::uint64_t>(epoch_),
                                        static_cast<std::uint64_t>(pos)));
      if (opt_.crop_padding > 0) {
        random_crop(out, out_h_, out_w_, crop.data(), opt_.crop_padding, *gen);
        std::copy(crop.begin(), crop.end(), out);
      }
      if (opt_.horizontal_flip && gen->uniform() < 0.5) horizontal_flip(out, out_h_, out_w_);
      if (opt_.normalize) normalize(out, out_plane, opt_.normalize->first, opt_.normalize->second);
      if (opt_.random_erasing)
        erase(out, out_w_, random_erasing_rect(out_h_, out_w_, *opt_.random_erasing, *gen), opt_.random_erasing->value);
    }
    return batch;
  }

 private:
  void produce() {
    try {
      for (std::int64_t b = 0; b < num_batches(); ++b) {
        {
          std::unique_lock lock(mutex_);
          space_.wait(lock, [&] { return cancel_ || queue_.size() < static_cast<std::size_t>(opt_.prefetch); });
          if (cancel_) return;
        }
        Batch batch = make_batch(b);  // the work, outside the lock
        {
          std::lock_guard lock(mutex_);
          if (cancel_) return;
          queue_.push_back(std::move(batch));
        }
        items_.notify_one();
      }
    } catch (...) {
      {
        std::lock_guard lock(mutex_);
        failure_ = std::current_exception();
      }
      items_.notify_one();
    }
  }

  // Cancels and joins the producer, wherever it is.
  void stop() {
    if (!producer_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      cancel_ = true;
    }
    space_.notify_all();
    producer_.join();
  }

  std::shared_ptr<const ImageSet> set_;
  LoaderOptions opt_;
  std::int64_t out_h_ = 0, out_w_ = 0;
  std::optional<BilinearResize> resize_;
  std::vector<PositionRange> batches_;  // of every epoch, as positions in its order

  // The current epoch; written only while no producer runs.
  bool started_ = false;
  std::int64_t epoch_ = 0;
  std::vector<std::int64_t> order_;
  std::int64_t next_ = 0;  // consumer side: the next batch next() returns

  // Shared with the producer, under mutex_.
  std::mutex mutex_;
  std::condition_variable items_, space_;
  std::deque<Batch> queue_;
  std::exception_ptr failure_;
  bool cancel_ = false;
  std::thread producer_;
};

}  // namespace rescnn::data
