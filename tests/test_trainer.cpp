// The trainer: a short real training run learns, a resumed run reproduces an
// uninterrupted one bit for bit, a NaN stops training naming where, and the
// CSV, SVG and checkpoint files are written.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>

#include "rescnn/backend/cpu/bf16_kernels.hpp"
#include "rescnn/data/data.hpp"
#include "rescnn/io/checkpoint.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/optim/optim.hpp"
#include "rescnn/train/train.hpp"
#include "support/skip.hpp"
#include "support/temp_dir.hpp"

namespace rn = rescnn;
using rn::testing::TempDir;

namespace {

// Train and test loaders over the first images of the real data set.
struct SmallFashionMnist {
  rn::data::DataLoader train_loader, test_loader;
  SmallFashionMnist(std::int64_t train_images, std::int64_t test_images, const rn::data::LoaderOptions& train_options)
      : train_loader(std::make_shared<const rn::data::ImageSet>(
                         rn::data::load_fashion_mnist(rn::data::default_root(), rn::data::Split::Train, train_images)),
                     train_options),
        test_loader(std::make_shared<const rn::data::ImageSet>(
                        rn::data::load_fashion_mnist(rn::data::default_root(), rn::data::Split::Test, test_images)),
                    rn::data::LoaderOptions{.batch_size = 100}) {}
  rn::data::DataLoader& train() { return train_loader; }
  rn::data::DataLoader& test() { return test_loader; }
};

// A small member of the d2l family, so that multi-epoch runs take seconds.
std::shared_ptr<rn::models::D2lResNet<float>> small_model() {
  return std::make_shared<rn::models::D2lResNet<float>>(rn::models::Arch{{1, 64}, {1, 32}, {1, 32}}, 10, 1);
}

struct StepLog {
  std::vector<std::tuple<std::int64_t, std::int64_t, double>> steps;
  auto callback() {
    return [this](std::int64_t e, std::int64_t s, double loss) { steps.emplace_back(e, s, loss); };
  }
};

}  // namespace

TEST_CASE("A short training run on real Fashion-MNIST lowers the loss", "[trainer]") {
  // Eval-mode BatchNorm after 24 steps still has unsettled running
  // statistics, so validation accuracy after two epochs is a lottery over
  // the seed: measured over seeds 0-5 it ranged from 0.12 to 0.36 (PyTorch
  // on seed 0's run: 0.21). One seed's accuracy is therefore no test of
  // learning; the mean over three seeds is, and each run must lower its
  // training and validation losses.
  double sum_val_acc = 0;
  for (std::uint64_t seed : {0, 1, 2}) {
    rn::manual_seed(seed);
    SmallFashionMnist data(384, 500, {.batch_size = 32, .shuffle = true, .seed = 1});
    auto model = rn::models::d2l_resnet18<float>();
    rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.01, .momentum = 0.9});
    StepLog log;
    std::ostringstream lines;
    rn::train::Trainer trainer(
        {.max_epochs = 2, .progress = rn::train::ProgressMode::Silent, .log = &lines, .on_step = log.callback()});
    const rn::train::History h = trainer.fit(*model, sgd, data);

    INFO("seed " << seed << "\n" << lines.str());
    REQUIRE(h.size() == 2);
    REQUIRE(log.steps.size() == 24);
    const auto mean_loss = [&](std::size_t first, std::size_t n) {
      double s = 0;
      for (std::size_t i = first; i < first + n; ++i) s += std::get<2>(log.steps[i]);
      return s / static_cast<double>(n);
    };
    // Chance level is ln(10) = 2.30; a few dozen SGD steps must get well below.
    CHECK(mean_loss(0, 3) > 1.2);
    CHECK(mean_loss(21, 3) < 0.7 * mean_loss(0, 3));
    CHECK(h.back().train_loss < h.epochs().front().train_loss);
    CHECK(h.back().val_loss < h.epochs().front().val_loss);
    sum_val_acc += h.back().val_acc;
    // One plain line per epoch, in the documented form.
    const std::string text = lines.str();
    CHECK(text.rfind("epoch=1 train_loss=", 0) == 0);
    CHECK(text.find("\nepoch=2 train_loss=") != std::string::npos);
    CHECK(text.find(" val_loss=") != std::string::npos);
    CHECK(text.find(" imgs_per_s=") != std::string::npos);
  }
  // Chance is 0.10; measured means of seeds 0-2: 0.195 (Eigen convolutions), 0.192 (AVX-512 GEMM).
  CHECK(sum_val_acc / 3 > 0.15);
}

