// Training checkpoints: model + optimizer state + epoch + RNG round trip;
// mismatches are rejected before anything changes; a process killed while
// writing never destroys the previous checkpoint.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <random>

#include "rescnn/io/checkpoint.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/nn/loss.hpp"
#include "rescnn/optim/optim.hpp"
#include "support/temp_dir.hpp"

namespace rn = rescnn;
using rn::Tensor;
using rn::io::SafeTensors;
using rn::testing::TempDir;

namespace {

std::shared_ptr<rn::models::D2lResNet<float>> small_model() {
  return std::make_shared<rn::models::D2lResNet<float>>(rn::models::Arch{{1, 64}, {1, 16}}, 10, 1);
}

// One SGD/Adam step on random data, so that every state tensor is non-zero.
template <class Opt>
void train_steps(rn::nn::Module<float>& model, Opt& opt, int steps) {
  rn::nn::CrossEntropyLoss<float> ce;
  for (int i = 0; i < steps; ++i) {
    const auto x = Tensor<float>::uniform({4, 1, 28, 28}, 0, 1);
    const auto y = Tensor<std::int64_t>::from_vector({4}, {1, 3, 5, 7});
    opt.zero_grad();
    ce(model.forward(x), y);
    model.backward(ce.backward());
    opt.step();
  }
}

std::vector<std::byte> state_bytes(rn::optim::Optimizer<float>& opt) {
  std::vector<std::byte> out;
  for (auto& [name, t] : opt.named_state()) {
    const auto* p = reinterpret_cast<const std::byte*>(t->data());
    out.insert(out.end(), p, p + t->numel() * static_cast<rn::index_t>(sizeof(float)));
  }
  return out;
}

}  // namespace

TEST_CASE("A checkpoint restores model, optimizer state, step count, epoch and RNG", "[checkpoint]") {
  TempDir tmp("rescnn_checkpoint");
  rn::manual_seed(11);
  auto model = small_model();
  rn::optim::Adam<float> adam(model->named_parameters(), {.lr = 1e-3, .amsgrad = true});
  train_steps(*model, adam, 3);
  rn::io::CheckpointInfo info{.epoch = 4, .rng = rn::default_generator().state(), .extra = {{"note", "hello"}}};
  rn::io::save_checkpoint(tmp / "c.safetensors", *model, adam, info);

  rn::manual_seed(12);
  auto restored = small_model();
  rn::optim::Adam<float> adam2(restored->named_parameters(), {.lr = 1e-3, .amsgrad = true});
  const auto got = rn::io::load_checkpoint(tmp / "c.safetensors", *restored, adam2);
  REQUIRE(got.epoch == 4);
  REQUIRE(got.rng == info.rng);
  REQUIRE(got.extra.at("note") == "hello");
  REQUIRE(adam2.steps() == 3);
  REQUIRE(state_bytes(adam2) == state_bytes(adam));
  const auto a = rn::io::state_dict(*model), b = rn::io::state_dict(*restored);
  for (const auto& name : a.names()) REQUIRE(a.record(name).bytes == b.record(name).bytes);

  // The same step on both continues identically.
  rn::manual_seed(5);
  train_steps(*model, adam, 1);
  rn::manual_seed(5);
  train_steps(*restored, adam2, 1);
  REQUIRE(state_bytes(adam2) == state_bytes(adam));

  // The file names optimizer state after the parameters, PyTorch's state names.
  const auto file = SafeTensors::load(tmp / "c.safetensors");
  REQUIRE(file.contains("optimizer.b2.0.conv1.weight.exp_avg"));
  REQUIRE(file.contains("optimizer.last.2.bias.max_exp_avg_sq"));
  REQUIRE(file.meta("optimizer.type") == "Adam");
}

