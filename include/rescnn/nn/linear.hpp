// rescnn/nn/linear.hpp — Linear (fully connected) layer.
#pragma once

#include <cmath>

#include "rescnn/nn/init.hpp"
#include "rescnn/nn/module.hpp"
#include "rescnn/ops/linear.hpp"

namespace rescnn::nn {

struct LinearOptions {
  index_t in_features = 0;
  index_t out_features = 0;
  bool bias = true;
};

template <class T, class D = Cpu>
class Linear : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;

  Parameter<T, D> weight;  // (out_features, in_features)
  Parameter<T, D> bias;    // (out_features)

  // PyTorch's default initialisation: U(-1/sqrt(in), 1/sqrt(in)) for both.
  explicit Linear(const LinearOptions& o, Generator& gen = default_generator()) : options_(o) {
    check(o.in_features >= 1, "Linear: in_features must be positive, got ", o.in_features);
    check(o.out_features >= 1, "Linear: out_features must be positive, got ", o.out_features);
    const double bound = 1.0 / std::sqrt(static_cast<double>(o.in_features));
    weight.reset(TensorT::uniform({o.out_features, o.in_features}, -bound, bound, gen));
    this->register_parameter("weight", weight);
    if (o.bias) {
      bias.reset(TensorT::uniform({o.out_features}, -bound, bound, gen));
      this->register_parameter("bias", bias);
    }
  }
  Linear(index_t in_features, index_t out_features, bool with_bias = true)
      : Linear(LinearOptions{in_features, out_features, with_bias}) {}

  const LinearOptions& options() const { return options_; }

  TensorT forward(const TensorT& x) override {
    TensorT y = ops::linear_forward(x, weight.value, options_.bias ? &bias.value : nullptr);
    if (this->recording()) input_ = x.view();
    return y;
  }

  TensorT backward(const TensorT& grad_output) override {
    this->require_forward(input_);
    const bool need_dw = weight.requires_grad || (options_.bias && bias.requires_grad);
    TensorT dx = ops::linear_backward(input_, weight.value, grad_output, weight.grad,
                                      options_.bias ? &bias.grad : nullptr, this->input_grad_needed(), need_dw);
    input_ = TensorT();
    return dx;
  }

  Shape output_shape(const Shape& input) const override {
    check<ShapeError>(input.rank() == 2, "Linear: expected input of shape (N, in_features), got ", input);
    check<ShapeError>(input[1] == options_.in_features, "Linear: input ", input, " has ", input[1],
                      " features, expected in_features=", options_.in_features);
    return {input[0], options_.out_features};
  }

  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override {
    return rescnn::detail::concat("in_features=", options_.in_features, ", out_features=", options_.out_features,
                                  ", bias=", options_.bias ? "True" : "False");
  }

 private:
  LinearOptions options_;
  TensorT input_;
};

}  // namespace rescnn::nn
