// rescnn/train/trainer.hpp — the training loop: d2l's Trainer.fit for C++.
//
//   rn::train::Trainer trainer({.max_epochs = 10, .metrics_csv = "metrics.csv", .plot_svg = "curves.svg"});
//   rn::train::History h = trainer.fit(*model, optimizer, data);
//
// Each epoch trains on data.train() in train mode (forward, cross-entropy,
// backward, optimizer step, with the schedule setting the learning rate
// before every step), then evaluates on data.validation() (data.test() when
// the data has no validation set) in eval mode without recording gradients,
// and reports one line:
//   epoch=1 train_loss=… val_loss=… val_acc=… imgs_per_s=… seconds=…
// On a terminal a progress bar with ETA runs on stderr during the epoch;
// otherwise only the epoch lines are written (logs stay one line per epoch).
//
// After every epoch the metrics CSV, the SVG curves and the checkpoint are
// rewritten atomically. With `resume`, fit continues from the checkpoint:
// model, optimizer, epoch, generator and history are restored, and since the
// data order depends only on (seed, epoch) and schedules only on the step
// count, the remaining epochs reproduce an uninterrupted run bit for bit.
//
// With `ema_decay` an exponential moving average of the weights
// (optim/ema.hpp, with a warm-up) is updated after every step; validation, the best
// checkpoint and the model fit returns use the averaged weights, and the
// checkpoint stores the averages too, so a resumed run continues them.
//
// With `best_checkpoint` the validated weights of the epoch with the best
// validation accuracy are written there as well (a plain state dict with
// the epoch and accuracy in its metadata: io::load and predict read it).
// It is written before the epoch's checkpoint, so after a crash it is never
// ahead of the history it came from.
//
// A non-finite loss stops training with TrainingDiverged naming the epoch and
// step; nothing is written for that epoch, so the last checkpoint is the last
// good state.
//
// With loss scaling (on by default for fp16 autocast) the backward pass runs
// on the scaled loss gradient and a step whose gradients overflowed is
// skipped, as torch.cuda.amp.GradScaler does; the epoch's skipped steps are
// counted in one log line after the epoch line.
//
// Data-parallel (TrainerOptions::process_group with several ranks, launched
// by mpirun; dist/process_group.hpp): every rank runs fit with its shard of
// the data (the loaders' LoaderOptions::shard must match the group), and the
// trainer attaches a GradientReducer (dist/ddp.hpp) to the model, so the
// gradients are averaged during backward. Losses and accuracies are summed
// over the ranks every step (so every rank sees the same global loss and
// stops together if it diverges) and validation is reduced, so the metrics
// are the single-process ones for the global batch. Only rank 0 draws the
// bar, writes the log, CSV, plot and checkpoint; the checkpoint records the
// world size, and resuming needs the same one. Every rank reads the
// checkpoint when resuming (on several hosts: a shared file system, or a
// copy on each host); whether it exists must agree across the ranks. An
// exception on one rank leaves the others waiting in their next collective:
// catch it and call ProcessGroup::abort_job, which stops the job naming the
// rank (the examples do); a rank that dies or stalls is reported by its
// peers' collective timeout.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "rescnn/core/precision.hpp"
#include "rescnn/data/distributed_sampler.hpp"
#include "rescnn/dist/ddp.hpp"
#include "rescnn/dist/process_group.hpp"
#include "rescnn/dist/sync_batchnorm.hpp"
#include "rescnn/io/checkpoint.hpp"
#include "rescnn/nn/loss.hpp"
#include "rescnn/nn/module.hpp"
#include "rescnn/optim/ema.hpp"
#include "rescnn/optim/grad_scaler.hpp"
#include "rescnn/optim/optimizer.hpp"
#include "rescnn/optim/schedule.hpp"
#include "rescnn/train/format.hpp"
#include "rescnn/train/metrics.hpp"
#include "rescnn/train/plot.hpp"
#include "rescnn/train/progress.hpp"

