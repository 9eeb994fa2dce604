// bench_ddp — data-parallel training throughput and how much of the gradient
// allreduce backward hides (benchmarks/results/distributed.md):
//
//   bench_ddp --threads 2 --size 28 --batch 128                  # one process, 2 threads
//   mpirun -np 2 bench_ddp --threads 1 --size 28 --batch 128     # 2 ranks x 1 thread, 64 images each
//   case=ddp world=2 threads=1 size=28x28 batch=128 imgs_per_s=... step_ms=... backward_ms=... wait_ms=...
//        allreduce_ms=... hidden=...
//
// --batch is the global batch, split over the ranks. A step is the
// Trainer's: zero_grad, forward, cross-entropy, backward with the
// GradientReducer (dist/ddp.hpp) overlapping the bucket allreduces, SGD.
// Per step, backward_ms is backward itself, wait_ms the wait for the
// allreduces after it (the communication not hidden). After the timed steps
// the same buckets are allreduced alone, with nothing computing
// (allreduce_ms); hidden = 1 - wait_ms / allreduce_ms.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <rescnn/dist/dist.hpp>
#include <rescnn/rescnn.hpp>

namespace rn = rescnn;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  int threads = 1;
  long size = 28, batch = 128, steps = 5;
  std::string model = "d2l_resnet18";
};

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

int run(const Args& a) {
  auto world = rn::dist::init();
  const int ranks = world->size();
  if (a.threads > 0) rn::set_num_threads(a.threads);
  rn::check<rn::ValueError>(a.batch % ranks == 0, "--batch ", a.batch, " must divide over ", ranks, " ranks");
  const long per_rank = a.batch / ranks;

  rn::manual_seed(0);
  auto model = rn::models::create<float>(a.model, {.num_classes = 10, .in_channels = 1});
  model->set_input_grad_needed(false);
  rn::manual_seed(100 + static_cast<std::uint64_t>(world->rank()));  // each rank its own images
  const auto x = rn::Tensor<float>::normal({per_rank, 1, a.size, a.size}, 0, 1);
  std::vector<std::int64_t> labels(static_cast<std::size_t>(per_rank));
  for (auto& l : labels) l = static_cast<std::int64_t>(rn::default_generator().uniform_int(10));
  const auto y = rn::Tensor<std::int64_t>::from_vector({per_rank}, labels);
  rn::optim::SGD<float> opt(model->named_parameters(), {.lr = 0.01, .momentum = 0.9});
  rn::nn::CrossEntropyLoss<float> criterion;
  std::optional<rn::dist::GradientReducer<float>> reducer;
  if (ranks > 1) reducer.emplace(*model, world);

  double backward_ms = 0, wait_ms = 0;
  const auto step = [&] {
    opt.zero_grad();
    if (reducer) reducer->before_forward();
    (void)criterion(model->forward(x), y);
    if (reducer) {
      reducer->backward(criterion.backward());
      backward_ms += 1e3 * reducer->last_stats().backward_seconds;
      wait_ms += 1e3 * reducer->last_stats().wait_seconds;
    } else {
      const auto t = Clock::now();
      model->backward(criterion.backward());
      backward_ms += ms_since(t);
    }
    opt.step();
  };
  step();
  step();
  world->barrier();
  backward_ms = wait_ms = 0;
  const auto t0 = Clock::now();
  for (long i = 0; i < a.steps; ++i) step();
  world->barrier();
  const double step_ms = ms_since(t0) / static_cast<double>(a.steps);

  // The same bytes in the reducer's bucket sizes (1 MB, then 25 MB), reduced
  // with nothing else running.
  double allreduce_ms = 0;
  if (reducer) {
    const auto bytes = static_cast<std::size_t>(reducer->last_stats().bytes);
    std::vector<float> flat(bytes / sizeof(float), 1.0f);
    const int repeats = 5;
    world->barrier();
    const auto t = Clock::now();
    for (int r = 0; r < repeats; ++r) {
      std::vector<std::shared_ptr<rn::dist::Work>> works;
      std::size_t at = 0, cap = (1u << 20) / sizeof(float);
      while (at < flat.size()) {
        const std::size_t n = std::min(cap, flat.size() - at);
        works.push_back(world->allreduce_sum_async(flat.data() + at, n, rn::dist::DType::f32));
        at += n;
        cap = 25u * (1u << 20) / sizeof(float);
      }
      for (auto& w : works) w->wait();
    }
    allreduce_ms = ms_since(t) / repeats;
  }
  const double steps = static_cast<double>(a.steps);
  if (world->is_main()) {
    std::printf(
        "case=ddp world=%d threads=%d size=%ldx%ld batch=%ld imgs_per_s=%.1f step_ms=%.1f backward_ms=%.1f "
        "wait_ms=%.2f allreduce_ms=%.2f hidden=%.2f grad_mb=%.1f\n",
        ranks, rn::get_num_threads(), a.size, a.size, a.batch, 1e3 * static_cast<double>(a.batch) / step_ms, step_ms,
        backward_ms / steps, wait_ms / steps, allreduce_ms,
        reducer && allreduce_ms > 0 ? std::clamp(1.0 - wait_ms / steps / allreduce_ms, 0.0, 1.0) : 0.0,
        reducer ? static_cast<double>(reducer->last_stats().bytes) / (1 << 20) : 0.0);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"bench_ddp: data-parallel training throughput and the allreduce time backward hides"};
  app.add_option("--threads", a.threads, "CPU threads per rank (0: OpenMP's default)")->capture_default_str();
  app.add_option("--size", a.size, "Image height and width")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", a.batch, "Global batch, split over the ranks")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--steps", a.steps, "Timed steps")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--model", a.model, "Model name (models::model_names())")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(a);
  } catch (const rn::Error& e) {
    std::fprintf(stderr, "bench_ddp: %s\n", e.what());
    return 2;
  }
}
