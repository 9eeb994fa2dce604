// predict — classify images with a trained model: the top-k classes and
// their probabilities for each image.
//
//   predict --weights fashion.safetensors shirt.png boot.png      # a train_fashion_mnist checkpoint
//   predict --model resnet18 --weights photos.safetensors --classes classes.txt --top-k 3 cat.jpg
//   predict --weights fashion.safetensors --json *.png             # machine-readable
//
// The images go through the preprocessing the model was trained with:
//  - 1 input channel (train_fashion_mnist): the image in grey, scaled to
//    [0, 1], resized bilinearly to SIZExSIZE when it is not already (28, or
//    the checkpoint's --resize), and normalised when the checkpoint was
//    trained with --normalize. Fashion-MNIST's images are light garments on
//    black; a photo of a shirt on white needs inverting first.
//  - 3 input channels (train_images, torchvision weights): torchvision's
//    evaluation pipeline, Resize(SIZE / 0.875), CenterCrop(SIZE), ImageNet's
//    mean and std, with SIZE the checkpoint's --size (else 224).
// Class names: --classes FILE (one per line, in class-index order: for
// train_images, the sorted sub-folder names of --data), the Fashion-MNIST
// names for a train_fashion_mnist checkpoint, else "class N".
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include <rescnn/data/image_loader.hpp>
#include <rescnn/rescnn.hpp>

#include "trained_model.hpp"
#include "training_cli.hpp"

namespace rn = rescnn;

namespace {

struct Flags {
  std::string model, weights, classes;
  std::int64_t size = 0, top_k = 5;
  bool json = false;
  std::vector<std::string> images;
};

std::vector<std::string> read_class_names(const std::string& path, std::int64_t num_classes) {
  std::ifstream in(path);
  rn::check<rn::IoError>(in.is_open(), "--classes '", path, "': cannot open it (",
                         std::filesystem::exists(path) ? "not readable" : "no such file", ")");
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  rn::check<rn::ValueError>(static_cast<std::int64_t>(names.size()) == num_classes, "--classes '", path, "' names ",
                            names.size(), " classes, one per line; the model has ", num_classes);
  return names;
}

bool trained_on_fashion_mnist(const trained_model::TrainedModel& t) {
  return t.in_channels == 1 && t.num_classes == 10 && !t.setting("resize").empty();
}

std::vector<std::string> class_names(const Flags& f, const trained_model::TrainedModel& t) {
  if (!f.classes.empty()) return read_class_names(f.classes, t.num_classes);
  std::vector<std::string> names;
  if (trained_on_fashion_mnist(t))
    for (auto n : rn::data::kFashionMnistClasses) names.emplace_back(n);
  else
    for (std::int64_t i = 0; i < t.num_classes; ++i) names.push_back("class " + std::to_string(i));
  return names;
}

// The image as the model's input (1, C, size, size), preprocessed as in training.
rn::Tensor<float> preprocess(const std::string& path, const trained_model::TrainedModel& t, int size) {
  if (t.in_channels == 3) {
    rn::Generator unused;
    auto x = rn::data::eval_transform(size)(rn::data::read_image(path, {.channels = 3}), unused);
    return x.reshape({1, 3, size, size});
  }
  rn::check<rn::ValueError>(t.in_channels == 1, "predict: a model with ", t.in_channels,
                            " input channels has no preprocessing here (1: grey, 3: RGB)");
  const rn::data::Image image = rn::data::read_image(path, {.channels = 1});
  std::vector<float> unit(image.pixels.size());
  rn::data::to_unit_range(image.pixels.data(), unit.data(), static_cast<rn::index_t>(unit.size()));
  auto x = rn::Tensor<float>::empty({1, 1, size, size});
  if (image.height == size && image.width == size)
    std::copy(unit.begin(), unit.end(), x.data());
  else
    rn::data::resize_bilinear(unit.data(), image.height, image.width, x.data(), size, size, /*antialias=*/false);
  if (t.setting("normalize") == "true")
    rn::data::normalize(x.data(), x.numel(), rn::data::kFashionMnistMean, rn::data::kFashionMnistStd);
  return x;
}

std::vector<double> softmax(const std::vector<float>& logits) {
  const float top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (std::size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp(static_cast<double>(logits[i] - top));
  for (double& v : p) v /= sum;
  return p;
}

int run(const Flags& f) {
  const auto trained = trained_model::load(f.model, f.weights);
  const auto names = class_names(f, trained);
  const int size = static_cast<int>(f.size > 0 ? f.size : trained.trained_size());
  const auto k = static_cast<std::size_t>(std::min(f.top_k, trained.num_classes));
  rn::io::json::Array predictions;
  rn::nn::NoGradGuard no_grad;
  for (const std::string& path : f.images) {
    const auto logits = trained.model->forward(preprocess(path, trained, size)).to_vector();
    const auto p = softmax(logits);
    std::vector<std::size_t> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] > p[b]; });
    order.resize(k);
    if (f.json) {
      rn::io::json::Array top;
      for (std::size_t i : order)
        top.emplace_back(
            rn::io::json::Object{{"class", names[i]}, {"index", static_cast<std::int64_t>(i)}, {"probability", p[i]}});
      predictions.emplace_back(rn::io::json::Object{{"image", path}, {"top", std::move(top)}});
    } else {
      std::cout << path << "\n";
      for (std::size_t i : order)
        std::cout << "  " << std::fixed << std::setprecision(4) << p[i] << "  " << names[i] << "\n";
    }
  }
  if (f.json)
    std::cout << rn::io::json::dump(rn::io::json::Object{{"model", trained.name},
                                                         {"weights", f.weights},
                                                         {"size", static_cast<std::int64_t>(size)},
                                                         {"predictions", std::move(predictions)}})
              << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Classify images with a trained model: the top-k classes and their probabilities."};
  app.add_option("--model", f.model,
                 "Model: " + training_cli::joined(rn::models::model_names()) + " (default: the checkpoint's)")
      ->check(CLI::IsMember(rn::models::model_names()));
  app.add_option("--weights", f.weights, "A checkpoint of train_fashion_mnist or train_images, or a state dict")
      ->required();
  app.add_option("--classes", f.classes, "Class names, one per line in class-index order");
  app.add_option("--size", f.size, "Classify at SIZExSIZE (default: the checkpoint's, else 28 grey or 224 RGB)")
      ->check(CLI::Range(std::int64_t{8}, std::int64_t{4096}));
  app.add_option("--top-k", f.top_k, "How many classes to list per image")
      ->check(training_cli::integer_at_least(1))
      ->capture_default_str();
  app.add_flag("--json", f.json, "Print one JSON object instead of text");
  app.add_option("images", f.images, "Image files (PNG or JPEG)")->required();
  CLI11_PARSE(app, argc, argv);
  return training_cli::report_errors("predict", [&] { return run(f); });
}
