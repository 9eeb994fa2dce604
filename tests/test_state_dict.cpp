// State dicts: PyTorch-exported weights load and reproduce PyTorch's outputs;
// save/load round trips bit for bit; mismatched files are rejected whole.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "rescnn/io/state_dict.hpp"
#include "rescnn/models/models.hpp"
#include "support/compare.hpp"
#include "support/golden.hpp"
#include "support/temp_dir.hpp"

namespace rn = rescnn;
using rn::Tensor;
using rn::io::SafeTensors;
using rn::testing::IsClose;
using rn::testing::TempDir;

namespace {

// The architecture make_checkpoint_golden.py exports.
const rn::models::Arch kTinyArch{{1, 64}, {1, 32}, {2, 16}};

std::shared_ptr<rn::models::D2lResNet<float>> tiny_model() {
  return std::make_shared<rn::models::D2lResNet<float>>(kTinyArch, 10, 1);
}

// Every parameter, buffer and counter, bit for bit.
void require_same_state(rn::nn::Module<float>& a, rn::nn::Module<float>& b) {
  const SafeTensors sa = rn::io::state_dict(a), sb = rn::io::state_dict(b);
  REQUIRE(sa.names() == sb.names());
  for (const auto& name : sa.names()) {
    INFO(name);
    REQUIRE(sa.record(name).bytes == sb.record(name).bytes);
  }
}

}  // namespace

TEST_CASE("A state dict exported from PyTorch loads and gives PyTorch's outputs (golden)", "[state_dict][golden]") {
  const auto dir = rn::testing::golden_dir();
  const SafeTensors exported = SafeTensors::load(dir / "export__d2l_tiny.safetensors");
  const SafeTensors expected = SafeTensors::load(dir / "export__d2l_tiny_expected.safetensors");
  REQUIRE(exported.meta("format") == "pt");

  auto model = tiny_model();
  rn::io::load_state_dict(*model, exported);
  // The counters came across: three training steps in the exporter.
  auto* stem_bn = dynamic_cast<rn::nn::BatchNorm2d<float>*>(&dynamic_cast<rn::nn::Sequential<float>&>((*model)[0])[1]);
  REQUIRE(stem_bn != nullptr);
  REQUIRE(stem_bn->num_batches_tracked == 3);

  const auto x = expected.tensor<float>("input");
  {
    rn::nn::NoGradGuard no_grad;
    model->eval();
    REQUIRE_THAT(model->forward(x), IsClose(expected.tensor<float>("eval"), 1e-5));
    model->train();
    REQUIRE_THAT(model->forward(x), IsClose(expected.tensor<float>("train"), 1e-5));
  }
  std::size_t checked = 0;
  for (auto& [name, buffer] : model->named_buffers()) {
    INFO(name);
    REQUIRE_THAT(*buffer, IsClose(expected.tensor<float>("train." + name), 1e-5));
    ++checked;
  }
  REQUIRE(checked == 2 * 9);  // 9 BatchNorms: stem, 2 per block x 4 blocks
}

TEST_CASE("save then load round-trips weights, buffers and counters bit for bit", "[state_dict]") {
  TempDir tmp("rescnn_state_dict");
  rn::manual_seed(1);
  auto a = tiny_model();
  // Move the running statistics and counters away from their initial values.
  a->forward(Tensor<float>::uniform({4, 1, 28, 28}, 0, 1));
  a->forward(Tensor<float>::uniform({4, 1, 28, 28}, 0, 1));
  rn::io::save(*a, tmp / "w.safetensors");

  rn::manual_seed(2);
  auto b = tiny_model();
  rn::io::load(*b, tmp / "w.safetensors");
  require_same_state(*a, *b);

  const SafeTensors file = SafeTensors::load(tmp / "w.safetensors");
  REQUIRE(file.contains("0.1.num_batches_tracked"));
  REQUIRE(file.record("0.1.num_batches_tracked").dtype == rn::io::DType::I64);
  REQUIRE(file.record("0.1.num_batches_tracked").shape.empty());  // a scalar, as PyTorch writes it
  // Names are the model's (torchvision-style for the torchvision family).
  REQUIRE(file.contains("b2.0.conv1.weight"));
  REQUIRE(file.contains("last.2.bias"));

  // The eval outputs agree exactly too.
  rn::nn::NoGradGuard no_grad;
  a->eval();
  b->eval();
  const auto x = Tensor<float>::uniform({2, 1, 28, 28}, 0, 1);
  REQUIRE(a->forward(x).to_vector() == b->forward(x).to_vector());
}

TEST_CASE("torchvision models save under torchvision's state_dict names", "[state_dict]") {
  auto model = rn::models::resnet18<float>({.num_classes = 10, .in_channels = 1});
  const SafeTensors st = rn::io::state_dict(*model);
  for (const char* name : {"conv1.weight", "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.conv1.weight",
                           "layer2.0.downsample.0.weight", "layer2.0.downsample.1.num_batches_tracked", "fc.bias"})
    CHECK(st.contains(name));
  // torchvision resnet18's state_dict has 122 entries (62 parameters, 40
  // running statistics, 20 counters).
  REQUIRE(st.size() == 122);
}

