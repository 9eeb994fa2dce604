// rescnn/nn/reshape.hpp — Flatten and Identity: layers that move no data.
#pragma once

#include <optional>
#include <utility>

#include "rescnn/nn/module.hpp"

namespace rescnn::nn {

// (N, d1, ..., dk) -> (N, d1 * ... * dk), a view (torch.nn.Flatten()).
template <class T, class D = Cpu>
class Flatten : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;

  TensorT forward(const TensorT& x) override {
    const Shape out = output_shape(x.shape());
    if (this->recording()) input_shape_ = x.shape();
    return x.reshape(out);
  }

  TensorT backward(const TensorT& grad_output) override {
    this->require_forward(input_shape_.has_value());
    return grad_output.reshape(*std::exchange(input_shape_, std::nullopt));
  }

  Shape output_shape(const Shape& input) const override {
    check<ShapeError>(input.rank() >= 1, "Flatten: expected input with a batch axis, got ", input);
    return {input[0], input[0] ? input.numel() / input[0] : 0};
  }
  std::string type_name() const override { return "Flatten"; }
  std::string extra_repr() const override { return "start_dim=1, end_dim=-1"; }

 private:
  std::optional<Shape> input_shape_;  // set by a recorded forward
};

template <class T, class D = Cpu>
class Identity : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;
  TensorT forward(const TensorT& x) override { return x.view(); }
  TensorT backward(const TensorT& grad_output) override { return grad_output.view(); }
  Shape output_shape(const Shape& input) const override { return input; }
  std::string type_name() const override { return "Identity"; }
};

}  // namespace rescnn::nn
