// Learning-rate schedules: PyTorch's values (golden), apply() on optimizers,
// the factory used by trainers, and the validation of every option.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "rescnn/nn/linear.hpp"
#include "rescnn/optim/optim.hpp"
#include "support/golden.hpp"

using namespace rescnn;
using namespace rescnn::optim;
using Catch::Matchers::Contains;

namespace {

// The schedule a fixture describes.
std::shared_ptr<LrSchedule> schedule_from(const io::SafeTensors& f) {
  using testing::meta_bool;
  using testing::meta_double;
  using testing::meta_int;
  const std::string kind = f.meta("schedule");
  const double base_lr = meta_double(f, "base_lr");
  if (kind == "StepLR") return std::make_shared<StepLR>(base_lr, meta_int(f, "step_size"), meta_double(f, "gamma"));
  if (kind == "CosineAnnealingLR")
    return std::make_shared<CosineAnnealingLR>(base_lr, meta_int(f, "t_max"), meta_double(f, "eta_min"));
  if (kind == "LinearLR")
    return std::make_shared<LinearWarmup>(base_lr, meta_double(f, "start_factor"), meta_double(f, "end_factor"),
                                          meta_int(f, "total_iters"));
  if (kind == "SequentialLR")
    return std::make_shared<WarmupThen>(
        meta_int(f, "warmup_steps"), meta_double(f, "start_factor"),
        std::make_shared<CosineAnnealingLR>(base_lr, meta_int(f, "t_max"), meta_double(f, "eta_min")));
  REQUIRE(kind == "OneCycleLR");
  const std::string anneal = f.meta("anneal_strategy");
  REQUIRE((anneal == "cos" || anneal == "linear"));
  return std::make_shared<OneCycleLR>(OneCycleOptions{
      .max_lr = meta_double(f, "max_lr"),
      .total_steps = meta_int(f, "total_steps"),
      .pct_start = meta_double(f, "pct_start"),
      .anneal_strategy = anneal == "cos" ? AnnealStrategy::Cos : AnnealStrategy::Linear,
      .div_factor = meta_double(f, "div_factor"),
      .final_div_factor = meta_double(f, "final_div_factor"),
      .three_phase = meta_bool(f, "three_phase"),
      .cycle_momentum = meta_bool(f, "cycle_momentum"),
      .base_momentum = meta_double(f, "base_momentum"),
      .max_momentum = meta_double(f, "max_momentum"),
  });
}

double rel_error(double actual, double expected) {
  return std::abs(actual - expected) / std::max(std::abs(expected), 1e-300);
}

}  // namespace

TEST_CASE("Schedules match torch.optim.lr_scheduler (golden)", "[schedule][golden]") {
  // PyTorch's recursive forms equal our closed forms to ~1e-14 relative.
  constexpr double kTolerance = 1e-9;
  for (const auto& path : testing::golden_cases("schedule")) {
    SECTION(path.filename().string()) {
      const auto f = io::SafeTensors::load(path);
      const auto schedule = schedule_from(f);
      INFO(schedule->to_string());
      const auto lrs = f.tensor<double>("lr").to_vector();
      REQUIRE(static_cast<index_t>(lrs.size()) == testing::meta_int(f, "count"));
      double worst = 0;
      for (std::size_t k = 0; k < lrs.size(); ++k) {
        const double err = rel_error(schedule->lr_at(static_cast<std::int64_t>(k)), lrs[k]);
        if (err > kTolerance)
          FAIL_CHECK("step " << k << ": lr " << schedule->lr_at(static_cast<std::int64_t>(k)) << " vs " << lrs[k]);
        worst = std::max(worst, err);
      }
      INFO("worst relative error " << worst);
      CHECK(worst <= kTolerance);

      if (f.contains("momentum")) {
        const auto momenta = f.tensor<double>("momentum").to_vector();
        for (std::size_t k = 0; k < momenta.size(); ++k) {
          const auto m = schedule->momentum_at(static_cast<std::int64_t>(k));
          REQUIRE(m.has_value());
          if (rel_error(*m, momenta[k]) > kTolerance)
            FAIL_CHECK("step " << k << ": momentum " << *m << " vs " << momenta[k]);
        }
      } else {
        CHECK_FALSE(schedule->momentum_at(0).has_value());
      }
      // PyTorch raises on the step after total_steps; so do we.
      if (f.metadata().count("raises_at")) {
        const std::int64_t at = testing::meta_int(f, "raises_at");
        CHECK_NOTHROW(schedule->lr_at(at - 1));
        CHECK_THROWS_AS(schedule->lr_at(at), ValueError);
        CHECK_THROWS_WITH(schedule->lr_at(at), Contains("tried to step " + std::to_string(at + 1) + " times"));
      }
    }
  }
}

