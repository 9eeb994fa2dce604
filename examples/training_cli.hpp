// examples/training_cli.hpp — what the trainer examples (train_fashion_mnist,
// train_images) share: flag checks with plain messages, the optimizer flags
// and the device line. Not part of the library.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <rescnn/dist/process_group.hpp>
#include <rescnn/rescnn.hpp>

namespace training_cli {

namespace rn = rescnn;

// Flag checks with plain messages. (CLI11's PositiveNumber reports "not in
// range 0.000000 to 1797693...", and accepts "inf"; a learning rate must be
// finite.) Each returns "" when the text is acceptable.
CLI::Validator integer_at_least(std::int64_t lo) {
  return CLI::Validator(
      [lo](std::string& text) -> std::string {
        const std::optional<std::int64_t> v = rn::train::parse_int64(text);
        if (!v) return "'" + text + "' is not an integer";
        if (*v < lo) return "must be at least " + std::to_string(lo) + ", got " + text;
        return {};
      },
      lo == 0 ? "INT>=0" : "INT>=" + std::to_string(lo));
}

// A finite number in [lo, hi) (or (lo, hi) when lo_open).
CLI::Validator finite_number(double lo, bool lo_open, double hi = HUGE_VAL) {
  const std::string range = (lo_open ? "(" : "[") + CLI::detail::to_string(lo) + ", " +
                            (hi == HUGE_VAL ? std::string("inf") : CLI::detail::to_string(hi)) + ")";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        const std::optional<double> parsed = rn::train::parse_double(text);
        if (!parsed) return "'" + text + "' is not a number";
        const double v = *parsed;
        if (!std::isfinite(v) || v < lo || (lo_open && v == lo) || v >= hi)
          return "must be a finite number in " + range + ", got " + text;
        return {};
      },
      "NUMBER in " + range);
}

// A probability or fraction: a finite number in [0, 1].
CLI::Validator unit_interval() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const std::optional<double> parsed = rn::train::parse_double(text);
        if (!parsed) return "'" + text + "' is not a number";
        if (!std::isfinite(*parsed) || *parsed < 0 || *parsed > 1)
          return "must be a finite number in [0, 1], got " + text;
        return {};
      },
      "NUMBER in [0, 1]");
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

template <class D>
std::string device_description() {
#if RESCNN_WITH_CUDA
  if constexpr (rn::is_cuda_v<D>)
    return std::string("cuda:") + std::to_string(rn::cuda::context().device()) + " (" +
           rn::cuda::context().properties().name + ")";
#endif
  return std::string(D::name);
}

// The names --optimizer accepts: the one list that the option's check, its
// help and make_optimizer below all read.
const std::vector<std::string>& optimizer_names() {
  static const std::vector<std::string> names{"sgd", "adam", "adamw"};
  return names;
}

// `f` has optimizer, lr, momentum, weight_decay and nesterov; `groups` are
// the parameter groups (optim/optimizer.hpp), each with its own lr_scale.
template <class D, class Flags>
std::unique_ptr<rn::optim::Optimizer<float, D>> make_optimizer(const Flags& f,
                                                               std::vector<rn::optim::ParamGroup<float, D>> groups) {
  if (f.optimizer == "sgd")
    return std::make_unique<rn::optim::SGD<float, D>>(
        std::move(groups),
        rn::optim::SGDOptions{
            .lr = f.lr, .momentum = f.momentum, .weight_decay = f.weight_decay, .nesterov = f.nesterov});
  if (f.optimizer == "adam")
    return std::make_unique<rn::optim::Adam<float, D>>(
        std::move(groups), rn::optim::AdamOptions{.lr = f.lr, .weight_decay = f.weight_decay});
  if (f.optimizer == "adamw")
    return std::make_unique<rn::optim::AdamW<float, D>>(
        std::move(groups), rn::optim::AdamWOptions{.lr = f.lr, .weight_decay = f.weight_decay});
  throw rn::ValueError("--optimizer: unknown optimizer '" + f.optimizer + "'; expected one of " +
                       joined(optimizer_names()));
}

// Every parameter of `model` in one group.
template <class D, class Flags>
std::unique_ptr<rn::optim::Optimizer<float, D>> make_optimizer(const Flags& f, rn::nn::Module<float, D>& model) {
  return make_optimizer<D>(f, {{.params = model.named_parameters()}});
}

