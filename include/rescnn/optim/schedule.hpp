// rescnn/optim/schedule.hpp — learning-rate schedules.
//
// A schedule is a pure function of the optimizer's step count: lr_at(step)
// is the learning rate of update number `step` (0-based). PyTorch's
// schedulers are stateful objects stepped once per update; ours keep no
// state, so resuming from a checkpoint needs nothing but `steps()`, and a
// schedule can be evaluated anywhere (plots, logs) without stepping it.
//
// lr_at(step) equals what PyTorch's `scheduler.get_last_lr()` returns after
// `step` calls of `scheduler.step()` when `scheduler.step()` follows every
// `optimizer.step()` (PyTorch 1.13). Where PyTorch computes its values
// recursively (CosineAnnealingLR, LinearLR, StepLR), we use the closed form,
// which PyTorch itself documents as equal; the two agree to about 1e-14
// relative (tests compare at 1e-9).
//
// Use: before each update, `schedule.apply(optimizer)` sets the optimizer's
// learning rate (and momentum, for one-cycle) for step `optimizer.steps()`.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numbers>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/optim/optimizer.hpp"

namespace rescnn::optim {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;

  // The learning rate for update number `step` (0-based), i.e. what PyTorch's
  // scheduler.get_last_lr() returns after `step` calls of scheduler.step()
  // when scheduler.step() follows every optimizer.step().
  virtual double lr_at(std::int64_t step) const = 0;
  // The momentum (SGD's momentum, Adam's beta1) for update `step`, for
  // schedules that drive it (one-cycle); nullopt leaves it alone.
  virtual std::optional<double> momentum_at(std::int64_t /*step*/) const { return std::nullopt; }
  // "CosineAnnealingLR(base_lr=0.1, t_max=30, eta_min=0)".
  virtual std::string to_string() const = 0;

  // Sets opt's lr (and momentum when momentum_at has a value) for its next
  // update, step = opt.steps(). Throws ValueError where the optimizer
  // rejects the value (a negative lr, momentum on an SGD built without it).
  template <class T, class D>
  void apply(Optimizer<T, D>& opt) const {
    const std::int64_t step = opt.steps();
    opt.set_lr(lr_at(step));
    if (const std::optional<double> m = momentum_at(step)) opt.set_momentum(*m);
  }

 protected:
  static void check_step(const char* type, std::int64_t step) {
    check(step >= 0, type, ": step must be >= 0, got ", step);
  }
  static void check_lr(const char* type, const char* what, double lr) {
    check(std::isfinite(lr) && lr >= 0, type, ": ", what, " must be finite and >= 0, got ", lr);
  }
};

// The same learning rate for every update. (PyTorch's ConstantLR is
// something else: a constant *factor* for the first total_iters updates,
// then the base rate. This one is simply no schedule at all.)
class ConstantSchedule : public LrSchedule {
 public:
  explicit ConstantSchedule(double base_lr) : base_lr_(base_lr) { check_lr("ConstantSchedule", "base_lr", base_lr); }

  double lr_at(std::int64_t step) const override {
    check_step("ConstantSchedule", step);
    return base_lr_;
  }
  std::string to_string() const override { return rescnn::detail::concat("ConstantSchedule(base_lr=", base_lr_, ")"); }

 private:
  double base_lr_;
};

// PyTorch's StepLR: base_lr * gamma^(step / step_size), integer division.
class StepLR : public LrSchedule {
 public:
  StepLR(double base_lr, std::int64_t step_size, double gamma = 0.1)
      : base_lr_(base_lr), step_size_(step_size), gamma_(gamma) {
    check_lr("StepLR", "base_lr", base_lr);
    check(step_size >= 1, "StepLR: step_size must be >= 1, got ", step_size);
    check(std::isfinite(gamma) && gamma > 0, "StepLR: gamma must be finite and > 0, got ", gamma);
  }

  double lr_at(std::int64_t step) const override {
    check_step("StepLR", step);
    return base_lr_ * std::pow(gamma_, static_cast<double>(step / step_size_));
  }
  std::string to_string() const override {
    return rescnn::detail::concat("StepLR(base_lr=", base_lr_, ", step_size=", step_size_, ", gamma=", gamma_, ")");
  }