TEST_CASE("Cosine annealing keeps following the cosine past t_max, as PyTorch does", "[schedule]") {
  CosineAnnealingLR cosine(0.1, 10, 0.001);
  CHECK(cosine.lr_at(0) == 0.1);
  CHECK(cosine.lr_at(10) == Approx(0.001).epsilon(1e-12));
  CHECK(cosine.lr_at(15) == Approx(cosine.lr_at(5)).epsilon(1e-12));
  CHECK(cosine.lr_at(20) == Approx(0.1).epsilon(1e-12));
}

TEST_CASE("apply() sets the optimizer's lr and momentum for its next update", "[schedule]") {
  nn::Linear<float> fc(3, 2);
  for (auto* p : fc.parameters()) p->grad.fill_(0.1f);
  OneCycleLR one_cycle(0.1, 20);

  SECTION("SGD with momentum") {
    SGD<float> sgd(fc.parameters(), {.lr = 1, .momentum = 0.9});
    for (int k = 0; k < 5; ++k) {
      one_cycle.apply(sgd);
      CHECK(sgd.lr() == one_cycle.lr_at(k));
      CHECK(sgd.momentum() == one_cycle.momentum_at(k));
      sgd.step();
    }
    CHECK(sgd.lr() == one_cycle.lr_at(4));
    sgd.set_steps(12);  // resuming: only the step count matters
    one_cycle.apply(sgd);
    CHECK(sgd.lr() == one_cycle.lr_at(12));
  }
  SECTION("Adam: the momentum is beta1") {
    Adam<float> adam(fc.parameters());
    one_cycle.apply(adam);
    CHECK(adam.lr() == Approx(0.1 / 25));
    CHECK(adam.options().betas.first == Approx(0.95));
    CHECK(adam.options().betas.second == 0.999);
  }
  SECTION("SGD without momentum cannot follow a momentum cycle") {
    SGD<float> plain(fc.parameters());
    CHECK_THROWS_WITH(one_cycle.apply(plain), Contains("SGD: cannot set momentum to 0.95"));
    OneCycleLR lr_only(OneCycleOptions{.max_lr = 0.1, .total_steps = 20, .cycle_momentum = false});
    lr_only.apply(plain);
    CHECK(plain.lr() == lr_only.lr_at(0));
  }
  SECTION("schedules without momentum leave it alone") {
    SGD<float> sgd(fc.parameters(), {.momentum = 0.9});
    StepLR(0.5, 2).apply(sgd);
    CHECK(sgd.lr() == 0.5);
    CHECK(sgd.momentum() == 0.9);
  }
}

TEST_CASE("WarmupThen restarts the following schedule at the milestone", "[schedule]") {
  auto step = std::make_shared<StepLR>(0.2, 3, 0.5);
  WarmupThen w(4, 0.25, step);
  CHECK(w.lr_at(0) == Approx(0.05));
  CHECK(w.lr_at(2) == Approx(0.2 * (0.25 + 0.75 * 2 / 4)));
  for (std::int64_t s = 4; s < 20; ++s) CHECK(w.lr_at(s) == step->lr_at(s - 4));
  CHECK_FALSE(w.momentum_at(0).has_value());

  auto cycle = std::make_shared<OneCycleLR>(0.1, 30);
  WarmupThen wc(5, 0.5, cycle);
  CHECK(wc.momentum_at(0) == cycle->momentum_at(0));  // 0.95 during the warm-up
  CHECK(wc.momentum_at(7) == cycle->momentum_at(2));
  CHECK(wc.lr_at(4) < cycle->lr_at(0));
}

