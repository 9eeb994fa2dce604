// rescnn/train/report.hpp — what a trained classifier gets right and wrong
// on a labelled set: every sample's prediction, the confusion matrix (as
// numbers, log lines and an SVG heat map) and a picture of the worst-
// classified images.
//
//   auto preds = rn::train::predict_samples(*model, data.test());
//   rn::train::ConfusionMatrix cm(preds, 10);
//   for (auto& line : rn::train::per_class_accuracy_lines(cm, names)) std::cout << line << "\n";
//   rn::train::write_confusion_svg(cm, names, "confusion.svg", "ResNet-18, Fashion-MNIST test");
//   rn::train::write_worst_images_svg(data.test().dataset(), preds, names, "worst.svg", {.count = 24});
//
// The pictures are self-contained SVG (the images embedded as PNG data), so
// a browser or a GitHub page shows them without anything beside them.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/data/fashion_mnist.hpp"
#include "rescnn/dist/process_group.hpp"
#include "rescnn/dist/sync_batchnorm.hpp"
#include "rescnn/io/atomic_write.hpp"
#include "rescnn/io/png_writer.hpp"
#include "rescnn/nn/module.hpp"
#include "rescnn/train/format.hpp"
#include "rescnn/train/plot.hpp"

namespace rescnn::train {

// One prediction per sample of a data set, by the sample's index in it.
struct SamplePredictions {
  std::vector<std::int64_t> label, predicted;
  std::vector<double> loss;        // cross-entropy of the sample: -log p(label)
  std::vector<double> confidence;  // p(predicted), the softmax of the logits
  std::int64_t size() const { return static_cast<std::int64_t>(label.size()); }
};

// Runs `model` in eval mode over `loader` (epoch 0, no gradients) and
// records each sample's prediction. With a process group each rank predicts
// its shard and the results are combined, so every rank returns the whole
// set's. Throws unless every sample of the loader's data set was seen once.
template <class T, class D, class Loader>
SamplePredictions predict_samples(nn::Module<T, D>& model, Loader& loader,
                                  const std::shared_ptr<dist::ProcessGroup>& group = nullptr) {
  const std::int64_t n = loader.num_samples();
  // Dense per-sample arrays, zero where this rank saw nothing, so that a
  // sum over the ranks merges the shards: seen, label, predicted, loss, confidence.
  std::vector<double> merged(static_cast<std::size_t>(5 * n), 0.0);
  const auto column = [&](int c) { return merged.data() + static_cast<std::size_t>(c) * static_cast<std::size_t>(n); };
  // Eval mode for the pass, the caller's mode again afterwards (exceptions included).
  struct ModeGuard {
    nn::Module<T, D>& m;
    bool was_training;
    ~ModeGuard() { m.train(was_training); }
  } mode_guard{model, model.is_training()};
  model.eval();
  {
    nn::NoGradGuard no_grad;
    loader.start_epoch(0);
    while (auto batch = loader.next()) {
      const auto logits = model.forward(batch->images.template to<D>()).template to<Cpu>();
      const std::int64_t rows = logits.dim(0), classes = logits.dim(1);
      check<ValueError>(static_cast<std::int64_t>(batch->samples.size()) == rows, "predict_samples: a batch of ", rows,
                        " images names ", batch->samples.size(), " samples (the loader must fill Batch::samples)");
      for (std::int64_t r = 0; r < rows; ++r) {
        const T* z = logits.data() + r * classes;
        const std::int64_t best = std::max_element(z, z + classes) - z;
        double sum = 0;  // softmax in double, shifted by the maximum
        for (std::int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(z[c] - z[best]));
        const std::int64_t label = batch->labels[r];
        check<ValueError>(label >= 0 && label < classes, "predict_samples: label ", label, " is outside the model's ",
                          classes, " classes");
        const std::int64_t sample = batch->samples[static_cast<std::size_t>(r)];
        check<ValueError>(sample >= 0 && sample < n, "predict_samples: sample index ", sample,
                          " is outside the loader's ", n, " samples");
        const auto i = static_cast<std::size_t>(sample);
        column(0)[i] += 1;
        column(1)[i] = static_cast<double>(label);
        column(2)[i] = static_cast<double>(best);
        column(3)[i] = std::log(sum) - static_cast<double>(z[label] - z[best]);
        column(4)[i] = 1.0 / sum;
      }
    }
  }
  if (group && group->size() > 1) dist::host_allreduce_sum<D>(group)(merged);
  SamplePredictions out;
  for (std::int64_t i = 0; i < n; ++i) {
    check<ValueError>(column(0)[i] == 1, "predict_samples: sample ", i, " was predicted ", column(0)[i],
                      " times (the loader, or its shards, must cover the data set once)");
    out.label.push_back(static_cast<std::int64_t>(column(1)[i]));
    out.predicted.push_back(static_cast<std::int64_t>(column(2)[i]));
    out.loss.push_back(column(3)[i]);
    out.confidence.push_back(column(4)[i]);
  }
  return out;
}

// counts(true class, predicted class) over a set of predictions.
class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(std::int64_t num_classes) : k_(num_classes) {
    check<ValueError>(num_classes >= 1, "ConfusionMatrix: num_classes must be >= 1, got ", num_classes);
    counts_.assign(static_cast<std::size_t>(k_ * k_), 0);
  }
  ConfusionMatrix(const SamplePredictions& p, std::int64_t num_classes) : ConfusionMatrix(num_classes) {
    for (std::int64_t i = 0; i < p.size(); ++i) add(p.label[i], p.predicted[i]);
  }

