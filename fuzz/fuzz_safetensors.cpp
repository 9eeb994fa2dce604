// libFuzzer harness: the safetensors reader and the checkpoint loader on
// arbitrary bytes.
//
// Parsing must end in a file or rescnn::IoError. A parsed file is then
// loaded as a training checkpoint into a small model and its optimizer;
// that may be refused with any rescnn::Error (names, shapes, dtypes or
// metadata that do not fit are the loader's documented errors), and a
// refused load must leave the model as it was. Anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "rescnn/io/checkpoint.hpp"
#include "rescnn/nn/nn.hpp"
#include "rescnn/optim/sgd.hpp"

namespace {

namespace rn = rescnn;

// A model with a convolution, a BatchNorm (buffers, an int64 counter) and
// a Linear layer: every kind of entry a checkpoint holds.
std::shared_ptr<rn::nn::Sequential<float>> small_model() {
  return std::make_shared<rn::nn::Sequential<float>>(std::make_shared<rn::nn::Conv2d<float>>(rn::nn::Conv2dOptions{
                                                         .in_channels = 1, .out_channels = 2, .kernel_size = 3}),
                                                     std::make_shared<rn::nn::BatchNorm2d<float>>(2),
                                                     std::make_shared<rn::nn::Flatten<float>>(),
                                                     std::make_shared<rn::nn::Linear<float>>(2, 3));
}

std::vector<float> snapshot(rn::nn::Module<float>& m) {
  std::vector<float> v;
  for (auto& [name, p] : m.named_parameters())
    for (float x : p->value.to_vector()) v.push_back(x);
  for (auto& [name, b] : m.named_buffers())
    for (float x : b->to_vector()) v.push_back(x);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::unique_ptr<rn::io::SafeTensors> file;
  try {
    file = std::make_unique<rn::io::SafeTensors>(
        rn::io::SafeTensors::parse(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz"));
  } catch (const rn::IoError&) {
    return 0;
  }
  static auto model = small_model();
  static rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  const auto before = snapshot(*model);
  try {
    rn::io::load_checkpoint(*file, *model, sgd);
  } catch (const rn::Error&) {
    const auto after = snapshot(*model);
    if (after.size() != before.size() || std::memcmp(after.data(), before.data(), after.size() * sizeof(float)) != 0)
      __builtin_trap();  // a refused checkpoint changed the model
  }
  return 0;
}