namespace rescnn::train {

// Thrown when the training loss becomes NaN or infinite.
class TrainingDiverged : public Error {
 public:
  using Error::Error;
};

enum class ProgressMode {
  Auto,    // a bar when stderr is a terminal, nothing otherwise
  Bar,     // always draw the bar (on stderr)
  Silent,  // never
};

struct TrainerOptions {
  std::int64_t max_epochs = 10;
  // Sets the learning rate before every step; null keeps the optimizer's.
  std::shared_ptr<const optim::LrSchedule> schedule{};
  std::filesystem::path metrics_csv{};  // empty: no CSV
  std::filesystem::path plot_svg{};     // empty: no plot
  std::filesystem::path checkpoint{};   // empty: no checkpoints; else written after every epoch
  bool resume = false;                  // continue from `checkpoint` when it exists
  std::string plot_title{};
  // Convolutions and Linear layers multiply in this precision, training and
  // evaluation (an Autocast around the whole fit, core/precision.hpp).
  // Parameters, gradients, optimizer state and checkpoints stay float, so a
  // run may resume in another precision.
  Precision precision = Precision::fp32;
  // Dynamic loss scaling (optim/grad_scaler.hpp). Unset: on, with
  // GradScaler's defaults, exactly when `precision` is fp16, whose small
  // gradients underflow without it. Set it to choose ({.enabled = false}
  // turns it off). The scale and its growth count are saved in checkpoints.
  std::optional<optim::GradScalerOptions> loss_scaling{};
  ProgressMode progress = ProgressMode::Auto;
  std::ostream* log = &std::cout;  // epoch lines; null: none
  // Called after every epoch with its metrics, and after every step with
  // (epoch, step, loss); either may be empty.
  std::function<void(const EpochMetrics&)> on_epoch{};
  std::function<void(std::int64_t epoch, std::int64_t step, double loss)> on_step{};
  // Entries stored in checkpoints that a resumed run must match (the
  // example stores its model and data settings); a mismatch is a ValueError.
  std::map<std::string, std::string> run_settings{};
  // Label smoothing of the training loss (CrossEntropyLoss's
  // label_smoothing); validation always reports the plain cross-entropy.
  double label_smoothing = 0;
  // Decay of an average of the weights (unset: none); see above.
  std::optional<double> ema_decay{};
  // Where to keep the best epoch's weights (empty: not kept).
  std::filesystem::path best_checkpoint{};
  // The ranks of a data-parallel job (dist::init()); null or a one-process
  // group: this process trains alone.
  std::shared_ptr<dist::ProcessGroup> process_group{};
};

// The loss scaling a fit runs with (TrainerOptions::loss_scaling).
inline optim::GradScalerOptions effective_loss_scaling(const TrainerOptions& o) {
  return o.loss_scaling.value_or(optim::GradScalerOptions{.enabled = o.precision == Precision::fp16});
}

inline void validate(const TrainerOptions& o) {
  check<ValueError>(o.max_epochs >= 1, "Trainer: max_epochs must be >= 1, got ", o.max_epochs);
  check<ValueError>(!o.resume || !o.checkpoint.empty(), "Trainer: resume needs a checkpoint path");
  check<ValueError>(std::isfinite(o.label_smoothing) && o.label_smoothing >= 0 && o.label_smoothing <= 1,
                    "Trainer: label_smoothing must be in [0, 1], got ", o.label_smoothing);
  if (o.ema_decay)
    check<ValueError>(std::isfinite(*o.ema_decay) && *o.ema_decay >= 0 && *o.ema_decay < 1,
                      "Trainer: ema_decay must be in [0, 1), got ", *o.ema_decay);
  // Each output its own file: one written over another would lose it.
  const std::array<std::pair<const char*, const std::filesystem::path*>, 4> outputs{
      {{"metrics_csv", &o.metrics_csv},
       {"plot_svg", &o.plot_svg},
       {"checkpoint", &o.checkpoint},
       {"best_checkpoint", &o.best_checkpoint}}};
  const auto resolved = [](const std::filesystem::path& p) {
    std::error_code ec;
    const auto r = std::filesystem::weakly_canonical(std::filesystem::absolute(p, ec), ec);
    return ec ? p.lexically_normal() : r;
  };
  for (std::size_t i = 0; i < outputs.size(); ++i)
    for (std::size_t j = i + 1; j < outputs.size(); ++j)
      check<ValueError>(outputs[i].second->empty() || outputs[j].second->empty() ||
                            resolved(*outputs[i].second) != resolved(*outputs[j].second),
                        "Trainer: ", outputs[i].first, " and ", outputs[j].first, " are the same file '",
                        outputs[j].second->string(), "'");
}

struct EvalResult {
  double loss = 0;
  double accuracy = 0;
  std::int64_t samples = 0;
};

namespace detail {

// Sums `values` over the ranks of `group` (none: unchanged).
template <class D>
void sum_over_ranks(const std::shared_ptr<dist::ProcessGroup>& group, std::span<double> values) {
  if (group && group->size() > 1) dist::host_allreduce_sum<D>(group)(values);
}

// The number of ranks a loader's shard was cut for (1 for a loader that
// cannot be sharded).
template <class Loader>
std::int64_t shard_world(const Loader& loader) {
  if constexpr (requires { loader.shard().world; })
    return loader.shard().world;
  else
    return 1;
}

// Runs `local_check` on every rank and throws on every rank when it threw on
// any: a check that only some ranks fail (a path one host lacks, a loader
// sharded for the wrong rank) must not leave the others waiting in their
// next collective. The failing ranks rethrow their own error.
template <class D, class Check>
void check_on_every_rank(const std::shared_ptr<dist::ProcessGroup>& group, Check&& local_check) {
  if (!group || group->size() == 1) {
    local_check();
    return;
  }
  std::exception_ptr failure;
  try {
    local_check();
  } catch (...) {
    failure = std::current_exception();
  }
  std::array<double, 1> failed{failure ? 1.0 : 0.0};
  sum_over_ranks<D>(group, failed);
  if (failure) std::rethrow_exception(failure);
  check<dist::DistError>(failed[0] == 0, "Trainer: ", failed[0], " other rank(s) of ", group->size(),
                         " failed a check (their messages say which); rank ", group->rank(), " stops with them");
}

// Throws on every rank unless `value` is the same on all of them.
template <class D>
void check_same_on_every_rank(const std::shared_ptr<dist::ProcessGroup>& group, std::int64_t value, const char* what) {
  if (!group || group->size() == 1) return;
  const auto v = static_cast<double>(value);
  std::array<double, 2> sums{v, v * v};
  sum_over_ranks<D>(group, sums);
  // Equal values exactly when the variance is zero: n * sum(v^2) == sum(v)^2.
  check<dist::DistError>(static_cast<double>(group->size()) * sums[1] == sums[0] * sums[0], "Trainer: ", what,
                         " differs between the ranks (", value, " on rank ", group->rank(), ")");
}

template <class Loader>
void check_sharded_for(const Loader& loader, const std::shared_ptr<dist::ProcessGroup>& group, const char* which,
                       bool training) {
  const std::int64_t world = group ? group->size() : 1;
  check<dist::DistError>(shard_world(loader) == world, "Trainer: the ", which, " loader is sharded for ",
                         shard_world(loader), " process(es), the process group has ", world,
                         " (set LoaderOptions::shard, or FashionMnistOptions rank and world, from the group)");
  if constexpr (requires { loader.shard().rank; }) {
    if (world == 1) return;
    check<dist::DistError>(loader.shard().rank == group->rank(), "Trainer: the ", which,
                           " loader is the shard of rank ", loader.shard().rank, ", but this is rank ", group->rank());
    const auto expected = training ? data::ShardMode::training : data::ShardMode::evaluation;
    check<dist::DistError>(loader.shard().mode == expected, "Trainer: the ", which, " loader is sharded for ",
                           training ? "evaluation" : "training", " (ShardMode::", training ? "training" : "evaluation",
                           " keeps the ranks' steps equal and the metrics exact)");
  }
}

// The loader a fit validates on: data.validation() when the data has one.
template <class Data>
auto& validation_loader(Data& data) {
  if constexpr (requires { data.validation(); })
    return data.validation();
  else
    return data.test();
}

}  // namespace detail

// Mean cross-entropy and accuracy of `model` over `loader` (epoch 0 order),
// in eval mode and without recording gradients; restores the mode after.
// With a process group each rank evaluates its shard of the loader and the
// sums are reduced, so every rank returns the metrics of the whole set.
template <class T, class D, class Loader>
EvalResult evaluate(nn::Module<T, D>& model, Loader& loader,
                    const std::shared_ptr<dist::ProcessGroup>& group = nullptr) {
  detail::check_on_every_rank<D>(group, [&] { detail::check_sharded_for(loader, group, "evaluation", false); });
  const bool was_training = model.is_training();
  model.eval();
  nn::NoGradGuard no_grad;
  nn::CrossEntropyLoss<T, D> criterion;
  double loss_sum = 0;
  std::int64_t correct = 0, samples = 0;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    const auto labels = batch->labels.template to<D>();
    const auto logits = model.forward(batch->images.template to<D>());
    const std::int64_t n = labels.numel();
    loss_sum += static_cast<double>(criterion(logits, labels)) * static_cast<double>(n);
    correct += ops::count_correct(logits, labels);
    samples += n;
  }
  model.train(was_training);
  std::array<double, 3> sums{loss_sum, static_cast<double>(correct), static_cast<double>(samples)};
  detail::sum_over_ranks<D>(group, sums);
  const auto total = static_cast<std::int64_t>(sums[2]);
  check<ValueError>(total > 0, "evaluate: the loader produced no samples");
  return {sums[0] / sums[2], sums[1] / sums[2], total};
}

