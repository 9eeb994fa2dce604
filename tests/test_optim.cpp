// Optimizers: SGD, Adam and AdamW against torch.optim (six steps each, golden),
// state names, step counting, resuming from saved state, thread-count
// independence, and the validation of every option.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <deque>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "rescnn/models/models.hpp"
#include "rescnn/nn/linear.hpp"
#include "rescnn/nn/sequential.hpp"
#include "rescnn/optim/optim.hpp"
#include "support/compare.hpp"
#include "support/golden.hpp"
#include "support/threads.hpp"

using namespace rescnn;
using Catch::Matchers::Contains;
using rescnn::testing::IsClose;

namespace {

std::vector<std::string> split(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);) out.push_back(item);
  return out;
}

std::pair<double, double> meta_betas(const io::SafeTensors& f) {
  const auto b = split(f.meta("betas"));
  REQUIRE(b.size() == 2);
  return {std::stod(b[0]), std::stod(b[1])};
}

// The optimizer a fixture describes, built over `params`.
template <class T>
std::unique_ptr<optim::Optimizer<T>> make_optimizer(const io::SafeTensors& f,
                                                    typename optim::Optimizer<T>::NamedParameters params) {
  using testing::meta_bool;
  using testing::meta_double;
  const std::string type = f.meta("optimizer");
  if (type == "SGD")
    return std::make_unique<optim::SGD<T>>(std::move(params),
                                           optim::SGDOptions{.lr = meta_double(f, "lr"),
                                                             .momentum = meta_double(f, "momentum"),
                                                             .dampening = meta_double(f, "dampening"),
                                                             .weight_decay = meta_double(f, "weight_decay"),
                                                             .nesterov = meta_bool(f, "nesterov")});
  if (type == "Adam")
    return std::make_unique<optim::Adam<T>>(std::move(params),
                                            optim::AdamOptions{.lr = meta_double(f, "lr"),
                                                               .betas = meta_betas(f),
                                                               .eps = meta_double(f, "eps"),
                                                               .weight_decay = meta_double(f, "weight_decay"),
                                                               .amsgrad = meta_bool(f, "amsgrad")});
  REQUIRE(type == "AdamW");
  return std::make_unique<optim::AdamW<T>>(std::move(params),
                                           optim::AdamWOptions{.lr = meta_double(f, "lr"),
                                                               .betas = meta_betas(f),
                                                               .eps = meta_double(f, "eps"),
                                                               .weight_decay = meta_double(f, "weight_decay"),
                                                               .amsgrad = meta_bool(f, "amsgrad")});
}

template <class T>
Tensor<T> as(const Tensor<float>& t) {
  std::vector<T> v;
  for (float x : t.to_vector()) v.push_back(static_cast<T>(x));
  return Tensor<T>::from_vector(t.shape(), v);
}

// Replays a fixture in T: its initial values, its per-step lr/momentum and
// its stored gradients (not recomputed here, so that rounding in our own
// updates cannot feed back into later gradients), comparing the parameters
// after every step and the state after the last with tolerance `rtol`.
template <class T>
void replay(const std::filesystem::path& path, double rtol) {
  const auto f = io::SafeTensors::load(path);
  const auto names = split(f.meta("parameters"));
  const auto steps = testing::meta_int(f, "steps");
  REQUIRE(names.size() == 3);
  std::deque<nn::Parameter<T>> params;  // stable addresses
  typename optim::Optimizer<T>::NamedParameters named;
  for (const auto& name : names) {
    params.emplace_back().reset(as<T>(f.tensor<float>("init." + name)));
    named.emplace_back(name, &params.back());
  }
  auto opt = make_optimizer<T>(f, std::move(named));
  const bool scheduled = f.contains("lr");
  const std::vector<double> lrs = scheduled ? f.tensor<double>("lr").to_vector() : std::vector<double>{};
  const std::vector<double> momenta =
      f.contains("momentum") ? f.tensor<double>("momentum").to_vector() : std::vector<double>{};

  for (index_t k = 0; k < steps; ++k) {
    INFO("step " << k);
    if (scheduled) opt->set_lr(lrs[static_cast<std::size_t>(k)]);
    if (!momenta.empty()) opt->set_momentum(momenta[static_cast<std::size_t>(k)]);
    for (std::size_t i = 0; i < names.size(); ++i)
      params[i].grad.copy_(as<T>(f.tensor<float>("grad." + std::to_string(k) + "." + names[i])));
    opt->step();
    for (std::size_t i = 0; i < names.size(); ++i) {
      INFO("parameter " << names[i]);
      CHECK_THAT(params[i].value, IsClose(as<T>(f.tensor<float>("param." + std::to_string(k) + "." + names[i])), rtol));
    }
  }
  CHECK(opt->steps() == steps);

  // State: PyTorch's state names (without "step"), in the same order.
  std::vector<std::string> state_names;
  for (auto& [name, t] : opt->named_state()) {
    state_names.push_back(name);
    INFO("state " << name);
    CHECK_THAT(*t, IsClose(as<T>(f.tensor<float>("state." + name)), rtol));
  }
  const std::string listed = f.meta("state");
  CHECK(state_names == (listed.empty() ? std::vector<std::string>{} : split(listed)));
}

}  // namespace

