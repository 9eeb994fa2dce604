// ddp_check — rescnn::dist's equivalence and fault tests, run by ctest
// under mpirun (tests/mpi/CMakeLists.txt):
//
//   mpirun -np 2 ddp_check equivalence   # 2 ranks x B/2 + SyncBatchNorm == 1 process x B
//   mpirun -np 3 ddp_check equivalence   # odd dataset size, partial last batch
//   mpirun -np 2 ddp_check gradient_mean # without SyncBatchNorm: the mean of the per-rank gradients
//   mpirun -np 2 ddp_check no_sync       # accumulation under no_sync, then one reduction
//   mpirun -np 2 ddp_check fault         # rank 1 throws at step 3: the job stops naming it
//   mpirun -np 2 ddp_check hang          # rank 1 stops issuing collectives: rank 0 times out
//   mpirun -np 2 ddp_check trainer DIR   # the Trainer: 2 ranks == 1 process; resume bitwise
//   mpirun -np 2 ddp_check trainer_fault # the Trainer: rank 1 throws mid-epoch
//
// Every rank trains the distributed model on its shard and, beside it, a
// single-process reference on the whole global batch, and compares: per-step
// losses and the final parameters agree within 1e-5 relative.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <rescnn/data/distributed_sampler.hpp>
#include <rescnn/dist/dist.hpp>
#include <rescnn/rescnn.hpp>

namespace rn = rescnn;
using Model = rn::nn::Sequential<float>;

namespace {

constexpr double kTolerance = 1e-5;

// A small residual network: a stem, two d2l Residual blocks (one
// downsampling with a 1x1 shortcut), pooling and a classifier, so hooks fire
// inside containers and blocks as in ResNet-18.
std::shared_ptr<Model> make_model(std::uint64_t seed) {
  rn::manual_seed(seed);
  auto m = std::make_shared<Model>();
  m->emplace<rn::nn::Conv2d<float>>(
      rn::nn::Conv2dOptions{.in_channels = 1, .out_channels = 8, .kernel_size = 3, .padding = 1, .bias = false});
  m->emplace<rn::nn::BatchNorm2d<float>>(8);
  m->emplace<rn::nn::ReLU<float>>();
  m->emplace<rn::nn::Residual<float>>(8);
  m->emplace<rn::nn::Residual<float>>(rn::nn::ResidualOptions{8, 16, true, 2});
  m->emplace<rn::nn::AdaptiveAvgPool2d<float>>();
  m->emplace<rn::nn::Flatten<float>>();
  m->emplace<rn::nn::Linear<float>>(rn::nn::LinearOptions{.in_features = 16, .out_features = 3});
  return m;
}

struct Data {
  std::vector<float> images;  // n x 1 x 8 x 8
  std::vector<std::int64_t> labels;
  std::int64_t n = 0;
};
constexpr std::int64_t kPixels = 64;

Data make_data(std::int64_t n) {
  rn::Generator gen(7);
  Data d;
  d.n = n;
  for (std::int64_t i = 0; i < n * kPixels; ++i) d.images.push_back(static_cast<float>(gen.normal()));
  for (std::int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<std::int64_t>(gen.uniform_int(3)));
  return d;
}

std::pair<rn::Tensor<float>, rn::Tensor<std::int64_t>> batch_of(const Data& d, std::span<const std::int64_t> ids) {
  const auto n = static_cast<rn::index_t>(ids.size());
  auto x = rn::Tensor<float>::empty({n, 1, 8, 8});
  auto y = rn::Tensor<std::int64_t>::empty({n});
  for (rn::index_t k = 0; k < n; ++k) {
    std::copy_n(d.images.begin() + ids[static_cast<std::size_t>(k)] * kPixels, kPixels, x.data() + k * kPixels);
    y[k] = d.labels[static_cast<std::size_t>(ids[static_cast<std::size_t>(k)])];
  }
  return std::make_pair(std::move(x), std::move(y));
}

std::vector<std::int64_t> permutation(std::int64_t n, std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  rn::Generator gen(1000 + static_cast<std::uint64_t>(epoch));
  for (std::size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[static_cast<std::size_t>(gen.uniform_int(i))]);
  return order;
}

double relative(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-12); }

