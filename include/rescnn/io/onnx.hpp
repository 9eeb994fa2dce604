// rescnn/io/onnx.hpp — export a model to ONNX, for OpenCV's DNN module,
// ONNX Runtime, TensorRT and the other runtimes people deploy with.
//
//   model->eval();
//   rescnn::io::export_onnx(*model, "resnet18.onnx", {1, 3, 224, 224});
//
// What is written: an ONNX model of IR version 7, opset 13, whose graph has
// one input "input" (batch, C, H, W), float, with the batch dimension
// dynamic (dim_param "batch") and H, W those given, and one output "logits"
// (batch, classes). The weights are initializers named as in the state
// dict, which are torchvision's names ("layer1.0.conv1.weight",
// "layer1.0.bn1.running_mean"), stored as float32 whatever T is. (A
// BatchNorm2d with affine=False has no weight and bias; ONNX needs them, so
// they are written as ones and zeros under the names they would have.)
//
// The export describes eval mode (as torch.onnx.export's default): a
// BatchNorm2d becomes BatchNormalization with its running statistics, and
// one folded by fuse_conv_bn disappears. Layers map one to one: Conv2d to
// Conv, ReLU to Relu, MaxPool2d to MaxPool, AvgPool2d to AveragePool,
// AdaptiveAvgPool2d to GlobalAveragePool (or an AveragePool when the bins
// tile the input exactly), Flatten to Flatten, Linear to Gemm, and every
// residual block to its paths and an Add (and a Relu). A module the
// exporter does not know is an error naming it ("layer1.0.attention
// (SqueezeExcite) cannot be exported"), as is one without an ONNX
// equivalent for this input (a BatchNorm2d that normalises with batch
// statistics in eval mode).
//
// The protobuf is encoded here (io/protobuf_wire.hpp), not with libprotobuf
// and the ONNX schema: an exporter writes about a dozen message types and
// never reads one, which is a page of code, where libprotobuf would add a
// build dependency, protoc and generated code to a header-only library for
// every user, for a file format that changes only by adding fields. The
// files are checked by onnx.checker and run by OpenCV and ONNX Runtime in
// the test suite (tests/onnx/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/io/atomic_write.hpp"
#include "rescnn/io/protobuf_wire.hpp"
#include "rescnn/nn/activation.hpp"
#include "rescnn/nn/batchnorm2d.hpp"
#include "rescnn/nn/conv2d.hpp"
#include "rescnn/nn/linear.hpp"
#include "rescnn/nn/pooling.hpp"
#include "rescnn/nn/reshape.hpp"
#include "rescnn/nn/residual.hpp"
#include "rescnn/nn/sequential.hpp"

namespace rescnn::io {

struct OnnxExportOptions {
  std::string input_name = "input";
  std::string output_name = "logits";
  std::string batch_dim = "batch";  // the name of the dynamic batch dimension
  std::string graph_name = "rescnn";
};

inline constexpr std::int64_t kOnnxIrVersion = 7;  // the IR version of opset 13
inline constexpr std::int64_t kOnnxOpset = 13;

namespace onnx_detail {

using protobuf::Message;

// Field numbers of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto).
namespace field {
inline constexpr int kModelIrVersion = 1, kModelProducerName = 2, kModelGraph = 7, kModelOpsetImport = 8;
inline constexpr int kOpsetDomain = 1, kOpsetVersion = 2;
inline constexpr int kGraphNode = 1, kGraphName = 2, kGraphInitializer = 5, kGraphInput = 11, kGraphOutput = 12;
inline constexpr int kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kNodeOpType = 4, kNodeAttribute = 5;
inline constexpr int kAttrName = 1, kAttrFloat = 2, kAttrInt = 3, kAttrInts = 8, kAttrType = 20;
inline constexpr int kTensorDims = 1, kTensorDataType = 2, kTensorName = 8, kTensorRawData = 9;
inline constexpr int kValueInfoName = 1, kValueInfoType = 2;
inline constexpr int kTypeTensor = 1, kTensorTypeElemType = 1, kTensorTypeShape = 2;
inline constexpr int kShapeDim = 1, kDimValue = 1, kDimParam = 2;
}  // namespace field
inline constexpr std::int64_t kAttrTypeFloat = 1, kAttrTypeInt = 2, kAttrTypeInts = 7;
inline constexpr std::int64_t kElemFloat = 1;

struct Attribute {
  Message message;
  static Attribute integer(std::string_view name, std::int64_t v) {
    Attribute a;
    a.message.add_string(field::kAttrName, name).add_int(field::kAttrInt, v).add_int(field::kAttrType, kAttrTypeInt);
    return a;
  }
  static Attribute real(std::string_view name, float v) {
    Attribute a;
    a.message.add_string(field::kAttrName, name)
        .add_float(field::kAttrFloat, v)
        .add_int(field::kAttrType, kAttrTypeFloat);
    return a;
  }
  static Attribute integers(std::string_view name, std::initializer_list<std::int64_t> values) {
    Attribute a;
    a.message.add_string(field::kAttrName, name);
    for (std::int64_t v : values) a.message.add_int(field::kAttrInts, v);
    a.message.add_int(field::kAttrType, kAttrTypeInts);
    return a;
  }
  // A window's (h, w) setting: kernel_shape, strides, dilations.
  static Attribute hw(std::string_view name, Size2 s) { return integers(name, {s.h, s.w}); }
  // rescnn pads both sides alike; ONNX lists the begins, then the ends.
  static Attribute symmetric_pads(Size2 p) { return integers("pads", {p.h, p.w, p.h, p.w}); }
};

// Walks the computation of a model and writes its graph. Values are named
// after the module that computes them ("layer1.0.conv1"), made unique.
template <class T, class D>
class GraphWriter {
 public:
  using ModuleT = nn::Module<T, D>;

