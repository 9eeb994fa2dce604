// train_fashion_mnist — d2l.ai's ResNet-18 on the real Fashion-MNIST, in C++.
//
//   train_fashion_mnist --epochs 3                          # native 28x28, CPU
//   train_fashion_mnist --resize 96 --epochs 10 --lr 0.01   # d2l's configuration
//   train_fashion_mnist --optimizer sgd --momentum 0.9 --lr 0.1 --schedule cosine --augment --epochs 30
//   train_fashion_mnist --resize 96 --epochs 10 --device cuda  # on a GPU (a -DRESCNN_CUDA=ON build)
//   mpirun -np 2 train_fashion_mnist --sync-bn                 # data-parallel: 2 ranks x 64 images per step
//   train_fashion_mnist --recipe fashion-best --seed 1         # the best 28x28 recipe (see --help)
//
// Prints one line per epoch
//   epoch=1 train_loss=… val_loss=… val_acc=… imgs_per_s=… seconds=…
// and at the end test_acc=… with one line per class; `--help` lists every flag.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
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
  double label_smoothing = 0;
  double random_erasing = 0;
  double ema = 0;
  bool no_decay_norm_bias = false;
  double val_fraction = 0;
  bool keep_best = false;
  std::string confusion;
  std::string worst_images;
  std::string recipe;
};

// A recipe: flag values that stand for a tested configuration. Each is used
// only where the command line does not give the flag itself.
struct Recipe {
  std::string name, summary;
  std::vector<std::pair<std::string, std::string>> flags;  // (--flag, value; "" for a switch)
};

const std::vector<Recipe>& recipes() {
  static const std::vector<Recipe> all{
      {"fashion-best",
       "d2l's ResNet-18 at 28x28, chosen for test accuracy within 30 minutes on 2 CPU cores",
       {{"--epochs", "24"},
        {"--precision", "bf16"},
        {"--optimizer", "sgd"},
        {"--lr", "0.1"},
        {"--momentum", "0.9"},
        {"--nesterov", ""},
        {"--weight-decay", "5e-4"},
        {"--no-decay-norm-bias", ""},
        {"--schedule", "onecycle"},
        {"--normalize", ""},
        {"--augment", ""},
        {"--label-smoothing", "0.1"},
        {"--ema", "0.999"},
        {"--val-fraction", "0.1"}}},
  };
  return all;
}

std::vector<std::string> recipe_names() {
  std::vector<std::string> names;
  for (const auto& r : recipes()) names.push_back(r.name);
  return names;
}

std::string describe_recipes() {
  std::string text;
  for (const auto& r : recipes()) {
    text += "\n  " + r.name + ": " + r.summary + ";\n   ";
    for (const auto& [flag, value] : r.flags) text += " " + flag + (value.empty() ? "" : " " + value);
  }
  return text;
}

// Gives each flag of the recipe its value unless the command line set it.
void apply_recipe(CLI::App& app, const std::string& name) {
  for (const auto& r : recipes()) {
    if (r.name != name) continue;
    for (const auto& [flag, value] : r.flags) {
      CLI::Option* option = app.get_option(flag);
      if (option->count() > 0) continue;  // the user's own value wins
      option->clear();
      option->add_result(value.empty() ? std::string("true") : value);
      option->run_callback();
    }
    return;
  }
  throw rn::ValueError("--recipe: unknown recipe '" + name + "'; expected one of " + joined(recipe_names()));
}

// "run/ck.safetensors" -> "run/ck.best.safetensors".
std::string best_checkpoint_path(const std::string& checkpoint) {
  const std::filesystem::path p(checkpoint);
  return (p.parent_path() / (p.stem().string() + ".best" + p.extension().string())).string();
}