class Trainer {
 public:
  explicit Trainer(TrainerOptions options = {}) : options_(std::move(options)) { validate(options_); }

  const TrainerOptions& options() const { return options_; }

  // Trains `model` with `optimizer` on data.train(), validating on
  // data.validation() (or data.test()) every epoch; returns the history of
  // the whole run (resumed epochs included).
  template <class T, class D, class Data>
  History fit(nn::Module<T, D>& model, optim::Optimizer<T, D>& optimizer, Data& data) {
    auto& train_loader = data.train();
    auto& val_loader = detail::validation_loader(data);
    const auto& group = options_.process_group;
    const bool distributed = group && group->size() > 1;
    const bool main_rank = !group || group->is_main();
    detail::check_on_every_rank<D>(group, [&] {
      detail::check_sharded_for(train_loader, group, "training", true);
      detail::check_sharded_for(val_loader, group, "validation", false);
    });
    const std::int64_t steps_per_epoch = train_loader.num_batches();
    // Every rank must take the same steps: each issues one set of collectives per step.
    detail::check_same_on_every_rank<D>(group, steps_per_epoch,
                                        "the number of training steps per epoch (the data set, batch size or shard)");
    check<ValueError>(steps_per_epoch >= 1, "Trainer: the training loader has no batches");

    const Autocast autocast(options_.precision);
    // Nobody reads dL/d(images): backward stops at the first trainable
    // layer (the whole stem's input gradient, or a frozen backbone, is skipped).
    struct InputGradScope {
      nn::Module<T, D>& m;
      bool previous;
      ~InputGradScope() { m.set_input_grad_needed(previous); }
    } input_grad_scope{model, model.input_grad_needed()};
    model.set_input_grad_needed(false);
    optim::GradScaler<T, D> scaler(effective_loss_scaling(options_));
    detail::check_on_every_rank<D>(group, [&] {
      if (!main_rank) return;  // only rank 0 writes them
      check_writable(options_.metrics_csv, "metrics CSV");
      check_writable(options_.plot_svg, "plot");
      check_writable(options_.checkpoint, "checkpoint");
      check_writable(options_.best_checkpoint, "best checkpoint");
    });
    std::optional<optim::WeightEma<T, D>> ema;
    if (options_.ema_decay) ema.emplace(model, *options_.ema_decay, /*warmup=*/true);

    History history;
    std::int64_t first_epoch = 1;
    if (options_.resume && checkpoint_exists<D>()) {
      detail::check_on_every_rank<D>(group, [&] {
        history = resume(model, optimizer, scaler, ema, steps_per_epoch);
        first_epoch = history.empty() ? 1 : history.back().epoch + 1;
        if (main_rank) check_best_checkpoint_matches(history);
      });
      // Each rank read its own copy of the checkpoint: they must be the same run.
      detail::check_same_on_every_rank<D>(group, first_epoch, "the epoch the checkpoint resumes at");
    }
    // After resuming, so that rank 0's broadcast carries the loaded state
    // (which every rank read anyway).
    std::optional<dist::GradientReducer<T, D>> reducer;
    if (distributed) reducer.emplace(model, group);
    // A fresh average starts from the weights every rank now shares.
    if (ema && first_epoch == 1) ema->reset();

    const bool bar_on = main_rank && (options_.progress == ProgressMode::Bar ||
                                      (options_.progress == ProgressMode::Auto && is_terminal(stderr)));
    ProgressBar bar(stderr, bar_on);
    nn::CrossEntropyLoss<T, D> criterion({.label_smoothing = options_.label_smoothing});
    using Clock = std::chrono::steady_clock;

    for (std::int64_t epoch = first_epoch; epoch <= options_.max_epochs; ++epoch) {
      const auto epoch_start = Clock::now();
      model.train();
      train_loader.start_epoch(epoch);
      bar.start(epoch, options_.max_epochs, steps_per_epoch);
      double loss_sum = 0;
      std::int64_t correct = 0, samples = 0, step = 0, skipped_steps = 0;
      double train_seconds = 0;
      auto step_start = Clock::now();
      while (auto batch = train_loader.next()) {
        ++step;
        if (options_.schedule) options_.schedule->apply(optimizer);
        optimizer.zero_grad();
        // The batch comes from the loader on the host; on a GPU the upload is
        // asynchronous and ordered before the kernels that read it.
        const auto labels = batch->labels.template to<D>();
        if (reducer) reducer->before_forward();
        const auto logits = model.forward(batch->images.template to<D>());
        // This step's loss and correct count over the global batch: the
        // local sums, reduced over the ranks.
        std::array<double, 3> step_sums{static_cast<double>(criterion(logits, labels)) * labels.numel(),
                                        static_cast<double>(ops::count_correct(logits, labels)),
                                        static_cast<double>(labels.numel())};
        detail::sum_over_ranks<D>(group, step_sums);
        const double loss = step_sums[0] / step_sums[2];
        if (!std::isfinite(loss)) {
          bar.finish();
          throw TrainingDiverged(rescnn::detail::concat(
              "training diverged: the loss is ",
              std::isnan(loss) ? "nan"
              : loss > 0       ? "inf"
                               : "-inf",
              " at epoch ", epoch, ", step ", step, " of ", steps_per_epoch, " (learning rate ", optimizer.lr(), ")",
              options_.checkpoint.empty()
                  ? std::string()
                  : "; the last checkpoint '" + options_.checkpoint.string() + "' holds the last good state"));
        }
        const auto grad_logits = scaler.scale(criterion.backward());
        if (reducer)
          reducer->backward(grad_logits);  // the gradients averaged over the ranks
        else
          model.backward(grad_logits);
        if (scaler.step(optimizer)) {
          if (ema) ema->update();
        } else {
          ++skipped_steps;  // a gradient overflowed: no update
        }
        scaler.update();

        loss_sum += step_sums[0];
        correct += static_cast<std::int64_t>(step_sums[1]);
        samples += static_cast<std::int64_t>(step_sums[2]);
        const auto now = Clock::now();
        train_seconds += std::chrono::duration<double>(now - step_start).count();
        step_start = now;
        if (options_.on_step) options_.on_step(epoch, step, loss);
        bar.update(step, loss_sum / static_cast<double>(samples), static_cast<double>(samples) / train_seconds);
      }
      bar.finish();
      // Without SyncBatchNorm each rank's running statistics follow its own
      // batches; rank 0's are the model's (as DDP's next forward would
      // broadcast them), for validation and the checkpoint alike.
      if (reducer) reducer->broadcast_state(/*parameters=*/false);
      // Likewise the averages: their BatchNorm statistics followed each
      // rank's own, and every rank must validate (and keep) the same model.
      if (reducer && ema)
        for (auto& [name, average] : ema->named_state()) dist::broadcast_tensor(*group, *average);

      // The averaged weights are validated (and kept, when they are the best).
      std::optional<typename optim::WeightEma<T, D>::Applied> averaged;
      if (ema) averaged.emplace(ema->apply());
      const EvalResult val = evaluate(model, val_loader, group);
      EpochMetrics m;
      m.epoch = epoch;
      m.train_loss = loss_sum / static_cast<double>(samples);
      m.train_acc = static_cast<double>(correct) / static_cast<double>(samples);
      m.val_loss = val.loss;
      m.val_acc = val.accuracy;
      m.lr = optimizer.lr();
      m.images_per_second = static_cast<double>(samples) / train_seconds;
      m.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      history.add(m);
      if (main_rank && !options_.best_checkpoint.empty() && history.best_epoch() == epoch) write_best(model, m);
      averaged.reset();  // the model's own weights again
      if (main_rank) write_outputs(model, optimizer, scaler, ema, history, steps_per_epoch);
      if (options_.log && main_rank) {
        *options_.log << format_epoch_line(m) << std::endl;
        if (skipped_steps > 0)
          *options_.log << "epoch " << epoch << ": " << skipped_steps << " of " << steps_per_epoch
                        << " steps skipped (a scaled gradient overflowed); loss scale now "
                        << format_roundtrip(scaler.scale_value()) << std::endl;
      }
      if (options_.on_epoch) options_.on_epoch(m);
    }
    if (ema) ema->copy_to_model();  // what was validated is what the caller gets
    return history;
  }