TEST_CASE("Loading a checkpoint rejects mismatches and changes nothing", "[checkpoint][errors]") {
  TempDir tmp("rescnn_checkpoint");
  rn::manual_seed(3);
  auto model = small_model();
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  train_steps(*model, sgd, 2);
  rn::io::save_checkpoint(tmp / "sgd.safetensors", *model, sgd, {.epoch = 1});
  rn::io::save(*model, tmp / "weights.safetensors");

  auto target = small_model();
  const auto before = rn::io::state_dict(*target);
  const auto unchanged = [&] {
    const auto now = rn::io::state_dict(*target);
    for (const auto& name : before.names()) REQUIRE(now.record(name).bytes == before.record(name).bytes);
  };

  SECTION("another optimizer type") {
    rn::optim::Adam<float> adam(target->named_parameters(), {});
    REQUIRE_THROWS_WITH(rn::io::load_checkpoint(tmp / "sgd.safetensors", *target, adam),
                        Catch::Contains("it holds SGD state, but the optimizer is Adam"));
    unchanged();
  }
  SECTION("SGD without momentum has no state for the saved buffers") {
    rn::optim::SGD<float> plain(target->named_parameters(), {.lr = 0.1});
    REQUIRE_THROWS_WITH(rn::io::load_checkpoint(tmp / "sgd.safetensors", *target, plain),
                        Catch::Contains("optimizer state tensors, the optimizer has 0"));
    unchanged();
  }
  SECTION("a plain state dict is not a training checkpoint") {
    rn::optim::SGD<float> opt(target->named_parameters(), {.lr = 0.1, .momentum = 0.9});
    REQUIRE_THROWS_WITH(rn::io::load_checkpoint(tmp / "weights.safetensors", *target, opt),
                        Catch::Contains("is not a rescnn training checkpoint"));
    unchanged();
  }
  SECTION("another model") {
    auto other = std::make_shared<rn::models::D2lResNet<float>>(rn::models::Arch{{1, 64}, {1, 8}}, 10, 1);
    rn::optim::SGD<float> opt(other->named_parameters(), {.lr = 0.1, .momentum = 0.9});
    REQUIRE_THROWS_AS(rn::io::load_checkpoint(tmp / "sgd.safetensors", *other, opt), rn::ShapeError);
  }
  SECTION("corrupt metadata") {
    SafeTensors st = SafeTensors::load(tmp / "sgd.safetensors");
    st.set_metadata("rng", "12,zz,3,4");
    st.save(tmp / "bad_rng.safetensors");
    rn::optim::SGD<float> opt(target->named_parameters(), {.lr = 0.1, .momentum = 0.9});
    REQUIRE_THROWS_WITH(rn::io::load_checkpoint(tmp / "bad_rng.safetensors", *target, opt),
                        Catch::Contains("metadata 'rng': 'zz' is not a valid number"));
    st.set_metadata("rng", "1,2,3,4");
    st.set_metadata("epoch", "-1");
    st.save(tmp / "bad_epoch.safetensors");
    REQUIRE_THROWS_WITH(rn::io::load_checkpoint(tmp / "bad_epoch.safetensors", *target, opt),
                        Catch::Contains("metadata 'epoch': '-1' is not a valid number"));
    unchanged();
  }
  SECTION("the model part loads as plain weights") {
    rn::io::load(*target, tmp / "sgd.safetensors");
    const auto a = rn::io::state_dict(*model), b = rn::io::state_dict(*target);
    for (const auto& name : a.names()) REQUIRE(a.record(name).bytes == b.record(name).bytes);
  }
}