// Trains `epochs` epochs uninterrupted, then `resume_after` epochs plus a
// resume to `epochs` from a model initialised with another seed, and checks
// that the two runs agree bit for bit: every step's (epoch, step, loss), the
// epoch metrics and the final weights and buffers. `make` builds the
// optimizer and schedule for a model, given the steps per epoch.
using MakeOptimizer =
    std::function<std::pair<std::unique_ptr<rn::optim::Optimizer<float>>, std::shared_ptr<const rn::optim::LrSchedule>>(
        rn::nn::Module<float>&, std::int64_t steps_per_epoch)>;

static void require_bitwise_resume(std::int64_t epochs, std::int64_t resume_after, std::int64_t train_images,
                                   std::int64_t test_images, const MakeOptimizer& make,
                                   rn::Precision precision = rn::Precision::fp32,
                                   std::optional<rn::optim::GradScalerOptions> loss_scaling = std::nullopt,
                                   std::optional<double> ema_decay = std::nullopt) {
  TempDir tmp("rescnn_trainer");
  // Augmentation, shuffling, momentum and a schedule: everything that
  // carries state across epochs.
  const rn::data::LoaderOptions loader{
      .batch_size = 32, .shuffle = true, .seed = 7, .crop_padding = 2, .horizontal_flip = true};
  const auto run = [&](std::int64_t max_epochs, const std::filesystem::path& ckpt, bool resume, std::uint64_t init_seed,
                       StepLog& log) {
    rn::manual_seed(init_seed);
    SmallFashionMnist data(train_images, test_images, loader);
    auto model = small_model();
    auto [optimizer, schedule] = make(*model, data.train().num_batches());
    rn::train::Trainer trainer({.max_epochs = max_epochs,
                                .schedule = schedule,
                                .checkpoint = ckpt,
                                .resume = resume,
                                .precision = precision,
                                .loss_scaling = loss_scaling,
                                .progress = rn::train::ProgressMode::Silent,
                                .log = nullptr,
                                .on_step = log.callback(),
                                .ema_decay = ema_decay});
    auto history = trainer.fit(*model, *optimizer, data);
    return std::make_pair(history, rn::io::state_dict(*model));
  };
  StepLog full, first, second;
  const auto [h_full, w_full] = run(epochs, tmp / "full.safetensors", false, 1, full);
  run(resume_after, tmp / "part.safetensors", false, 1, first);
  // A different initialisation seed: everything must come from the checkpoint.
  const auto [h_resumed, w_resumed] = run(epochs, tmp / "part.safetensors", true, 99, second);

  REQUIRE(first.steps.size() + second.steps.size() == full.steps.size());
  for (std::size_t i = 0; i < full.steps.size(); ++i) {
    const auto& expected = full.steps[i];
    const auto& got = i < first.steps.size() ? first.steps[i] : second.steps[i - first.steps.size()];
    INFO("step " << i);
    REQUIRE(got == expected);  // epoch, step and the loss, exactly
  }
  REQUIRE(h_resumed.size() == h_full.size());
  for (std::size_t e = 0; e < h_full.size(); ++e) {
    REQUIRE(h_resumed.epochs()[e].train_loss == h_full.epochs()[e].train_loss);
    REQUIRE(h_resumed.epochs()[e].val_loss == h_full.epochs()[e].val_loss);
    REQUIRE(h_resumed.epochs()[e].val_acc == h_full.epochs()[e].val_acc);
  }
  for (const auto& name : w_full.names()) {
    INFO(name);
    REQUIRE(w_resumed.record(name).bytes == w_full.record(name).bytes);
  }
}