  void add(std::int64_t label, std::int64_t predicted) {
    check<ValueError>(label >= 0 && label < k_ && predicted >= 0 && predicted < k_, "ConfusionMatrix: (", label, ", ",
                      predicted, ") is outside the ", k_, " classes");
    ++counts_[static_cast<std::size_t>(label * k_ + predicted)];
  }

  std::int64_t num_classes() const { return k_; }
  std::int64_t count(std::int64_t label, std::int64_t predicted) const {
    return counts_.at(static_cast<std::size_t>(label * k_ + predicted));
  }
  std::int64_t class_total(std::int64_t label) const {
    std::int64_t n = 0;
    for (std::int64_t p = 0; p < k_; ++p) n += count(label, p);
    return n;
  }
  std::int64_t total() const { return std::accumulate(counts_.begin(), counts_.end(), std::int64_t{0}); }
  std::int64_t correct() const {
    std::int64_t n = 0;
    for (std::int64_t c = 0; c < k_; ++c) n += count(c, c);
    return n;
  }
  double accuracy() const { return static_cast<double>(correct()) / static_cast<double>(total()); }
  // The fraction of class `label` predicted as itself (its recall); NaN when
  // the set holds none of it.
  double class_accuracy(std::int64_t label) const {
    const std::int64_t n = class_total(label);
    return n == 0 ? std::numeric_limits<double>::quiet_NaN()
                  : static_cast<double>(count(label, label)) / static_cast<double>(n);
  }

 private:
  std::int64_t k_;
  std::vector<std::int64_t> counts_;
};

namespace detail {

inline void check_class_names(const ConfusionMatrix& cm, std::span<const std::string_view> names, const char* who) {
  check<ValueError>(static_cast<std::int64_t>(names.size()) == cm.num_classes(), who, ": ", names.size(),
                    " class names for ", cm.num_classes(), " classes");
}

}  // namespace detail

// One log line per class, in label order:
//   class=coat correct=912 total=1000 acc=0.9120
inline std::vector<std::string> per_class_accuracy_lines(const ConfusionMatrix& cm,
                                                         std::span<const std::string_view> names) {
  detail::check_class_names(cm, names, "per_class_accuracy_lines");
  std::vector<std::string> lines;
  for (std::int64_t c = 0; c < cm.num_classes(); ++c)
    lines.push_back("class=" + std::string(names[static_cast<std::size_t>(c)]) +
                    " correct=" + std::to_string(cm.count(c, c)) + " total=" + std::to_string(cm.class_total(c)) +
                    " acc=" + format_fixed(cm.class_accuracy(c), 4));
  return lines;
}