TEST_CASE("A checkpoint keeps a weight average as extra training state; the file still loads as plain weights",
          "[checkpoint][ema]") {
  TempDir tmp("rescnn_checkpoint");
  rn::manual_seed(12);
  auto model = small_model();
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  rn::optim::WeightEma<float> ema(*model, 0.5);
  train_steps(*model, sgd, 2);
  ema.update();
  rn::io::save_checkpoint(tmp / "c.safetensors", *model, sgd, {.epoch = 1}, ema.named_state());
  const auto file = SafeTensors::load(tmp / "c.safetensors");
  REQUIRE(file.contains("training.ema." + model->named_parameters().front().first));

  auto target = small_model();
  rn::optim::SGD<float> target_sgd(target->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  rn::optim::WeightEma<float> target_ema(*target, 0.5);
  rn::io::load_checkpoint(tmp / "c.safetensors", *target, target_sgd, target_ema.named_state());
  const auto averages = ema.named_state(), restored = target_ema.named_state();
  REQUIRE(averages.size() == restored.size());
  for (std::size_t i = 0; i < averages.size(); ++i)
    REQUIRE(restored[i].second->to_vector() == averages[i].second->to_vector());

  // A run without the average refuses it rather than dropping it silently.
  rn::optim::SGD<float> plain_sgd(target->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  REQUIRE_THROWS_WITH(rn::io::load_checkpoint(tmp / "c.safetensors", *target, plain_sgd),
                      Catch::Contains("extra training state tensors (a weight average), this run keeps 0"));
  // As a plain state dict it is the model's own weights.
  auto plain = small_model();
  rn::io::load(*plain, tmp / "c.safetensors");
  const auto a = rn::io::state_dict(*model), b = rn::io::state_dict(*plain);
  for (const auto& name : a.names()) REQUIRE(a.record(name).bytes == b.record(name).bytes);
}

TEST_CASE("A process killed while writing a checkpoint never destroys the previous one", "[checkpoint][crash]") {
  // A child overwrites the checkpoint in a loop and is SIGKILLed at a random
  // moment; the file must then load and equal, tensor for tensor (model and
  // optimizer state), one of the two versions that were saved. 100 kills at
  // moments spread over many writes (a write of this model takes about a
  // millisecond), so that they land in every phase: temporary file, data,
  // fsync, rename.
  TempDir tmp("rescnn_checkpoint");
  const auto path = tmp / "ckpt.safetensors";
  rn::manual_seed(1);
  auto model = small_model();
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  rn::io::save_checkpoint(path, *model, sgd, {.epoch = 1});
  const auto v1 = rn::io::SafeTensors::load(path);
  train_steps(*model, sgd, 1);
  const auto v2_path = tmp / "v2.safetensors";
  rn::io::save_checkpoint(v2_path, *model, sgd, {.epoch = 2});
  const auto v2 = rn::io::SafeTensors::load(v2_path);
  std::filesystem::remove(v2_path);

  std::mt19937 rng(1234);
  constexpr int kTrials = 100;
  int killed_mid_run = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      for (;;) rn::io::save_checkpoint(path, *model, sgd, {.epoch = 2});  // until killed
    }
    ::usleep(static_cast<useconds_t>(std::uniform_int_distribution<int>(0, 30000)(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    killed_mid_run += WIFSIGNALED(status) ? 1 : 0;

    auto loaded = small_model();
    rn::optim::SGD<float> opt(loaded->named_parameters(), {.lr = 0.1, .momentum = 0.9});
    const auto info = rn::io::load_checkpoint(path, *loaded, opt);  // loads: the file is whole
    const auto got = rn::io::SafeTensors::load(path);
    const auto& expected = info.epoch == 1 ? v1 : v2;
    REQUIRE(got.names() == expected.names());
    for (const auto& name : expected.names()) REQUIRE(got.record(name).bytes == expected.record(name).bytes);
  }
  REQUIRE(killed_mid_run == kTrials);
  // Killed writers leave their temporaries behind (nothing can clean up
  // after SIGKILL), but never a damaged target.
  std::size_t others = 0;
  for (const auto& entry : std::filesystem::directory_iterator(tmp.path))
    others += entry.path().filename() != "ckpt.safetensors";
  INFO("temporaries left by killed writers: " << others);
  REQUIRE(others <= static_cast<std::size_t>(kTrials));
}
