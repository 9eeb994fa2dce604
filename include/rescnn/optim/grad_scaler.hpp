// rescnn/optim/grad_scaler.hpp — dynamic loss scaling for fp16 training, as
// torch.cuda.amp.GradScaler.
//
// fp16's smallest normal value is 6e-5: small gradients underflow to zero
// unless the loss (and so every gradient) is scaled up first. The scaler
// multiplies the loss gradient by `scale`, divides the parameters'
// gradients by it again before the optimizer step, and skips the step when
// any gradient is infinite or NaN (the scale was too large), halving the
// scale; after `growth_interval` good steps in a row it doubles the scale.
//
//   rn::optim::GradScaler<float, D> scaler;
//   opt.zero_grad();
//   criterion(model.forward(x), y);
//   model.backward(scaler.scale(criterion.backward()));
//   scaler.step(opt);   // unscales; steps only when every gradient is finite
//   scaler.update();    // grows or backs off the scale
//
// bf16 has float's range and needs no scaler (PyTorch's autocast does not
// use one either); a disabled scaler (enabled = false) passes everything
// through, so one training loop serves every precision.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/core/tensor.hpp"
#include "rescnn/ops/tensor_groups.hpp"
#include "rescnn/optim/optimizer.hpp"

namespace rescnn::optim {

struct GradScalerOptions {
  double init_scale = 65536.0;  // 2^16, PyTorch's
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  std::int64_t growth_interval = 2000;
  bool enabled = true;
};

namespace detail {

// g *= factor for every element; group[1][0] (one flag element) becomes 1
// when a result is not finite. Written for the GPU too (RESCNN_HOST_DEVICE).
template <class T>
struct ScaleAndCheck {
  T factor;
  RESCNN_HOST_DEVICE void operator()(T* const* group, index_t i) const {
    const T g = group[0][i] * factor;
    group[0][i] = g;
    if (!(g - g == T(0))) group[1][0] = T(1);  // inf - inf and NaN - NaN are NaN
  }
};

}  // namespace detail

template <class T, class D = Cpu>
class GradScaler {
 public:
  explicit GradScaler(const GradScalerOptions& options = {}) : options_(options), scale_(options.init_scale) {
    check(std::isfinite(options.init_scale) && options.init_scale > 0,
          "GradScaler: init_scale must be finite and > 0, got ", options.init_scale);
    check(std::isfinite(options.growth_factor) && options.growth_factor > 1,
          "GradScaler: growth_factor must be finite and > 1, got ", options.growth_factor);
    check(std::isfinite(options.backoff_factor) && options.backoff_factor > 0 && options.backoff_factor < 1,
          "GradScaler: backoff_factor must be in (0, 1), got ", options.backoff_factor);
    check(options.growth_interval >= 1, "GradScaler: growth_interval must be >= 1, got ", options.growth_interval);
  }

  bool enabled() const { return options_.enabled; }
  double scale_value() const { return scale_; }
  // Good steps since the last change of scale (saved with the scale in checkpoints).
  std::int64_t growth_tracker() const { return growth_tracker_; }
  void load_state(double scale, std::int64_t growth_tracker) {
    check(std::isfinite(scale) && scale > 0, "GradScaler: scale must be finite and > 0, got ", scale);
    check(growth_tracker >= 0, "GradScaler: growth_tracker must be >= 0, got ", growth_tracker);
    scale_ = scale;
    growth_tracker_ = growth_tracker;
  }

  // The loss gradient times the scale (a copy; the input is unchanged).
  Tensor<T, D> scale(const Tensor<T, D>& loss_grad) const {
    Tensor<T, D> out = loss_grad.clone();
    if (enabled()) multiply({&out}, static_cast<T>(scale_), /*read_flag=*/false);
    return out;
  }

  // Divides every gradient by the scale, then steps the optimizer unless a
  // gradient is infinite or NaN. Returns whether it stepped. Call update()
  // after it, once per iteration.
  bool step(Optimizer<T, D>& optimizer) {
    check(!stepped_since_update_, "GradScaler::step: called twice without update() in between");
    stepped_since_update_ = true;
    found_inf_ = false;
    if (!enabled()) {
      optimizer.step();
      return true;
    }
    const T inverse = static_cast<T>(1.0 / scale_);
    std::vector<Tensor<T, D>*> grads;
    for (auto& [name, p] : optimizer.named_parameters())
      if (p->grad.defined() && p->requires_grad) grads.push_back(&p->grad);  // frozen: never stepped
    found_inf_ = multiply(grads, inverse);
    if (found_inf_) return false;
    optimizer.step();
    return true;
  }

  // Backs the scale off after a skipped step, grows it after growth_interval
  // good ones.
  void update() {
    check(stepped_since_update_, "GradScaler::update: call step() first");
    stepped_since_update_ = false;
    if (!enabled()) return;
    if (found_inf_) {
      scale_ *= options_.backoff_factor;
      growth_tracker_ = 0;
    } else if (++growth_tracker_ == options_.growth_interval) {
      scale_ *= options_.growth_factor;
      growth_tracker_ = 0;
    }
  }

  // Whether the last step() found a non-finite gradient (and skipped).
  bool found_inf() const { return found_inf_; }

 private:
  // *t *= factor for every tensor; whether any result is not finite (when
  // `read_flag`). One pass over all of them and one read of the flag: on a
  // GPU, one launch and one synchronisation per step, not one per parameter.
  static bool multiply(const std::vector<Tensor<T, D>*>& tensors, T factor, bool read_flag = true) {
    Tensor<T, D> flag = Tensor<T, D>::zeros({1});
    std::vector<TensorGroup<T, 2>> groups;
    for (Tensor<T, D>* t : tensors)
      if (t->numel() > 0) groups.push_back({{t->data(), flag.data()}, t->numel()});
    if (groups.empty()) return false;
    ops::for_each_element<D>(groups, detail::ScaleAndCheck<T>{factor});
    return read_flag && flag.template to<Cpu>().data()[0] != T(0);
  }

  GradScalerOptions options_;
  double scale_;
  std::int64_t growth_tracker_ = 0;
  bool found_inf_ = false;
  bool stepped_since_update_ = false;
};

}  // namespace rescnn::optim