void expect(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("check failed: " + what);
}

// Largest |a - b| / max|b| over the tensors of two models' parameters.
double parameter_difference(Model& a, Model& b) {
  double worst = 0;
  auto pa = a.named_parameters(), pb = b.named_parameters();
  expect(pa.size() == pb.size(), "the models have the same parameters");
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const auto va = pa[i].second->value.to_vector(), vb = pb[i].second->value.to_vector();
    double diff = 0, scale = 0;
    for (std::size_t k = 0; k < va.size(); ++k) {
      diff = std::max(diff, std::abs(static_cast<double>(va[k]) - vb[k]));
      scale = std::max(scale, std::abs(static_cast<double>(vb[k])));
    }
    worst = std::max(worst, diff / std::max(scale, 1e-12));
  }
  return worst;
}

rn::optim::SGDOptions sgd_options() { return {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3}; }

// 10 SGD steps of N ranks x (B/N) with SyncBatchNorm against one process x B.
int equivalence(const std::shared_ptr<rn::dist::ProcessGroup>& world) {
  const int w = world->size();
  const std::int64_t per_rank = 4, global = per_rank * w;
  // An odd size: the sampler drops size mod world and the last global batch is partial.
  const std::int64_t n = w == 3 ? 67 : 45;
  const Data data = make_data(n);

  auto reference = make_model(11);
  auto local = make_model(11 + static_cast<std::uint64_t>(world->rank()));  // DDP's broadcast must fix this
  rn::dist::convert_sync_batchnorm(*local, world);
  rn::dist::DistributedDataParallel<float> ddp(local, world);
  rn::optim::SGD<float> opt_ref(reference->named_parameters(), sgd_options());
  rn::optim::SGD<float> opt_ddp(local->named_parameters(), sgd_options());
  rn::nn::CrossEntropyLoss<float> loss_ref, loss_ddp;

  int step = 0;
  double worst_loss = 0;
  bool saw_partial = false;
  for (std::int64_t epoch = 0; step < 10; ++epoch) {
    const auto order = permutation(n, epoch);
    const auto mine = rn::data::shard_training_batches(order, per_rank, w, world->rank());
    const std::int64_t used = n - n % w;
    for (std::size_t k = 0; k < mine.size() && step < 10; ++k, ++step) {
      const auto first = static_cast<std::int64_t>(k) * global;
      const std::int64_t len = std::min(global, used - first);
      saw_partial = saw_partial || len < global;
      const auto [xg, yg] =
          batch_of(data, std::span(order).subspan(static_cast<std::size_t>(first), static_cast<std::size_t>(len)));
      opt_ref.zero_grad();
      const double lr = loss_ref(reference->forward(xg), yg);
      reference->backward(loss_ref.backward());
      opt_ref.step();

      const auto [x, y] = batch_of(data, mine[k]);
      opt_ddp.zero_grad();
      const double l = loss_ddp(ddp.forward(x), y);
      ddp.backward(loss_ddp.backward());
      opt_ddp.step();
      const double global_loss = world->allreduce_sum(l * static_cast<double>(x.dim(0))) / static_cast<double>(len);
      worst_loss = std::max(worst_loss, relative(global_loss, lr));
      expect(relative(global_loss, lr) <= kTolerance, "step " + std::to_string(step + 1) + ": loss " +
                                                          std::to_string(global_loss) + " vs single-process " +
                                                          std::to_string(lr));
    }
  }
  expect(saw_partial, "a partial last batch was trained");
  const double params = parameter_difference(*local, *reference);
  expect(params <= kTolerance, "final parameters differ by " + std::to_string(params) + " relative");
  // Running statistics are global too.
  auto br = reference->named_buffers(), bl = local->named_buffers();
  for (std::size_t i = 0; i < br.size(); ++i) {
    const auto a = bl[i].second->to_vector(), b = br[i].second->to_vector();
    for (std::size_t k = 0; k < a.size(); ++k)
      expect(relative(a[k], b[k]) <= 1e-4, "buffer " + br[i].first + " matches the single process");
  }
  if (world->is_main())
    std::printf("PASS equivalence: %d ranks, %d steps, worst loss difference %.2e, parameters %.2e\n", w, step,
                worst_loss, params);
  return 0;
}

