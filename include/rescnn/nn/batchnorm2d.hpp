// rescnn/nn/batchnorm2d.hpp — BatchNorm2d with PyTorch's defaults and
// running-statistics semantics.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "rescnn/nn/module.hpp"
#include "rescnn/ops/batchnorm.hpp"

namespace rescnn::nn {

struct BatchNorm2dOptions {
  index_t num_features = 0;
  double eps = 1e-5;
  double momentum = 0.1;  // running = (1 - momentum) * running + momentum * batch
  bool affine = true;
  bool track_running_stats = true;
};

inline void validate(const BatchNorm2dOptions& o) {
  check(o.num_features >= 1, "BatchNorm2d: num_features must be positive, got ", o.num_features);
  check(o.eps > 0 && std::isfinite(o.eps), "BatchNorm2d: eps must be positive and finite, got ", o.eps);
  check(o.momentum >= 0 && o.momentum <= 1, "BatchNorm2d: momentum must lie in [0, 1], got ", o.momentum);
}

template <class T, class D = Cpu>
class BatchNorm2d : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;

  Parameter<T, D> weight;  // gamma, ones (when affine)
  Parameter<T, D> bias;    // beta, zeros (when affine)
  TensorT running_mean;    // zeros (when track_running_stats)
  TensorT running_var;     // ones (when track_running_stats)
  std::int64_t num_batches_tracked = 0;

  explicit BatchNorm2d(const BatchNorm2dOptions& options) : options_(options) {
    validate(options_);
    const index_t c = options_.num_features;
    if (options_.affine) {
      weight.reset(TensorT::ones({c}));
      bias.reset(TensorT::zeros({c}));
      this->register_parameter("weight", weight);
      this->register_parameter("bias", bias);
    }
    if (options_.track_running_stats) {
      running_mean = TensorT::zeros({c});
      running_var = TensorT::ones({c});
      this->register_buffer("running_mean", running_mean);
      this->register_buffer("running_var", running_var);
    }
  }
  explicit BatchNorm2d(index_t num_features) : BatchNorm2d(BatchNorm2dOptions{.num_features = num_features}) {}

  const BatchNorm2dOptions& options() const { return options_; }

  TensorT forward(const TensorT& x) override {
    check_input(x.shape());
    const T eps = static_cast<T>(options_.eps);
    const bool batch_stats = this->is_training() || !options_.track_running_stats;
    TensorT y;
    ops::BatchNormSaved<T, D> saved;
    if (batch_stats) {
      const bool update = this->is_training() && options_.track_running_stats;
      y = ops::batchnorm_forward_train(x, gamma(), beta(), update ? &running_mean : nullptr,
                                       update ? &running_var : nullptr, eps, static_cast<T>(options_.momentum), saved);
      if (update) ++num_batches_tracked;
    } else {
      y = ops::batchnorm_forward_eval(x, gamma(), beta(), running_mean, running_var, eps);
      if (this->recording()) saved = running_statistics();
    }
    if (this->recording()) {
      input_ = x.view();
      saved_ = std::move(saved);
      used_batch_statistics_ = batch_stats;
    }
    return y;
  }

  TensorT backward(const TensorT& grad_output) override {
    this->require_forward(input_);
    // Frozen (both affine parameters): their gradients are not accumulated.
    const bool affine_grads = options_.affine && (weight.requires_grad || bias.requires_grad);
    TensorT dx = ops::batchnorm_backward(input_, grad_output, gamma(), saved_, used_batch_statistics_,
                                         affine_grads ? &weight.grad : nullptr, affine_grads ? &bias.grad : nullptr);
    input_ = TensorT();
    saved_ = {};
    return dx;
  }

  Shape output_shape(const Shape& input) const override {
    check_input(input);
    return input;
  }

  std::string type_name() const override { return "BatchNorm2d"; }
  std::string extra_repr() const override {
    std::ostringstream os;
    os << options_.num_features << ", eps=" << options_.eps << ", momentum=" << options_.momentum
       << ", affine=" << (options_.affine ? "True" : "False")
       << ", track_running_stats=" << (options_.track_running_stats ? "True" : "False");
    return os.str();
  }

 private:
  const TensorT* gamma() const { return options_.affine ? &weight.value : nullptr; }
  const TensorT* beta() const { return options_.affine ? &bias.value : nullptr; }

  void check_input(const Shape& x) const {
    check<ShapeError>(x.rank() == 4, "BatchNorm2d: expected input of shape (N, C, H, W), got ", x);
    check<ShapeError>(x[1] == options_.num_features, "BatchNorm2d: input ", x, " has ", x[1],
                      " channels, expected num_features=", options_.num_features);
  }

  // The running statistics as the (mean, 1/sqrt(var + eps)) pair backward uses.
  ops::BatchNormSaved<T, D> running_statistics() const {
    std::vector<T> invstd = running_var.to_vector();
    for (auto& v : invstd) v = T(1) / std::sqrt(v + static_cast<T>(options_.eps));
    return {running_mean.clone(), TensorT::from_vector({options_.num_features}, invstd)};
  }

  BatchNorm2dOptions options_;
  TensorT input_;
  ops::BatchNormSaved<T, D> saved_;
  bool used_batch_statistics_ = true;
};

}  // namespace rescnn::nn
