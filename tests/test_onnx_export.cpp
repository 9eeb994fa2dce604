// ONNX export (io/onnx.hpp, io/protobuf_wire.hpp): the wire encoding, the
// errors a user meets, and that a failed export loses no file. The exported
// files themselves are checked by onnx.checker, OpenCV and ONNX Runtime
// (tests/onnx/, the onnx:* tests).
#include <catch2/catch.hpp>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "rescnn/io/onnx.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/nn/nn.hpp"
#include "support/temp_dir.hpp"

namespace rn = rescnn;
using rn::io::protobuf::Message;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A layer the exporter does not know.
class Tanh : public rn::nn::Module<float> {
 public:
  TensorT forward(const TensorT& x) override { return x.view(); }
  TensorT backward(const TensorT& g) override { return g.view(); }
  rn::Shape output_shape(const rn::Shape& s) const override { return s; }
  std::string type_name() const override { return "Tanh"; }
};

}  // namespace

TEST_CASE("The protobuf writer encodes varints, floats and length-delimited fields") {
  // protobuf.dev's examples: field 1 = 150 is 08 96 01; 300 is ac 02.
  CHECK(Message().add_int(1, 150).bytes() == std::string("\x08\x96\x01", 3));
  CHECK(Message().add_int(2, 300).bytes() == std::string("\x10\xac\x02", 3));
  CHECK(Message().add_int(1, 0).bytes() == std::string("\x08\x00", 2));
  // A negative int64 is its two's complement: ten bytes.
  CHECK(Message().add_int(1, -1).bytes() == std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11));
  CHECK(Message().add_string(2, "testing").bytes() == std::string("\x12\x07testing", 9));
  CHECK(Message().add_float(2, 1.0f).bytes() == std::string("\x15\x00\x00\x80\x3f", 5));
  // Field numbers above 15 take a two-byte key (AttributeProto.type is 20).
  CHECK(Message().add_int(20, 7).bytes() == std::string("\xa0\x01\x07", 3));
  Message inner;
  inner.add_int(1, 150);
  CHECK(Message().add_message(3, inner).bytes() == std::string("\x1a\x03\x08\x96\x01", 5));
}

TEST_CASE("An exported model names its initializers as its state dict and is deterministic") {
  auto model = rn::models::resnet18<float>({.num_classes = 10});
  const std::string bytes = rn::io::onnx_model_bytes(*model, {1, 3, 32, 32});
  for (const char* name : {"conv1.weight", "bn1.running_var", "layer2.0.downsample.1.running_mean", "fc.bias"})
    CHECK(bytes.find(name) != std::string::npos);
  for (const char* op : {"Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "GlobalAveragePool", "Flatten", "Gemm",
                         "logits", "batch"})
    CHECK(bytes.find(op) != std::string::npos);
  CHECK(rn::io::onnx_model_bytes(*model, {1, 3, 32, 32}) == bytes);
  // Every weight is stored once, as float32: the file is about 4 bytes per
  // parameter and buffer element.
  const auto elements = model->num_parameters() + model->num_buffer_elements();
  CHECK(bytes.size() > static_cast<std::size_t>(4 * elements));
  CHECK(bytes.size() < static_cast<std::size_t>(4 * elements + 100000));
}

TEST_CASE("A module that cannot be exported is named in the error") {
  rn::nn::Sequential<float> seq;
  seq.push_back("conv", std::make_shared<rn::nn::Conv2d<float>>(
                            rn::nn::Conv2dOptions{.in_channels = 1, .out_channels = 2, .kernel_size = 3}));
  seq.push_back("act", std::make_shared<Tanh>());
  CHECK_THROWS_AS(rn::io::onnx_model_bytes(seq, {1, 1, 8, 8}), rn::ValueError);
  CHECK_THROWS_WITH(rn::io::onnx_model_bytes(seq, {1, 1, 8, 8}),
                    Catch::Contains("'act' (Tanh) cannot be exported: the ONNX exporter does not know this module"));

  rn::nn::Sequential<float> batch_stats;
  batch_stats.push_back(std::make_shared<rn::nn::BatchNorm2d<float>>(
      rn::nn::BatchNorm2dOptions{.num_features = 1, .track_running_stats = false}));
  CHECK_THROWS_WITH(
      rn::io::onnx_model_bytes(batch_stats, {1, 1, 4, 4}),
      Catch::Contains("'0' (BatchNorm2d) cannot be exported") && Catch::Contains("track_running_stats=False"));

  rn::nn::Sequential<float> adaptive;
  adaptive.push_back(std::make_shared<rn::nn::AdaptiveAvgPool2d<float>>(rn::Size2(3)));
  CHECK_THROWS_WITH(rn::io::onnx_model_bytes(adaptive, {1, 1, 8, 8}),
                    Catch::Contains("'0' (AdaptiveAvgPool2d) cannot be exported") && Catch::Contains("8x8"));
  CHECK_NOTHROW(rn::io::onnx_model_bytes(adaptive, {1, 1, 9, 6}));
}

TEST_CASE("An input shape the model cannot take is a ShapeError") {
  auto model = rn::models::resnet18<float>({.num_classes = 10});
  CHECK_THROWS_AS(rn::io::onnx_model_bytes(*model, {3, 32, 32}), rn::ShapeError);
  CHECK_THROWS_WITH(rn::io::onnx_model_bytes(*model, {3, 32, 32}), Catch::Contains("(N, C, H, W)"));
  CHECK_THROWS_WITH(rn::io::onnx_model_bytes(*model, {1, 1, 32, 32}), Catch::Contains("expected in_channels=3"));
  CHECK_THROWS_WITH(rn::io::onnx_model_bytes(*model, {1, 3, 32, 32}, {.output_name = "input"}),
                    Catch::Contains("distinct"));
}

TEST_CASE("A failed export leaves the existing file as it was") {
  rn::testing::TempDir dir("rescnn_onnx");
  const auto file = dir / "model.onnx";
  { std::ofstream(file) << "the user's file"; }
  rn::nn::Sequential<float> seq;
  seq.push_back(std::make_shared<Tanh>());
  CHECK_THROWS_AS(rn::io::export_onnx(seq, file, {1, 1, 4, 4}), rn::ValueError);
  CHECK(read_file(file) == "the user's file");
  auto model = rn::models::d2l_resnet18<float>(10, 1);
  rn::io::export_onnx(*model, file, {1, 1, 28, 28});
  CHECK(read_file(file) == rn::io::onnx_model_bytes(*model, {1, 1, 28, 28}));
  CHECK_THROWS_AS(rn::io::export_onnx(*model, dir / "missing" / "model.onnx", {1, 1, 28, 28}), rn::IoError);
}