 private:
  // Fails before the first epoch, not after it, when an output cannot be
  // written: its directory must exist and the path must not be a directory.
  static void check_writable(const std::filesystem::path& file, const char* what) {
    if (file.empty()) return;
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
    check<IoError>(fs::is_directory(dir, ec), "Trainer: cannot write the ", what, " '", file.string(),
                   "': the directory '", dir.string(), "' does not exist");
    check<IoError>(!fs::is_directory(file, ec), "Trainer: cannot write the ", what, " '", file.string(),
                   "': it is a directory");
  }

  // Checkpoint entries of the loss scaler (written only when it is enabled).
  static constexpr const char* kLossScaleKey = "loss_scale";
  static constexpr const char* kLossScaleGrowthKey = "loss_scale_growth_tracker";
  // The number of ranks that wrote a checkpoint (absent: 1, as before it was recorded).
  static constexpr const char* kWorldSizeKey = "world_size";

  // The weight average a checkpoint's run kept ("none" or its decay): a run
  // resumes only with the same one.
  static constexpr const char* kEmaKey = "ema_decay";
  static constexpr const char* kEmaUpdatesKey = "ema_updates";
  std::string ema_setting() const { return options_.ema_decay ? format_roundtrip(*options_.ema_decay) : "none"; }

  // The names of the run settings a checkpoint records, comma-separated.
  static constexpr const char* kRunSettingsKey = "run_settings";
  std::string setting_names() const {
    std::string out;
    for (const auto& [key, value] : options_.run_settings) out += (out.empty() ? "" : ",") + key;
    return out;
  }
  static std::vector<std::string> split_names(const std::string& list) {
    std::vector<std::string> out;
    for (std::size_t start = 0; start < list.size();) {
      const std::size_t end = std::min(list.find(',', start), list.size());
      if (end > start) out.push_back(list.substr(start, end - start));
      start = end + 1;
    }
    return out;
  }