// --lr, --optimizer, --momentum, --weight-decay, --nesterov, --schedule.
template <class Flags>
void add_optimizer_options(CLI::App& app, Flags& f) {
  app.add_option("--lr", f.lr, "Learning rate (the peak rate for onecycle)")
      ->check(finite_number(0, true))
      ->capture_default_str();
  app.add_option("--optimizer", f.optimizer, "Optimizer: " + joined(optimizer_names()))
      ->check(CLI::IsMember(optimizer_names()))
      ->capture_default_str();
  app.add_option("--momentum", f.momentum, "SGD momentum")->check(finite_number(0, false, 1))->capture_default_str();
  app.add_option("--weight-decay", f.weight_decay, "Weight decay (L2 for sgd/adam, decoupled for adamw)")
      ->check(finite_number(0, false))
      ->capture_default_str();
  app.add_flag("--nesterov", f.nesterov, "Nesterov momentum (sgd, needs --momentum > 0)");
  app.add_option("--schedule", f.schedule, "Learning-rate schedule: " + joined(rn::optim::schedule_names()))
      ->check(CLI::IsMember(rn::optim::schedule_names()))
      ->capture_default_str();
}

// --checkpoint, --resume, --log, --plot, --progress, --precision, --device.
template <class Flags>
void add_run_options(CLI::App& app, Flags& f) {
  auto* checkpoint = app.add_option("--checkpoint", f.checkpoint, "Write a checkpoint here after every epoch");
  app.add_flag("--resume", f.resume, "Continue from --checkpoint if it exists")->needs(checkpoint);
  app.add_option("--log", f.log, "Write per-epoch metrics to this CSV file");
  app.add_option("--plot", f.plot, "Write the loss and accuracy curves to this SVG file");
  app.add_option("--progress", f.progress, "Progress bar: auto (on a terminal), bar or none")
      ->check(CLI::IsMember({"auto", "bar", "none"}))
      ->capture_default_str();
  app.add_option("--precision", f.precision,
                 "Convolutions and Linear in fp32, bf16 or fp16 (CUDA), float accumulation; weights stay fp32")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}, CLI::ignore_case))
      ->capture_default_str();
  app.add_option("--device", f.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
}

// The Trainer's options from the flags add_run_options adds (and epochs).
template <class Flags>
rn::train::TrainerOptions trainer_options(const Flags& f, rn::Precision precision,
                                          std::shared_ptr<const rn::optim::LrSchedule> schedule, std::string title) {
  rn::train::TrainerOptions options;
  options.max_epochs = f.epochs;
  options.schedule = std::move(schedule);
  options.metrics_csv = f.log;
  options.plot_svg = f.plot;
  options.checkpoint = f.checkpoint;
  options.resume = f.resume;
  options.plot_title = std::move(title);
  options.precision = precision;
  options.progress = f.progress == "bar"    ? rn::train::ProgressMode::Bar
                     : f.progress == "none" ? rn::train::ProgressMode::Silent
                                            : rn::train::ProgressMode::Auto;
  return options;
}

// Calls train.template operator()<D>() with D the device --device names:
// rn::Cpu, or rn::Cuda in a CUDA build.
template <class Train>
int on_device(const std::string& device, Train&& train) {
  if (device == "cpu") return train.template operator()<rn::Cpu>();
#if RESCNN_WITH_CUDA
  return train.template operator()<rn::Cuda>();
#else
  throw rn::ValueError("--device " + device +
                       ": this binary was built without CUDA (configure with -DRESCNN_CUDA=ON for --device cuda)");
#endif
}

// Runs the example's main body, turning rescnn's errors into a message and
// an exit status: 2 for a bad input, 3 when training diverged. In a
// data-parallel job (`world`, once the body has set it, has several ranks)
// any failure stops every rank at once, naming this one, instead of leaving
// the others to wait for it.
template <class Body>
int report_errors(const char* program, Body&& body, const std::shared_ptr<rn::dist::ProcessGroup>* world = nullptr) {
  const auto stop_job_if_distributed = [&](const std::exception& e) {
    if (world && *world && (*world)->size() > 1) (*world)->abort_job(std::string(program) + ": " + e.what());
  };
  try {
    return body();
  } catch (const rn::train::TrainingDiverged& e) {
    stop_job_if_distributed(e);
    std::cerr << program << ": " << e.what() << "\n";
    return 3;
  } catch (const rn::Error& e) {
    stop_job_if_distributed(e);
    std::cerr << program << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    stop_job_if_distributed(e);
    throw;
  }
}

}  // namespace training_cli