// Fails before training, not after it, when a report file cannot be
// written or would replace another output of the run.
void check_report_path(const char* flag, const std::string& file, const Flags& f) {
  if (file.empty()) return;
  namespace fs = std::filesystem;
  const fs::path path(file);
  const auto resolved = [](const fs::path& p) {
    std::error_code ec;
    const auto r = fs::weakly_canonical(fs::absolute(p, ec), ec);
    return ec ? p.lexically_normal() : r;
  };
  const std::vector<std::pair<const char*, std::string>> others{
      {"--checkpoint", f.checkpoint},
      {"--log", f.log},
      {"--plot", f.plot},
      {"--keep-best's file", f.keep_best ? best_checkpoint_path(f.checkpoint) : std::string()},
      {"--confusion", f.confusion}};
  for (const auto& [other, name] : others)
    rn::check<rn::ValueError>(name.empty() || other == std::string_view(flag) || resolved(name) != resolved(path), flag,
                              ": '", file, "' is also ", other, "; give each output its own file");
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code ec;
  rn::check<rn::IoError>(fs::is_directory(dir, ec), flag, ": cannot write '", file, "': the directory '", dir.string(),
                         "' does not exist");
  rn::check<rn::IoError>(!fs::is_directory(path, ec), flag, ": cannot write '", file, "': it is a directory");
}

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
  check_report_path("--confusion", f.confusion, f);
  check_report_path("--worst-images", f.worst_images, f);
  rn::manual_seed(f.seed);
  const rn::Precision precision = rn::parse_precision(f.precision, "--precision");
  rn::check_precision_supported<D>(precision, "--precision");

  rn::data::FashionMNIST data(
      {.root = f.data,
       .batch_size = f.batch_size / ranks,
       .resize = f.resize,
       .augment = f.augment,
       .random_erasing =
           f.random_erasing > 0 ? std::optional<rn::data::RandomErasingOptions>({.p = f.random_erasing}) : std::nullopt,
       .normalize = f.normalize ? std::optional<std::pair<float, float>>(
                                      {rn::data::kFashionMnistMean, rn::data::kFashionMnistStd})
                                : std::nullopt,
       .limit = f.limit,
       .val_fraction = f.val_fraction,
       .test_limit = f.test_limit,
       .seed = f.seed,
       .rank = world->rank(),
       .world = ranks});
  auto model = rn::models::create<float, D>(f.model, {.num_classes = 10, .in_channels = 1});
  if (f.sync_bn) rn::dist::convert_sync_batchnorm(*model, world);
  auto optimizer = f.no_decay_norm_bias ? make_optimizer<D>(f, rn::optim::no_decay_on_norm_and_bias(*model))
                                        : make_optimizer(f, *model);
  const std::int64_t steps_per_epoch = data.train().num_batches();
  // One-cycle also cycles the momentum, when the optimizer has one.
  auto schedule = rn::optim::make_schedule(f.schedule, f.lr, f.epochs * steps_per_epoch, steps_per_epoch,
                                           {.cycle_momentum = optimizer->momentum().has_value()});

  if (main_rank) {  // the other ranks print nothing
    if (!f.recipe.empty()) std::cerr << "recipe=" << f.recipe << "\n";
    std::cerr << "model=" << f.model << " params=" << model->num_parameters()
              << " train_images=" << data.train().num_samples();
    if (data.has_validation_split()) std::cerr << " val_images=" << data.validation().num_samples();
    std::cerr << " test_images=" << data.test().num_samples() << " image=" << data.train().image_height() << "x"
              << data.train().image_width() << " batch=" << f.batch_size << " world=" << ranks;
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
  // Recorded only when set, so checkpoints written before these flags
  // existed still resume (a resume checks every setting recorded here).
  const auto record_if = [&](bool set, const char* key, const std::string& value) {
    if (set) options.run_settings[key] = value;
  };
  record_if(f.label_smoothing > 0, "label_smoothing", rn::train::format_roundtrip(f.label_smoothing));
  record_if(f.random_erasing > 0, "random_erasing", rn::train::format_roundtrip(f.random_erasing));
  record_if(f.no_decay_norm_bias, "no_decay_norm_bias", "true");
  record_if(f.val_fraction > 0, "val_fraction", rn::train::format_roundtrip(f.val_fraction));
  options.label_smoothing = f.label_smoothing;
  if (f.ema > 0) options.ema_decay = f.ema;
  if (f.keep_best) options.best_checkpoint = best_checkpoint_path(f.checkpoint);
  options.process_group = world;
  if (!main_rank) options.log = nullptr;
  rn::train::Trainer trainer(options);
  const rn::train::History history = trainer.fit(*model, *optimizer, data);

  // The test set is read here, once: with the best epoch's weights when
  // they were kept, else with the last epoch's (averaged ones with --ema).
  std::string which = "last epoch " + std::to_string(history.back().epoch);
  std::string source;
  if (f.keep_best) {
    // Rank 0 wrote the file (other hosts may not see it): it loads it and
    // every rank takes its weights.
    if (main_rank) rn::io::load(*model, options.best_checkpoint);
    rn::dist::broadcast_module_state(*model, *world);
    which = "best epoch " + std::to_string(history.best_epoch());
    source = " of " + std::to_string(history.back().epoch) + ", from " + options.best_checkpoint.string();
  }
  const auto predictions = rn::train::predict_samples(*model, data.test(), world);
  const rn::train::ConfusionMatrix confusion(predictions, 10);
  if (main_rank) {
    const std::span<const std::string_view> names(rn::data::kFashionMnistClasses);
    std::cout << "test_acc=" << rn::train::format_fixed(confusion.accuracy(), 4) << " (" << which << source << ")\n";
    for (const auto& line : rn::train::per_class_accuracy_lines(confusion, names)) std::cout << line << "\n";
    std::cout << std::flush;
    const std::string title = f.model + ", Fashion-MNIST test, " + which;
    if (!f.confusion.empty()) rn::train::write_confusion_svg(confusion, names, f.confusion, title);
    if (!f.worst_images.empty())
      rn::train::write_worst_images_svg(data.test().dataset(), predictions, names, f.worst_images,
                                        {.title = "The worst-classified test images: " + title});
  }
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
  app.add_option("--random-erasing", f.random_erasing,
                 "Probability of torchvision's RandomErasing (area 0.02-0.33, aspect 0.3-3.3, after normalising); "
                 "0: off")
      ->check(unit_interval())
      ->capture_default_str();
  app.add_option("--label-smoothing", f.label_smoothing, "Label smoothing of the training loss, as PyTorch's")
      ->check(unit_interval())
      ->capture_default_str();
  app.add_option("--ema", f.ema,
                 "Decay of an exponential moving average of the weights, validated and kept instead of them; 0: off")
      ->check(finite_number(0, false, 1))
      ->capture_default_str();
  app.add_flag("--no-decay-norm-bias", f.no_decay_norm_bias,
               "Weight decay on convolution and Linear weights only, none on BatchNorm and biases");
  app.add_option("--val-fraction", f.val_fraction,
                 "Hold out this fraction of each class of the training images for validation; the test set is then "
                 "read only at the end (0: validate on the test set, as d2l)")
      ->check(finite_number(0, false, 1))
      ->capture_default_str();
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
  app.add_flag("--keep-best", f.keep_best,
               "Also keep the weights of the epoch with the best validation accuracy, beside --checkpoint "
               "(ck.safetensors -> ck.best.safetensors); the test accuracy is then theirs")
      ->needs(app.get_option("--checkpoint"));
  app.add_option("--confusion", f.confusion, "Write the test set's confusion matrix to this SVG file");
  app.add_option("--worst-images", f.worst_images, "Write the 24 worst-classified test images to this SVG file");
  app.add_option("--recipe", f.recipe, "Defaults for the flags not given:" + describe_recipes())
      ->check(CLI::IsMember(recipe_names()));
  try {
    app.parse(argc, argv);
    if (!f.recipe.empty()) apply_recipe(app, f.recipe);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  std::shared_ptr<rn::dist::ProcessGroup> world;
  return training_cli::report_errors(
      "train_fashion_mnist", [&] { return run(f, world); }, &world);
}
