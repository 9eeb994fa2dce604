// train_fashion_mnist — d2l.ai's ResNet-18 on the real Fashion-MNIST, in C++.
//
//   train_fashion_mnist --epochs 3                          # native 28x28, CPU
//   train_fashion_mnist --resize 96 --epochs 10 --lr 0.01   # d2l's configuration
//   train_fashion_mnist --optimizer sgd --momentum 0.9 --lr 0.1 --schedule cosine --augment --epochs 30
//   train_fashion_mnist --resize 96 --epochs 10 --device cuda  # on a GPU (a -DRESCNN_CUDA=ON build)
//   mpirun -np 2 train_fashion_mnist --sync-bn                 # data-parallel: 2 ranks x 64 images per step
//
// Prints one line per epoch
//   epoch=1 train_loss=… val_loss=… val_acc=… imgs_per_s=… seconds=…
// and finally test_acc=…; `--help` lists every flag.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <rescnn/dist/dist.hpp>
#include <rescnn/rescnn.hpp>

#include "training_cli.hpp"

namespace rn = rescnn;

namespace {

using namespace training_cli;  // the examples' shared flag code

struct Flags {
  std::string model = "d2l_resnet18";
  std::int64_t epochs = 10;
  std::int64_t batch_size = 128;
  double lr = 0.01;
  std::string optimizer = "sgd";
  double momentum = 0;
  double weight_decay = 0;
  bool nesterov = false;
  std::string schedule = "constant";
  std::int64_t resize = 0;
  bool augment = false;
  bool normalize = false;
  std::int64_t limit = 0;
  std::int64_t test_limit = 0;
  std::string data = rn::data::default_root().string();
  std::uint64_t seed = 0;
  int threads = 0;
  std::string checkpoint;
  bool resume = false;
  std::string log;
  std::string plot;
  std::string progress = "auto";
  std::string device = "cpu";
  std::string precision = "fp32";
  bool sync_bn = false;
};

// The ranks this run was launched as (one process without mpirun). On a
// GPU with NCCL, the collectives run on the device; otherwise over MPI (a
// CUDA model's gradients are then staged through host memory).
std::shared_ptr<rn::dist::ProcessGroup> launch_world(const Flags& f) {
  if (f.device == "cuda" && rn::dist::built_with_nccl && rn::dist::launcher_world_size() > 1)
    return rn::dist::make_nccl_group();
  return rn::dist::init();
}

// The whole run on device D; the model code is the same for every device.
template <class D>
int train_on(const Flags& f, const std::shared_ptr<rn::dist::ProcessGroup>& world) {
  const int ranks = world->size();
  const bool main_rank = world->is_main();
  if (f.threads > 0)
    rn::set_num_threads(f.threads);
  else if (rn::dist::launcher_local_size() > 1 && std::getenv("OMP_NUM_THREADS") == nullptr)
    // The ranks on this host share its cores.
    rn::set_num_threads(std::max(1, rn::get_num_threads() / rn::dist::launcher_local_size()));
  rn::check<rn::ValueError>(f.batch_size % ranks == 0, "--batch-size ", f.batch_size,
                            ": the global batch must divide evenly over the ", ranks, " processes");
  rn::manual_seed(f.seed);
  const rn::Precision precision = rn::parse_precision(f.precision, "--precision");
  rn::check_precision_supported<D>(precision, "--precision");

  rn::data::FashionMNIST data({.root = f.data,
                               .batch_size = f.batch_size / ranks,
                               .resize = f.resize,
                               .augment = f.augment,
                               .normalize = f.normalize ? std::optional<std::pair<float, float>>(
                                                              {rn::data::kFashionMnistMean, rn::data::kFashionMnistStd})
                                                        : std::nullopt,
                               .limit = f.limit,
                               .test_limit = f.test_limit,
                               .seed = f.seed,
                               .rank = world->rank(),
                               .world = ranks});
  auto model = rn::models::create<float, D>(f.model, {.num_classes = 10, .in_channels = 1});
  if (f.sync_bn) rn::dist::convert_sync_batchnorm(*model, world);
  auto optimizer = make_optimizer(f, *model);
  const std::int64_t steps_per_epoch = data.train().num_batches();
  // One-cycle also cycles the momentum, when the optimizer has one.
  auto schedule = rn::optim::make_schedule(f.schedule, f.lr, f.epochs * steps_per_epoch, steps_per_epoch,
                                           {.cycle_momentum = optimizer->momentum().has_value()});

  if (main_rank) {  // the other ranks print nothing
    std::cerr << "model=" << f.model << " params=" << model->num_parameters()
              << " train_images=" << data.train().num_samples() << " test_images=" << data.test().num_samples()
              << " image=" << data.train().image_height() << "x" << data.train().image_width()
              << " batch=" << f.batch_size << " world=" << ranks;
    if (ranks > 1) std::cerr << " (" << world->backend() << ", " << f.batch_size / ranks << " per rank)";
    std::cerr << " device=" << device_description<D>() << " threads=" << rn::get_num_threads()
              << " isa=" << rn::cpu::isa_name(rn::cpu::isa())
              << " precision=" << rn::precision_description<D>(precision) << "\n"
              << "optimizer=" << optimizer->to_string() << " schedule=" << schedule->to_string() << "\n";
  }

  rn::train::TrainerOptions options =
      training_cli::trainer_options(f, precision, schedule, f.model + " on Fashion-MNIST");
  // A resumed run must see the same data in the same order with the same
  // model; otherwise it would not continue the run it claims to.
  options.run_settings = {{"model", f.model},
                          {"batch_size", std::to_string(f.batch_size)},
                          {"resize", std::to_string(f.resize)},
                          {"augment", f.augment ? "true" : "false"},
                          {"normalize", f.normalize ? "true" : "false"},
                          {"limit", std::to_string(f.limit)},
                          {"test_limit", std::to_string(f.test_limit)},
                          {"seed", std::to_string(f.seed)},
                          {"optimizer", f.optimizer},
                          {"schedule", f.schedule},
                          {"epochs", std::to_string(f.epochs)},
                          {"sync_bn", f.sync_bn ? "true" : "false"}};
  options.process_group = world;
  if (!main_rank) options.log = nullptr;
  rn::train::Trainer trainer(options);
  trainer.fit(*model, *optimizer, data);

  const auto test = rn::train::evaluate(*model, data.test(), world);
  if (main_rank) std::cout << "test_acc=" << rn::train::format_fixed(test.accuracy, 4) << std::endl;
  return 0;
}

int run(const Flags& f, std::shared_ptr<rn::dist::ProcessGroup>& world) {
  world = launch_world(f);
  return training_cli::on_device(f.device, [&]<class D>() { return train_on<D>(f, world); });
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{
      "Train a ResNet on Fashion-MNIST (d2l.ai's chapter 8.6, in C++).\n"
      "Defaults are d2l's (SGD, lr 0.01, batch 128, 10 epochs) at the native 28x28; "
      "d2l itself uses --resize 96."};
  app.add_option("--model", f.model, "Model: " + joined(rn::models::model_names()))
      ->check(CLI::IsMember(rn::models::model_names()))
      ->capture_default_str();
  app.add_option("--epochs", f.epochs, "Number of epochs")->check(integer_at_least(1))->capture_default_str();
  app.add_option("--batch-size", f.batch_size, "Images per step (under mpirun: split over the ranks)")
      ->check(integer_at_least(1))
      ->capture_default_str();
  training_cli::add_optimizer_options(app, f);
  app.add_option("--resize", f.resize, "Resize images to NxN (bilinear); 0 keeps 28x28")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1024}))
      ->capture_default_str();
  app.add_flag("--augment", f.augment, "Random crop (padding 4, scaled with --resize) and horizontal flip");
  app.add_flag("--normalize", f.normalize, "Normalise with Fashion-MNIST's mean 0.2860 and std 0.3530");
  app.add_option("--limit", f.limit, "Use only the first N training images (0: all)")
      ->check(integer_at_least(0))
      ->capture_default_str();
  app.add_option("--test-limit", f.test_limit, "Evaluate on the first N test images only (0: all 10000)")
      ->check(integer_at_least(0))
      ->capture_default_str();
  app.add_option("--data", f.data, "Directory with the Fashion-MNIST IDX files (.gz or raw)")->capture_default_str();
  app.add_option("--seed", f.seed, "Seed for initialisation, shuffling and augmentation")->capture_default_str();
  app.add_option("--threads", f.threads, "CPU threads (0: OpenMP's default)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  app.add_flag("--sync-bn", f.sync_bn,
               "Under mpirun: BatchNorm statistics over the global batch (SyncBatchNorm); alone: no change");
  training_cli::add_run_options(app, f);
  CLI11_PARSE(app, argc, argv);

  std::shared_ptr<rn::dist::ProcessGroup> world;
  return training_cli::report_errors(
      "train_fashion_mnist", [&] { return run(f, world); }, &world);
}