TEST_CASE("SGD, Adam and AdamW match torch.optim (golden)", "[optim][golden]") {
  // 1e-6 relative per element (floored at the tensor's mean magnitude):
  // float32 rounding differences of a few ulp over six steps stay well
  // below it (measured: at most 2.3e-7; most elements are bit-identical).
  for (const auto& path : testing::golden_cases("optim")) {
    SECTION(path.filename().string()) { replay<float>(path, 1e-6); }
  }
}

TEST_CASE("Optimizers in double agree with PyTorch's float32 run", "[optim][golden]") {
  // The double instantiation computes the same update; what remains is the
  // float32 rounding of the reference itself (measured 2.3e-7).
  for (const auto& path : testing::golden_cases("optim")) {
    SECTION(path.filename().string()) { replay<double>(path, 1e-6); }
  }
}

TEST_CASE("Optimizer state is named after the parameters", "[optim]") {
  nn::Sequential<float> net;
  net.push_back("fc", std::make_shared<nn::Linear<float>>(3, 2));
  net.push_back("out", std::make_shared<nn::Linear<float>>(2, 1, false));

  auto names_of = [](optim::Optimizer<float>& opt) {
    std::vector<std::string> out;
    for (auto& [name, t] : opt.named_state()) out.push_back(name);
    return out;
  };

  SECTION("positional names from parameters()") {
    optim::SGD<float> sgd(net.parameters(), {.momentum = 0.9});
    CHECK(names_of(sgd) == std::vector<std::string>{"0.momentum_buffer", "1.momentum_buffer", "2.momentum_buffer"});
    CHECK(sgd.named_parameters()[1].first == "1");
  }
  SECTION("SGD without momentum has no state") {
    optim::SGD<float> sgd(net.named_parameters());
    CHECK(sgd.named_state().empty());
  }
  SECTION("Adam with a named module list") {
    optim::Adam<float> adam(net.named_parameters());
    CHECK(names_of(adam) == std::vector<std::string>{"fc.weight.exp_avg", "fc.weight.exp_avg_sq", "fc.bias.exp_avg",
                                                     "fc.bias.exp_avg_sq", "out.weight.exp_avg",
                                                     "out.weight.exp_avg_sq"});
  }
  SECTION("AdamW with amsgrad") {
    optim::AdamW<float> adamw(net.named_parameters(), {.amsgrad = true});
    const auto names = names_of(adamw);
    REQUIRE(names.size() == 9);
    CHECK(names[0] == "fc.weight.exp_avg");
    CHECK(names[2] == "fc.weight.max_exp_avg_sq");
    CHECK(names[8] == "out.weight.max_exp_avg_sq");
  }
  SECTION("state is allocated (as zeros) before the first step, shaped like its parameter") {
    optim::Adam<float> adam(net.named_parameters());
    for (auto& [name, t] : adam.named_state()) {
      const std::string param = name.substr(0, name.rfind('.'));
      const auto it = std::find_if(adam.named_parameters().begin(), adam.named_parameters().end(),
                                   [&](const auto& p) { return p.first == param; });
      REQUIRE(it != adam.named_parameters().end());
      CHECK(t->shape() == it->second->value.shape());
      for (float v : t->to_vector()) CHECK(v == 0.0f);
    }
  }
}

TEST_CASE("Optimizers count steps and zero gradients", "[optim]") {
  nn::Linear<float> fc(4, 3);
  for (auto* p : fc.parameters()) p->grad.fill_(0.5f);
  optim::Adam<float> adam(fc.named_parameters());
  CHECK(adam.steps() == 0);
  adam.step();
  adam.step();
  CHECK(adam.steps() == 2);
  adam.set_steps(7);
  CHECK(adam.steps() == 7);
  CHECK_THROWS_WITH(adam.set_steps(-1), Contains("step count must be >= 0, got -1"));

  adam.zero_grad();
  for (auto* p : fc.parameters())
    for (float g : p->grad.to_vector()) CHECK(g == 0.0f);
  // A zero gradient still moves Adam's parameters (its moments are not
  // zero); plain SGD leaves them where they are.
  optim::SGD<float> sgd(fc.parameters(), {.lr = 0.1});
  const auto before = fc.weight.value.to_vector();
  sgd.step();
  CHECK(fc.weight.value.to_vector() == before);
  CHECK(sgd.steps() == 1);
}