  int world_size() const { return options_.process_group ? options_.process_group->size() : 1; }

  // Whether to resume: the checkpoint exists on every rank, or on none.
  template <class D>
  bool checkpoint_exists() const {
    std::error_code ec;
    const bool here = std::filesystem::exists(options_.checkpoint, ec);
    std::array<double, 1> count{here ? 1.0 : 0.0};
    detail::sum_over_ranks<D>(options_.process_group, count);
    const int seen = static_cast<int>(count[0]), world = world_size();
    check<dist::DistError>(seen == 0 || seen == world, "Trainer: the checkpoint '", options_.checkpoint.string(),
                           "' exists on ", seen, " of ", world, " ranks (", here ? "this one" : "not this one",
                           "); resuming needs it on every rank (a shared file system, or a copy on each host)");
    return seen > 0;
  }

  // The metadata keys of the best checkpoint.
  static constexpr const char* kBestEpochKey = "rescnn.best_epoch";
  static constexpr const char* kBestValAccKey = "rescnn.val_acc";

  template <class T, class D>
  void write_best(nn::Module<T, D>& model, const EpochMetrics& m) {
    io::SafeTensors st = io::state_dict(model);
    st.set_metadata("format", "pt");
    st.set_metadata(kBestEpochKey, std::to_string(m.epoch));
    st.set_metadata(kBestValAccKey, format_roundtrip(m.val_acc));
    for (const auto& [key, value] : options_.run_settings) st.set_metadata("extra." + key, value);
    st.save(options_.best_checkpoint);
  }