 private:
  double base_lr_;
  std::int64_t step_size_;
  double gamma_;
};

// PyTorch's CosineAnnealingLR:
//   eta_min + (base_lr - eta_min) * (1 + cos(pi * step / t_max)) / 2.
// Past t_max PyTorch keeps following the cosine (its recursion is exactly
// this periodic function: back up to base_lr at 2 t_max, ...), and so do we;
// stop at t_max yourself if you want the floor.
class CosineAnnealingLR : public LrSchedule {
 public:
  CosineAnnealingLR(double base_lr, std::int64_t t_max, double eta_min = 0)
      : base_lr_(base_lr), t_max_(t_max), eta_min_(eta_min) {
    check_lr("CosineAnnealingLR", "base_lr", base_lr);
    check(t_max >= 1, "CosineAnnealingLR: t_max must be >= 1, got ", t_max);
    check_lr("CosineAnnealingLR", "eta_min", eta_min);
  }

  double lr_at(std::int64_t step) const override {
    check_step("CosineAnnealingLR", step);
    // PyTorch's _get_closed_form_lr, in its operation order.
    const double angle = std::numbers::pi * static_cast<double>(step) / static_cast<double>(t_max_);
    return eta_min_ + (base_lr_ - eta_min_) * (1 + std::cos(angle)) / 2;
  }
  std::string to_string() const override {
    return rescnn::detail::concat("CosineAnnealingLR(base_lr=", base_lr_, ", t_max=", t_max_, ", eta_min=", eta_min_,
                                  ")");
  }

 private:
  double base_lr_;
  std::int64_t t_max_;
  double eta_min_;
};

// PyTorch's LinearLR: the factor goes linearly from start_factor (update 0)
// to end_factor (update total_iters and after):
//   base_lr * (start + (end - start) * min(step, total_iters) / total_iters).
// The arguments are in PyTorch's order, all required (a default end_factor
// would have to come last and silently swap meaning with total_iters).
// Unlike PyTorch 1.13, start_factor must be > 0: PyTorch accepts 0 and then
// divides by zero in its second step.
class LinearWarmup : public LrSchedule {
 public:
  LinearWarmup(double base_lr, double start_factor, double end_factor, std::int64_t total_iters)
      : base_lr_(base_lr), start_(start_factor), end_(end_factor), total_iters_(total_iters) {
    check_lr("LinearWarmup", "base_lr", base_lr);
    check(start_factor > 0 && start_factor <= 1, "LinearWarmup: start_factor must lie in (0, 1], got ", start_factor);
    check(end_factor >= 0 && end_factor <= 1, "LinearWarmup: end_factor must lie in [0, 1], got ", end_factor);
    check(total_iters >= 1, "LinearWarmup: total_iters must be >= 1, got ", total_iters);
  }

  double lr_at(std::int64_t step) const override {
    check_step("LinearWarmup", step);
    const double done = static_cast<double>(std::min(total_iters_, step));
    return base_lr_ * (start_ + (end_ - start_) * done / static_cast<double>(total_iters_));
  }
  std::string to_string() const override {
    return rescnn::detail::concat("LinearWarmup(base_lr=", base_lr_, ", start_factor=", start_, ", end_factor=", end_,
                                  ", total_iters=", total_iters_, ")");
  }

 private:
  double base_lr_, start_, end_;
  std::int64_t total_iters_;
};

// A linear warm-up, then another schedule started afresh: PyTorch's
//   SequentialLR([LinearLR(start_factor, 1.0, warmup_steps), after],
//                milestones=[warmup_steps]),
// which restarts `after` at the milestone, so
//   lr_at(s) = after.lr_at(s - warmup_steps)   for s >= warmup_steps.
// The warm-up ramps towards after.lr_at(0), so the two join without a jump;
// that is PyTorch's optimizer base lr whenever `after` starts from it (StepLR,
// CosineAnnealingLR, ConstantSchedule). During the warm-up the momentum is
// after.momentum_at(0).
class WarmupThen : public LrSchedule {
 public:
  WarmupThen(std::int64_t warmup_steps, double start_factor, std::shared_ptr<const LrSchedule> after)
      : after_(checked(std::move(after), warmup_steps, start_factor)),
        warmup_(after_->lr_at(0), start_factor, 1.0, warmup_steps),
        warmup_steps_(warmup_steps) {}

