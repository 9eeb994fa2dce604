// write_predict_case FIXTURES DIR — a Fashion-MNIST model whose answers are
// known, for the predict tests (tests/predict/check_predict.cmake):
//
//  - DIR/images/*.png: real Fashion-MNIST test images of three classes
//    (the golden fixtures), and DIR/unreadable.png, which is not a PNG;
//  - DIR/fashion.safetensors: a d2l_resnet18 (1 channel, 10 classes) saved
//    as train_fashion_mnist saves it (model and resize in the metadata),
//    with random convolutions and a classifier solved so that each image's
//    features map to its true class with logit 8 (every other logit 0);
//  - DIR/expected.txt: per image, its true class and the probability of
//    it, from the model run on the pixels / 255 here, independently of
//    predict's pipeline.
//
// write_predict_case --check DIR OUTPUT.json — predict's --json output
// (top-k 3 for the three images) parsed back: each image's first class is
// its true one, by name and index, with the expected probability to 1e-5
// relative, the probabilities decrease, and there are k of them.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "rescnn/data/fashion_mnist.hpp"
#include "rescnn/data/image_codecs.hpp"
#include "rescnn/io/json.hpp"
#include "rescnn/io/state_dict.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/nn/nn.hpp"
#include "support/random_batchnorm.hpp"

namespace rn = rescnn;
namespace fs = std::filesystem;

