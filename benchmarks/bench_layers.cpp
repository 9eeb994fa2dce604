// bench_layers — per-layer speed of the CPU convolutions (Google Benchmark).
//
// Every distinct convolution of d2l's ResNet-18 (batch 128, one input
// channel) at 28x28 and at 96x96 input, forward, backward-data and
// backward-weight, in float. Each result carries
//   GFLOPs  = 2 * nominal MACs (padding taps included, as PyTorch counts) / time
//   of_gemm = GFLOPs / the rate of this library's GEMM on a large square
//             product, measured once at start-up in the same process
// so a layer's figure reads as "how close to a plain matrix multiply".
//
//   OMP_NUM_THREADS=2 ./build/benchmarks/bench_layers
//   ./build/benchmarks/bench_layers --benchmark_filter='96x96/stage1'
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <rescnn/rescnn.hpp>

#include "rescnn/backend/cpu/conv2d.hpp"
#include "rescnn/backend/cpu/gemm.hpp"

namespace rn = rescnn;

namespace {

double g_gemm_gflops = 0;  // measured in main()

struct ConvShape {
  std::string name;
  rn::index_t channels, out_channels, size, kernel, stride;
};

// The distinct convolutions of d2l ResNet-18 for an input of `input` pixels.
std::vector<ConvShape> resnet18_convs(rn::index_t input) {
  const rn::index_t s1 = (input + 1) / 2;  // after the 7x7 stride-2 stem
  const rn::index_t s2 = (s1 + 1) / 2;     // after the 3x3 stride-2 max-pool
  std::vector<ConvShape> v{{"stem7x7s2", 1, 64, input, 7, 2}, {"stage1_3x3", 64, 64, s2, 3, 1}};
  rn::index_t size = s2, channels = 64;
  for (int stage = 2; stage <= 4; ++stage) {
    const rn::index_t out = channels * 2;
    const std::string p = "stage" + std::to_string(stage);
    v.push_back({p + "_3x3s2", channels, out, size, 3, 2});
    v.push_back({p + "_1x1s2", channels, out, size, 1, 2});
    size = (size + 1) / 2;
    v.push_back({p + "_3x3", out, out, size, 3, 1});
    channels = out;
  }
  return v;
}

enum class Pass { Forward, BackwardData, BackwardWeight };

void run_conv(benchmark::State& state, ConvShape s, rn::index_t input, Pass pass) {
  const rn::index_t batch = 128;
  rn::Generator gen(1);
  const auto x = rn::Tensor<float>::normal({batch, s.channels, s.size, s.size}, 0, 1, gen);
  const auto w = rn::Tensor<float>::normal({s.out_channels, s.channels, s.kernel, s.kernel}, 0, 0.1, gen);
  const rn::ops::Conv2dParams p{s.stride, s.kernel / 2, 1, 1};
  const auto g = rn::ops::conv2d_geometry(x.shape(), w.shape(), p);
  const auto dy = rn::Tensor<float>::normal(g.output_shape(), 0, 1, gen);
  auto y = rn::Tensor<float>::empty(g.output_shape());
  auto dx = rn::Tensor<float>::empty(x.shape());
  auto dw = rn::Tensor<float>::zeros(w.shape());
  for (auto _ : state) {
    switch (pass) {
      case Pass::Forward: rn::cpu::conv2d_forward<float>(g, x.data(), w.data(), nullptr, y.data()); break;
      case Pass::BackwardData:
        if (!rn::cpu::with_float_kernels(
                [&](auto k) { return k.conv2d_backward_data(g, w.data(), dy.data(), dx.data()); }))
          state.SkipWithError("no float kernels at the generic level: the backward passes run together there");
        break;
      case Pass::BackwardWeight:
        if (!rn::cpu::with_float_kernels(
                [&](auto k) { return k.conv2d_backward_weight(g, x.data(), dy.data(), dw.data(), nullptr); }))
          rn::cpu::conv2d_backward<float>(g, x.data(), w.data(), dy.data(), nullptr, dw.data(), nullptr);
        break;
    }
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * g.macs() * static_cast<double>(state.iterations());
  state.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.counters["of_gemm"] = benchmark::Counter(flops * 1e-9 / g_gemm_gflops, benchmark::Counter::kIsRate);
  state.SetLabel(std::to_string(input) + "x" + std::to_string(input) + " input, " + std::to_string(s.channels) + "x" +
                 std::to_string(s.size) + "x" + std::to_string(s.size) + " -> " + std::to_string(s.out_channels));
}

// The GEMM rate used as the yardstick: C = A B with M = N = K = 1536, the
// library's sgemm at the level in use (Eigen's at the generic level).
double measure_gemm_gflops() {
  const rn::index_t n = 1536;
  rn::Generator gen(2);
  const auto a = rn::Tensor<float>::normal({n, n}, 0, 1, gen);
  const auto b = rn::Tensor<float>::normal({n, n}, 0, 1, gen);
  auto c = rn::Tensor<float>::empty({n, n});
  const auto once = [&] { rn::cpu::sgemm(n, n, n, a.data(), n, false, b.data(), n, false, c.data(), n, false); };
  once();
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    once();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * static_cast<double>(n) * n * n / best * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  g_gemm_gflops = measure_gemm_gflops();
  std::printf("GEMM yardstick (1536^3, float, %d threads): %.1f GFLOP/s\n", rn::get_num_threads(), g_gemm_gflops);
  for (rn::index_t input : {28, 96}) {
    for (const auto& s : resnet18_convs(input)) {
      const std::string base = std::to_string(input) + "x" + std::to_string(input) + "/" + s.name;
      benchmark::RegisterBenchmark((base + "/fwd").c_str(), run_conv, s, input, Pass::Forward)->UseRealTime();
      benchmark::RegisterBenchmark((base + "/bwd_data").c_str(), run_conv, s, input, Pass::BackwardData)->UseRealTime();
      benchmark::RegisterBenchmark((base + "/bwd_weight").c_str(), run_conv, s, input, Pass::BackwardWeight)
          ->UseRealTime();
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