  GraphWriter(ModuleT& root, const OnnxExportOptions& options) : options_(options) {
    name_modules(root, "");
    value_names_.insert(options_.input_name);  // no node output may take the graph's names
    value_names_.insert(options_.output_name);
  }

  // Emits `m` applied to value `x` of shape `shape`; returns its output.
  std::string emit(ModuleT& m, const std::string& x, const Shape& shape) {
    const std::string name = module_name(m);
    // A tensor's state-dict name: "layer1.0.conv1.weight", or "weight" for
    // a lone layer exported as the model.
    const auto param = [&](const char* tensor) { return name.empty() ? std::string(tensor) : name + "." + tensor; };
    if (auto* block = dynamic_cast<nn::ResidualBlock<T, D>*>(&m)) return emit_block(*block, name, x, shape);
    if (auto* seq = dynamic_cast<nn::Sequential<T, D>*>(&m)) {
      std::string h = x;
      Shape s = shape;
      for (const auto& layer : seq->layers()) {
        h = emit(*layer, h, s);
        s = layer->output_shape(s);
      }
      return h;
    }
    if (auto* conv = dynamic_cast<nn::Conv2d<T, D>*>(&m)) {
      const nn::Conv2dOptions& o = conv->options();
      std::vector<std::string> inputs{x, initializer(param("weight"), conv->weight.value)};
      if (o.bias) inputs.push_back(initializer(param("bias"), conv->bias.value));
      return node("Conv", name, inputs,
                  {Attribute::hw("dilations", o.dilation), Attribute::integer("group", o.groups),
                   Attribute::hw("kernel_shape", o.kernel_size), Attribute::symmetric_pads(o.padding),
                   Attribute::hw("strides", o.stride)});
    }
    if (auto* bn = dynamic_cast<nn::BatchNorm2d<T, D>*>(&m)) {
      if (bn->folded()) return x;
      const nn::BatchNorm2dOptions& o = bn->options();
      if (!o.track_running_stats)
        unsupported(m, name, "it normalises with the batch's statistics in eval mode (track_running_stats=False)");
      const index_t c = o.num_features;
      const std::string scale = o.affine ? initializer(param("weight"), bn->weight.value)
                                         : initializer(param("weight"), Tensor<T, D>::ones({c}));
      const std::string bias =
          o.affine ? initializer(param("bias"), bn->bias.value) : initializer(param("bias"), Tensor<T, D>::zeros({c}));
      return node("BatchNormalization", name,
                  {x, scale, bias, initializer(param("running_mean"), bn->running_mean),
                   initializer(param("running_var"), bn->running_var)},
                  {Attribute::real("epsilon", static_cast<float>(o.eps)),
                   Attribute::real("momentum", static_cast<float>(1.0 - o.momentum))});
    }
    if (dynamic_cast<nn::ReLU<T, D>*>(&m)) return node("Relu", name, {x}, {});
    if (auto* pool = dynamic_cast<nn::MaxPool2d<T, D>*>(&m)) {
      const ops::Pool2dParams& p = pool->params();
      return node("MaxPool", name, {x},
                  {Attribute::hw("dilations", p.dilation), Attribute::hw("kernel_shape", p.kernel),
                   Attribute::symmetric_pads(p.padding), Attribute::hw("strides", p.stride)});
    }
    if (auto* pool = dynamic_cast<nn::AvgPool2d<T, D>*>(&m)) {
      const ops::Pool2dParams& p = pool->params();
      return node("AveragePool", name, {x},
                  {Attribute::integer("count_include_pad", pool->count_include_pad() ? 1 : 0),
                   Attribute::hw("kernel_shape", p.kernel), Attribute::symmetric_pads(p.padding),
                   Attribute::hw("strides", p.stride)});
    }
    if (auto* pool = dynamic_cast<nn::AdaptiveAvgPool2d<T, D>*>(&m)) {
      const Size2 out = pool->output_size();
      if (out == Size2(1)) return node("GlobalAveragePool", name, {x}, {});
      // Equal bins that tile the input are an ordinary average pool.
      if (shape[2] % out.h != 0 || shape[3] % out.w != 0)
        unsupported(m, name,
                    rescnn::detail::concat("its output size ", out, " does not divide the input's ", shape[2], "x",
                                           shape[3], " (ONNX has no adaptive pooling)"));
      const std::int64_t kh = shape[2] / out.h, kw = shape[3] / out.w;
      return node("AveragePool", name, {x},
                  {Attribute::integers("kernel_shape", {kh, kw}), Attribute::integers("strides", {kh, kw})});
    }
    if (dynamic_cast<nn::Flatten<T, D>*>(&m)) return node("Flatten", name, {x}, {Attribute::integer("axis", 1)});
    if (auto* fc = dynamic_cast<nn::Linear<T, D>*>(&m)) {
      std::vector<std::string> inputs{x, initializer(param("weight"), fc->weight.value)};
      if (fc->options().bias) inputs.push_back(initializer(param("bias"), fc->bias.value));
      return node("Gemm", name, inputs, {Attribute::integer("transB", 1)});
    }
    if (dynamic_cast<nn::Identity<T, D>*>(&m)) return x;
    unsupported(m, name, "the ONNX exporter does not know this module");
  }