TEST_CASE("Optimizers resume from their saved state bit for bit", "[optim]") {
  // What a checkpoint does: copy named_state() and steps() into a fresh
  // optimizer, then continue; the result must equal an uninterrupted run.
  auto run = [](bool interrupted) {
    Generator gen(7);
    nn::Parameter<float> p;
    p.reset(Tensor<float>::normal({4, 5}, 0, 1, gen));
    optim::AdamOptions o{.lr = 0.01, .weight_decay = 0.01, .amsgrad = true};
    auto opt = std::make_unique<optim::Adam<float>>(std::vector<nn::Parameter<float>*>{&p}, o);
    for (int k = 0; k < 5; ++k) {
      if (interrupted && k == 3) {
        auto fresh = std::make_unique<optim::Adam<float>>(std::vector<nn::Parameter<float>*>{&p}, o);
        auto saved = opt->named_state();
        auto restored = fresh->named_state();
        REQUIRE(saved.size() == restored.size());
        for (std::size_t i = 0; i < saved.size(); ++i) restored[i].second->copy_(*saved[i].second);
        fresh->set_steps(opt->steps());
        opt = std::move(fresh);
      }
      for (index_t i = 0; i < p.numel(); ++i) p.grad[i] = std::sin(3 * p.value[i] + static_cast<float>(k));
      opt->step();
    }
    return p.value.to_vector();
  };
  CHECK(run(true) == run(false));
}

TEST_CASE("Optimizer updates do not depend on the thread count", "[optim]") {
  // Large enough for the parallel loop; element-wise, so bit-identical.
  auto run = [](int threads, auto make) {
    const testing::ScopedNumThreads scoped(threads);
    Generator gen(11);
    nn::Parameter<float> p;
    p.reset(Tensor<float>::normal({300, 257}, 0, 1, gen));
    auto opt = make(std::vector<nn::Parameter<float>*>{&p});
    for (int k = 0; k < 3; ++k) {
      for (index_t i = 0; i < p.numel(); ++i) p.grad[i] = std::cos(p.value[i] + static_cast<float>(k));
      opt->step();
    }
    return p.value.to_vector();
  };
  auto adam = [](std::vector<nn::Parameter<float>*> ps) {
    return std::make_unique<optim::Adam<float>>(ps, optim::AdamOptions{.lr = 0.01, .amsgrad = true});
  };
  auto sgd = [](std::vector<nn::Parameter<float>*> ps) {
    return std::make_unique<optim::SGD<float>>(ps, optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true});
  };
  CHECK(run(1, adam) == run(2, adam));
  CHECK(run(1, sgd) == run(2, sgd));
}

TEST_CASE("Optimizers expose lr, momentum and their options", "[optim]") {
  nn::Linear<float> fc(2, 2);
  optim::SGD<float> plain(fc.parameters());
  CHECK(plain.lr() == 0.01);
  CHECK_FALSE(plain.momentum().has_value());
  CHECK(plain.type_name() == "SGD");
  CHECK(plain.to_string() == "SGD(lr=0.01, momentum=0, dampening=0, weight_decay=0, nesterov=false)");

  optim::SGD<float> sgd(fc.parameters(), {.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4});
  CHECK(sgd.to_string() == "SGD(lr=0.01, momentum=0.9, dampening=0, weight_decay=0.0005, nesterov=false)");
  CHECK(sgd.momentum() == 0.9);
  sgd.set_momentum(0.85);
  sgd.set_lr(0.2);
  CHECK(sgd.momentum() == 0.85);
  CHECK(sgd.options().momentum == 0.85);
  CHECK(sgd.options().lr == 0.2);

  optim::Adam<float> adam(fc.parameters());
  CHECK(adam.type_name() == "Adam");
  CHECK(adam.to_string() == "Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0, amsgrad=false)");
  CHECK(adam.momentum() == 0.9);
  adam.set_momentum(0.8);
  CHECK(adam.options().betas.first == 0.8);
  CHECK(adam.options().betas.second == 0.999);

  optim::AdamW<float> adamw(fc.parameters());
  CHECK(adamw.type_name() == "AdamW");
  CHECK(adamw.options().weight_decay == 0.01);  // PyTorch's AdamW default
  CHECK(adamw.to_string() == "AdamW(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, amsgrad=false)");
}