TEST_CASE("Schedules describe themselves", "[schedule]") {
  CHECK(ConstantSchedule(0.1).to_string() == "ConstantSchedule(base_lr=0.1)");
  CHECK(ConstantSchedule(0.1).lr_at(1000) == 0.1);
  CHECK(StepLR(0.1, 7, 0.5).to_string() == "StepLR(base_lr=0.1, step_size=7, gamma=0.5)");
  CHECK(CosineAnnealingLR(0.1, 30, 1e-4).to_string() == "CosineAnnealingLR(base_lr=0.1, t_max=30, eta_min=0.0001)");
  CHECK(LinearWarmup(0.1, 0.1, 1, 5).to_string() ==
        "LinearWarmup(base_lr=0.1, start_factor=0.1, end_factor=1, total_iters=5)");
  CHECK(WarmupThen(5, 0.1, std::make_shared<ConstantSchedule>(0.2)).to_string() ==
        "WarmupThen(warmup=LinearWarmup(base_lr=0.2, start_factor=0.1, end_factor=1, total_iters=5), "
        "after=ConstantSchedule(base_lr=0.2))");
  CHECK(OneCycleLR(0.1, 40).to_string() ==
        "OneCycleLR(max_lr=0.1, total_steps=40, pct_start=0.3, anneal_strategy=cos, div_factor=25, "
        "final_div_factor=10000, three_phase=false, cycle_momentum=true, base_momentum=0.85, max_momentum=0.95)");
}

