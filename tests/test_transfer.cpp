// Transfer learning (models/transfer.hpp, nn/module.hpp): frozen parameters
// get no gradient work and keep their values bit for bit, the trainable
// ones get exactly the gradients of the unfrozen model, and a backbone loads
// into a model with another head.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "rescnn/data/data.hpp"
#include "rescnn/io/state_dict.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/nn/nn.hpp"
#include "rescnn/optim/optim.hpp"
#include "rescnn/train/train.hpp"
#include "support/temp_dir.hpp"

namespace rn = rescnn;

namespace {

using Grads = std::map<std::string, std::vector<float>>;

// One forward (train mode) and backward of dy; the parameters' gradients.
Grads gradients(rn::nn::Module<float>& model, const rn::Tensor<float>& x, const rn::Tensor<float>& dy,
                rn::Tensor<float>* dx = nullptr) {
  model.train();
  model.zero_grad();
  model.forward(x);
  auto g = model.backward(dy);
  if (dx) *dx = std::move(g);
  Grads out;
  for (auto& [name, p] : model.named_parameters()) out[name] = p->grad.to_vector();
  return out;
}

std::shared_ptr<rn::nn::Module<float>> resnet18(std::int64_t classes) {
  rn::manual_seed(21);  // the same weights every time
  return rn::models::create<float>("resnet18", {.num_classes = classes});
}

bool all_zero(const std::vector<float>& v) {
  for (float f : v)
    if (f != 0.0f) return false;
  return true;
}

// How many elements differ (a count, so that a failure prints one number,
// not two million).
std::size_t differing(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  std::size_t n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

}  // namespace

TEST_CASE("A frozen backbone gets no gradient work; the head's gradient is the full model's", "[transfer][freeze]") {
  rn::Generator gen(4);
  const auto x = rn::Tensor<float>::normal({2, 3, 32, 32}, 0, 1, gen);
  const auto dy = rn::Tensor<float>::normal({2, 3}, 0, 1, gen);
  auto full = resnet18(3);
  rn::Tensor<float> full_dx;
  const Grads reference = gradients(*full, x, dy, &full_dx);

  SECTION("only fc trains, no input gradient: backward is one Linear") {
    auto model = resnet18(3);
    CHECK(rn::models::freeze_backbone(*model) == model->named_parameters().size() - 2);
    model->set_input_grad_needed(false);
    rn::Tensor<float> dx;
    const Grads g = gradients(*model, x, dy, &dx);
    CHECK_FALSE(dx.defined());
    for (const auto& [name, grad] : g) {
      INFO(name);
      if (name.rfind("fc.", 0) == 0)
        CHECK(differing(grad, reference.at(name)) == 0);
      else
        CHECK(all_zero(grad));  // the kernels add into grad: untouched means not computed
    }
  }
  SECTION("layer4 and fc train: their gradients are the full model's, bit for bit") {
    auto model = resnet18(3);
    rn::models::freeze_except(*model, {"layer4.", "fc."});
    model->set_input_grad_needed(false);
    const Grads g = gradients(*model, x, dy);
    for (const auto& [name, grad] : g) {
      INFO(name);
      const bool trainable = name.rfind("layer4.", 0) == 0 || name.rfind("fc.", 0) == 0;
      if (trainable)
        CHECK(differing(grad, reference.at(name)) == 0);
      else
        CHECK(all_zero(grad));
    }
  }
  SECTION("a frozen model still gives the input gradient when asked, without weight gradients") {
    auto model = resnet18(3);
    model->requires_grad_(false);
    CHECK_FALSE(model->has_trainable_parameters());
    rn::Tensor<float> dx;
    const Grads g = gradients(*model, x, dy, &dx);
    REQUIRE(dx.defined());
    CHECK(differing(dx.to_vector(), full_dx.to_vector()) == 0);
    for (const auto& [name, grad] : g) CHECK(all_zero(grad));
  }
  CHECK_THROWS_WITH(rn::models::freeze_except(*full, {"layer9."}), Catch::Contains("starts with 'layer9.'"));
}

TEST_CASE("Optimizers leave frozen parameters and their state untouched", "[transfer][freeze][optim]") {
  rn::Generator gen(6);
  const auto x = rn::Tensor<float>::normal({2, 3, 32, 32}, 0, 1, gen);
  const auto dy = rn::Tensor<float>::normal({2, 3}, 0, 1, gen);
  for (const std::string kind : {"SGD", "AdamW"}) {
    DYNAMIC_SECTION(kind) {
      auto model = resnet18(3);
      const auto before = rn::io::state_dict(*model);
      rn::models::freeze_backbone(*model);
      std::unique_ptr<rn::optim::Optimizer<float>> opt;
      if (kind == "SGD")
        opt = std::make_unique<rn::optim::SGD<float>>(
            model->named_parameters(), rn::optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01});
      else
        opt = std::make_unique<rn::optim::AdamW<float>>(model->named_parameters(),
                                                        rn::optim::AdamWOptions{.lr = 0.01, .weight_decay = 0.01});
      for (int step = 0; step < 3; ++step) {
        opt->zero_grad();
        model->forward(x);
        model->backward(dy);
        opt->step();
      }
      // Weight decay alone would move every parameter that the optimizer touched.
      for (auto& [name, p] : model->named_parameters()) {
        INFO(name);
        const bool head = name.rfind("fc.", 0) == 0;
        CHECK((before.record(name).bytes == rn::io::state_dict(*model).record(name).bytes) != head);
      }
      for (auto& [name, state] : opt->named_state())
        if (name.rfind("fc.", 0) != 0) CHECK(all_zero(state->to_vector()));
    }
  }
}