TEST_CASE("A mismatched state dict is rejected and leaves the model unchanged", "[state_dict][errors]") {
  TempDir tmp("rescnn_state_dict");
  auto model = tiny_model();
  auto reference = tiny_model();
  rn::io::load_state_dict(*reference, rn::io::state_dict(*model));  // reference := model
  const auto unchanged = [&] { require_same_state(*model, *reference); };

  SECTION("a missing entry (strict)") {
    SafeTensors st = rn::io::state_dict(*tiny_model());
    st.erase("b3.0.conv2.weight");
    REQUIRE_THROWS_AS(rn::io::load_state_dict(*model, st), rn::IoError);
    REQUIRE_THROWS_WITH(rn::io::load_state_dict(*model, st), Catch::Contains("missing 1: 'b3.0.conv2.weight'"));
    unchanged();
    // Non-strict loading takes what is there.
    rn::io::load_state_dict(*model, st, {.strict = false});
  }
  SECTION("an unexpected entry (strict)") {
    SafeTensors st = rn::io::state_dict(*tiny_model());
    st.add("b9.extra.weight", Tensor<float>::zeros({3}));
    REQUIRE_THROWS_WITH(rn::io::load_state_dict(*model, st), Catch::Contains("unexpected 1: 'b9.extra.weight'"));
    unchanged();
  }
  SECTION("a different architecture: shapes named") {
    auto other = std::make_shared<rn::models::D2lResNet<float>>(rn::models::Arch{{1, 64}, {1, 32}, {2, 8}}, 10, 1);
    const SafeTensors st = rn::io::state_dict(*other);
    REQUIRE_THROWS_AS(rn::io::load_state_dict(*model, st), rn::ShapeError);
    REQUIRE_THROWS_WITH(rn::io::load_state_dict(*model, st),
                        Catch::Contains("'b4.0.conv1.bias' has shape (8,) in the file but (16,) in the model"));
    unchanged();
  }
  SECTION("a wrong dtype") {
    SafeTensors st = rn::io::state_dict(*tiny_model());
    st.erase("last.2.bias");
    st.add("last.2.bias", Tensor<std::int64_t>::zeros({10}));
    REQUIRE_THROWS_WITH(
        rn::io::load_state_dict(*model, st),
        Catch::Contains("'last.2.bias' has dtype I64 (a floating-point F32, F64, BF16 or F16 tensor is needed)"));
    unchanged();
  }
  SECTION("a float64 file converts, as torch's copy_ does") {
    SafeTensors st64;
    auto source = std::make_shared<rn::models::D2lResNet<double>>(kTinyArch, 10, 1);
    st64 = rn::io::state_dict(*source);
    rn::io::load_state_dict(*model, st64);
    const auto w64 = source->named_parameters().front().second->value.to_vector();
    const auto w32 = model->named_parameters().front().second->value.to_vector();
    REQUIRE(w32.size() == w64.size());
    for (std::size_t i = 0; i < w32.size(); ++i) REQUIRE(w32[i] == static_cast<float>(w64[i]));
  }
  SECTION("missing, corrupt and non-file paths") {
    REQUIRE_THROWS_WITH(rn::io::load(*model, tmp / "nope.safetensors"), Catch::Contains("no such file"));
    std::ofstream(tmp / "bad.safetensors") << "not a safetensors file";
    REQUIRE_THROWS_AS(rn::io::load(*model, tmp / "bad.safetensors"), rn::IoError);
    REQUIRE_THROWS_WITH(rn::io::load(*model, tmp.path), Catch::Contains("is a directory"));
    unchanged();
  }
}

TEST_CASE("A state dict saved as BF16 or F16 holds each value rounded and loads back into a float model",
          "[state_dict]") {
  TempDir tmp("rescnn_state_dict_half");
  rn::manual_seed(3);
  auto a = tiny_model();
  a->forward(Tensor<float>::uniform({4, 1, 28, 28}, 0, 1));  // running statistics away from 0 and 1
  for (const auto dtype : {rn::io::DType::BF16, rn::io::DType::F16}) {
    DYNAMIC_SECTION(rn::io::to_string(dtype)) {
      const auto path = tmp / "w.safetensors";
      rn::io::save(*a, path, {.dtype = dtype});
      const SafeTensors file = SafeTensors::load(path);
      CHECK(file.record("b2.0.conv1.weight").dtype == dtype);
      CHECK(file.record("0.1.running_var").dtype == dtype);
      CHECK(file.record("0.1.num_batches_tracked").dtype == rn::io::DType::I64);  // counters stay int64

      rn::manual_seed(4);
      auto b = tiny_model();
      rn::io::load(*b, path);
      const SafeTensors sa = rn::io::state_dict(*a), sb = rn::io::state_dict(*b);
      std::size_t values = 0, exact = 0;
      for (const auto& name : sa.names()) {
        if (sa.record(name).dtype != rn::io::DType::F32) continue;
        const auto va = sa.tensor<float>(name).to_vector(), vb = sb.tensor<float>(name).to_vector();
        for (std::size_t i = 0; i < va.size(); ++i) {
          const float want = dtype == rn::io::DType::BF16 ? rn::round_to_bf16(va[i])
                                                          : rn::half_bits_to_float(rn::float_to_half_bits(va[i]));
          INFO(name << "[" << i << "]: " << va[i] << " saved, " << vb[i] << " loaded, " << want << " expected");
          REQUIRE(vb[i] == want);
          ++values;
          exact += vb[i] == va[i];
        }
      }
      CHECK(values > 10000);
      CHECK(exact < values / 2);  // the file really was narrowed
    }
  }
}