TEST_CASE("A run resumed from a checkpoint reproduces the uninterrupted run bit for bit", "[trainer][checkpoint]") {
  const std::int64_t epochs = 3;
  SECTION("SGD with momentum and a one-cycle schedule") {
    require_bitwise_resume(epochs, 1, 160, 100, [&](rn::nn::Module<float>& model, std::int64_t steps) {
      return std::make_pair(
          std::unique_ptr<rn::optim::Optimizer<float>>(
              new rn::optim::SGD<float>(model.named_parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4})),
          std::shared_ptr<const rn::optim::LrSchedule>(std::make_shared<rn::optim::OneCycleLR>(0.05, epochs * steps)));
    });
  }
  SECTION("bf16 autocast (the CPU's default bf16 engine)") {
    if (!rn::cpu::bf16_compute_available())
      RESCNN_SKIP("bf16 computes in fp32 here: " << rn::cpu::bf16_fallback_reason());
    require_bitwise_resume(
        epochs, 1, 160, 100,
        [&](rn::nn::Module<float>& model, std::int64_t steps) {
          return std::make_pair(std::unique_ptr<rn::optim::Optimizer<float>>(
                                    new rn::optim::SGD<float>(model.named_parameters(), {.lr = 0.05, .momentum = 0.9})),
                                std::shared_ptr<const rn::optim::LrSchedule>(
                                    std::make_shared<rn::optim::OneCycleLR>(0.05, epochs * steps)));
        },
        rn::Precision::bf16);
  }
  SECTION("dynamic loss scaling: the scale and its growth count come back from the checkpoint") {
    // 2^200 is infinite in float: the first steps overflow and are skipped
    // until the scale has backed off to 2^100, then it doubles every 3 good
    // steps. A resume that restarted the scale would skip steps again.
    require_bitwise_resume(
        epochs, 1, 160, 100,
        [&](rn::nn::Module<float>& model, std::int64_t) {
          return std::make_pair(std::unique_ptr<rn::optim::Optimizer<float>>(
                                    new rn::optim::SGD<float>(model.named_parameters(), {.lr = 0.05, .momentum = 0.9})),
                                std::shared_ptr<const rn::optim::LrSchedule>());
        },
        rn::Precision::fp32,
        rn::optim::GradScalerOptions{.init_scale = 0x1p200, .backoff_factor = 0x1p-50, .growth_interval = 3});
  }
  SECTION("an EMA of the weights: the averages and their update count come back from the checkpoint") {
    // Validation and the final weights are the averages', so a resume that
    // restarted them (or their warm-up) would change both.
    require_bitwise_resume(
        epochs, 1, 160, 100,
        [&](rn::nn::Module<float>& model, std::int64_t steps) {
          return std::make_pair(
              std::unique_ptr<rn::optim::Optimizer<float>>(new rn::optim::SGD<float>(
                  rn::optim::no_decay_on_norm_and_bias(model), {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4})),
              std::shared_ptr<const rn::optim::LrSchedule>(
                  std::make_shared<rn::optim::OneCycleLR>(0.05, epochs * steps)));
        },
        rn::Precision::fp32, std::nullopt, 0.9);
  }
  SECTION("AdamW with warm-up then cosine") {
    require_bitwise_resume(epochs, 2, 96, 50, [&](rn::nn::Module<float>& model, std::int64_t steps) {
      return std::make_pair(
          std::unique_ptr<rn::optim::Optimizer<float>>(
              new rn::optim::AdamW<float>(model.named_parameters(), {.lr = 2e-3})),
          std::shared_ptr<const rn::optim::LrSchedule>(std::make_shared<rn::optim::WarmupThen>(
              steps, 0.1, std::make_shared<rn::optim::CosineAnnealingLR>(2e-3, (epochs - 1) * steps))));
    });
  }
}

namespace {

// Runs `trainer.fit`, which must stop with TrainingDiverged naming
// `where` ("epoch 2, step 2 of 3") and the checkpoint; then the checkpoint
// must be epoch 1's (3 steps), loadable into `fresh` and finite.
void require_nan_stop(rn::train::Trainer& trainer, rn::nn::Module<float>& model, rn::optim::Optimizer<float>& opt,
                      SmallFashionMnist& data, const std::string& where, const std::filesystem::path& checkpoint,
                      rn::nn::Module<float>& fresh) {
  try {
    trainer.fit(model, opt, data);
    FAIL("fit did not throw");
  } catch (const rn::train::TrainingDiverged& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("the loss is nan at " + where) != std::string::npos);
    CHECK(msg.find(checkpoint.filename().string() + "' holds the last good state") != std::string::npos);
  }
  rn::optim::SGD<float> restored_opt(fresh.named_parameters(), {.lr = 0.01});
  const auto info = rn::io::load_checkpoint(checkpoint, fresh, restored_opt);
  REQUIRE(info.epoch == 1);
  REQUIRE(restored_opt.steps() == 3);
  for (auto& [name, p] : fresh.named_parameters())
    for (float v : p->value.to_vector()) REQUIRE(std::isfinite(v));
}

}  // namespace

