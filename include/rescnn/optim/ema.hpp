// rescnn/optim/ema.hpp — an exponential moving average of a model's weights,
// as torch.optim.swa_utils.AveragedModel(model, use_buffers=True) with the
// EMA rule (and timm's ModelEmaV2):
//
//   rn::optim::WeightEma<float> ema(*model, 0.999);
//   ... after every optimizer step:  ema.update();
//   { auto averaged = ema.apply();  // the model now holds the averages
//     evaluate(*model, test); }     // and its own weights again after the scope
//
// The average starts as a copy of the model and after each update is
//   average = d * average + (1 - d) * current
// with d = decay, or with `warmup` d = min(decay, (1 + n) / (10 + n)) at the
// n-th update (counting from 0; TensorFlow's ExponentialMovingAverage with
// num_updates), so that a short run's average is not dominated by the
// initial weights. This applies to every parameter and every BatchNorm
// running statistic, so the averaged model evaluates with statistics that
// match its averaged weights. The BatchNorm batch counters are not averaged
// (they do not enter eval mode). Averaging smooths out the last steps' noise;
// it helps most when the learning rate stays high until the end.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/nn/module.hpp"
#include "rescnn/ops/tensor_groups.hpp"

namespace rescnn::optim {

namespace detail {

// average = decay * average + (1 - decay) * current, element by element.
template <class T>
struct EmaUpdate {
  T decay, one_minus_decay;
  RESCNN_HOST_DEVICE void operator()(T* const* group, index_t i) const {
    group[0][i] = decay * group[0][i] + one_minus_decay * group[1][i];
  }
};

}  // namespace detail

template <class T, class D = Cpu>
class WeightEma {
 public:
  // Averages `model`'s parameters and buffers, starting from their current
  // values. The model must outlive this object and keep its layers.
  WeightEma(nn::Module<T, D>& model, double decay, bool warmup = false) : decay_(decay), warmup_(warmup) {
    check<ValueError>(std::isfinite(decay) && decay >= 0 && decay < 1, "WeightEma: decay must be in [0, 1), got ",
                      decay);
    for (auto& [name, p] : model.named_parameters()) add(name, p->value);
    for (auto& [name, b] : model.named_buffers()) add(name, *b);
  }

  WeightEma(const WeightEma&) = delete;
  WeightEma& operator=(const WeightEma&) = delete;

  double decay() const { return decay_; }
  // The decay the next update uses.
  double current_decay() const {
    const auto n = static_cast<double>(updates_);
    return warmup_ ? std::min(decay_, (1 + n) / (10 + n)) : decay_;
  }
  std::int64_t updates() const { return updates_; }
  // Restores the update count (with the averages, from a checkpoint).
  void set_updates(std::int64_t n) {
    check<ValueError>(n >= 0, "WeightEma: the update count must be >= 0, got ", n);
    updates_ = n;
  }

  // Moves every average one step towards the model's current values.
  void update() {
    const double decay = current_decay();
    const auto d = static_cast<T>(decay);
    const auto one_minus_d = static_cast<T>(1 - decay);
    std::vector<TensorGroup<T, 2>> groups;
    groups.reserve(entries_.size());
    for (auto& e : entries_) groups.push_back({{e.average.data(), e.live->data()}, e.average.numel()});
    ops::for_each_element<D>(groups, detail::EmaUpdate<T>{d, one_minus_d});
    ++updates_;
  }

  // Restarts the averages from the model's current values.
  void reset() {
    for (auto& e : entries_) e.average.copy_(*e.live);
    updates_ = 0;
  }

  // Copies the averages into the model for good (at the end of training).
  void copy_to_model() {
    for (auto& e : entries_) e.live->copy_(e.average);
  }

  // The averages, named "ema.<parameter or buffer>" (to store in a checkpoint).
  std::vector<std::pair<std::string, Tensor<T, D>*>> named_state() {
    std::vector<std::pair<std::string, Tensor<T, D>*>> out;
    for (auto& e : entries_) out.emplace_back("ema." + e.name, &e.average);
    return out;
  }

  // While the returned guard lives the model holds the averages; its own
  // values come back when the guard is destroyed (exceptions included).
  class Applied {
   public:
    explicit Applied(WeightEma& ema) : ema_(&ema) { ema_->swap(); }
    Applied(Applied&& other) noexcept : ema_(std::exchange(other.ema_, nullptr)) {}
    Applied(const Applied&) = delete;
    Applied& operator=(const Applied&) = delete;
    Applied& operator=(Applied&&) = delete;
    ~Applied() {
      if (ema_) ema_->swap();
    }

   private:
    WeightEma* ema_;
  };
  [[nodiscard]] Applied apply() { return Applied(*this); }

 private:
  struct Entry {
    std::string name;
    Tensor<T, D>* live;
    Tensor<T, D> average;
  };

  void add(const std::string& name, Tensor<T, D>& live) { entries_.push_back({name, &live, live.clone()}); }

  // Exchanges the model's values with the averages (both are copies of
  // equal shape; the model's tensors keep their storage, so nothing that
  // holds a pointer to a weight is left dangling).
  void swap() {
    for (auto& e : entries_) {
      Tensor<T, D> held = e.live->clone();
      e.live->copy_(e.average);
      e.average.copy_(held);
    }
  }

  double decay_;
  bool warmup_;
  std::int64_t updates_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace rescnn::optim