TEST_CASE("A backbone loads into a model with another head, and says what it skipped", "[transfer][io]") {
  rn::testing::TempDir tmp("rescnn_transfer");
  auto imagenet = resnet18(1000);
  rn::io::save(*imagenet, tmp / "resnet18.safetensors");
  rn::manual_seed(99);
  auto model = rn::models::create<float>("resnet18", {.num_classes = 2});
  // Strict loading refuses the head of another size, naming it.
  CHECK_THROWS_WITH(rn::io::load(*model, tmp / "resnet18.safetensors"), Catch::Contains("'fc.weight' has shape"));
  const auto report = rn::models::load_backbone(*model, tmp / "resnet18.safetensors");
  const auto summary = report.summary();
  INFO(summary);
  CHECK(report.excluded == std::vector<std::string>{"fc.bias", "fc.weight"});
  CHECK(report.missing.empty());
  CHECK(report.unexpected.empty());
  CHECK(summary.find("skipped 2 (excluded): 'fc.bias', 'fc.weight'") != std::string::npos);
  const auto source = rn::io::state_dict(*imagenet), loaded = rn::io::state_dict(*model);
  std::size_t compared = 0;
  for (const auto& name : loaded.names()) {
    if (name.rfind("fc.", 0) == 0) continue;
    INFO(name);
    CHECK(loaded.record(name).bytes == source.record(name).bytes);
    ++compared;
  }
  std::size_t tensors = 0;  // parameters and buffers outside the head (BatchNorm counters are not counted)
  for (auto& [name, p] : model->named_parameters()) tensors += name.rfind("fc.", 0) != 0;
  for (auto& [name, b] : model->named_buffers()) tensors += name.rfind("fc.", 0) != 0;
  CHECK(report.loaded == tensors);
  CHECK(compared > tensors);                                                      // the counters were compared too
  CHECK(model->named_parameters().back().second->value.shape() == rn::Shape{2});  // fc.bias: the new head

  // The rest must match: a resnet34 file is not a resnet18 backbone.
  auto other = rn::models::create<float>("resnet34", {.num_classes = 2});
  rn::io::save(*other, tmp / "resnet34.safetensors");
  CHECK_THROWS_WITH(rn::models::load_backbone(*model, tmp / "resnet34.safetensors"),
                    Catch::Contains("unexpected") && Catch::Contains("layer1.2"));
}

TEST_CASE("The trainer fine-tunes the head of a frozen backbone and keeps the backbone bit for bit",
          "[transfer][trainer]") {
  rn::manual_seed(2);
  auto model = std::make_shared<rn::models::D2lResNet<float>>(rn::models::Arch{{1, 32}, {1, 32}}, 10, 1);
  rn::models::freeze_backbone(*model);
  const auto before = rn::io::state_dict(*model);
  auto train_set = std::make_shared<const rn::data::ImageSet>(
      rn::data::load_fashion_mnist(rn::data::default_root(), rn::data::Split::Train, 64));
  auto test_set = std::make_shared<const rn::data::ImageSet>(
      rn::data::load_fashion_mnist(rn::data::default_root(), rn::data::Split::Test, 32));
  struct Data {
    rn::data::DataLoader train_loader, test_loader;
    rn::data::DataLoader& train() { return train_loader; }
    rn::data::DataLoader& test() { return test_loader; }
  } data{rn::data::DataLoader(train_set, {.batch_size = 16}), rn::data::DataLoader(test_set, {.batch_size = 16})};
  rn::optim::SGD<float> opt(model->named_parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3});
  rn::train::Trainer({.max_epochs = 2, .progress = rn::train::ProgressMode::Silent, .log = nullptr})
      .fit(*model, opt, data);
  CHECK(model->input_grad_needed());  // restored after fit
  const auto after = rn::io::state_dict(*model);
  for (auto& [name, p] : model->named_parameters()) {
    INFO(name);
    const bool head = name.rfind("last.2.", 0) == 0;  // d2l's classifier
    CHECK((before.record(name).bytes == after.record(name).bytes) != head);
  }
  CHECK(rn::models::head_prefix(*model) == "last.2.");
}

TEST_CASE("backbone_and_head_groups puts the classifier in a group of its own at the full rate", "[transfer][optim]") {
  auto model = resnet18(2);
  auto groups = rn::models::backbone_and_head_groups(*model, 0.1);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].name == "backbone");
  CHECK(groups[0].lr_scale == 0.1);
  CHECK(groups[0].params.size() == model->named_parameters().size() - 2);
  CHECK(groups[0].params.front().first == "conv1.weight");
  CHECK(groups[1].name == "head");
  CHECK(groups[1].lr_scale == 1);
  REQUIRE(groups[1].params.size() == 2);
  CHECK(groups[1].params[0].first == "fc.weight");
  CHECK(groups[1].params[1].first == "fc.bias");

  rn::optim::SGD<float> sgd(std::move(groups), {.lr = 0.01, .momentum = 0.9});
  CHECK(sgd.group_lr(0) == 0.01 * 0.1);
  CHECK(sgd.group_lr(1) == 0.01);
  CHECK(sgd.named_parameters().size() == model->named_parameters().size());
  CHECK(sgd.to_string() ==
        "SGD(lr=0.01, momentum=0.9, dampening=0, weight_decay=0, nesterov=false, groups=[backbone(lr_scale=0.1), "
        "head])");
}