TEST_CASE("Loss scaling by powers of two changes no bit of fp32 training; an overflow skips the step",
          "[trainer][grad_scaler]") {
  // Scaling a gradient by 2^k and back is exact in binary floating point
  // (barring overflow and subnormals), and every backward pass is linear in
  // the loss gradient: with a scale that never overflows, the run is the
  // unscaled run bit for bit, whatever the scale does.
  const auto run = [](std::optional<rn::optim::GradScalerOptions> scaling, std::ostream* log, StepLog& steps,
                      std::int64_t& optimizer_steps) {
    rn::manual_seed(3);
    SmallFashionMnist data(128, 50, {.batch_size = 32, .shuffle = true, .seed = 5});
    auto model = small_model();
    rn::optim::SGD<float> opt(model->named_parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4});
    rn::train::Trainer trainer({.max_epochs = 2,
                                .loss_scaling = scaling,
                                .progress = rn::train::ProgressMode::Silent,
                                .log = log,
                                .on_step = steps.callback()});
    trainer.fit(*model, opt, data);
    optimizer_steps = opt.steps();
    return rn::io::state_dict(*model);
  };
  StepLog plain_steps, scaled_steps, overflow_steps;
  std::int64_t plain_count = 0, scaled_count = 0, overflow_count = 0;
  const auto plain = run(std::nullopt, nullptr, plain_steps, plain_count);
  const auto scaled = run(rn::optim::GradScalerOptions{.init_scale = 0x1p20, .growth_interval = 2}, nullptr,
                          scaled_steps, scaled_count);
  REQUIRE(plain_count == 8);
  REQUIRE(scaled_count == 8);
  REQUIRE(scaled_steps.steps == plain_steps.steps);
  for (const auto& name : plain.names()) {
    INFO(name);
    REQUIRE(scaled.record(name).bytes == plain.record(name).bytes);
  }

  // 2^200 overflows float: the first two steps are skipped (2^200, 2^150),
  // the third runs at 2^100. The log says so.
  std::ostringstream log;
  const auto overflowed = run(rn::optim::GradScalerOptions{.init_scale = 0x1p200, .backoff_factor = 0x1p-50}, &log,
                              overflow_steps, overflow_count);
  CHECK(overflow_count == 6);
  INFO(log.str());
  CHECK(log.str().find("epoch 1: 2 of 4 steps skipped (a scaled gradient overflowed); loss scale now " +
                       rn::train::format_roundtrip(0x1p100)) != std::string::npos);
  CHECK(log.str().find("steps skipped") == log.str().rfind("steps skipped"));  // none in epoch 2

  // Unset, loss scaling is on for fp16 alone, with GradScaler's defaults.
  using rn::train::effective_loss_scaling;
  CHECK(effective_loss_scaling({.precision = rn::Precision::fp16}).enabled);
  CHECK(effective_loss_scaling({.precision = rn::Precision::fp16}).init_scale == 65536.0);
  CHECK_FALSE(effective_loss_scaling({.precision = rn::Precision::bf16}).enabled);
  CHECK_FALSE(effective_loss_scaling({}).enabled);
  CHECK_FALSE(effective_loss_scaling(
                  {.precision = rn::Precision::fp16, .loss_scaling = rn::optim::GradScalerOptions{.enabled = false}})
                  .enabled);
}

TEST_CASE("A NaN loss stops training naming the epoch and step, and the last checkpoint survives",
          "[trainer][checkpoint]") {
  TempDir tmp("rescnn_trainer");
  rn::manual_seed(5);
  SmallFashionMnist data(96, 50, {.batch_size = 32});
  auto model = small_model();
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.01});
  auto& weight = model->named_parameters().front().second->value;
  // Poison a weight after step 1 of epoch 2: step 2's loss is NaN.
  const auto poison = [&](std::int64_t epoch, std::int64_t step, double) {
    if (epoch == 2 && step == 1) weight.data()[0] = std::numeric_limits<float>::quiet_NaN();
  };
  rn::train::Trainer trainer({.max_epochs = 3,
                              .checkpoint = tmp / "ckpt.safetensors",
                              .progress = rn::train::ProgressMode::Silent,
                              .log = nullptr,
                              .on_step = poison});
  auto restored = small_model();
  require_nan_stop(trainer, *model, sgd, data, "epoch 2, step 2 of 3", tmp / "ckpt.safetensors", *restored);
}