  double lr_at(std::int64_t step) const override {
    check_step("WarmupThen", step);
    return step < warmup_steps_ ? warmup_.lr_at(step) : after_->lr_at(step - warmup_steps_);
  }
  std::optional<double> momentum_at(std::int64_t step) const override {
    check_step("WarmupThen", step);
    return after_->momentum_at(step < warmup_steps_ ? 0 : step - warmup_steps_);
  }
  std::string to_string() const override {
    return rescnn::detail::concat("WarmupThen(warmup=", warmup_.to_string(), ", after=", after_->to_string(), ")");
  }

 private:
  // Checked here, so that messages name WarmupThen rather than its parts.
  static std::shared_ptr<const LrSchedule> checked(std::shared_ptr<const LrSchedule> after, std::int64_t warmup_steps,
                                                   double start_factor) {
    check(after != nullptr, "WarmupThen: the schedule after the warm-up is null");
    check(warmup_steps >= 1, "WarmupThen: warmup_steps must be >= 1, got ", warmup_steps);
    check(start_factor > 0 && start_factor <= 1, "WarmupThen: start_factor must lie in (0, 1], got ", start_factor);
    return after;
  }

  std::shared_ptr<const LrSchedule> after_;
  LinearWarmup warmup_;
  std::int64_t warmup_steps_;
};

enum class AnnealStrategy { Cos, Linear };

// PyTorch's OneCycleLR arguments (with total_steps given directly).
struct OneCycleOptions {
  double max_lr = 0;             // the peak learning rate
  std::int64_t total_steps = 0;  // updates in the cycle
  double pct_start = 0.3;        // fraction of the cycle spent increasing the lr
  AnnealStrategy anneal_strategy = AnnealStrategy::Cos;
  double div_factor = 25;         // initial lr = max_lr / div_factor
  double final_div_factor = 1e4;  // final lr = initial lr / final_div_factor
  bool three_phase = false;       // up, back down to the initial lr, then down to the final lr
  bool cycle_momentum = true;     // cycle momentum / beta1 inversely to the lr
  double base_momentum = 0.85;    // momentum at the lr peak
  double max_momentum = 0.95;     // momentum at the start (and end)
};