// Without SyncBatchNorm: DDP's gradient is the mean of what each rank's
// model computes alone on its own batch.
int gradient_mean(const std::shared_ptr<rn::dist::ProcessGroup>& world) {
  const Data data = make_data(24);
  auto alone = make_model(5), local = make_model(5);
  rn::dist::DistributedDataParallel<float> ddp(local, world, {.bucket_cap_mb = 0.004, .first_bucket_mb = 0.001});
  expect(ddp.reducer().num_buckets() >= 3, "the small caps make several buckets");
  std::vector<std::int64_t> ids;
  for (int k = 0; k < 6; ++k) ids.push_back(world->rank() * 6 + k);
  const auto [x, y] = batch_of(data, ids);
  rn::nn::CrossEntropyLoss<float> l1, l2;
  alone->zero_grad();
  (void)l1(alone->forward(x), y);
  alone->backward(l1.backward());
  ddp.zero_grad();
  (void)l2(ddp.forward(x), y);
  ddp.backward(l2.backward());
  double worst = 0;
  auto pa = alone->named_parameters(), pd = local->named_parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    std::vector<float> mine = pa[i].second->grad.to_vector();
    std::vector<float> all(mine.size() * static_cast<std::size_t>(world->size()));
    world->allgather(mine.data(), all.data(), mine.size(), rn::dist::DType::f32);
    const auto reduced = pd[i].second->grad.to_vector();
    for (std::size_t k = 0; k < mine.size(); ++k) {
      double mean = 0;
      for (int r = 0; r < world->size(); ++r) mean += all[static_cast<std::size_t>(r) * mine.size() + k];
      mean /= world->size();
      worst = std::max(worst, std::abs(reduced[k] - mean) / std::max(std::abs(mean), 1e-3));
    }
  }
  expect(worst <= kTolerance, "averaged gradients differ from the mean by " + std::to_string(worst));
  if (world->is_main())
    std::printf("PASS gradient_mean: %zu buckets, worst difference %.2e\n", ddp.reducer().num_buckets(), worst);
  return 0;
}

// Two backward passes under no_sync and one after it: the reduced gradient
// is the mean over ranks of each rank's three-batch sum.
int no_sync(const std::shared_ptr<rn::dist::ProcessGroup>& world) {
  const Data data = make_data(36);
  auto alone = make_model(3), local = make_model(3);
  for (auto* m : {alone.get(), local.get()}) m->eval();  // batch-independent: the sum is exact
  rn::dist::DistributedDataParallel<float> ddp(local, world);
  rn::nn::CrossEntropyLoss<float> l1, l2;
  alone->zero_grad();
  ddp.zero_grad();
  for (int micro = 0; micro < 3; ++micro) {
    std::vector<std::int64_t> ids;
    for (int k = 0; k < 4; ++k) ids.push_back((world->rank() * 3 + micro) * 4 + k);
    const auto [x, y] = batch_of(data, ids);
    (void)l1(alone->forward(x), y);
    alone->backward(l1.backward());
    (void)l2(ddp.forward(x), y);
    if (micro < 2) {
      auto guard = ddp.no_sync();
      ddp.backward(l2.backward());
      // Not reduced yet: still this rank's own gradient.
      const auto a = alone->named_parameters().back().second->grad.to_vector();
      const auto b = local->named_parameters().back().second->grad.to_vector();
      for (std::size_t k = 0; k < a.size(); ++k)
        expect(relative(b[k], a[k]) <= 1e-6, "no_sync leaves the gradient local");
    } else {
      ddp.backward(l2.backward());
    }
  }
  double worst = 0;
  auto pa = alone->named_parameters(), pd = local->named_parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const std::vector<float> own = pa[i].second->grad.to_vector();
    std::vector<double> mean(own.begin(), own.end());
    world->allreduce_sum(std::span<double>(mean));
    const auto reduced = pd[i].second->grad.to_vector();
    for (std::size_t k = 0; k < mean.size(); ++k) {
      mean[k] /= world->size();
      worst = std::max(worst, std::abs(reduced[k] - mean[k]) / std::max(std::abs(mean[k]), 1e-3));
    }
  }
  expect(worst <= kTolerance, "accumulated gradients differ by " + std::to_string(worst));
  if (world->is_main()) std::printf("PASS no_sync: worst difference %.2e\n", worst);
  return 0;
}

