// write_onnx_cases DIR — exports the models the ONNX runtime tests run
// (tests/onnx/check_onnx.py, run_onnxruntime.js) and rescnn's own logits for
// them: DIR/cases.json lists, for each case, the .onnx file, the state-dict
// names its initializers must have, and for batch 1 and 3 the input and
// rescnn's logits as raw little-endian float32 files.
//
// The BatchNorms get trained-looking statistics (support/random_batchnorm.hpp),
// so a runtime that read running_mean as running_var, say, disagrees.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "rescnn/io/onnx.hpp"
#include "rescnn/io/state_dict.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/nn/nn.hpp"
#include "support/random_batchnorm.hpp"

namespace rn = rescnn;
namespace fs = std::filesystem;

namespace {

void write_floats(const fs::path& file, const std::vector<float>& v) {
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

std::string json_dims(const rn::Shape& s) {
  std::string out = "[";
  for (int i = 0; i < s.rank(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// One case: exports `model` for inputs (N, c, h, w) and runs it at batch 1 and 3.
std::string write_case(const fs::path& dir, const std::string& name, rn::nn::Module<float>& model, rn::Shape sample,
                       rn::Generator& gen) {
  model.eval();
  const fs::path onnx = dir / (name + ".onnx");
  rn::io::export_onnx(model, onnx, {1, sample[0], sample[1], sample[2]});
  std::string json = "  {\"name\": \"" + name + "\", \"onnx\": \"" + onnx.filename().string() + "\",\n";
  json += "   \"initializers\": [";
  bool first = true;
  for (const auto& key : rn::io::state_dict(model).names()) {
    if (key.ends_with("num_batches_tracked")) continue;  // no ONNX counterpart
    json += (first ? "\"" : ", \"") + key + "\"";
    first = false;
  }
  json += "],\n   \"runs\": [";
  rn::nn::NoGradGuard no_grad;
  for (const rn::index_t batch : {1, 3}) {
    const rn::Shape input{batch, sample[0], sample[1], sample[2]};
    const auto x = rn::Tensor<float>::uniform(input, -2, 2, gen);
    const auto y = model.forward(x);
    const std::string stem = name + ".b" + std::to_string(batch);
    write_floats(dir / (stem + ".input.bin"), x.to_vector());
    write_floats(dir / (stem + ".logits.bin"), y.to_vector());
    json += std::string(batch == 1 ? "" : ",\n            ") + "{\"batch\": " + std::to_string(batch) +
            ", \"input\": \"" + stem + ".input.bin\", \"input_shape\": " + json_dims(input) + ", \"logits\": \"" +
            stem + ".logits.bin\", \"logits_shape\": " + json_dims(y.shape()) + "}";
  }
  return json + "]}";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: write_onnx_cases DIR\n";
    return 2;
  }
  try {
    const fs::path dir = argv[1];
    fs::create_directories(dir);
    rn::Generator gen(2026);
    std::vector<std::string> cases;
    auto randomised = [&](std::shared_ptr<rn::nn::Module<float>> m) {
      rn::testing::randomise_batchnorms(*m, gen, /*min_log10_var=*/-0.3);
      return m;
    };
    cases.push_back(
        write_case(dir, "d2l_resnet18", *randomised(rn::models::d2l_resnet18<float>(10, 1)), {1, 28, 28}, gen));
    cases.push_back(write_case(dir, "resnet18", *randomised(rn::models::create<float>("resnet18", {.num_classes = 10})),
                               {3, 64, 64}, gen));
    cases.push_back(write_case(dir, "resnext50_32x4d",
                               *randomised(rn::models::create<float>("resnext50_32x4d", {.num_classes = 10})),
                               {3, 64, 64}, gen));
    auto folded = randomised(rn::models::create<float>("resnet50", {.num_classes = 5}));
    rn::nn::fuse_conv_bn(*folded);
    cases.push_back(write_case(dir, "resnet50_folded", *folded, {3, 48, 48}, gen));
    // The remaining modules: pre-activation and d2l ResNeXt blocks, average
    // pooling with and without padding counted, adaptive pooling to 2x2, a
    // Linear without bias.
    auto blocks = std::make_shared<rn::nn::Sequential<float>>();
    blocks->push_back(std::make_shared<rn::nn::PreActBlock<float>>(
        rn::nn::PreActBlockOptions{.in_channels = 4, .out_channels = 8, .stride = 2}));
    blocks->push_back(std::make_shared<rn::nn::PreActBlock<float>>(rn::nn::PreActBlockOptions{8, 8, 1}));
    blocks->push_back(std::make_shared<rn::nn::ResNeXtBlock<float>>(rn::nn::ResNeXtBlockOptions{
        .in_channels = 8, .num_channels = 16, .groups = 4, .bot_mul = 1, .use_1x1conv = true, .strides = 1}));
    blocks->push_back(std::make_shared<rn::nn::ResNeXtBlock<float>>(16, 4, 0.5));
    blocks->push_back(std::make_shared<rn::nn::AvgPool2d<float>>(
        rn::nn::AvgPool2dOptions{.kernel_size = 3, .stride = 1, .padding = 1, .count_include_pad = false}));
    blocks->push_back(std::make_shared<rn::nn::AvgPool2d<float>>(rn::nn::AvgPool2dOptions{.kernel_size = 2}));
    blocks->push_back(std::make_shared<rn::nn::AdaptiveAvgPool2d<float>>(rn::Size2(2)));
    blocks->push_back(std::make_shared<rn::nn::Flatten<float>>());
    blocks->push_back(std::make_shared<rn::nn::Linear<float>>(rn::nn::LinearOptions{64, 6, false}));
    cases.push_back(write_case(dir, "blocks", *randomised(blocks), {4, 16, 16}, gen));

    std::ofstream manifest(dir / "cases.json");
    manifest << "[\n";
    for (std::size_t i = 0; i < cases.size(); ++i) manifest << cases[i] << (i + 1 < cases.size() ? ",\n" : "\n");
    manifest << "]\n";
    if (!manifest) throw std::runtime_error("cannot write cases.json");
    std::cout << "wrote " << cases.size() << " ONNX cases to " << dir << "\n";
  } catch (const std::exception& e) {
    std::cerr << "write_onnx_cases: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