// PyTorch's OneCycleLR (Smith & Topin, "super-convergence"), computed as
// PyTorch 1.13 does, phase by phase. Like PyTorch, it is defined for steps
// 0 ..= total_steps (the last one is the value after the final update, an
// extrapolation of the last phase that may be negative with linear
// annealing) and throws ValueError beyond.
class OneCycleLR : public LrSchedule {
 public:
  explicit OneCycleLR(const OneCycleOptions& o) : o_(o) {
    check(std::isfinite(o.max_lr) && o.max_lr > 0, "OneCycleLR: max_lr must be finite and > 0, got ", o.max_lr);
    check(o.total_steps >= 1, "OneCycleLR: total_steps must be >= 1, got ", o.total_steps);
    check(o.pct_start > 0 && o.pct_start < 1, "OneCycleLR: pct_start must lie in (0, 1), got ", o.pct_start);
    check(std::isfinite(o.div_factor) && o.div_factor > 0, "OneCycleLR: div_factor must be finite and > 0, got ",
          o.div_factor);
    check(std::isfinite(o.final_div_factor) && o.final_div_factor > 0,
          "OneCycleLR: final_div_factor must be finite and > 0, got ", o.final_div_factor);
    if (o.cycle_momentum) {
      check(o.base_momentum >= 0 && o.base_momentum < 1, "OneCycleLR: base_momentum must lie in [0, 1), got ",
            o.base_momentum);
      check(o.max_momentum >= 0 && o.max_momentum < 1, "OneCycleLR: max_momentum must lie in [0, 1), got ",
            o.max_momentum);
    }
    const double total = static_cast<double>(o.total_steps);
    const double initial_lr = o.max_lr / o.div_factor;
    const double min_lr = initial_lr / o.final_div_factor;
    const double warmup_end = o.pct_start * total - 1;
    // A phase of length zero that a step reaches is a division by zero in
    // PyTorch (ZeroDivisionError); refuse it here, when it is built.
    check(warmup_end != 0, "OneCycleLR: pct_start=", o.pct_start, " with total_steps=", o.total_steps,
          " gives a warm-up phase of length 0 (pct_start * total_steps == 1); change either");
    if (o.three_phase) {
      const double down_end = 2 * o.pct_start * total - 2;
      check(down_end != total - 1, "OneCycleLR: pct_start=", o.pct_start, " with total_steps=", o.total_steps,
            " and three_phase=true gives a final phase of length 0 (2 * pct_start * total_steps == total_steps + "
            "1); change either");
      phases_ = {{warmup_end, initial_lr, o.max_lr, o.max_momentum, o.base_momentum},
                 {down_end, o.max_lr, initial_lr, o.base_momentum, o.max_momentum},
                 {total - 1, initial_lr, min_lr, o.max_momentum, o.max_momentum}};
    } else {
      phases_ = {{warmup_end, initial_lr, o.max_lr, o.max_momentum, o.base_momentum},
                 {total - 1, o.max_lr, min_lr, o.base_momentum, o.max_momentum}};
    }
  }
  OneCycleLR(double max_lr, std::int64_t total_steps)
      : OneCycleLR(OneCycleOptions{.max_lr = max_lr, .total_steps = total_steps}) {}

  const OneCycleOptions& options() const { return o_; }

  double lr_at(std::int64_t step) const override { return at(step).lr; }
  std::optional<double> momentum_at(std::int64_t step) const override {
    const Point p = at(step);
    if (!o_.cycle_momentum) return std::nullopt;
    return p.momentum;
  }
  std::string to_string() const override {
    return rescnn::detail::concat(
        "OneCycleLR(max_lr=", o_.max_lr, ", total_steps=", o_.total_steps, ", pct_start=", o_.pct_start,
        ", anneal_strategy=", o_.anneal_strategy == AnnealStrategy::Cos ? "cos" : "linear",
        ", div_factor=", o_.div_factor, ", final_div_factor=", o_.final_div_factor,
        ", three_phase=", o_.three_phase ? "true" : "false", ", cycle_momentum=", o_.cycle_momentum ? "true" : "false",
        ", base_momentum=", o_.base_momentum, ", max_momentum=", o_.max_momentum, ")");
  }

 private:
  struct Phase {
    double end_step, start_lr, end_lr, start_momentum, end_momentum;
  };
  struct Point {
    double lr, momentum;
  };

  // PyTorch's _annealing_cos / _annealing_linear, in their operation order.
  double anneal(double start, double end, double pct) const {
    if (o_.anneal_strategy == AnnealStrategy::Linear) return (end - start) * pct + start;
    const double cos_out = std::cos(std::numbers::pi * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }

  // PyTorch's get_lr: the first phase whose end the step has not passed
  // (the last phase takes everything after).
  Point at(std::int64_t step) const {
    check_step("OneCycleLR", step);
    check(step <= o_.total_steps, "OneCycleLR: tried to step ", step + 1,
          " times; the specified number of total steps is ", o_.total_steps);
    const double s = static_cast<double>(step);
    double start_step = 0;
    for (std::size_t i = 0; i < phases_.size(); ++i) {
      const Phase& ph = phases_[i];
      if (s <= ph.end_step || i + 1 == phases_.size()) {
        const double pct = (s - start_step) / (ph.end_step - start_step);
        return {anneal(ph.start_lr, ph.end_lr, pct), anneal(ph.start_momentum, ph.end_momentum, pct)};
      }
      start_step = ph.end_step;
    }
    return {};  // not reached: the last phase always matches
  }

  OneCycleOptions o_;
  std::vector<Phase> phases_;
};

}  // namespace rescnn::optim