  // On resume the best epoch so far must be the one the best file holds:
  // else the first part of the run kept none (or another run's is there),
  // and the end of this one would report weights it never chose.
  void check_best_checkpoint_matches(const History& history) const {
    const std::int64_t best = history.best_epoch();
    if (options_.best_checkpoint.empty() || best == 0) return;
    const std::string where = "Trainer: cannot keep the best epoch in '" + options_.best_checkpoint.string() + "': ";
    std::error_code ec;
    check<IoError>(std::filesystem::exists(options_.best_checkpoint, ec), where, "the resumed run's best epoch ", best,
                   " was not kept there (the file does not exist: was the run started without keeping the best?)");
    const io::SafeTensors file = io::SafeTensors::load(options_.best_checkpoint);
    const auto it = file.metadata().find(kBestEpochKey);
    const std::string kept = it == file.metadata().end() ? "none" : it->second;
    check<IoError>(kept == std::to_string(best), where, "it holds epoch ", kept,
                   ", but the resumed run's best epoch is ", best, " (another run's file?)");
  }

  template <class T, class D>
  static io::ExtraState<T, D> ema_state(std::optional<optim::WeightEma<T, D>>& ema) {
    return ema ? ema->named_state() : io::ExtraState<T, D>{};
  }

  template <class T, class D>
  void write_outputs(nn::Module<T, D>& model, optim::Optimizer<T, D>& optimizer, const optim::GradScaler<T, D>& scaler,
                     std::optional<optim::WeightEma<T, D>>& ema, const History& history, std::int64_t steps_per_epoch) {
    if (!options_.metrics_csv.empty()) write_csv(history, options_.metrics_csv);
    if (!options_.plot_svg.empty()) write_svg(history, options_.plot_svg, {.title = options_.plot_title});
    if (!options_.checkpoint.empty()) {
      io::CheckpointInfo info;
      info.epoch = history.back().epoch;
      info.rng = default_generator().state();
      info.extra = options_.run_settings;
      info.extra[kRunSettingsKey] = setting_names();
      info.extra["steps_per_epoch"] = std::to_string(steps_per_epoch);
      info.extra[kEmaKey] = ema_setting();
      if (ema) info.extra[kEmaUpdatesKey] = std::to_string(ema->updates());
      info.extra[kWorldSizeKey] = std::to_string(world_size());
      info.extra["history"] = to_csv_text(history);
      if (scaler.enabled()) {
        info.extra[kLossScaleKey] = format_roundtrip(scaler.scale_value());
        info.extra[kLossScaleGrowthKey] = std::to_string(scaler.growth_tracker());
      }
      io::save_checkpoint(options_.checkpoint, model, optimizer, info, ema_state(ema));
    }
  }