  // The graph computing `last` from the input: the node that computes
  // `last` writes it under the output name (an Identity node is added when
  // the model computes nothing of its own).
  Message graph(const std::string& last, const Shape& input_shape, const Shape& output_shape) {
    if (nodes_.empty() || nodes_.back().output != last) node("Identity", "", {last}, {});
    nodes_.back().output = options_.output_name;
    Message g;
    for (const Node& n : nodes_) g.add_message(field::kGraphNode, n.message());
    g.add_string(field::kGraphName, options_.graph_name);
    for (const Message& t : initializers_) g.add_message(field::kGraphInitializer, t);
    std::vector<Message>().swap(initializers_);  // the weights now live in g: free the first copy
    g.add_message(field::kGraphInput, value_info(options_.input_name, input_shape));
    g.add_message(field::kGraphOutput, value_info(options_.output_name, output_shape));
    return g;
  }

 private:
  struct Node {
    std::string op, name;
    std::vector<std::string> inputs;
    std::string output;
    std::vector<Attribute> attributes;
    Message message() const {
      Message n;
      for (const auto& i : inputs) n.add_string(field::kNodeInput, i);
      n.add_string(field::kNodeOutput, output);
      n.add_string(field::kNodeName, name);
      n.add_string(field::kNodeOpType, op);
      for (const auto& a : attributes) n.add_message(field::kNodeAttribute, a.message);
      return n;
    }
  };

  std::string emit_block(nn::ResidualBlock<T, D>& block, const std::string& name, const std::string& x,
                         const Shape& shape) {
    std::string h = x;
    Shape hs = shape;
    if (block.pre().size()) {
      h = emit(block.pre(), x, shape);
      hs = block.pre().output_shape(shape);
    }
    const std::string branch = emit(block.branch(), h, hs);
    std::string shortcut = x;
    if (block.shortcut()) {
      const bool from_pre = block.shortcut_takes_pre_output();
      shortcut = emit(*block.shortcut(), from_pre ? h : x, from_pre ? hs : shape);
    }
    const std::string sum = node("Add", name, {branch, shortcut}, {});
    return block.post_relu() ? node("Relu", name, {sum}, {}) : sum;
  }

  // A float tensor value with a dynamic batch dimension.
  Message value_info(const std::string& value, const Shape& shape) const {
    Message dims;
    for (int i = 0; i < shape.rank(); ++i) {
      Message dim;
      if (i == 0)
        dim.add_string(field::kDimParam, options_.batch_dim);
      else
        dim.add_int(field::kDimValue, shape[i]);
      dims.add_message(field::kShapeDim, dim);
    }
    Message tensor_type;
    tensor_type.add_int(field::kTensorTypeElemType, kElemFloat).add_message(field::kTensorTypeShape, dims);
    Message type;
    type.add_message(field::kTypeTensor, tensor_type);
    Message info;
    info.add_string(field::kValueInfoName, value).add_message(field::kValueInfoType, type);
    return info;
  }