namespace {

// Passes its input through, except that once armed it writes a NaN into the
// next training batch it sees: a corrupt input arriving mid-training.
struct PoisonInput : rn::nn::Module<float> {
  bool armed = false;
  TensorT forward(const TensorT& x) override {
    TensorT y = x.clone();
    if (armed && this->is_training()) {
      y.data()[0] = std::numeric_limits<float>::quiet_NaN();
      armed = false;
    }
    return y;
  }
  TensorT backward(const TensorT& grad_output) override { return grad_output.view(); }
  rn::Shape output_shape(const rn::Shape& input) const override { return input; }
  std::string type_name() const override { return "PoisonInput"; }
};

}  // namespace

TEST_CASE("A NaN in an input batch mid-training stops the trainer, naming where, and the last checkpoint survives",
          "[trainer][checkpoint]") {
  TempDir tmp("rescnn_trainer");
  rn::manual_seed(6);
  SmallFashionMnist data(96, 50, {.batch_size = 32});
  auto poison = std::make_shared<PoisonInput>();
  auto model = std::make_shared<rn::nn::Sequential<float>>();
  model->push_back("poison", poison);
  model->push_back("net", small_model());
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.01});
  // Armed after step 2 of epoch 2: step 3's batch carries the NaN.
  const auto arm = [&](std::int64_t epoch, std::int64_t step, double) {
    if (epoch == 2 && step == 2) poison->armed = true;
  };
  rn::train::Trainer trainer({.max_epochs = 3,
                              .checkpoint = tmp / "ckpt.safetensors",
                              .progress = rn::train::ProgressMode::Silent,
                              .log = nullptr,
                              .on_step = arm});
  auto restored = std::make_shared<rn::nn::Sequential<float>>();
  restored->push_back("poison", std::make_shared<PoisonInput>());
  restored->push_back("net", small_model());
  require_nan_stop(trainer, *model, sgd, data, "epoch 2, step 3 of 3", tmp / "ckpt.safetensors", *restored);
}

TEST_CASE("The trainer writes the metrics CSV, the SVG curves and checkpoints", "[trainer]") {
  TempDir tmp("rescnn_trainer");
  rn::manual_seed(2);
  SmallFashionMnist data(64, 50, {.batch_size = 32});
  auto model = small_model();
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.01});
  std::vector<rn::train::EpochMetrics> seen;
  rn::train::Trainer trainer({.max_epochs = 2,
                              .metrics_csv = tmp / "m.csv",
                              .plot_svg = tmp / "c.svg",
                              .checkpoint = tmp / "ck.safetensors",
                              .plot_title = "test run",
                              .progress = rn::train::ProgressMode::Silent,
                              .log = nullptr,
                              .on_epoch = [&](const rn::train::EpochMetrics& m) { seen.push_back(m); }});
  const auto h = trainer.fit(*model, sgd, data);
  REQUIRE(seen.size() == 2);

  const auto csv = rn::train::read_csv(tmp / "m.csv");
  REQUIRE(csv.size() == 2);
  for (std::size_t e = 0; e < 2; ++e) {
    REQUIRE(csv.epochs()[e].train_loss == h.epochs()[e].train_loss);
    REQUIRE(csv.epochs()[e].val_acc == h.epochs()[e].val_acc);
    REQUIRE(csv.epochs()[e].lr == 0.01);
    REQUIRE(csv.epochs()[e].images_per_second > 0);
  }
  std::ifstream svg(tmp / "c.svg");
  const std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  REQUIRE(text.rfind("<svg", 0) == 0);
  REQUIRE(text.find("test run") != std::string::npos);

  const auto file = rn::io::SafeTensors::load(tmp / "ck.safetensors");
  REQUIRE(rn::io::checkpoint_info(file).epoch == 2);
  // The checkpoint is also a plain state dict.
  auto plain = small_model();
  rn::io::load(*plain, tmp / "ck.safetensors");
}