// Rank 1 fails at step 3 (or stops issuing collectives, `hang`); the job
// must stop with a message naming the rank, not wait forever.
int fault(const std::shared_ptr<rn::dist::ProcessGroup>& world, bool hang) {
  const Data data = make_data(64);
  auto local = make_model(1);
  rn::dist::DistributedDataParallel<float> ddp(local, world);
  rn::nn::CrossEntropyLoss<float> loss;
  for (int step = 1; step <= 100; ++step) {
    if (world->rank() == 1 && step == 3) {
      if (hang) std::this_thread::sleep_for(std::chrono::hours(1));
      throw std::runtime_error("injected fault at step 3");
    }
    std::vector<std::int64_t> ids{world->rank() * 2, world->rank() * 2 + 1};
    const auto [x, y] = batch_of(data, ids);
    (void)loss(ddp.forward(x), y);
    ddp.backward(loss.backward());
  }
  return 0;
}

// ---- the Trainer under mpirun ----------------------------------------------

// A small data set as Fashion-MNIST's loaders would serve it: 8x8 images,
// the training loader shuffled and augmented (so that the position-keyed
// augmentation is checked across ranks), both sharded over `world`.
struct ShardedData {
  rn::data::DataLoader train_loader, test_loader;
  ShardedData(std::int64_t per_rank_batch, std::int64_t rank, std::int64_t world)
      : train_loader(make_set(96, 21), {.batch_size = per_rank_batch,
                                        .shuffle = true,
                                        .seed = 3,
                                        .crop_padding = 1,
                                        .horizontal_flip = true,
                                        .shard = {.rank = rank, .world = world}}),
        test_loader(make_set(41, 22),
                    {.batch_size = per_rank_batch,
                     .shard = {.rank = rank, .world = world, .mode = rn::data::ShardMode::evaluation}}) {}
  rn::data::DataLoader& train() { return train_loader; }
  rn::data::DataLoader& test() { return test_loader; }

  static std::shared_ptr<const rn::data::ImageSet> make_set(std::int64_t n, std::uint64_t seed) {
    rn::Generator gen(seed);
    auto set = std::make_shared<rn::data::ImageSet>();
    set->height = set->width = 8;
    for (std::int64_t i = 0; i < n * kPixels; ++i)
      set->pixels.push_back(static_cast<std::uint8_t>(gen.uniform_int(256)));
    for (std::int64_t i = 0; i < n; ++i) set->labels.push_back(static_cast<std::int64_t>(gen.uniform_int(3)));
    return set;
  }
};

struct TrainerRun {
  std::shared_ptr<Model> model;
  rn::train::History history;
};

// `epochs` epochs of the Trainer over `group` (global batch 16), resuming
// from `checkpoint` when asked.
TrainerRun train_with_trainer(const std::shared_ptr<rn::dist::ProcessGroup>& group, std::int64_t epochs,
                              const std::string& checkpoint, bool resume,
                              std::function<void(std::int64_t, std::int64_t, double)> on_step = {}) {
  const int w = group->size();
  ShardedData data(16 / w, group->rank(), w);
  TrainerRun run{make_model(11), {}};
  if (w > 1) rn::dist::convert_sync_batchnorm(*run.model, group);
  rn::optim::SGD<float> optimizer(run.model->named_parameters(), sgd_options());
  rn::train::Trainer trainer({.max_epochs = epochs,
                              .checkpoint = checkpoint,
                              .resume = resume,
                              .progress = rn::train::ProgressMode::Silent,
                              .log = nullptr,
                              .on_step = std::move(on_step),
                              .process_group = group});
  run.history = trainer.fit(*run.model, optimizer, data);
  return run;
}