// The confusion matrix as an SVG heat map: true classes down, predicted
// across, each cell shaded by its share of the true class's row and showing
// its count; the diagonal's shares are each class's accuracy.
inline std::string render_confusion_svg(const ConfusionMatrix& cm, std::span<const std::string_view> names,
                                        std::string_view title = {}) {
  using detail::px;
  using detail::xml_escape;
  detail::check_class_names(cm, names, "render_confusion_svg");
  const auto k = static_cast<double>(cm.num_classes());
  const double cell = 48, left = 110, top = title.empty() ? 100 : 124, label_pad = 8;
  const double width = left + k * cell + 20, height = top + k * cell + 56;
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                  px(width) + "\" height=\"" + px(height) + "\" viewBox=\"0 0 " + px(width) + " " + px(height) +
                  "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
                  "fill=\"white\"/>\n";
  if (!title.empty())
    s += "<text x=\"" + px(width / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" + xml_escape(title) +
         "</text>\n";
  s += "<text x=\"" + px(left + k * cell / 2) + "\" y=\"" + px(top - 84) +
       "\" text-anchor=\"middle\" font-weight=\"bold\">predicted</text>\n";
  s += "<text x=\"14\" y=\"" + px(top + k * cell / 2) + "\" text-anchor=\"middle\" font-weight=\"bold\" " +
       "transform=\"rotate(-90 14 " + px(top + k * cell / 2) + ")\">true</text>\n";
  for (std::int64_t c = 0; c < cm.num_classes(); ++c) {
    const std::string name = xml_escape(names[static_cast<std::size_t>(c)]);
    const double x = left + (static_cast<double>(c) + 0.5) * cell, y = top + (static_cast<double>(c) + 0.5) * cell;
    s += "<text class=\"true-label\" x=\"" + px(left - label_pad) + "\" y=\"" + px(y + 4) + "\" text-anchor=\"end\">" +
         name + "</text>\n";
    s += "<text class=\"predicted-label\" x=\"" + px(x) + "\" y=\"" + px(top - label_pad) +
         "\" transform=\"rotate(-45 " + px(x) + " " + px(top - label_pad) + ")\">" + name + "</text>\n";
  }
  for (std::int64_t r = 0; r < cm.num_classes(); ++r) {
    const double row_total = static_cast<double>(cm.class_total(r));
    for (std::int64_t c = 0; c < cm.num_classes(); ++c) {
      const std::int64_t n = cm.count(r, c);
      const double share = row_total > 0 ? static_cast<double>(n) / row_total : 0;
      // White to dark blue; the shade follows the square root of the share,
      // so that a few dozen confusions stand out beside a diagonal of 900.
      const double t = std::sqrt(share);
      const auto channel = [&](double from, double to) {
        return std::to_string(static_cast<int>(std::lround(from + (to - from) * t)));
      };
      const double x = left + static_cast<double>(c) * cell, y = top + static_cast<double>(r) * cell;
      s += "<rect class=\"cell\" data-true=\"" + std::to_string(r) + "\" data-predicted=\"" + std::to_string(c) +
           "\" data-count=\"" + std::to_string(n) + "\" x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(cell) +
           "\" height=\"" + px(cell) + "\" fill=\"rgb(" + channel(255, 8) + "," + channel(255, 48) + "," +
           channel(255, 107) + ")\" stroke=\"#ddd\"/>\n";
      s += "<text x=\"" + px(x + cell / 2) + "\" y=\"" + px(y + cell / 2 + 4) + "\" text-anchor=\"middle\" fill=\"" +
           (t > 0.6 ? "white" : "black") + "\">" + std::to_string(n) + "</text>\n";
    }
  }
  s += "<text x=\"" + px(left) + "\" y=\"" + px(top + k * cell + 30) + "\">" + std::to_string(cm.total()) +
       " images, accuracy " + format_fixed(cm.accuracy(), 4) + "; shade: share of the true class</text>\n</svg>\n";
  return s;
}

inline void write_confusion_svg(const ConfusionMatrix& cm, std::span<const std::string_view> names,
                                const std::filesystem::path& file, std::string_view title = {}) {
  const std::string text = render_confusion_svg(cm, names, title);
  io::detail::atomic_write(file, std::as_bytes(std::span(text.data(), text.size())));
}

// The `count` misclassified samples with the highest loss, worst first (ties
// by index); fewer when fewer are wrong.
inline std::vector<std::int64_t> worst_samples(const SamplePredictions& p, std::int64_t count) {
  check<ValueError>(count >= 0, "worst_samples: count ", count, " is negative");
  std::vector<std::int64_t> wrong;
  for (std::int64_t i = 0; i < p.size(); ++i)
    if (p.predicted[static_cast<std::size_t>(i)] != p.label[static_cast<std::size_t>(i)]) wrong.push_back(i);
  const auto worse = [&](std::int64_t a, std::int64_t b) {
    const double la = p.loss[static_cast<std::size_t>(a)], lb = p.loss[static_cast<std::size_t>(b)];
    return la != lb ? la > lb : a < b;
  };
  const auto keep = static_cast<std::size_t>(std::min<std::int64_t>(count, static_cast<std::int64_t>(wrong.size())));
  std::partial_sort(wrong.begin(), wrong.begin() + static_cast<std::ptrdiff_t>(keep), wrong.end(), worse);
  wrong.resize(keep);
  return wrong;
}

struct WorstImagesOptions {
  std::int64_t count = 24;  // images in the grid
  int columns = 6;
  int scale = 4;  // screen pixels per image pixel
  std::string title{};
};

// A grid of the worst-classified images of `set` (the data set the
// predictions were made on), each with its true and predicted class and the
// model's confidence in its wrong answer.
inline std::string render_worst_images_svg(const data::ImageSet& set, const SamplePredictions& p,
                                           std::span<const std::string_view> names,
                                           const WorstImagesOptions& options = {}) {
  using detail::px;
  using detail::xml_escape;
  check<ValueError>(set.size() == p.size(), "render_worst_images_svg: ", p.size(), " predictions for a set of ",
                    set.size(), " images");
  check<ValueError>(options.columns >= 1 && options.scale >= 1, "render_worst_images_svg: columns ", options.columns,
                    " and scale ", options.scale, " must be >= 1");
  const auto num_names = static_cast<std::int64_t>(names.size());
  const auto name_of = [&](std::int64_t c) {
    check<ValueError>(c >= 0 && c < num_names, "render_worst_images_svg: class ", c, " has no name (", num_names,
                      " names)");
    return xml_escape(names[static_cast<std::size_t>(c)]);
  };
  const std::vector<std::int64_t> worst = worst_samples(p, options.count);
  const double img_w = static_cast<double>(set.width * options.scale),
               img_h = static_cast<double>(set.height * options.scale);
  const double cell_w = std::max(img_w, 120.0) + 12, cell_h = img_h + 48, top = options.title.empty() ? 12 : 40;
  const auto rows = static_cast<std::int64_t>((worst.size() + options.columns - 1) / options.columns);
  const double width = cell_w * options.columns + 12,
               height = top + cell_h * static_cast<double>(std::max<std::int64_t>(rows, 1)) + 12;
  std::string s =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
      "xmlns:xlink=\"http://www.w3.org/1999/xlink\" width=\"" +
      px(width) + "\" height=\"" + px(height) + "\" viewBox=\"0 0 " + px(width) + " " + px(height) +
      "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n";
  if (!options.title.empty())
    s += "<text x=\"" + px(width / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" +
         xml_escape(options.title) + "</text>\n";
  if (worst.empty()) s += "<text x=\"12\" y=\"" + px(top + 20) + "\">every image is classified correctly</text>\n";
  const std::int64_t plane = set.height * set.width;
  for (std::size_t k = 0; k < worst.size(); ++k) {
    const std::int64_t i = worst[k];
    const double x = 12 + cell_w * static_cast<double>(k % static_cast<std::size_t>(options.columns));
    const double y = top + cell_h * static_cast<double>(k / static_cast<std::size_t>(options.columns));
    const std::string png = io::encode_png_gray(
        std::span(set.pixels.data() + i * plane, static_cast<std::size_t>(plane)), set.width, set.height);
    s += "<g class=\"worst\" data-index=\"" + std::to_string(i) + "\">\n<image x=\"" + px(x) + "\" y=\"" + px(y) +
         "\" width=\"" + px(img_w) + "\" height=\"" + px(img_h) +
         "\" style=\"image-rendering:pixelated\" xlink:href=\"data:image/png;base64," + io::base64(png) + "\"/>\n";
    s += "<text x=\"" + px(x) + "\" y=\"" + px(y + img_h + 14) +
         "\">true: " + name_of(p.label[static_cast<std::size_t>(i)]) + "</text>\n";
    s += "<text x=\"" + px(x) + "\" y=\"" + px(y + img_h + 28) +
         "\" fill=\"#b00\">predicted: " + name_of(p.predicted[static_cast<std::size_t>(i)]) + " (" +
         format_fixed(100 * p.confidence[static_cast<std::size_t>(i)], 0) + "%)</text>\n</g>\n";
  }
  s += "</svg>\n";
  return s;
}

inline void write_worst_images_svg(const data::ImageSet& set, const SamplePredictions& p,
                                   std::span<const std::string_view> names, const std::filesystem::path& file,
                                   const WorstImagesOptions& options = {}) {
  const std::string text = render_worst_images_svg(set, p, names, options);
  io::detail::atomic_write(file, std::as_bytes(std::span(text.data(), text.size())));
}

}  // namespace rescnn::train
