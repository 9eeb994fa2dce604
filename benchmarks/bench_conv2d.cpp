// bench_conv2d — one convolution's forward (and optionally backward) speed.
//
//   bench_conv2d [batch channels size out_channels kernel stride reps]
// defaults: 128 64 56 64 3 1 5 (the 3x3 conv of ResNet's first stage at 224)
// Prints lines `case=... gflops=...` comparable with bench_conv2d_torch.py.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <rescnn/rescnn.hpp>

namespace rn = rescnn;

int main(int argc, char** argv) {
  const auto arg = [&](int i, long fallback) { return argc > i ? std::atol(argv[i]) : fallback; };
  const long n = arg(1, 128), c = arg(2, 64), s = arg(3, 56), oc = arg(4, 64), k = arg(5, 3), stride = arg(6, 1);
  const int reps = static_cast<int>(arg(7, 5));
  rn::nn::Conv2d<float> conv(
      {.in_channels = c, .out_channels = oc, .kernel_size = k, .stride = stride, .padding = k / 2, .bias = false});
  auto x = rn::Tensor<float>::normal({n, c, s, s}, 0, 1);
  const auto geometry = rn::ops::conv2d_geometry(x.shape(), conv.weight.value.shape(), {stride, k / 2, 1, 1});
  const double flops = 2.0 * geometry.macs();

  const auto time_it = [&](auto&& fn) {
    fn();  // warm-up: scratch buffers, page faults
    std::vector<double> seconds;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(seconds.begin(), seconds.end());
    return seconds[seconds.size() / 2];
  };

  rn::nn::NoGradGuard no_grad;
  const double fwd = time_it([&] { auto y = conv.forward(x); });
  std::printf("case=conv%ldx%ld_fwd batch=%ld in=%ldx%ldx%ld out=%ld stride=%ld threads=%d ms=%.2f gflops=%.1f\n", k, k,
              n, c, s, s, oc, stride, rn::get_num_threads(), fwd * 1e3, flops / fwd * 1e-9);
  return 0;
}
