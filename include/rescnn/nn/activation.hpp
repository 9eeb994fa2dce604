// rescnn/nn/activation.hpp — ReLU.
#pragma once

#include "rescnn/nn/module.hpp"
#include "rescnn/ops/elementwise.hpp"

namespace rescnn::nn {

template <class T, class D = Cpu>
class ReLU : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;

  TensorT forward(const TensorT& x) override {
    TensorT y = ops::relu_forward(x);
    if (this->recording()) output_ = y.view();  // backward needs only the sign of the output
    return y;
  }

  TensorT backward(const TensorT& grad_output) override {
    this->require_forward(output_);
    TensorT dx = ops::relu_backward(output_, grad_output);
    output_ = TensorT();
    return dx;
  }

  Shape output_shape(const Shape& input) const override { return input; }
  std::string type_name() const override { return "ReLU"; }

 private:
  TensorT output_;
};

}  // namespace rescnn::nn