TEST_CASE("Resuming refuses a checkpoint written with other settings", "[trainer][checkpoint][errors]") {
  TempDir tmp("rescnn_trainer");
  rn::manual_seed(2);
  SmallFashionMnist data(64, 50, {.batch_size = 32});
  auto model = small_model();
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.01});
  rn::train::TrainerOptions options{.max_epochs = 1,
                                    .checkpoint = tmp / "ck.safetensors",
                                    .progress = rn::train::ProgressMode::Silent,
                                    .log = nullptr,
                                    .run_settings = {{"model", "small"}}};
  rn::train::Trainer(options).fit(*model, sgd, data);

  options.resume = true;
  options.max_epochs = 2;
  options.run_settings = {{"model", "other"}};
  REQUIRE_THROWS_WITH(rn::train::Trainer(options).fit(*model, sgd, data),
                      Catch::Contains("it was written with model=small, this run has model=other"));
  // A setting the checkpoint's run had and this one leaves out.
  options.run_settings = {};
  REQUIRE_THROWS_WITH(rn::train::Trainer(options).fit(*model, sgd, data),
                      Catch::Contains("it was written with model=small, this run does not set model"));
  // Another batch size changes the steps per epoch.
  options.run_settings = {{"model", "small"}};
  SmallFashionMnist other(64, 50, {.batch_size = 16});
  REQUIRE_THROWS_WITH(rn::train::Trainer(options).fit(*model, sgd, other),
                      Catch::Contains("steps_per_epoch=2, this run has steps_per_epoch=4"));
  // Another optimizer type.
  rn::optim::Adam<float> adam(model->named_parameters(), {});
  REQUIRE_THROWS_WITH(rn::train::Trainer(options).fit(*model, adam, data),
                      Catch::Contains("it holds SGD state, but the optimizer is Adam"));
  // A checkpoint of a 2-process data-parallel run needs 2 processes.
  {
    rn::io::CheckpointInfo info;
    info.epoch = 1;
    info.extra = {{"model", "small"}, {"steps_per_epoch", "2"}, {"world_size", "2"}};
    rn::io::save_checkpoint(tmp / "two.safetensors", *model, sgd, info);
    auto two = options;
    two.checkpoint = tmp / "two.safetensors";
    REQUIRE_THROWS_WITH(rn::train::Trainer(two).fit(*model, sgd, data),
                        Catch::Contains("it was written by a run of 2 process(es), this run has 1"));
  }
  // Resume with no checkpoint on disk yet starts from scratch.
  options.checkpoint = tmp / "fresh.safetensors";
  REQUIRE(rn::train::Trainer(options).fit(*model, sgd, data).size() == 2);
}

TEST_CASE("Outputs that cannot be written fail before training starts", "[trainer][errors]") {
  TempDir tmp("rescnn_trainer");
  SmallFashionMnist data(32, 32, {.batch_size = 32});
  auto model = small_model();
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.01});
  std::int64_t steps = 0;
  const auto count = [&](std::int64_t, std::int64_t, double) { ++steps; };
  REQUIRE_THROWS_WITH(
      rn::train::Trainer(
          {.max_epochs = 1, .checkpoint = tmp / "missing" / "ck.safetensors", .log = nullptr, .on_step = count})
          .fit(*model, sgd, data),
      Catch::Contains("cannot write the checkpoint") && Catch::Contains("does not exist"));
  REQUIRE_THROWS_WITH(rn::train::Trainer({.max_epochs = 1, .plot_svg = tmp.path, .log = nullptr, .on_step = count})
                          .fit(*model, sgd, data),
                      Catch::Contains("cannot write the plot") && Catch::Contains("it is a directory"));
  REQUIRE(steps == 0);
}

TEST_CASE("Loaders sharded for another world size are refused", "[trainer][errors][dist]") {
  SmallFashionMnist data(64, 32, {.batch_size = 16, .shard = {.rank = 0, .world = 2}});
  auto model = small_model();
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.01});
  REQUIRE_THROWS_AS(rn::train::Trainer({.max_epochs = 1, .log = nullptr}).fit(*model, sgd, data), rn::dist::DistError);
  REQUIRE_THROWS_WITH(rn::train::Trainer({.max_epochs = 1, .log = nullptr}).fit(*model, sgd, data),
                      Catch::Contains("the training loader is sharded for 2 process(es), the process group has 1"));
}

TEST_CASE("Trainer options are validated", "[trainer][errors]") {
  REQUIRE_THROWS_WITH(rn::train::Trainer({.max_epochs = 0}), Catch::Contains("max_epochs must be >= 1, got 0"));
  REQUIRE_THROWS_WITH(rn::train::Trainer({.max_epochs = 1, .resume = true}),
                      Catch::Contains("resume needs a checkpoint path"));
}

