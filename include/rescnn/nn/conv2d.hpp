// rescnn/nn/conv2d.hpp — Conv2d: strided, padded, dilated, grouped.
#pragma once

#include <cmath>
#include <vector>

#include "rescnn/nn/init.hpp"
#include "rescnn/nn/module.hpp"
#include "rescnn/ops/conv2d.hpp"

namespace rescnn::nn {

// Options in torch.nn.Conv2d's order and defaults:
//   Conv2d<float>({.in_channels = 3, .out_channels = 64, .kernel_size = 7,
//                  .stride = 2, .padding = 3, .bias = false})
struct Conv2dOptions {
  index_t in_channels = 0;
  index_t out_channels = 0;
  Size2 kernel_size{1};
  Size2 stride{1};
  Size2 padding{0};
  Size2 dilation{1};
  index_t groups = 1;  // number of groups, as in PyTorch (groups = in_channels is depthwise)
  bool bias = true;
};

inline void validate(const Conv2dOptions& o) {
  check(o.in_channels >= 1, "Conv2d: in_channels must be positive, got ", o.in_channels);
  check(o.out_channels >= 1, "Conv2d: out_channels must be positive, got ", o.out_channels);
  check(o.kernel_size.h >= 1 && o.kernel_size.w >= 1, "Conv2d: kernel_size must be positive, got ", o.kernel_size);
  check(o.stride.h >= 1 && o.stride.w >= 1, "Conv2d: stride must be positive, got ", o.stride);
  check(o.padding.h >= 0 && o.padding.w >= 0, "Conv2d: padding must be non-negative, got ", o.padding);
  check(o.dilation.h >= 1 && o.dilation.w >= 1, "Conv2d: dilation must be positive, got ", o.dilation);
  check(o.groups >= 1, "Conv2d: groups must be positive, got ", o.groups);
  check(o.in_channels % o.groups == 0, "Conv2d: in_channels=", o.in_channels, " is not divisible by groups=", o.groups);
  check(o.out_channels % o.groups == 0, "Conv2d: out_channels=", o.out_channels,
        " is not divisible by groups=", o.groups);
}

template <class T, class D = Cpu>
class Conv2d : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;

  Parameter<T, D> weight;  // (out_channels, in_channels / groups, kh, kw)
  Parameter<T, D> bias;    // (out_channels), undefined when options.bias is false

  // PyTorch's default initialisation (kaiming_uniform with a = sqrt(5) for the
  // weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias).
  explicit Conv2d(const Conv2dOptions& options, Generator& gen = default_generator()) : options_(options) {
    validate(options_);
    TensorT w = TensorT::empty({options_.out_channels, options_.in_channels / options_.groups, options_.kernel_size.h,
                                options_.kernel_size.w});
    init::kaiming_uniform_default_(w, gen);
    const double bound = 1.0 / std::sqrt(init::fans(w.shape()).in);
    weight.reset(std::move(w));
    this->register_parameter("weight", weight);
    if (options_.bias) {
      TensorT b = TensorT::empty({options_.out_channels});
      init::uniform_(b, -bound, bound, gen);
      bias.reset(std::move(b));
      this->register_parameter("bias", bias);
    }
  }

  const Conv2dOptions& options() const { return options_; }

  // Folds a per-output-channel affine map y -> y * scale[o] + shift[o] that
  // follows this convolution into it (fuse_conv_bn, for an eval-mode
  // BatchNorm): w[o] *= scale[o], b[o] = b[o] * scale[o] + shift[o]. A conv
  // without a bias gains one ("conv1.bias"). Computed in double.
  void fold_output_affine(const std::vector<double>& scale, const std::vector<double>& shift) {
    const auto channels = static_cast<std::size_t>(options_.out_channels);
    check(scale.size() == channels && shift.size() == channels, "Conv2d(", extra_repr(), ").fold_output_affine: got ",
          scale.size(), " scales and ", shift.size(), " shifts for ", channels, " output channels");
    std::vector<T> w = weight.value.to_vector();
    const std::size_t per_channel = w.size() / channels;
    for (std::size_t o = 0; o < channels; ++o)
      for (std::size_t k = 0; k < per_channel; ++k) {
        T& v = w[o * per_channel + k];
        v = static_cast<T>(static_cast<double>(v) * scale[o]);
      }
    std::vector<T> b = options_.bias ? bias.value.to_vector() : std::vector<T>(channels, T(0));
    for (std::size_t o = 0; o < channels; ++o) b[o] = static_cast<T>(static_cast<double>(b[o]) * scale[o] + shift[o]);
    weight.reset(TensorT::from_vector(weight.value.shape(), w));
    bias.reset(TensorT::from_vector({options_.out_channels}, b));
    if (!options_.bias) {
      options_.bias = true;
      bias.requires_grad = weight.requires_grad;
      this->register_parameter("bias", bias);
    }
  }

  TensorT forward(const TensorT& x) override {
    check_input(x.shape());
    TensorT y = ops::conv2d_forward(x, weight.value, bias_ptr(), params());
    if (this->recording()) input_ = x.view();
    return y;
  }

  TensorT backward(const TensorT& grad_output) override {
    this->require_forward(input_);
    const bool need_dw = weight.requires_grad || (options_.bias && bias.requires_grad);
    TensorT dx = ops::conv2d_backward(input_, weight.value, grad_output, params(), weight.grad,
                                      options_.bias ? &bias.grad : nullptr, this->input_grad_needed(), need_dw);
    input_ = TensorT();
    return dx;
  }

  Shape output_shape(const Shape& input) const override {
    check_input(input);
    return ops::conv2d_geometry(input, weight.value.shape(), params()).output_shape();
  }

  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override {
    std::ostringstream os;
    os << options_.in_channels << ", " << options_.out_channels << ", kernel_size=" << options_.kernel_size
       << ", stride=" << options_.stride;
    if (options_.padding != Size2(0)) os << ", padding=" << options_.padding;
    if (options_.dilation != Size2(1)) os << ", dilation=" << options_.dilation;
    if (options_.groups != 1) os << ", groups=" << options_.groups;
    if (!options_.bias) os << ", bias=False";
    return os.str();
  }

 private:
  ops::Conv2dParams params() const { return {options_.stride, options_.padding, options_.dilation, options_.groups}; }
  const TensorT* bias_ptr() const { return options_.bias ? &bias.value : nullptr; }
  void check_input(const Shape& x) const {
    check<ShapeError>(x.rank() == 4, "Conv2d: expected input of shape (N, C, H, W), got ", x);
    if (x[1] != options_.in_channels)
      fail<ShapeError>("Conv2d(", extra_repr(), "): input ", x, " has ", x[1],
                       " channels, expected in_channels=", options_.in_channels);
  }

  Conv2dOptions options_;
  TensorT input_;  // kept for backward
};

}  // namespace rescnn::nn
