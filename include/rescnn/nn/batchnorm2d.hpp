// rescnn/nn/batchnorm2d.hpp — BatchNorm2d with PyTorch's defaults and
// running-statistics semantics.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "rescnn/nn/module.hpp"
#include "rescnn/ops/batchnorm.hpp"
#include "rescnn/ops/sync_batchnorm.hpp"

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

  // Eval mode as one affine map per channel, y = x * scale + shift, with
  // scale = gamma / sqrt(running_var + eps), shift = beta - running_mean *
  // scale (in double). Needs running statistics: without them eval mode
  // normalises with the batch's own.
  std::pair<std::vector<double>, std::vector<double>> eval_scale_shift() const {
    check(!folded_, "BatchNorm2d(", options_.num_features,
          ").eval_scale_shift: it is already folded into the Conv2d before it (fuse_conv_bn)");
    check(options_.track_running_stats, "BatchNorm2d(", extra_repr(),
          "): eval mode is an affine map only with running statistics (track_running_stats=True)");
    const std::vector<T> mean = running_mean.to_vector(), var = running_var.to_vector();
    const auto c = static_cast<std::size_t>(options_.num_features);
    std::vector<T> gamma_v = options_.affine ? weight.value.to_vector() : std::vector<T>(c, T(1));
    std::vector<T> beta_v = options_.affine ? bias.value.to_vector() : std::vector<T>(c, T(0));
    std::vector<double> scale(c), shift(c);
    for (std::size_t i = 0; i < c; ++i) {
      scale[i] = static_cast<double>(gamma_v[i]) / std::sqrt(static_cast<double>(var[i]) + options_.eps);
      shift[i] = static_cast<double>(beta_v[i]) - static_cast<double>(mean[i]) * scale[i];
    }
    return {std::move(scale), std::move(shift)};
  }

  // Marks this layer as folded into the convolution before it
  // (fuse_conv_bn): it becomes an identity for inference, with no
  // parameters or buffers left (its statistics live in the conv), and a
  // training-mode forward is an error.
  void mark_folded() {
    folded_ = true;
    weight = {};
    bias = {};
    running_mean = TensorT();
    running_var = TensorT();
  }
  bool folded() const { return folded_; }

  // Training-mode statistics over every rank of a data-parallel job
  // (SyncBatchNorm, ops/sync_batchnorm.hpp): `allreduce` sums doubles over
  // the ranks; every rank's layer must be synchronised alike, since each
  // training forward and backward then issues one collective.
  // dist::convert_sync_batchnorm sets it on a whole model; an empty
  // function turns it off. Eval mode and the parameters are unchanged, so
  // state dicts and checkpoints are those of BatchNorm2d.
  void synchronize_statistics(ops::AllreduceSum allreduce) { sync_ = std::move(allreduce); }
  bool synchronized() const { return static_cast<bool>(sync_); }

  TensorT forward(const TensorT& x) override {
    check_input(x.shape());
    if (folded_) {
      check(!this->is_training(), "BatchNorm2d(", options_.num_features,
            ") was folded into the Conv2d before it (fuse_conv_bn): the model is for inference only; call eval(), "
            "or train a model that was not folded");
      return x.view();
    }
    const T eps = static_cast<T>(options_.eps);
    const bool batch_stats = this->is_training() || !options_.track_running_stats;
    TensorT y;
    ops::BatchNormSaved<T, D> saved;
    if (batch_stats) {
      const bool update = this->is_training() && options_.track_running_stats;
      if (sync_ && this->is_training())
        y = ops::sync_batchnorm_forward_train(x, gamma(), beta(), update ? &running_mean : nullptr,
                                              update ? &running_var : nullptr, options_.eps, options_.momentum, sync_,
                                              saved);
      else
        y = ops::batchnorm_forward_train(x, gamma(), beta(), update ? &running_mean : nullptr,
                                         update ? &running_var : nullptr, eps, static_cast<T>(options_.momentum),
                                         saved);
      if (update) ++num_batches_tracked;
    } else {
      y = ops::batchnorm_forward_eval(x, gamma(), beta(), running_mean, running_var, eps);
      if (this->recording()) saved = running_statistics();
    }
    if (this->recording()) {
      input_ = x.view();
      saved_ = std::move(saved);
      used_batch_statistics_ = batch_stats;
      used_synchronized_statistics_ = batch_stats && sync_ && this->is_training();
    }
    return y;
  }

  TensorT backward(const TensorT& grad_output) override {
    if (folded_) return grad_output.view();
    this->require_forward(input_);
    // Frozen (both affine parameters): their gradients are not accumulated.
    const bool affine_grads = options_.affine && (weight.requires_grad || bias.requires_grad);
    TensorT dx =
        used_synchronized_statistics_
            ? ops::sync_batchnorm_backward(input_, grad_output, gamma(), saved_, sync_,
                                           affine_grads ? &weight.grad : nullptr, affine_grads ? &bias.grad : nullptr)
            : ops::batchnorm_backward(input_, grad_output, gamma(), saved_, used_batch_statistics_,
                                      affine_grads ? &weight.grad : nullptr, affine_grads ? &bias.grad : nullptr);
    input_ = TensorT();
    saved_ = {};
    return dx;
  }

  Shape output_shape(const Shape& input) const override {
    check_input(input);
    return input;
  }

  // Folded: PyTorch's fusion leaves an Identity in the BatchNorm's place.
  std::string type_name() const override { return folded_ ? "Identity" : sync_ ? "SyncBatchNorm" : "BatchNorm2d"; }
  std::string extra_repr() const override {
    std::ostringstream os;
    if (folded_) return "";
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
  bool used_synchronized_statistics_ = false;
  ops::AllreduceSum sync_;
  bool folded_ = false;
};

}  // namespace rescnn::nn
