// rescnn/optim/make_schedule.hpp — schedules by name, for command lines.
//
// make_schedule("cosine", lr, total_steps, steps_per_epoch, {}) builds the
// schedule a trainer's --schedule option names, sized to the run. The
// choices a name makes (how long a warm-up, when to decay) are documented at
// each name below; ScheduleOptions overrides the few worth changing.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/optim/schedule.hpp"

namespace rescnn::optim {

struct ScheduleOptions {
  // "step": decay every step_size updates; 0 = a third of the run, rounded to
  // whole epochs (at least one).
  std::int64_t step_size = 0;
  double gamma = 0.1;  // "step": the decay factor
  double eta_min = 0;  // "cosine", "warmup_cosine": the learning rate the cosine ends at
  // "warmup_cosine": updates of linear warm-up; 0 = one epoch or 5% of the
  // run, whichever is shorter (at least one update).
  std::int64_t warmup_steps = 0;
  double warmup_start_factor = 0.1;  // "warmup_cosine": the first update's lr is base_lr times this
  double pct_start = 0.3;            // "onecycle": fraction of the run spent raising the lr
  // "onecycle": also cycle the momentum (SGD's momentum, Adam's beta1)
  // between 0.85 and 0.95; needs an optimizer with momentum.
  bool cycle_momentum = true;
};

// The names make_schedule accepts.
inline const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> names{"constant", "step", "cosine", "warmup_cosine", "onecycle"};
  return names;
}

// A schedule for a run of `total_steps` updates, `steps_per_epoch` per epoch:
//   "constant"       base_lr throughout
//   "step"           StepLR(base_lr, step_size, gamma)
//   "cosine"         CosineAnnealingLR(base_lr, t_max = total_steps, eta_min)
//   "warmup_cosine"  WarmupThen(warmup, warmup_start_factor,
//                               CosineAnnealingLR(base_lr, total_steps - warmup, eta_min))
//   "onecycle"       OneCycleLR(max_lr = base_lr, total_steps, pct_start, cycle_momentum)
// Throws ValueError for an unknown name (listing the valid ones) or options
// that do not fit the run.
inline std::shared_ptr<LrSchedule> make_schedule(const std::string& name, double base_lr, std::int64_t total_steps,
                                                 std::int64_t steps_per_epoch, const ScheduleOptions& options = {}) {
  check(total_steps >= 1, "make_schedule: total_steps must be >= 1, got ", total_steps);
  check(steps_per_epoch >= 1, "make_schedule: steps_per_epoch must be >= 1, got ", steps_per_epoch);
  check(options.step_size >= 0, "make_schedule: step_size must be >= 0 (0 = automatic), got ", options.step_size);
  check(options.warmup_steps >= 0, "make_schedule: warmup_steps must be >= 0 (0 = automatic), got ",
        options.warmup_steps);

  if (name == "constant") return std::make_shared<ConstantSchedule>(base_lr);
  if (name == "step") {
    std::int64_t step_size = options.step_size;
    if (step_size == 0) {
      const double epochs = static_cast<double>(total_steps) / static_cast<double>(steps_per_epoch);
      step_size = std::max<std::int64_t>(1, std::llround(epochs / 3)) * steps_per_epoch;
    }
    return std::make_shared<StepLR>(base_lr, step_size, options.gamma);
  }
  if (name == "cosine") return std::make_shared<CosineAnnealingLR>(base_lr, total_steps, options.eta_min);
  if (name == "warmup_cosine") {
    check(total_steps >= 2, "make_schedule: warmup_cosine needs total_steps >= 2 (a warm-up and a cosine), got ",
          total_steps);
    std::int64_t warmup = options.warmup_steps;
    if (warmup == 0) {
      const auto five_percent = std::max<std::int64_t>(1, std::llround(0.05 * static_cast<double>(total_steps)));
      warmup = std::min({steps_per_epoch, five_percent, total_steps - 1});
    }
    check(warmup < total_steps, "make_schedule: warmup_cosine: warmup_steps=", warmup,
          " leaves no updates for the cosine in total_steps=", total_steps);
    auto cosine = std::make_shared<CosineAnnealingLR>(base_lr, total_steps - warmup, options.eta_min);
    return std::make_shared<WarmupThen>(warmup, options.warmup_start_factor, std::move(cosine));
  }
  if (name == "onecycle")
    return std::make_shared<OneCycleLR>(OneCycleOptions{.max_lr = base_lr,
                                                        .total_steps = total_steps,
                                                        .pct_start = options.pct_start,
                                                        .cycle_momentum = options.cycle_momentum});

  std::string valid;
  for (const auto& n : schedule_names()) {
    if (!valid.empty()) valid += ", ";
    valid += n;
  }
  throw ValueError(rescnn::detail::concat("make_schedule: unknown schedule '", name, "'; valid names: ", valid));
}

}  // namespace rescnn::optim
