// rescnn/nn/pooling.hpp — MaxPool2d, AvgPool2d, AdaptiveAvgPool2d.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "rescnn/nn/module.hpp"
#include "rescnn/ops/pooling.hpp"

namespace rescnn::nn {

// stride defaults to kernel_size, as in PyTorch; write `.stride = Size2{2, 1}`
// for an asymmetric stride.
struct MaxPool2dOptions {
  Size2 kernel_size{1};
  std::optional<Size2> stride{};
  Size2 padding{0};
  Size2 dilation{1};
};

struct AvgPool2dOptions {
  Size2 kernel_size{1};
  std::optional<Size2> stride{};
  Size2 padding{0};
  bool count_include_pad = true;
};

namespace detail {
// Validates window options at construction, naming the layer.
inline ops::Pool2dParams pool_params(const char* layer, Size2 kernel, const std::optional<Size2>& stride, Size2 padding,
                                     Size2 dilation) {
  const Size2 s = stride.value_or(kernel);
  check(kernel.h >= 1 && kernel.w >= 1, layer, ": kernel_size must be positive, got ", kernel);
  check(s.h >= 1 && s.w >= 1, layer, ": stride must be positive, got ", s);
  check(dilation.h >= 1 && dilation.w >= 1, layer, ": dilation must be positive, got ", dilation);
  check(padding.h >= 0 && padding.w >= 0 && 2 * padding.h <= kernel.h && 2 * padding.w <= kernel.w, layer, ": padding ",
        padding, " must be non-negative and at most half the kernel_size ", kernel);
  return {kernel, s, padding, dilation};
}

inline std::string pool_repr(const ops::Pool2dParams& p) {
  std::ostringstream os;
  os << "kernel_size=" << p.kernel << ", stride=" << p.stride << ", padding=" << p.padding;
  return os.str();
}
}  // namespace detail

template <class T, class D = Cpu>
class MaxPool2d : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;

  explicit MaxPool2d(const MaxPool2dOptions& o)
      : params_(detail::pool_params("MaxPool2d", o.kernel_size, o.stride, o.padding, o.dilation)) {}

  TensorT forward(const TensorT& x) override {
    Tensor<std::int32_t, D> argmax;
    TensorT y = ops::maxpool2d_forward(x, params_, argmax);
    if (this->recording()) {
      input_shape_ = x.shape();
      argmax_ = std::move(argmax);
    }
    return y;
  }

  TensorT backward(const TensorT& grad_output) override {
    this->require_forward(argmax_.defined());
    TensorT dx = ops::maxpool2d_backward(input_shape_, grad_output, params_, argmax_);
    argmax_ = {};
    return dx;
  }

  Shape output_shape(const Shape& input) const override {
    return ops::pool2d_geometry("MaxPool2d", input, params_).output_shape();
  }
  std::string type_name() const override { return "MaxPool2d"; }
  std::string extra_repr() const override {
    std::string s = detail::pool_repr(params_);
    if (params_.dilation != Size2(1)) s += ", dilation=" + rescnn::detail::concat(params_.dilation);
    return s;
  }

  const ops::Pool2dParams& params() const { return params_; }

 private:
  ops::Pool2dParams params_;
  Shape input_shape_;
  Tensor<std::int32_t, D> argmax_;  // position of each maximum, for backward
};

template <class T, class D = Cpu>
class AvgPool2d : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;

  explicit AvgPool2d(const AvgPool2dOptions& o)
      : params_(detail::pool_params("AvgPool2d", o.kernel_size, o.stride, o.padding, Size2(1))),
        count_include_pad_(o.count_include_pad) {}

  TensorT forward(const TensorT& x) override {
    TensorT y = ops::avgpool2d_forward(x, params_, count_include_pad_);
    if (this->recording()) input_shape_ = x.shape();
    return y;
  }

  TensorT backward(const TensorT& grad_output) override {
    this->require_forward(input_shape_.has_value());
    const Shape input_shape = *std::exchange(input_shape_, std::nullopt);
    return ops::avgpool2d_backward(input_shape, grad_output, params_, count_include_pad_);
  }

  Shape output_shape(const Shape& input) const override {
    return ops::pool2d_geometry("AvgPool2d", input, params_).output_shape();
  }
  std::string type_name() const override { return "AvgPool2d"; }
  std::string extra_repr() const override {
    return detail::pool_repr(params_) + (count_include_pad_ ? "" : ", count_include_pad=False");
  }

  const ops::Pool2dParams& params() const { return params_; }
  bool count_include_pad() const { return count_include_pad_; }

 private:
  ops::Pool2dParams params_;
  bool count_include_pad_;
  std::optional<Shape> input_shape_;  // set by a recorded forward
};

// Averages each of output_size bins; output_size 1 is global average pooling.
template <class T, class D = Cpu>
class AdaptiveAvgPool2d : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;

  explicit AdaptiveAvgPool2d(Size2 output_size = Size2(1)) : output_size_(output_size) {
    check(output_size.h >= 1 && output_size.w >= 1, "AdaptiveAvgPool2d: output_size must be positive, got ",
          output_size);
  }

  TensorT forward(const TensorT& x) override {
    TensorT y = ops::adaptive_avgpool2d_forward(x, output_size_);
    if (this->recording()) input_shape_ = x.shape();
    return y;
  }

  TensorT backward(const TensorT& grad_output) override {
    this->require_forward(input_shape_.has_value());
    const Shape input_shape = *std::exchange(input_shape_, std::nullopt);
    return ops::adaptive_avgpool2d_backward(input_shape, grad_output, output_size_);
  }

  Shape output_shape(const Shape& input) const override {
    return ops::adaptive_pool_geometry(input, output_size_).output_shape();
  }
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  std::string extra_repr() const override { return "output_size=" + rescnn::detail::concat(output_size_); }

  Size2 output_size() const { return output_size_; }

 private:
  Size2 output_size_;
  std::optional<Shape> input_shape_;  // set by a recorded forward
};

}  // namespace rescnn::nn