bool bitwise_equal(Model& a, Model& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  for (std::size_t i = 0; i < pa.size(); ++i)
    if (pa[i].second->value.to_vector() != pb[i].second->value.to_vector()) return false;
  auto ba = a.named_buffers(), bb = b.named_buffers();
  for (std::size_t i = 0; i < ba.size(); ++i)
    if (ba[i].second->to_vector() != bb[i].second->to_vector()) return false;
  return true;
}

// The Trainer on 2 ranks with SyncBatchNorm reproduces one process with the
// global batch (losses, validation, parameters within 1e-5), and a 2-rank
// run resumed from its epoch-1 checkpoint is bit for bit the uninterrupted one.
int trainer(const std::shared_ptr<rn::dist::ProcessGroup>& world, const std::string& dir) {
  expect(!dir.empty(), "a directory for the checkpoints");
  const auto alone = train_with_trainer(std::make_shared<rn::dist::LocalProcessGroup>(), 3, "", false);
  const auto whole = train_with_trainer(world, 3, dir + "/whole.safetensors", false);
  double worst = 0;
  for (std::size_t e = 0; e < 3; ++e) {
    const auto &a = alone.history.epochs()[e], &d = whole.history.epochs()[e];
    for (const auto& [x, y] : {std::pair{d.train_loss, a.train_loss}, {d.val_loss, a.val_loss}})
      worst = std::max(worst, relative(x, y));
    expect(d.val_acc == a.val_acc && d.train_acc == a.train_acc, "accuracies match the single process");
  }
  expect(worst <= kTolerance, "Trainer losses differ from the single process by " + std::to_string(worst));
  const double params = parameter_difference(*whole.model, *alone.model);
  expect(params <= kTolerance, "Trainer parameters differ from the single process by " + std::to_string(params));

  const std::string part = dir + "/part.safetensors";
  if (world->is_main()) std::filesystem::remove(part);
  world->barrier();
  (void)train_with_trainer(world, 1, part, true);
  world->barrier();  // rank 0 has written the checkpoint
  const auto resumed = train_with_trainer(world, 3, part, true);
  expect(resumed.history.size() == 3, "the resumed history has 3 epochs");
  for (std::size_t e = 0; e < 3; ++e) {
    const auto &a = whole.history.epochs()[e], &r = resumed.history.epochs()[e];
    expect(a.train_loss == r.train_loss && a.val_loss == r.val_loss && a.val_acc == r.val_acc,
           "epoch " + std::to_string(e + 1) + " of the resumed run is bitwise the uninterrupted one");
  }
  expect(bitwise_equal(*resumed.model, *whole.model), "resumed weights are bitwise the uninterrupted ones");
  if (world->is_main())
    std::printf("PASS trainer: 2 ranks vs 1 process: losses %.2e, parameters %.2e; resume after epoch 1 bitwise\n",
                worst, params);
  return 0;
}

// Rank 1's step callback throws in the middle of epoch 1.
int trainer_fault(const std::shared_ptr<rn::dist::ProcessGroup>& world) {
  const int rank = world->rank();
  (void)train_with_trainer(world, 2, "", false, [rank](std::int64_t, std::int64_t step, double) {
    if (rank == 1 && step == 3) throw std::runtime_error("injected fault at step 3");
  });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "";
  std::shared_ptr<rn::dist::ProcessGroup> world;
  try {
    world = rn::dist::init();
    if (what == "equivalence") return equivalence(world);
    if (what == "gradient_mean") return gradient_mean(world);
    if (what == "no_sync") return no_sync(world);
    if (what == "fault") return fault(world, false);
    if (what == "hang") return fault(world, true);
    if (what == "trainer") return trainer(world, argc > 2 ? argv[2] : "");
    if (what == "trainer_fault") return trainer_fault(world);
    std::cerr << "ddp_check: unknown case '" << what << "'\n";
    return 2;
  } catch (const std::exception& e) {
    if (world && world->size() > 1) world->abort_job(e.what());
    std::cerr << "ddp_check: " << e.what() << "\n";
    return 1;
  }
}
