// train_images — a ResNet on your own folder of images (torchvision's
// ImageFolder layout: DIR/<class>/*.png|jpg|jpeg), from scratch or
// fine-tuning torchvision weights.
//
//   train_images --data photos --model resnet18 --size 128 --epochs 10
//   train_images --data photos --model resnet18 --pretrained resnet18.safetensors --freeze-backbone --lr 0.01
//   train_images --data photos/train --val-data photos/val --size 224 --precision bf16
//
// Without --val-data, --val-fraction of each class (10% by default, seeded)
// is held out for validation. Training images get torchvision's
// RandomResizedCrop(size) and a horizontal flip; validation images
// Resize(size / 0.875) and CenterCrop(size); both are normalised with
// ImageNet's mean and std. Prints the same epoch line as
// train_fashion_mnist, and finally val_acc=…; `--help` lists every flag.
#include <CLI/CLI.hpp>

#include <cmath>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <rescnn/data/image_loader.hpp>
#include <rescnn/rescnn.hpp>

#include "training_cli.hpp"

namespace rn = rescnn;

namespace {

using namespace training_cli;  // the examples' shared flag code

struct Flags {
  std::string data, val_data, pretrained;
  double val_fraction = 0.1;
  double backbone_lr_scale = 1;
  bool freeze_backbone = false, skip_unreadable = false;
  std::string model = "resnet18";
  std::int64_t size = 128;
  std::int64_t epochs = 10;
  std::int64_t batch_size = 32;
  double lr = 0.01;
  std::string optimizer = "sgd";
  double momentum = 0.9;
  double weight_decay = 1e-4;
  bool nesterov = false;
  std::string schedule = "cosine";
  std::uint64_t seed = 0;
  int threads = 0, workers = 0;
  std::string checkpoint, log, plot;
  bool resume = false;
  std::string progress = "auto";
  std::string device = "cpu";
  std::string precision = "fp32";
};

// The two loaders the Trainer takes (train() and test(): here validation).
struct FolderData {
  rn::data::ImageFolderLoader train_loader, val_loader;
  rn::data::ImageFolderLoader& train() { return train_loader; }
  rn::data::ImageFolderLoader& test() { return val_loader; }
};

template <class D>
int train_on(const Flags& f) {
  if (f.threads > 0) rn::set_num_threads(f.threads);
  rn::manual_seed(f.seed);
  const rn::Precision precision = rn::parse_precision(f.precision, "--precision");
  rn::check_precision_supported<D>(precision, "--precision");

  const rn::data::ImageFolderOptions folder_options{.skip_unreadable = f.skip_unreadable};
  auto folder = std::make_shared<const rn::data::ImageFolder>(f.data, folder_options);
  std::shared_ptr<const rn::data::ImageFolder> val_folder = folder;
  std::vector<std::int64_t> train_indices, val_indices;
  if (f.val_data.empty()) {
    const auto split = rn::data::split_by_class(*folder, f.val_fraction, f.seed);
    rn::check<rn::ValueError>(!split.val.empty(), "--val-fraction ", f.val_fraction,
                              " holds out no image (each class needs 2 or more; or give --val-data)");
    train_indices = split.train;
    val_indices = split.val;
  } else {
    val_folder = std::make_shared<const rn::data::ImageFolder>(f.val_data, folder_options);
    rn::check<rn::ValueError>(val_folder->classes() == folder->classes(), "--val-data '", f.val_data,
                              "' has the classes ", joined(val_folder->classes()), ", --data has ",
                              joined(folder->classes()));
  }
  const int size = static_cast<int>(f.size);
  const rn::data::ImageLoaderOptions loader{
      .batch_size = f.batch_size, .shuffle = true, .seed = f.seed, .workers = f.workers};
  FolderData data{rn::data::ImageFolderLoader(folder, train_indices, rn::data::train_transform(size), loader),
                  rn::data::ImageFolderLoader(val_folder, val_indices, rn::data::eval_transform(size),
                                              {.batch_size = f.batch_size, .workers = f.workers})};

  const auto classes = static_cast<std::int64_t>(folder->classes().size());
  auto model = rn::models::create<float, D>(f.model, {.num_classes = classes, .in_channels = 3});
  if (!f.pretrained.empty()) std::cerr << rn::models::load_backbone(*model, f.pretrained).summary() << "\n";
  if (f.freeze_backbone)
    std::cerr << "froze " << rn::models::freeze_backbone(*model) << " parameters; training "
              << rn::models::head_prefix(*model) << "* only\n";
  // The backbone in a parameter group of its own when it trains slower.
  auto optimizer = f.backbone_lr_scale == 1
                       ? make_optimizer(f, *model)
                       : make_optimizer<D>(f, rn::models::backbone_and_head_groups(*model, f.backbone_lr_scale));
  const std::int64_t steps_per_epoch = data.train().num_batches();
  auto schedule = rn::optim::make_schedule(f.schedule, f.lr, f.epochs * steps_per_epoch, steps_per_epoch,
                                           {.cycle_momentum = optimizer->momentum().has_value()});

  std::cerr << "model=" << f.model << " params=" << model->num_parameters() << " classes=" << classes
            << " train_images=" << data.train().num_samples() << " val_images=" << data.test().num_samples()
            << " image=" << size << "x" << size << " batch=" << f.batch_size << " device=" << device_description<D>()
            << " threads=" << rn::get_num_threads() << " isa=" << rn::cpu::isa_name(rn::cpu::isa())
            << " precision=" << rn::precision_description<D>(precision) << "\n"
            << "optimizer=" << optimizer->to_string() << " schedule=" << schedule->to_string() << "\n";

  rn::train::TrainerOptions options = training_cli::trainer_options(
      f, precision, schedule, f.model + " on " + std::filesystem::path(f.data).filename().string());
  options.run_settings = {{"model", f.model},
                          {"data", f.data},
                          {"val_data", f.val_data},
                          {"val_fraction", rn::train::format_roundtrip(f.val_fraction)},
                          {"size", std::to_string(f.size)},
                          {"batch_size", std::to_string(f.batch_size)},
                          {"seed", std::to_string(f.seed)},
                          {"optimizer", f.optimizer},
                          {"schedule", f.schedule},
                          {"freeze_backbone", f.freeze_backbone ? "true" : "false"},
                          {"epochs", std::to_string(f.epochs)}};
  // Recorded only when set, so checkpoints written before the flag existed
  // still resume (a resume checks every setting recorded here).
  if (f.backbone_lr_scale != 1)
    options.run_settings["backbone_lr_scale"] = rn::train::format_roundtrip(f.backbone_lr_scale);
  rn::train::Trainer(options).fit(*model, *optimizer, data);
  const auto val = rn::train::evaluate(*model, data.test());
  std::cout << "val_acc=" << rn::train::format_fixed(val.accuracy, 4) << std::endl;
  return 0;
}

int run(const Flags& f) {
  return training_cli::on_device(f.device, [&]<class D>() { return train_on<D>(f); });
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Train a ResNet on a folder of images (DIR/<class>/*.png|jpg|jpeg), or fine-tune torchvision weights."};
  app.add_option("--data", f.data, "The image folder: one sub-folder per class")->required();
  app.add_option("--val-data", f.val_data, "A separate validation folder with the same classes (else --val-fraction)");
  app.add_option("--val-fraction", f.val_fraction, "Fraction of each class held out for validation")
      ->check(finite_number(0, true, 1))
      ->capture_default_str();
  app.add_option("--model", f.model, "Model: " + joined(rn::models::model_names()))
      ->check(CLI::IsMember(rn::models::model_names()))
      ->capture_default_str();
  app.add_option("--pretrained", f.pretrained,
                 "Load this state dict (torchvision-named safetensors) into everything but the classifier");
  auto* freeze = app.add_flag("--freeze-backbone", f.freeze_backbone, "Train the classifier only");
  app.add_option("--backbone-lr-scale", f.backbone_lr_scale,
                 "The backbone learns at this times --lr, the classifier at --lr (e.g. 0.1 for pretrained weights)")
      ->check(finite_number(0, false))
      ->excludes(freeze)
      ->capture_default_str();
  app.add_option("--size", f.size, "Train and validate at SIZExSIZE")
      ->check(CLI::Range(std::int64_t{8}, std::int64_t{1024}))
      ->capture_default_str();
  app.add_flag("--skip-unreadable", f.skip_unreadable,
               "Skip images that cannot be decoded (all are decoded once first) instead of failing");
  app.add_option("--epochs", f.epochs, "Number of epochs")->check(integer_at_least(1))->capture_default_str();
  app.add_option("--batch-size", f.batch_size, "Images per batch")->check(integer_at_least(1))->capture_default_str();
  training_cli::add_optimizer_options(app, f);
  app.add_option("--seed", f.seed, "Seed for initialisation, the split, shuffling and augmentation")
      ->capture_default_str();
  app.add_option("--threads", f.threads, "CPU threads for the model (0: OpenMP's default)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  app.add_option("--workers", f.workers, "Threads decoding images (0: one per core)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  training_cli::add_run_options(app, f);
  CLI11_PARSE(app, argc, argv);

  return training_cli::report_errors("train_images", [&] { return run(f); });
}