TEST_CASE("Optimizers reject invalid options with PyTorch's checks", "[optim][errors]") {
  nn::Linear<float> fc(2, 2);
  const auto ps = fc.parameters();
  using optim::SGD;
  using optim::SGDOptions;
  CHECK_THROWS_WITH(SGD<float>(ps, {.lr = -0.1}), Contains("SGD: lr must be finite and >= 0, got -0.1"));
  CHECK_THROWS_WITH(SGD<float>(ps, {.momentum = -0.5}), Contains("SGD: momentum must be finite and >= 0, got -0.5"));
  CHECK_THROWS_WITH(SGD<float>(ps, {.dampening = INFINITY}), Contains("SGD: dampening must be finite, got inf"));
  CHECK_THROWS_WITH(SGD<float>(ps, {.weight_decay = -1}),
                    Contains("SGD: weight_decay must be finite and >= 0, got -1"));
  CHECK_THROWS_WITH(
      SGD<float>(ps, {.nesterov = true}),
      Contains("SGD: nesterov=true requires momentum > 0 and dampening == 0, got momentum=0, dampening=0"));
  CHECK_THROWS_WITH(SGD<float>(ps, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                    Contains("got momentum=0.9, dampening=0.1"));
  CHECK_THROWS_AS(SGD<float>(ps, {.lr = -0.1}), ValueError);
  CHECK_THROWS_WITH(SGD<float>(std::vector<nn::Parameter<float>*>{}),
                    Contains("SGD: optimizer got an empty parameter list"));
  CHECK_THROWS_WITH(SGD<float>(std::vector<nn::Parameter<float>*>{nullptr}),
                    Contains("parameter '0' is null or undefined"));

  SGD<float> plain(ps);
  CHECK_THROWS_WITH(plain.set_momentum(0.9), Contains("built with momentum=0 and has no momentum buffer"));
  CHECK_THROWS_WITH(plain.set_lr(-1), Contains("SGD: learning rate must be finite and >= 0, got -1"));
  SGD<float> nesterov(ps, {.momentum = 0.9, .nesterov = true});
  CHECK_THROWS_WITH(nesterov.set_momentum(0), Contains("SGD: nesterov=true requires momentum > 0, got 0"));
  CHECK_THROWS_WITH(nesterov.set_momentum(-0.5), Contains("SGD: momentum must be finite and >= 0, got -0.5"));

  using optim::Adam;
  using optim::AdamW;
  CHECK_THROWS_WITH(Adam<float>(ps, {.lr = -1e-3}), Contains("Adam: lr must be finite and >= 0, got -0.001"));
  CHECK_THROWS_WITH(Adam<float>(ps, {.eps = -1e-8}), Contains("Adam: eps must be finite and >= 0, got -1e-08"));
  CHECK_THROWS_WITH(Adam<float>(ps, {.betas = {1.0, 0.999}}), Contains("Adam: betas[0] must lie in [0, 1), got 1"));
  CHECK_THROWS_WITH(Adam<float>(ps, {.betas = {-0.1, 0.999}}), Contains("Adam: betas[0] must lie in [0, 1), got -0.1"));
  CHECK_THROWS_WITH(Adam<float>(ps, {.betas = {0.9, 1.5}}), Contains("Adam: betas[1] must lie in [0, 1), got 1.5"));
  CHECK_THROWS_WITH(Adam<float>(ps, {.weight_decay = -0.01}),
                    Contains("Adam: weight_decay must be finite and >= 0, got -0.01"));
  CHECK_THROWS_WITH(AdamW<float>(ps, {.betas = {0.9, 1.0}}), Contains("AdamW: betas[1] must lie in [0, 1), got 1"));
  CHECK_THROWS_WITH(AdamW<float>(ps, {.weight_decay = -1}), Contains("AdamW: weight_decay must be finite and >= 0"));
  CHECK_THROWS_WITH(AdamW<float>(ps, {.lr = NAN}), Contains("AdamW: lr must be finite and >= 0, got nan"));
  Adam<float> adam(ps);
  CHECK_THROWS_WITH(adam.set_momentum(1.0), Contains("Adam: betas[0] (the momentum) must lie in [0, 1), got 1"));
}

TEST_CASE("Optimizers reject gradients that do not fit their parameters", "[optim][errors]") {
  nn::Parameter<float> p;
  p.reset(Tensor<float>::zeros({2, 3}));
  optim::SGD<float> sgd({{"w", &p}}, {.momentum = 0.9});
  p.grad = Tensor<float>::zeros({3, 2});
  CHECK_THROWS_AS(sgd.step(), ShapeError);
  CHECK_THROWS_WITH(sgd.step(), Contains("SGD: parameter 'w' of shape (2, 3) has a gradient of shape (3, 2)"));
  p.grad = Tensor<float>();
  CHECK_THROWS_WITH(sgd.step(), Contains("SGD: parameter 'w' has no gradient"));
  CHECK(sgd.steps() == 0);  // a failed update is not counted

  // Every parameter is checked before any changes: no half-applied step.
  nn::Parameter<float> good;
  good.reset(Tensor<float>::ones({3}));
  good.grad.fill_(1.0f);
  p.grad = Tensor<float>::zeros({1});
  optim::Adam<float> both({{"good", &good}, {"w", &p}});
  CHECK_THROWS_AS(both.step(), ShapeError);
  CHECK(good.value.to_vector() == std::vector<float>{1, 1, 1});
  for (auto& [name, t] : both.named_state())
    for (float v : t->to_vector()) CHECK(v == 0.0f);
  p.grad = Tensor<float>::zeros({2, 3});

  p.reset(Tensor<float>::zeros({4}));  // replaced after the optimizer was built
  CHECK_THROWS_WITH(sgd.step(), Contains("SGD: parameter 'w' changed shape from (2, 3) to (4)"));
  optim::Adam<float> adam({{"w", &p}});
  p.reset(Tensor<float>::zeros({5}));
  CHECK_THROWS_WITH(adam.step(), Contains("Adam: parameter 'w' changed shape from (4) to (5)"));
}

namespace {

// Two parameters with set gradients, for the GradScaler cases.
struct ScalerFixture {
  nn::Parameter<float> a, b;
  ScalerFixture() {
    a.reset(Tensor<float>::from_vector({3}, {1.0f, 2.0f, 3.0f}));
    b.reset(Tensor<float>::from_vector({2}, {-1.0f, 0.5f}));
  }
  std::vector<std::pair<std::string, nn::Parameter<float>*>> named() { return {{"a", &a}, {"b", &b}}; }
  void set_grads(std::vector<float> ga, std::vector<float> gb) {
    a.grad = Tensor<float>::from_vector({3}, ga);
    b.grad = Tensor<float>::from_vector({2}, gb);
  }
};

}  // namespace

TEST_CASE("GradScaler scales the loss gradient and unscales before a step, exactly for a power of two",
          "[optim][grad_scaler]") {
  ScalerFixture scaled, plain;
  optim::SGD<float> opt_scaled(scaled.named(), {.lr = 0.1}), opt_plain(plain.named(), {.lr = 0.1});
  optim::GradScaler<float> scaler({.init_scale = 1024.0});
  const auto dloss = Tensor<float>::from_vector({2}, {0.25f, -3.0f});
  CHECK(scaler.scale(dloss).to_vector() == std::vector<float>{256.0f, -3072.0f});
  CHECK(dloss.to_vector() == std::vector<float>{0.25f, -3.0f});  // a copy
  // Gradients of a scaled loss are the gradients times the scale.
  scaled.set_grads({1024.0f * 0.3f, 1024.0f * -0.7f, 1024.0f * 1e-3f}, {1024.0f * 5.0f, 0.0f});
  plain.set_grads({0.3f, -0.7f, 1e-3f}, {5.0f, 0.0f});
  CHECK(scaler.step(opt_scaled));
  scaler.update();
  opt_plain.step();
  CHECK(scaled.a.value.to_vector() == plain.a.value.to_vector());
  CHECK(scaled.b.value.to_vector() == plain.b.value.to_vector());
  CHECK(scaled.a.grad.to_vector() == plain.a.grad.to_vector());  // unscaled in place, as PyTorch's
  CHECK(scaler.scale_value() == 1024.0);
  CHECK(scaler.growth_tracker() == 1);
}

TEST_CASE("GradScaler skips the step on an infinite or NaN gradient and backs off; grows after the interval",
          "[optim][grad_scaler]") {
  for (const float bad : {INFINITY, -INFINITY, NAN}) {
    DYNAMIC_SECTION("gradient " << bad) {
      ScalerFixture f;
      optim::SGD<float> opt(f.named(), {.lr = 0.1});
      optim::GradScaler<float> scaler({.init_scale = 8.0, .growth_interval = 2});
      f.set_grads({1, 1, 1}, {1, 1});
      CHECK(scaler.step(opt));
      scaler.update();
      const auto a_before = f.a.value.to_vector(), b_before = f.b.value.to_vector();
      f.set_grads({1, bad, 1}, {1, 1});
      CHECK_FALSE(scaler.step(opt));
      CHECK(scaler.found_inf());
      scaler.update();
      CHECK(f.a.value.to_vector() == a_before);  // no step taken
      CHECK(f.b.value.to_vector() == b_before);
      CHECK(opt.steps() == 1);
      CHECK(scaler.scale_value() == 4.0);  // backed off, the good step before it forgotten
      CHECK(scaler.growth_tracker() == 0);
      for (int i = 0; i < 2; ++i) {
        f.set_grads({1, 1, 1}, {1, 1});
        CHECK(scaler.step(opt));
        scaler.update();
      }
      CHECK(scaler.scale_value() == 8.0);  // two good steps: grown
      CHECK(scaler.growth_tracker() == 0);
    }
  }
}

TEST_CASE("A disabled GradScaler passes through; misuse and bad options are errors", "[optim][grad_scaler][errors]") {
  ScalerFixture f;
  optim::SGD<float> opt(f.named(), {.lr = 0.1});
  optim::GradScaler<float> off({.enabled = false});
  const auto dloss = Tensor<float>::from_vector({1}, {3.0f});
  CHECK(off.scale(dloss).to_vector() == std::vector<float>{3.0f});
  f.set_grads({1, INFINITY, 1}, {1, 1});
  CHECK(off.step(opt));  // disabled: no check, the step is taken
  off.update();
  optim::GradScaler<float> scaler;
  CHECK_THROWS_WITH(scaler.update(), Contains("call step() first"));
  f.set_grads({1, 1, 1}, {1, 1});
  scaler.step(opt);
  CHECK_THROWS_WITH(scaler.step(opt), Contains("twice without update()"));
  CHECK_THROWS_WITH(optim::GradScaler<float>({.init_scale = 0}), Contains("init_scale must be finite and > 0"));
  CHECK_THROWS_WITH(optim::GradScaler<float>({.growth_factor = 1}), Contains("growth_factor"));
  CHECK_THROWS_WITH(optim::GradScaler<float>({.backoff_factor = 1}), Contains("backoff_factor must be in (0, 1)"));
  CHECK_THROWS_WITH(optim::GradScaler<float>({.growth_interval = 0}), Contains("growth_interval"));
}

namespace {

// Two copies of one small network, and the same gradients for both, so one
// optimizer with parameter groups can be compared with separate optimizers.
struct GroupedNets {
  nn::Sequential<float> a, b;
  GroupedNets() {
    for (auto* net : {&a, &b}) {
      net->push_back("body", std::make_shared<nn::Linear<float>>(4, 3));
      net->push_back("head", std::make_shared<nn::Linear<float>>(3, 2));
    }
    const auto pa = a.parameters(), pb = b.parameters();
    Generator gen(11);
    for (std::size_t i = 0; i < pa.size(); ++i) {
      pa[i]->value.copy_(Tensor<float>::normal(pa[i]->value.shape(), 0, 1, gen));
      pb[i]->value.copy_(pa[i]->value);
    }
  }
  static std::vector<std::pair<std::string, nn::Parameter<float>*>> of(nn::Sequential<float>& net,
                                                                       const std::string& prefix) {
    std::vector<std::pair<std::string, nn::Parameter<float>*>> out;
    for (auto& [name, p] : net.named_parameters())
      if (name.rfind(prefix, 0) == 0) out.emplace_back(name, p);
    return out;
  }
  // A gradient that depends on the value and the step, the same in both nets.
  void set_gradients(int step) {
    for (auto* net : {&a, &b})
      for (auto* p : net->parameters())
        for (index_t i = 0; i < p->numel(); ++i) p->grad[i] = std::sin(2 * p->value[i] + static_cast<float>(step));
  }
};

}  // namespace

TEST_CASE("Parameter groups update exactly as separate optimizers with their own lr and weight decay",
          "[optim][groups]") {
  // PyTorch applies each param_group's settings to its parameters alone,
  // which is what separate optimizers do; the single-group optimizers are
  // checked against torch.optim above. A schedule scales every group.
  const optim::StepLR schedule(0.1, 2, 0.5);
  auto check_kind = [&](auto make) {
    GroupedNets nets;
    auto grouped = make(
        std::vector<optim::ParamGroup<float>>{
            {.name = "body", .params = GroupedNets::of(nets.a, "body."), .lr_scale = 0.1, .weight_decay = 0.0},
            {.name = "head", .params = GroupedNets::of(nets.a, "head.")}},
        1.0, 0.05);
    auto body = make(GroupedNets::of(nets.b, "body."), 0.1, 0.0);
    auto head = make(GroupedNets::of(nets.b, "head."), 1.0, 0.05);
    for (int step = 0; step < 5; ++step) {
      nets.set_gradients(step);
      schedule.apply(*grouped);
      body->set_lr(schedule.lr_at(step) * 0.1);
      head->set_lr(schedule.lr_at(step));
      CHECK(grouped->group_lr(0) == schedule.lr_at(step) * 0.1);
      grouped->step();
      body->step();
      head->step();
    }
    const auto pa = nets.a.parameters(), pb = nets.b.parameters();
    for (std::size_t i = 0; i < pa.size(); ++i) CHECK(pa[i]->value.to_vector() == pb[i]->value.to_vector());
    // The body moved less than the head would have: the groups differ.
    GroupedNets flat;
    auto one = make(flat.a.named_parameters(), 1.0, 0.05);
    for (int step = 0; step < 5; ++step) {
      flat.set_gradients(step);
      schedule.apply(*one);
      one->step();
    }
    CHECK(flat.a.parameters()[0]->value.to_vector() != pa[0]->value.to_vector());
    CHECK(flat.a.parameters()[2]->value.to_vector() == pa[2]->value.to_vector());
  };
  // make(params or groups, lr_scale for a plain list, weight decay).
  SECTION("SGD with Nesterov momentum") {
    check_kind([](auto params, double scale, double wd) {
      return std::make_unique<optim::SGD<float>>(
          std::move(params),
          optim::SGDOptions{.lr = 0.1 * scale, .momentum = 0.9, .weight_decay = wd, .nesterov = true});
    });
  }
  SECTION("Adam") {
    check_kind([](auto params, double scale, double wd) {
      return std::make_unique<optim::Adam<float>>(std::move(params),
                                                  optim::AdamOptions{.lr = 0.1 * scale, .weight_decay = wd});
    });
  }
  SECTION("AdamW") {
    check_kind([](auto params, double scale, double wd) {
      return std::make_unique<optim::AdamW<float>>(std::move(params),
                                                   optim::AdamWOptions{.lr = 0.1 * scale, .weight_decay = wd});
    });
  }
}

TEST_CASE("Parameter groups keep the state names, describe themselves and skip frozen parameters", "[optim][groups]") {
  GroupedNets nets;
  optim::SGD<float> grouped({{.name = "body", .params = GroupedNets::of(nets.a, "body."), .lr_scale = 0.1},
                             {.name = "head", .params = GroupedNets::of(nets.a, "head."), .weight_decay = 0.0}},
                            {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
  optim::SGD<float> flat(nets.b.named_parameters(), {.lr = 0.1, .momentum = 0.9});
  // A checkpoint of one loads into the other: the state is per parameter.
  std::vector<std::string> grouped_names, flat_names;
  for (auto& [name, t] : grouped.named_state()) grouped_names.push_back(name);
  for (auto& [name, t] : flat.named_state()) flat_names.push_back(name);
  CHECK(grouped_names == flat_names);
  REQUIRE(grouped.param_groups().size() == 2);
  CHECK(grouped.param_groups()[1].begin == 2);
  CHECK(grouped.param_groups()[1].end == 4);
  CHECK(grouped.to_string() ==
        "SGD(lr=0.1, momentum=0.9, dampening=0, weight_decay=0.0001, nesterov=false, "
        "groups=[body(lr_scale=0.1), head(weight_decay=0)])");
  CHECK(flat.to_string() == "SGD(lr=0.1, momentum=0.9, dampening=0, weight_decay=0, nesterov=false)");

  nets.a.parameters()[0]->requires_grad = false;
  const auto frozen_before = nets.a.parameters()[0]->value.to_vector();
  const auto trained_before = nets.a.parameters()[1]->value.to_vector();
  nets.set_gradients(0);
  grouped.step();
  CHECK(nets.a.parameters()[0]->value.to_vector() == frozen_before);
  CHECK(nets.a.parameters()[1]->value.to_vector() != trained_before);
}

TEST_CASE("Parameter groups reject empty groups, repeated parameters and bad settings", "[optim][groups][errors]") {
  GroupedNets nets;
  const auto body = GroupedNets::of(nets.a, "body."), head = GroupedNets::of(nets.a, "head.");
  using Groups = std::vector<optim::ParamGroup<float>>;
  CHECK_THROWS_WITH(optim::SGD<float>(Groups{}), Contains("SGD: optimizer got no parameter groups"));
  CHECK_THROWS_WITH(optim::SGD<float>(Groups{{.name = "body", .params = body}, {.name = "head"}}),
                    Contains("SGD: group 'head' has no parameters"));
  CHECK_THROWS_WITH(optim::Adam<float>(Groups{{.params = body}, {.params = body}}),
                    Contains("Adam: parameter 'body.weight' is given twice; each parameter may appear only once "
                             "(in one group)"));
  auto renamed = head;
  renamed[0].first = "classifier.weight";
  renamed.push_back(head[0]);
  CHECK_THROWS_WITH(optim::AdamW<float>(Groups{{.params = renamed}}),
                    Contains("'classifier.weight' is also given as 'head.weight'"));
  CHECK_THROWS_WITH(optim::SGD<float>(Groups{{.params = body}, {.name = "head", .params = head, .lr_scale = -1}}),
                    Contains("SGD: group 'head': lr_scale must be finite and >= 0, got -1"));
  CHECK_THROWS_WITH(optim::SGD<float>(Groups{{.params = body, .lr_scale = NAN}}),
                    Contains("SGD: group 0: lr_scale must be finite and >= 0, got nan"));
  CHECK_THROWS_WITH(optim::Adam<float>(Groups{{.params = body}, {.params = head, .weight_decay = -0.5}}),
                    Contains("Adam: group 1: weight_decay must be finite and >= 0, got -0.5"));
  CHECK_THROWS_AS(optim::SGD<float>(Groups{{.params = body}, {.params = body}}), ValueError);
}

TEST_CASE("no_decay_on_norm_and_bias: BatchNorm and bias parameters are not decayed, weights are", "[optim][groups]") {
  manual_seed(3);
  auto model = models::d2l_resnet18<float>();
  auto groups = optim::no_decay_on_norm_and_bias(*model);
  REQUIRE(groups.size() == 2);
  REQUIRE(groups[0].name == "decay");
  REQUIRE(groups[1].name == "no_decay");
  REQUIRE(groups[1].weight_decay == 0.0);
  REQUIRE_FALSE(groups[0].weight_decay.has_value());
  std::size_t bn_params = 0;
  for (const auto& [name, p] : groups[0].params) REQUIRE(p->value.rank() >= 2);  // convolution and Linear weights
  for (const auto& [name, p] : groups[1].params) {
    REQUIRE(p->value.rank() == 1);
    bn_params += name.ends_with(".weight") ? 1 : 0;  // BatchNorm's scale; the rest are biases
  }
  REQUIRE(groups[0].params.size() + groups[1].params.size() == model->named_parameters().size());
  // d2l's ResNet-18: 20 convolutions (3 of them 1x1 shortcuts) and the
  // Linear are decayed; its 17 BatchNorms (weight and bias each) and every
  // bias are not.
  REQUIRE(groups[0].params.size() == 21);
  REQUIRE(bn_params == 17);

  // With zero gradients a step is the decay alone: p <- p - lr * (wd * p) on
  // "decay", nothing on "no_decay", bit for bit.
  std::vector<std::vector<float>> before;
  for (auto* p : model->parameters()) before.push_back(p->value.to_vector());
  optim::SGD<float> sgd(optim::no_decay_on_norm_and_bias(*model), {.lr = 0.1, .weight_decay = 0.05});
  for (auto* p : model->parameters()) p->grad = Tensor<float>::zeros(p->value.shape());
  sgd.step();
  const auto params = model->parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto after = params[i]->value.to_vector();
    for (std::size_t k = 0; k < after.size(); ++k) {
      const float p = before[i][k];
      const float expected = params[i]->value.rank() <= 1 ? p : p + (-0.1f) * (0.05f * p);
      REQUIRE(after[k] == expected);
    }
  }
}

namespace {

// Every parameter's and buffer's values, in model order.
std::vector<std::vector<float>> snapshot(nn::Module<float>& model) {
  std::vector<std::vector<float>> out;
  for (auto& [name, p] : model.named_parameters()) out.push_back(p->value.to_vector());
  for (auto& [name, b] : model.named_buffers()) out.push_back(b->to_vector());
  return out;
}

// Sets every parameter and buffer element to f(entry, element, step).
template <class F>
void fill(nn::Module<float>& model, int step, F f) {
  std::size_t entry = 0;
  const auto set = [&](Tensor<float>& t) {
    for (index_t k = 0; k < t.numel(); ++k) t.data()[k] = f(entry, k, step);
    ++entry;
  };
  for (auto& [name, p] : model.named_parameters()) set(p->value);
  for (auto& [name, b] : model.named_buffers()) set(*b);
}

float weight_at(std::size_t entry, index_t k, int step) {
  return 0.01f * static_cast<float>(
                     (entry * 7 + static_cast<std::size_t>(k) * 3 + static_cast<std::size_t>(step) * 11) % 23) -
         0.1f;
}

}  // namespace

TEST_CASE("WeightEma follows average = d * average + (1 - d) * current on every parameter and buffer", "[optim][ema]") {
  for (const bool warmup : {false, true}) {
    INFO("warmup " << warmup);
    manual_seed(4);
    auto model = models::d2l_resnet18<float>();
    fill(*model, 0, weight_at);
    optim::WeightEma<float> ema(*model, 0.9, warmup);
    REQUIRE(ema.decay() == 0.9);
    // The reference, in double, of AveragedModel's EMA rule (the warm-up
    // decay min(decay, (1 + n) / (10 + n)) at the n-th update).
    auto expected = snapshot(*model);
    std::vector<std::vector<double>> ref(expected.size());
    for (std::size_t e = 0; e < expected.size(); ++e) ref[e].assign(expected[e].begin(), expected[e].end());
    for (int step = 1; step <= 5; ++step) {
      const double n = step - 1;
      const double d = warmup ? std::min(0.9, (1 + n) / (10 + n)) : 0.9;
      REQUIRE(ema.current_decay() == d);
      fill(*model, step, weight_at);
      ema.update();
      const auto live = snapshot(*model);
      for (std::size_t e = 0; e < ref.size(); ++e)
        for (std::size_t k = 0; k < ref[e].size(); ++k) ref[e][k] = d * ref[e][k] + (1 - d) * live[e][k];
    }
    REQUIRE(ema.updates() == 5);
    const auto live = snapshot(*model);
    std::vector<std::vector<float>> averaged;
    {
      auto applied = ema.apply();
      averaged = snapshot(*model);
    }
    REQUIRE(snapshot(*model) == live);  // the model's own values are back, bit for bit
    double max_err = 0;
    bool moved = false;
    for (std::size_t e = 0; e < ref.size(); ++e)
      for (std::size_t k = 0; k < ref[e].size(); ++k) {
        max_err = std::max(max_err, std::abs(averaged[e][k] - ref[e][k]));
        moved |= averaged[e][k] != live[e][k];
      }
    // Float rounding of 5 updates of values below 0.2: measured 1.7e-8
    // (5.3e-9 with warm-up); a decay 0.001 too high gave 4.7e-4 (1.6e-4).
    CHECK(max_err < 1e-6);
    CHECK(moved);
  }
}

TEST_CASE("WeightEma: apply() restores the model's values on an exception; reset, copy_to_model and named_state",
          "[optim][ema]") {
  manual_seed(5);
  auto model = models::d2l_resnet18<float>();
  fill(*model, 0, weight_at);
  optim::WeightEma<float> ema(*model, 0.5);
  fill(*model, 1, weight_at);
  ema.update();
  const auto live = snapshot(*model);
  try {
    auto applied = ema.apply();
    REQUIRE(snapshot(*model) != live);
    throw std::runtime_error("evaluation failed");
  } catch (const std::runtime_error&) {
  }
  REQUIRE(snapshot(*model) == live);

  // The state holds one average per parameter and buffer, named after it.
  const auto state = ema.named_state();
  REQUIRE(state.size() == model->named_parameters().size() + model->named_buffers().size());
  REQUIRE(state.front().first == "ema." + model->named_parameters().front().first);
  REQUIRE(state.front().second->shape() == model->named_parameters().front().second->value.shape());

  std::vector<std::vector<float>> averaged;
  {
    auto applied = ema.apply();
    averaged = snapshot(*model);
  }
  ema.copy_to_model();
  REQUIRE(snapshot(*model) == averaged);
  fill(*model, 2, weight_at);
  ema.reset();
  REQUIRE(ema.updates() == 0);
  const auto now = snapshot(*model);
  {
    auto applied = ema.apply();
    REQUIRE(snapshot(*model) == now);  // after reset the averages are the model's values
  }
  ema.set_updates(7);
  REQUIRE(ema.updates() == 7);
  CHECK_THROWS_WITH(ema.set_updates(-1), Contains("update count must be >= 0, got -1"));
  CHECK_THROWS_WITH(optim::WeightEma<float>(*model, 1.0), Contains("WeightEma: decay must be in [0, 1), got 1"));
  CHECK_THROWS_WITH(optim::WeightEma<float>(*model, -0.1), Contains("decay must be in [0, 1), got -0.1"));
}