  template <class T, class D>
  History resume(nn::Module<T, D>& model, optim::Optimizer<T, D>& optimizer, optim::GradScaler<T, D>& scaler,
                 std::optional<optim::WeightEma<T, D>>& ema, std::int64_t steps_per_epoch) {
    const std::string where = "Trainer: cannot resume from '" + options_.checkpoint.string() + "': ";
    // Read once; check the run's settings before anything is loaded into the model.
    const io::SafeTensors file = io::SafeTensors::load(options_.checkpoint);
    const io::CheckpointInfo saved = io::checkpoint_info(file);
    // First, since the batch split (and so steps_per_epoch) follows from it.
    const auto world = saved.extra.find(kWorldSizeKey);
    const std::string saved_world = world == saved.extra.end() ? "1" : world->second;
    check<dist::DistError>(saved_world == std::to_string(world_size()), where, "it was written by a run of ",
                           saved_world, " process(es), this run has ", world_size(),
                           " (resume with the same number of processes: the data split and the reduction order "
                           "depend on it)");
    auto settings = options_.run_settings;
    settings["steps_per_epoch"] = std::to_string(steps_per_epoch);
    // Checkpoints from before the weight average existed record none.
    const auto saved_ema = saved.extra.find(kEmaKey);
    const std::string ema_saved = saved_ema == saved.extra.end() ? "none" : saved_ema->second;
    check<ValueError>(ema_saved == ema_setting(), where, "it was written with ema_decay=", ema_saved,
                      ", this run has ema_decay=", ema_setting(), " (resume with the same weight average)");
    // A setting the checkpoint's run had and this one leaves out is a
    // difference too (checkpoints from before the list was kept have none).
    if (const auto names = saved.extra.find(kRunSettingsKey); names != saved.extra.end())
      for (const std::string& key : split_names(names->second)) {
        const auto value = saved.extra.find(key);
        check<ValueError>(settings.contains(key) || value == saved.extra.end(), where, "it was written with ", key, "=",
                          value == saved.extra.end() ? "" : value->second, ", this run does not set ", key,
                          " (resume with the same settings)");
      }
    for (const auto& [key, value] : settings) {
      const auto it = saved.extra.find(key);
      check<ValueError>(it != saved.extra.end(), where, "it does not record '", key, "'");
      check<ValueError>(it->second == value, where, "it was written with ", key, "=", it->second, ", this run has ",
                        key, "=", value, " (resume with the same settings)");
    }
    const io::CheckpointInfo info = io::load_checkpoint(file, model, optimizer, ema_state(ema));
    if (ema) {
      const auto updates = info.extra.find(kEmaUpdatesKey);
      const auto n = updates == info.extra.end() ? std::nullopt : parse_int64(updates->second);
      check<IoError>(n.has_value(), where, "its weight average has no valid update count ('", kEmaUpdatesKey, "')");
      ema->set_updates(*n);
    }
    default_generator().set_state(info.rng);
    const auto it = info.extra.find("history");
    History history = it == info.extra.end() ? History() : parse_csv_text(it->second, options_.checkpoint.string());
    check<IoError>(history.empty() ? info.epoch == 0 : history.back().epoch == info.epoch, where,
                   "its history does not end at its epoch ", info.epoch);
    // A checkpoint of a run without loss scaling leaves the scaler at its
    // initial scale; one with it restores the scale exactly.
    const auto scale = info.extra.find(kLossScaleKey), growth = info.extra.find(kLossScaleGrowthKey);
    if (scaler.enabled() && scale != info.extra.end()) {
      const auto value = parse_double(scale->second);
      const auto tracker = growth == info.extra.end() ? std::nullopt : parse_int64(growth->second);
      check<IoError>(value && tracker, where, "its loss scale '", scale->second, "' or growth count is not a number");
      scaler.load_state(*value, *tracker);
    }
    return history;
  }

  TrainerOptions options_;
};

}  // namespace rescnn::train
