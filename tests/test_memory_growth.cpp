// Training must not grow: after the first epoch has seen every tensor size,
// later epochs reuse the same memory (the host allocator's cache, the
// scratch buffers, the loader's batches). A few hundred steps of a small
// d2l-style ResNet on synthetic 28x28 images, with the resident set read
// from /proc/self/statm after every epoch.
//
// Under AddressSanitizer freed memory sits in a quarantine for a while, so
// the resident set says nothing about reuse; there the test checks only that
// training runs, and LeakSanitizer (which ASan runs at exit) checks leaks.
#include <catch2/catch.hpp>

#include <algorithm>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "rescnn/rescnn.hpp"

namespace rn = rescnn;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUnderAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kUnderAsan = true;
#else
constexpr bool kUnderAsan = false;
#endif
#else
constexpr bool kUnderAsan = false;
#endif

double resident_mib() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

std::shared_ptr<const rn::data::ImageSet> synthetic_images(std::int64_t count, std::uint64_t seed) {
  rn::Generator gen(seed);
  auto set = std::make_shared<rn::data::ImageSet>();
  set->height = 28;
  set->width = 28;
  for (std::int64_t i = 0; i < count; ++i) {
    const auto label = static_cast<std::int64_t>(gen.uniform_int(10));
    set->labels.push_back(label);
    for (int p = 0; p < 28 * 28; ++p)
      set->pixels.push_back(static_cast<std::uint8_t>(gen.uniform_int(96) + (p / 28 / 7 == label % 4 ? 150 : 0)));
  }
  return set;
}

struct SyntheticData {
  rn::data::DataLoader train_loader{
      synthetic_images(600, 1),
      rn::data::LoaderOptions{
          .batch_size = 16, .shuffle = true, .seed = 2, .crop_padding = 4, .horizontal_flip = true}};
  rn::data::DataLoader test_loader{synthetic_images(100, 3), rn::data::LoaderOptions{.batch_size = 50}};
  rn::data::DataLoader& train() { return train_loader; }
  rn::data::DataLoader& test() { return test_loader; }
};

}  // namespace

TEST_CASE("Resident memory does not grow after the first epoch", "[trainer][memory]") {
  rn::manual_seed(3);
  SyntheticData data;  // 38 steps an epoch (the last batch partial)
  auto model = std::make_shared<rn::models::D2lResNet<float>>(rn::models::Arch{{1, 16}, {1, 32}}, 10, 1);
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4});
  std::vector<double> rss;
  rn::train::Trainer trainer({.max_epochs = 8,
                              .progress = rn::train::ProgressMode::Silent,
                              .log = nullptr,
                              .on_epoch = [&](const rn::train::EpochMetrics&) { rss.push_back(resident_mib()); }});
  const auto history = trainer.fit(*model, sgd, data);
  REQUIRE(history.size() == 8);
  REQUIRE(rss.size() == 8);
  // A leak grows with every step, so it shows in the last epochs; glibc's
  // heap also keeps freed blocks resident for an epoch or two now and then
  // (+3.5 MiB spikes that come and go, measured since the trainer skips the
  // stem's input gradient and so allocates in another order), which is not
  // growth. So the least of the last three epochs is compared with epoch 1.
  const double last = *std::min_element(rss.end() - 3, rss.end());
  const double worst = last - rss[0];
  std::printf("resident MiB after each epoch:");
  for (double r : rss) std::printf(" %.1f", r);
  std::printf("; growth after epoch 1 (least of the last three epochs): %.2f MiB over %d steps\n", worst, 7 * 38);
  if (kUnderAsan) {
    WARN("AddressSanitizer build: resident memory includes ASan's quarantine; growth not checked here");
    return;
  }
  // The resident set wanders by a MiB or two between epochs (glibc's arenas
  // for the loader thread's small batches); a leaked activation per step
  // would add several MiB an epoch, 7 epochs of it here. Measured: up to
  // 1.8 MiB.
  CHECK(worst <= 4.0);
}