TEST_CASE("evaluate runs in eval mode and restores the mode", "[trainer]") {
  rn::manual_seed(3);
  SmallFashionMnist data(32, 64, {.batch_size = 32});
  auto model = small_model();
  model->train();
  const auto a = rn::train::evaluate(*model, data.test());
  REQUIRE(model->is_training());
  const auto b = rn::train::evaluate(*model, data.test());
  REQUIRE(a.samples == 64);
  REQUIRE(a.loss == b.loss);  // eval mode: running statistics are not updated
  REQUIRE(a.accuracy >= 0.0);
  REQUIRE(a.accuracy <= 1.0);
}

TEST_CASE("With a validation split and keep-best, the trainer validates on held-out images and keeps the best epoch",
          "[trainer][checkpoint][best]") {
  TempDir tmp("rescnn_trainer");
  rn::manual_seed(6);
  rn::data::FashionMNIST data(
      {.batch_size = 32, .augment = true, .limit = 400, .val_fraction = 0.2, .test_limit = 100, .seed = 3});
  REQUIRE(data.has_validation_split());
  REQUIRE(data.train().num_samples() == 320);
  REQUIRE(data.validation().num_samples() == 80);
  auto model = small_model();
  rn::optim::SGD<float> sgd(rn::optim::no_decay_on_norm_and_bias(*model), {.lr = 0.05, .momentum = 0.9});
  const auto h = rn::train::Trainer({.max_epochs = 4,
                                     .checkpoint = tmp / "ck.safetensors",
                                     .progress = rn::train::ProgressMode::Silent,
                                     .log = nullptr,
                                     .run_settings = {{"model", "small"}},
                                     .ema_decay = 0.5,
                                     .best_checkpoint = tmp / "ck.best.safetensors"})
                     .fit(*model, sgd, data);
  REQUIRE(h.size() == 4);
  // The final weights are the averages, and they were validated on the held-out split.
  const auto last = rn::train::evaluate(*model, data.validation());
  REQUIRE(last.accuracy == h.back().val_acc);
  REQUIRE(last.loss == h.back().val_loss);

  const std::int64_t best = h.best_epoch();
  REQUIRE(best >= 1);
  for (const auto& m : h.epochs()) REQUIRE(m.val_acc <= h.epochs()[static_cast<std::size_t>(best - 1)].val_acc);
  const auto file = rn::io::SafeTensors::load(tmp / "ck.best.safetensors");
  REQUIRE(file.meta("rescnn.best_epoch") == std::to_string(best));
  REQUIRE(std::stod(file.meta("rescnn.val_acc")) == h.epochs()[static_cast<std::size_t>(best - 1)].val_acc);
  REQUIRE(file.meta("extra.model") == "small");
  // The best file holds the weights that scored it: evaluated again they
  // give that epoch's validation metrics exactly.
  auto restored = small_model();
  rn::io::load(*restored, tmp / "ck.best.safetensors");
  const auto again = rn::train::evaluate(*restored, data.validation());
  REQUIRE(again.accuracy == h.epochs()[static_cast<std::size_t>(best - 1)].val_acc);
  REQUIRE(again.loss == h.epochs()[static_cast<std::size_t>(best - 1)].val_loss);

  // The per-sample predictions of the final model on the test set: every
  // image once, the confusion matrix's rows are the labels' counts.
  const auto preds = rn::train::predict_samples(*model, data.test());
  REQUIRE(preds.size() == 100);
  const rn::train::ConfusionMatrix cm(preds, 10);
  REQUIRE(cm.total() == 100);
  const auto& labels = data.test().dataset().labels;
  for (std::int64_t c = 0; c < 10; ++c) REQUIRE(cm.class_total(c) == std::count(labels.begin(), labels.end(), c));
  const auto test = rn::train::evaluate(*model, data.test());
  REQUIRE(static_cast<double>(cm.correct()) / 100.0 == test.accuracy);
  double loss_sum = 0;
  for (double l : preds.loss) loss_sum += l;
  REQUIRE(loss_sum / 100.0 == Approx(test.loss).epsilon(1e-5));

  // A resume that keeps the best elsewhere has no file holding the best
  // epoch so far: refused before training, not reported wrongly at the end.
  auto resumed = small_model();
  rn::optim::SGD<float> resumed_sgd(rn::optim::no_decay_on_norm_and_bias(*resumed), {.lr = 0.05, .momentum = 0.9});
  rn::train::TrainerOptions more{.max_epochs = 5,
                                 .checkpoint = tmp / "ck.safetensors",
                                 .resume = true,
                                 .progress = rn::train::ProgressMode::Silent,
                                 .log = nullptr,
                                 .run_settings = {{"model", "small"}},
                                 .ema_decay = 0.5,
                                 .best_checkpoint = tmp / "elsewhere.safetensors"};
  REQUIRE_THROWS_WITH(rn::train::Trainer(more).fit(*resumed, resumed_sgd, data),
                      Catch::Contains("the resumed run's best epoch " + std::to_string(best) + " was not kept there"));
  more.best_checkpoint = tmp / "ck.best.safetensors";
  REQUIRE(rn::train::Trainer(more).fit(*resumed, resumed_sgd, data).size() == 5);
}