namespace {

int check(const fs::path& dir, const fs::path& output) {
  std::ifstream in(output);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto json = rn::io::json::parse(text);
  const auto& predictions = json.find("predictions")->as_array();
  std::ifstream expected(dir / "expected.txt");
  std::string image;
  int label = 0;
  double probability = 0;
  std::size_t i = 0;
  for (; expected >> image >> label >> probability; ++i) {
    const rn::io::json::Value* found = nullptr;
    for (const auto& p : predictions)
      if (p.find("image")->as_string().ends_with("/" + image)) found = &p;
    rn::check(found != nullptr, "predict printed no prediction for ", image);
    const auto& p = *found;
    const auto& top = p.find("top")->as_array();
    rn::check(top.size() == 3, image, ": ", top.size(), " classes listed, --top-k 3 asked for 3");
    const std::string name(rn::data::kFashionMnistClasses[static_cast<std::size_t>(label)]);
    rn::check(top[0].find("class")->as_string() == name && top[0].find("index")->as_int() == label, image,
              ": the top class is ", top[0].find("class")->as_string(), ", expected ", name);
    const double got = top[0].find("probability")->as_double();
    rn::check(std::abs(got - probability) <= 1e-5 * probability, image, ": probability ", got, ", expected ",
              probability, " (preprocessing differs from training's?)");
    for (std::size_t k = 1; k < top.size(); ++k)
      rn::check(top[k].find("probability")->as_double() <= top[k - 1].find("probability")->as_double(), image,
                ": probabilities are not in decreasing order");
    std::cout << image << ": " << name << " " << got << " (expected " << probability << ")\n";
  }
  rn::check(i == predictions.size() && i == 3, "predict printed ", predictions.size(), " predictions for ", i,
            " images");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--check") {
    try {
      return check(argv[2], argv[3]);
    } catch (const std::exception& e) {
      std::cerr << "write_predict_case --check: " << e.what() << "\n";
      return 1;
    }
  }
  if (argc != 3) {
    std::cerr << "usage: write_predict_case FIXTURES DIR | --check DIR OUTPUT.json\n";
    return 2;
  }
  try {
    const fs::path fixtures = fs::path(argv[1]) / "images" / "fashion", dir = argv[2];
    fs::create_directories(dir / "images");
    struct Sample {
      std::string folder, file;
      int label;
    };
    const std::vector<Sample> samples = {
        {"T-shirt_top", "0.png", 0}, {"Trouser", "1.png", 1}, {"Ankle_boot", "2.png", 9}};
    rn::Generator gen(19);
    auto model = rn::models::d2l_resnet18<float>(10, 1, gen);
    rn::testing::randomise_batchnorms(*model, gen, -0.3);
    model->eval();
    rn::nn::NoGradGuard no_grad;

    // Features: everything but the final Linear ("last.2").
    auto features = [&](const rn::Tensor<float>& x) {
      rn::Tensor<float> h = x.view();
      for (const auto& layer : model->layers()) {
        if (layer.get() != model->layers().back().get()) {
          h = layer->forward(h);
          continue;
        }
        auto& last = dynamic_cast<rn::nn::Sequential<float>&>(*layer);
        h = last.layers()[1]->forward(last.layers()[0]->forward(h));
      }
      return h.to_vector();
    };
    std::vector<rn::Tensor<float>> inputs;
    std::vector<std::vector<float>> f;
    for (const auto& s : samples) {
      const fs::path target = dir / "images" / (s.folder + "_" + s.file);
      fs::copy_file(fixtures / s.folder / s.file, target, fs::copy_options::overwrite_existing);
      const auto image = rn::data::read_image(target, {.channels = 1});
      std::vector<float> unit(image.pixels.begin(), image.pixels.end());
      for (float& v : unit) v /= 255.0f;
      inputs.push_back(rn::Tensor<float>::from_vector({1, 1, image.height, image.width}, unit));
      f.push_back(features(inputs.back()));
    }
    // W = 8 * E (F^T F)^-1 F^T, so that W f_j = 8 e_label(j); bias 0.
    double g[3][3], inv[3][3];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        g[i][j] = 0;
        for (std::size_t k = 0; k < f[0].size(); ++k) g[i][j] += static_cast<double>(f[i][k]) * f[j][k];
      }
    const double det = g[0][0] * (g[1][1] * g[2][2] - g[1][2] * g[2][1]) -
                       g[0][1] * (g[1][0] * g[2][2] - g[1][2] * g[2][0]) +
                       g[0][2] * (g[1][0] * g[2][1] - g[1][1] * g[2][0]);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        const int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
        inv[i][j] = (g[r0][c0] * g[r1][c1] - g[r0][c1] * g[r1][c0]) / det;
      }
    auto& fc = dynamic_cast<rn::nn::Linear<float>&>(
        *dynamic_cast<rn::nn::Sequential<float>&>(*model->layers().back()).layers()[2]);
    const std::size_t width = f[0].size();
    std::vector<float> w(10 * width, 0.0f);
    for (int j = 0; j < 3; ++j)
      for (std::size_t k = 0; k < width; ++k) {
        double coef = 0;  // ((F^T F)^-1 F^T)[j][k]
        for (int m = 0; m < 3; ++m) coef += inv[j][m] * f[m][k];
        w[static_cast<std::size_t>(samples[static_cast<std::size_t>(j)].label) * width + k] +=
            static_cast<float>(8 * coef);
      }
    fc.weight.value = rn::Tensor<float>::from_vector({10, static_cast<rn::index_t>(width)}, w);
    fc.bias.value = rn::Tensor<float>::zeros({10});

    auto weights = rn::io::state_dict(*model);
    weights.set_metadata("extra.model", "d2l_resnet18");
    weights.set_metadata("extra.resize", "0");
    weights.set_metadata("extra.normalize", "false");
    weights.save(dir / "fashion.safetensors");
    // A state dict of another model, for the error test.
    rn::io::save(*rn::models::resnet18<float>({.num_classes = 10}), dir / "resnet18.safetensors");
    std::ofstream(dir / "unreadable.png") << "not a PNG";

    std::ofstream expected(dir / "expected.txt");
    for (std::size_t i = 0; i < samples.size(); ++i) {
      const auto logits = model->forward(inputs[i]).to_vector();
      double sum = 0;
      for (float l : logits) sum += std::exp(static_cast<double>(l));
      const int label = samples[i].label;
      expected << samples[i].folder + "_" + samples[i].file << " " << label << " "
               << std::exp(static_cast<double>(logits[static_cast<std::size_t>(label)])) / sum << "\n";
    }
    std::cout << "wrote the predict case to " << dir << "\n";
  } catch (const std::exception& e) {
    std::cerr << "write_predict_case: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