  [[noreturn]] void unsupported(const ModuleT& m, const std::string& name, const std::string& why) const {
    fail<ValueError>("export_onnx: ", name.empty() ? std::string("the model") : "'" + name + "'", " (", m.type_name(),
                     ") cannot be exported: ", why);
  }

  std::string module_name(const ModuleT& m) const {
    const auto it = names_.find(&m);
    return it == names_.end() ? std::string() : it->second;
  }

  void name_modules(ModuleT& m, const std::string& name) {
    names_.emplace(&m, name);
    for (const auto& [child_name, child] : m.named_children())
      name_modules(*child, name.empty() ? child_name : name + "." + child_name);
  }

  // A float32 initializer named `name` (once: a tensor used twice is stored once).
  std::string initializer(const std::string& name, const Tensor<T, D>& value) {
    if (!initializer_names_.emplace(name).second) return name;
    Message t;
    for (index_t d : value.shape()) t.add_int(field::kTensorDims, d);
    t.add_int(field::kTensorDataType, kElemFloat);
    t.add_string(field::kTensorName, name);
    const std::vector<T> host = value.to_vector();
    std::vector<float> f(host.size());
    for (std::size_t i = 0; i < host.size(); ++i) f[i] = static_cast<float>(host[i]);
    t.add_bytes(field::kTensorRawData,
                std::string_view(reinterpret_cast<const char*>(f.data()), f.size() * sizeof(float)));
    initializers_.push_back(std::move(t));
    return name;
  }

  std::string node(const std::string& op, const std::string& module, std::vector<std::string> inputs,
                   std::vector<Attribute> attributes) {
    const std::string base = (module.empty() ? op : module + "." + op);
    std::string output = base;
    for (int k = 1; !value_names_.emplace(output).second; ++k) output = base + "_" + std::to_string(k);
    nodes_.push_back({op, output, std::move(inputs), output, std::move(attributes)});
    return output;
  }

  OnnxExportOptions options_;
  std::map<const ModuleT*, std::string> names_;
  std::vector<Node> nodes_;
  std::vector<Message> initializers_;
  std::set<std::string> initializer_names_, value_names_;
};

}  // namespace onnx_detail

// The ONNX model of `model` (eval mode) for inputs of `input_shape` (N, C,
// H, W; N becomes the dynamic batch dimension), as the bytes of a .onnx file.
// Throws ShapeError when the model does not take such inputs, ValueError
// naming the first module that cannot be exported.
template <class T, class D>
std::string onnx_model_bytes(nn::Module<T, D>& model, const Shape& input_shape, const OnnxExportOptions& options = {}) {
  check<ShapeError>(input_shape.rank() == 4 && input_shape.numel() > 0,
                    "export_onnx: input_shape must be (N, C, H, W) with positive extents, got ", input_shape);
  check<ValueError>(!options.input_name.empty() && !options.output_name.empty() && !options.batch_dim.empty() &&
                        options.input_name != options.output_name,
                    "export_onnx: input_name, output_name and batch_dim must be non-empty and the names distinct");
  const Shape output_shape = model.output_shape(input_shape);
  onnx_detail::GraphWriter<T, D> writer(model, options);
  const std::string last = writer.emit(model, options.input_name, input_shape);
  namespace field = onnx_detail::field;
  protobuf::Message opset;
  opset.add_string(field::kOpsetDomain, "").add_int(field::kOpsetVersion, kOnnxOpset);
  protobuf::Message onnx_model;
  onnx_model.add_int(field::kModelIrVersion, kOnnxIrVersion)
      .add_string(field::kModelProducerName, "rescnn")
      .add_message(field::kModelGraph, writer.graph(last, input_shape, output_shape))
      .add_message(field::kModelOpsetImport, opset);
  return std::move(onnx_model).take();
}

// Writes onnx_model_bytes(model, input_shape) to `path`, atomically: a
// failed export leaves no partial file and an existing one intact.
template <class T, class D>
void export_onnx(nn::Module<T, D>& model, const std::filesystem::path& path, const Shape& input_shape,
                 const OnnxExportOptions& options = {}) {
  const std::string bytes = onnx_model_bytes(model, input_shape, options);
  detail::atomic_write(path, std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
}

}  // namespace rescnn::io