TEST_CASE("Resuming refuses a checkpoint written with another weight average", "[trainer][checkpoint][errors]") {
  TempDir tmp("rescnn_trainer");
  rn::manual_seed(2);
  SmallFashionMnist data(64, 50, {.batch_size = 32});
  auto model = small_model();
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.01});
  rn::train::TrainerOptions options{.max_epochs = 1,
                                    .checkpoint = tmp / "ck.safetensors",
                                    .progress = rn::train::ProgressMode::Silent,
                                    .log = nullptr,
                                    .ema_decay = 0.99};
  rn::train::Trainer(options).fit(*model, sgd, data);
  options.resume = true;
  options.max_epochs = 2;
  options.ema_decay = std::nullopt;
  REQUIRE_THROWS_WITH(rn::train::Trainer(options).fit(*model, sgd, data),
                      Catch::Contains("it was written with ema_decay=0.99, this run has ema_decay=none"));
  options.ema_decay = 0.999;
  REQUIRE_THROWS_WITH(rn::train::Trainer(options).fit(*model, sgd, data),
                      Catch::Contains("ema_decay=0.99, this run has ema_decay=0.999"));
  REQUIRE_THROWS_WITH(rn::train::Trainer({.max_epochs = 1, .ema_decay = 1.0}),
                      Catch::Contains("ema_decay must be in [0, 1), got 1"));
  REQUIRE_THROWS_WITH(rn::train::Trainer({.max_epochs = 1, .label_smoothing = 1.5}),
                      Catch::Contains("label_smoothing must be in [0, 1], got 1.5"));
  // Two outputs naming one file (here through "dir/./name") would lose one of them.
  REQUIRE_THROWS_WITH(
      rn::train::Trainer(
          {.max_epochs = 1, .checkpoint = tmp / "a.safetensors", .best_checkpoint = tmp / "." / "a.safetensors"}),
      Catch::Contains("checkpoint and best_checkpoint are the same file"));
  REQUIRE_THROWS_WITH(rn::train::Trainer({.max_epochs = 1, .metrics_csv = tmp / "m", .checkpoint = tmp / "m"}),
                      Catch::Contains("metrics_csv and checkpoint are the same file"));
}

TEST_CASE("The trainer's training loss is CrossEntropyLoss with its label_smoothing", "[trainer][smoothing]") {
  for (const double smoothing : {0.0, 0.3}) {
    INFO("label_smoothing " << smoothing);
    rn::manual_seed(8);
    auto model = small_model();
    auto twin = small_model();
    rn::io::load_state_dict(*twin, rn::io::state_dict(*model));
    // The first step's loss, computed here on the first batch.
    SmallFashionMnist reference(64, 32, {.batch_size = 32});
    reference.train().start_epoch(1);
    const auto batch = reference.train().next();
    rn::nn::CrossEntropyLoss<float> ce({.label_smoothing = smoothing});
    twin->train();
    const double expected = ce(twin->forward(batch->images), batch->labels);

    SmallFashionMnist data(64, 32, {.batch_size = 32});
    rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.01});
    StepLog log;
    rn::train::Trainer({.max_epochs = 1,
                        .progress = rn::train::ProgressMode::Silent,
                        .log = nullptr,
                        .on_step = log.callback(),
                        .label_smoothing = smoothing})
        .fit(*model, sgd, data);
    REQUIRE(std::get<2>(log.steps.front()) == expected);
  }
}
