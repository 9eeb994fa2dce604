// ONNX export (io/onnx.hpp, io/protobuf_wire.hpp): the wire encoding, the
// errors a user meets, and that a failed export loses no file. The exported
// files themselves are checked by onnx.checker, OpenCV and ONNX Runtime
// (tests/onnx/, the onnx:* tests).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

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

// A layer the exporter does not know (an identity, named as a real one).
class Tanh : public rn::nn::Module<float> {
 public:
  TensorT forward(const TensorT& x) override { return x.view(); }
  TensorT backward(const TensorT& g) override { return g.view(); }
  rn::Shape output_shape(const rn::Shape& s) const override { return s; }
  std::string type_name() const override { return "Tanh"; }
};

// A protobuf decoder for the test: a message as its fields, in order.
struct Field {
  int number = 0;
  int wire = 0;
  std::uint64_t varint = 0;  // wire types 0 and 5 (the float's bits)
  std::string bytes;         // wire type 2
  float as_float() const {
    float f;
    const auto bits = static_cast<std::uint32_t>(varint);
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

std::vector<Field> decode(std::string_view b) {
  std::vector<Field> out;
  std::size_t pos = 0;
  const auto varint = [&] {
    std::uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      REQUIRE(pos < b.size());
      const auto byte = static_cast<std::uint8_t>(b[pos++]);
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
  };
  while (pos < b.size()) {
    const std::uint64_t key = varint();
    Field f;
    f.number = static_cast<int>(key >> 3);
    f.wire = static_cast<int>(key & 7);
    if (f.wire == 0) {
      f.varint = varint();
    } else if (f.wire == 5) {
      REQUIRE(pos + 4 <= b.size());
      std::uint32_t bits;
      std::memcpy(&bits, b.data() + pos, 4);
      f.varint = bits;
      pos += 4;
    } else {
      REQUIRE(f.wire == 2);
      const auto n = static_cast<std::size_t>(varint());
      REQUIRE(pos + n <= b.size());
      f.bytes = std::string(b.substr(pos, n));
      pos += n;
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<Field> all(const std::vector<Field>& fields, int number) {
  std::vector<Field> out;
  for (const auto& f : fields)
    if (f.number == number) out.push_back(f);
  return out;
}
const Field& one(const std::vector<Field>& fields, int number) {
  const Field* found = nullptr;
  for (const auto& f : fields)
    if (f.number == number) found = &f;
  REQUIRE(found != nullptr);
  return *found;
}
std::vector<std::string> strings(const std::vector<Field>& fields, int number) {
  std::vector<std::string> out;
  for (const auto& f : all(fields, number)) out.push_back(f.bytes);
  return out;
}

// One ONNX node: op type, inputs, output, and its attributes by name.
struct Node {
  std::string op;
  std::vector<std::string> inputs;
  std::string output;
  std::map<std::string, std::vector<Field>> attributes;
  std::vector<std::int64_t> ints(const std::string& name) const {
    std::vector<std::int64_t> out;
    for (const auto& f : all(attributes.at(name), 8)) out.push_back(static_cast<std::int64_t>(f.varint));
    return out;
  }
  std::int64_t integer(const std::string& name) const {
    return static_cast<std::int64_t>(one(attributes.at(name), 3).varint);
  }
  float real(const std::string& name) const { return one(attributes.at(name), 2).as_float(); }
};

// ModelProto -> (ir_version, opset, graph fields).
struct DecodedModel {
  std::int64_t ir_version = 0, opset = 0;
  std::vector<Field> graph;
  std::vector<Node> nodes;
};

DecodedModel decode_model(const std::string& bytes) {
  DecodedModel m;
  const auto model = decode(bytes);
  m.ir_version = static_cast<std::int64_t>(one(model, 1).varint);
  m.opset = static_cast<std::int64_t>(one(decode(one(model, 8).bytes), 2).varint);
  m.graph = decode(one(model, 7).bytes);
  for (const auto& n : all(m.graph, 1)) {
    const auto fields = decode(n.bytes);
    Node node{one(fields, 4).bytes, strings(fields, 1), one(fields, 2).bytes, {}};
    for (const auto& a : all(fields, 5)) {
      const auto attr = decode(a.bytes);
      node.attributes[one(attr, 1).bytes] = attr;
    }
    m.nodes.push_back(std::move(node));
  }
  return m;
}

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

TEST_CASE("Decoded, the export has each operator with its attributes and inputs in ONNX's order") {
  auto model = rn::models::resnext50_32x4d<float>({.num_classes = 7});
  const auto m = decode_model(rn::io::onnx_model_bytes(*model, {1, 3, 32, 32}));
  CHECK(m.ir_version == 7);
  CHECK(m.opset == 13);
  REQUIRE(m.nodes.size() > 5);

  const Node& stem = m.nodes[0];
  CHECK(stem.op == "Conv");
  CHECK(stem.inputs == std::vector<std::string>{"input", "conv1.weight"});
  CHECK(stem.ints("kernel_shape") == std::vector<std::int64_t>{7, 7});
  CHECK(stem.ints("strides") == std::vector<std::int64_t>{2, 2});
  CHECK(stem.ints("pads") == std::vector<std::int64_t>{3, 3, 3, 3});  // begins, then ends
  CHECK(stem.ints("dilations") == std::vector<std::int64_t>{1, 1});
  CHECK(stem.integer("group") == 1);

  const Node& bn = m.nodes[1];
  CHECK(bn.op == "BatchNormalization");
  CHECK(bn.inputs ==
        std::vector<std::string>{stem.output, "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"});
  CHECK(bn.real("epsilon") == 1e-5f);
  CHECK(bn.real("momentum") == 0.9f);  // ONNX's is the weight of the old value: 1 - PyTorch's
  CHECK(m.nodes[2].op == "Relu");
  CHECK(m.nodes[3].op == "MaxPool");
  CHECK(m.nodes[3].ints("pads") == std::vector<std::int64_t>{1, 1, 1, 1});
  CHECK(m.nodes[3].ints("kernel_shape") == std::vector<std::int64_t>{3, 3});

  // The first bottleneck's grouped 3x3, its Add of branch and projection, the head.
  const auto grouped =
      std::find_if(m.nodes.begin(), m.nodes.end(), [](const Node& n) { return n.output == "layer1.0.conv2.Conv"; });
  REQUIRE(grouped != m.nodes.end());
  CHECK(grouped->integer("group") == 32);
  CHECK(grouped->inputs[1] == "layer1.0.conv2.weight");
  const auto add = std::find_if(m.nodes.begin(), m.nodes.end(), [](const Node& n) { return n.op == "Add"; });
  REQUIRE(add != m.nodes.end());
  CHECK(add->inputs ==
        std::vector<std::string>{"layer1.0.bn3.BatchNormalization", "layer1.0.downsample.1.BatchNormalization"});
  CHECK(std::next(add)->op == "Relu");
  const Node& head = m.nodes.back();
  CHECK(head.op == "Gemm");
  CHECK(head.inputs[1] == "fc.weight");
  CHECK(head.inputs[2] == "fc.bias");
  CHECK(head.integer("transB") == 1);
  CHECK(head.output == "logits");
  CHECK(m.nodes[m.nodes.size() - 2].op == "Flatten");
  CHECK(m.nodes[m.nodes.size() - 3].op == "GlobalAveragePool");

  // Initializers: dims, float32, raw little-endian bytes equal to the weights.
  const Field* conv1 = nullptr;
  const auto initializers = all(m.graph, 5);
  for (const auto& f : initializers)
    if (one(decode(f.bytes), 8).bytes == "conv1.weight") conv1 = &f;
  REQUIRE(conv1 != nullptr);
  const auto tensor = decode(conv1->bytes);
  std::vector<std::int64_t> dims;
  for (const auto& d : all(tensor, 1)) dims.push_back(static_cast<std::int64_t>(d.varint));
  CHECK(dims == std::vector<std::int64_t>{64, 3, 7, 7});
  CHECK(one(tensor, 2).varint == 1);  // FLOAT
  const std::string& raw = one(tensor, 9).bytes;
  const auto weights = model->named_parameters().front().second->value.to_vector();
  REQUIRE(raw.size() == weights.size() * 4);
  CHECK(std::memcmp(raw.data(), weights.data(), raw.size()) == 0);

  // The input and output: float, batch dimension named, the rest fixed.
  const auto input = decode(one(m.graph, 11).bytes);
  CHECK(one(input, 1).bytes == "input");
  const auto tensor_type = decode(one(decode(one(input, 2).bytes), 1).bytes);
  CHECK(one(tensor_type, 1).varint == 1);
  const auto dims_in = all(decode(one(tensor_type, 2).bytes), 1);
  REQUIRE(dims_in.size() == 4);
  CHECK(one(decode(dims_in[0].bytes), 2).bytes == "batch");
  CHECK(one(decode(dims_in[1].bytes), 1).varint == 3);
  CHECK(one(decode(dims_in[3].bytes), 1).varint == 32);
  const auto output = decode(one(m.graph, 12).bytes);
  CHECK(one(output, 1).bytes == "logits");
}

TEST_CASE("Names stay unique and a lone layer's weights keep their state-dict names") {
  // An output name that a node would otherwise take.
  auto model = rn::models::resnet18<float>({.num_classes = 3});
  const auto m = decode_model(rn::io::onnx_model_bytes(*model, {1, 3, 32, 32}, {.output_name = "fc.Gemm"}));
  std::set<std::string> outputs;
  for (const auto& n : m.nodes) CHECK(outputs.insert(n.output).second);
  CHECK(m.nodes.back().output == "fc.Gemm");

  rn::nn::Conv2d<float> conv({.in_channels = 4, .out_channels = 2});
  const auto lone = decode_model(rn::io::onnx_model_bytes(conv, {1, 4, 5, 5}));
  CHECK(lone.nodes.size() == 1);
  CHECK(lone.nodes[0].inputs == std::vector<std::string>{"input", "weight", "bias"});
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