TEST_CASE("make_schedule builds the named schedules for a run", "[schedule]") {
  const std::int64_t spe = 10, total = 300;  // 30 epochs of 10 updates
  SECTION("constant") { CHECK(make_schedule("constant", 0.1, total, spe)->lr_at(299) == 0.1); }
  SECTION("step: a third of the run, in whole epochs") {
    auto s = make_schedule("step", 0.1, total, spe);
    CHECK(s->to_string() == "StepLR(base_lr=0.1, step_size=100, gamma=0.1)");
    CHECK(make_schedule("step", 0.1, 95, 10)->to_string() == "StepLR(base_lr=0.1, step_size=30, gamma=0.1)");
    CHECK(make_schedule("step", 0.1, 5, 10)->to_string() == "StepLR(base_lr=0.1, step_size=10, gamma=0.1)");
    CHECK(make_schedule("step", 0.1, total, spe, {.step_size = 7, .gamma = 0.5})->to_string() ==
          "StepLR(base_lr=0.1, step_size=7, gamma=0.5)");
  }
  SECTION("cosine over the whole run") {
    auto s = make_schedule("cosine", 0.1, total, spe, {.eta_min = 1e-3});
    CHECK(s->to_string() == "CosineAnnealingLR(base_lr=0.1, t_max=300, eta_min=0.001)");
    CHECK(s->lr_at(300) == Approx(1e-3).epsilon(1e-12));
  }
  SECTION("warmup_cosine: one epoch or 5% of the run, whichever is shorter") {
    auto s = make_schedule("warmup_cosine", 0.1, total, spe);  // 5% = 15 > one epoch = 10
    CHECK(s->to_string() ==
          "WarmupThen(warmup=LinearWarmup(base_lr=0.1, start_factor=0.1, end_factor=1, total_iters=10), "
          "after=CosineAnnealingLR(base_lr=0.1, t_max=290, eta_min=0))");
    CHECK(s->lr_at(0) == Approx(0.01));
    CHECK(s->lr_at(10) == 0.1);
    CHECK(s->lr_at(300) == Approx(0).margin(1e-15));
    auto short_run = make_schedule("warmup_cosine", 0.1, 100, 50);  // 5% = 5 < one epoch = 50
    CHECK(short_run->lr_at(5) == 0.1);
    CHECK(short_run->lr_at(4) < 0.1);
    auto tiny = make_schedule("warmup_cosine", 0.1, 2, 1);
    CHECK(tiny->lr_at(1) == 0.1);
    auto explicit_warmup = make_schedule("warmup_cosine", 0.1, total, spe, {.warmup_steps = 30});
    CHECK(explicit_warmup->lr_at(30) == 0.1);
  }
  SECTION("onecycle peaks at base_lr") {
    auto s = make_schedule("onecycle", 0.1, total, spe, {.pct_start = 0.25});
    CHECK(s->lr_at(0) == Approx(0.1 / 25));
    CHECK(s->lr_at(74) == Approx(0.1));
    CHECK(s->momentum_at(0).value() == Approx(0.95));
    CHECK_FALSE(make_schedule("onecycle", 0.1, total, spe, {.cycle_momentum = false})->momentum_at(0).has_value());
  }
  SECTION("unknown names and options that do not fit the run") {
    CHECK_THROWS_WITH(
        make_schedule("cosin", 0.1, total, spe),
        Contains("unknown schedule 'cosin'; valid names: constant, step, cosine, warmup_cosine, onecycle"));
    CHECK_THROWS_AS(make_schedule("", 0.1, total, spe), ValueError);
    CHECK_THROWS_WITH(make_schedule("cosine", 0.1, 0, spe), Contains("total_steps must be >= 1, got 0"));
    CHECK_THROWS_WITH(make_schedule("cosine", 0.1, total, 0), Contains("steps_per_epoch must be >= 1, got 0"));
    CHECK_THROWS_WITH(make_schedule("step", 0.1, total, spe, {.step_size = -3}), Contains("step_size must be >= 0"));
    CHECK_THROWS_WITH(make_schedule("warmup_cosine", 0.1, total, spe, {.warmup_steps = -1}),
                      Contains("warmup_steps must be >= 0"));
    CHECK_THROWS_WITH(make_schedule("warmup_cosine", 0.1, 1, spe), Contains("warmup_cosine needs total_steps >= 2"));
    CHECK_THROWS_WITH(make_schedule("warmup_cosine", 0.1, 10, spe, {.warmup_steps = 10}),
                      Contains("warmup_steps=10 leaves no updates for the cosine in total_steps=10"));
    CHECK_THROWS_WITH(make_schedule("cosine", -0.1, total, spe), Contains("base_lr must be finite and >= 0, got -0.1"));
  }
}

TEST_CASE("Schedules reject invalid options", "[schedule][errors]") {
  CHECK_THROWS_WITH(ConstantSchedule(-1), Contains("ConstantSchedule: base_lr must be finite and >= 0, got -1"));
  CHECK_THROWS_WITH(ConstantSchedule(0.1).lr_at(-1), Contains("ConstantSchedule: step must be >= 0, got -1"));

  CHECK_THROWS_WITH(StepLR(NAN, 3), Contains("StepLR: base_lr must be finite and >= 0, got nan"));
  CHECK_THROWS_WITH(StepLR(0.1, 0), Contains("StepLR: step_size must be >= 1, got 0"));
  CHECK_THROWS_WITH(StepLR(0.1, 3, 0), Contains("StepLR: gamma must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(StepLR(0.1, 3).lr_at(-2), Contains("StepLR: step must be >= 0, got -2"));

  CHECK_THROWS_WITH(CosineAnnealingLR(0.1, 0), Contains("CosineAnnealingLR: t_max must be >= 1, got 0"));
  CHECK_THROWS_WITH(CosineAnnealingLR(0.1, 10, -1e-3),
                    Contains("CosineAnnealingLR: eta_min must be finite and >= 0, got -0.001"));
  CHECK_THROWS_WITH(CosineAnnealingLR(-0.1, 10), Contains("CosineAnnealingLR: base_lr must be finite and >= 0"));

  CHECK_THROWS_WITH(LinearWarmup(0.1, 0, 1, 5), Contains("LinearWarmup: start_factor must lie in (0, 1], got 0"));
  CHECK_THROWS_WITH(LinearWarmup(0.1, 1.5, 1, 5), Contains("LinearWarmup: start_factor must lie in (0, 1], got 1.5"));
  CHECK_THROWS_WITH(LinearWarmup(0.1, 0.1, 1.1, 5), Contains("LinearWarmup: end_factor must lie in [0, 1], got 1.1"));
  CHECK_THROWS_WITH(LinearWarmup(0.1, 0.1, 1, 0), Contains("LinearWarmup: total_iters must be >= 1, got 0"));

  auto after = std::make_shared<ConstantSchedule>(0.1);
  CHECK_THROWS_WITH(WarmupThen(0, 0.1, after), Contains("WarmupThen: warmup_steps must be >= 1, got 0"));
  CHECK_THROWS_WITH(WarmupThen(5, 0, after), Contains("WarmupThen: start_factor must lie in (0, 1], got 0"));
  CHECK_THROWS_WITH(WarmupThen(5, 0.1, nullptr), Contains("WarmupThen: the schedule after the warm-up is null"));

  auto one_cycle = [](OneCycleOptions o) {
    if (o.max_lr == 0) o.max_lr = 0.1;
    if (o.total_steps == 0) o.total_steps = 40;
    return OneCycleLR(o);
  };
  CHECK_THROWS_WITH(one_cycle({.max_lr = -0.1}), Contains("OneCycleLR: max_lr must be finite and > 0, got -0.1"));
  CHECK_THROWS_WITH(one_cycle({.total_steps = -5}), Contains("OneCycleLR: total_steps must be >= 1, got -5"));
  CHECK_THROWS_WITH(one_cycle({.pct_start = 0}), Contains("OneCycleLR: pct_start must lie in (0, 1), got 0"));
  CHECK_THROWS_WITH(one_cycle({.pct_start = 1}), Contains("OneCycleLR: pct_start must lie in (0, 1), got 1"));
  CHECK_THROWS_WITH(one_cycle({.div_factor = 0}), Contains("OneCycleLR: div_factor must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(one_cycle({.final_div_factor = -1}),
                    Contains("OneCycleLR: final_div_factor must be finite and > 0, got -1"));
  CHECK_THROWS_WITH(one_cycle({.base_momentum = 1.2}),
                    Contains("OneCycleLR: base_momentum must lie in [0, 1), got 1.2"));
  CHECK_THROWS_WITH(one_cycle({.max_momentum = -0.1}),
                    Contains("OneCycleLR: max_momentum must lie in [0, 1), got -0.1"));
  CHECK_NOTHROW(one_cycle({.cycle_momentum = false, .max_momentum = 2}));  // unused, as in PyTorch
  // Zero-length phases, on which PyTorch divides by zero:
  CHECK_THROWS_WITH(one_cycle({.total_steps = 4, .pct_start = 0.25}),
                    Contains("gives a warm-up phase of length 0 (pct_start * total_steps == 1)"));
  CHECK_THROWS_WITH(one_cycle({.total_steps = 4, .pct_start = 0.625, .three_phase = true}),
                    Contains("gives a final phase of length 0"));
  // Short cycles PyTorch handles are fine (no warm-up step when pct_start * total_steps < 1).
  CHECK_NOTHROW(OneCycleLR(0.1, 1).lr_at(1));
  CHECK(OneCycleLR(0.1, 3).lr_at(0) > 0.05);
  CHECK_THROWS_WITH(OneCycleLR(0.1, 40).lr_at(-1), Contains("OneCycleLR: step must be >= 0, got -1"));
  CHECK_THROWS_WITH(OneCycleLR(0.1, 40).momentum_at(41),
                    Contains("OneCycleLR: tried to step 42 times; the specified number of total steps is 40"));
}
