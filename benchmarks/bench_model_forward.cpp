// bench_model_forward — inference time of a named model (eval mode, no grad).
//   bench_model_forward [model batch channels size reps]
// defaults: resnet50 8 3 224 5. Prints one `case=` line, comparable with
// bench_model_forward_torch.py.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <rescnn/rescnn.hpp>

namespace rn = rescnn;

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "resnet50";
  const auto arg = [&](int i, long fallback) { return argc > i ? std::atol(argv[i]) : fallback; };
  const long n = arg(2, 8), c = arg(3, 3), s = arg(4, 224);
  const int reps = static_cast<int>(arg(5, 5));
  try {
    auto model = rn::models::create<float>(name, {.num_classes = 1000, .in_channels = c});
    model->eval();
    auto x = rn::Tensor<float>::normal({n, c, s, s}, 0, 1);
    rn::nn::NoGradGuard no_grad;
    model->forward(x);  // warm-up
    std::vector<double> seconds;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      auto y = model->forward(x);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(seconds.begin(), seconds.end());
    const double t = seconds[seconds.size() / 2];
    std::printf("case=%s_infer batch=%ld size=%ldx%ld threads=%d ms=%.1f imgs_per_s=%.1f\n", name.c_str(), n, s, s,
                rn::get_num_threads(), t * 1e3, static_cast<double>(n) / t);
  } catch (const rn::Error& e) {
    std::fprintf(stderr, "bench_model_forward: %s\n", e.what());
    return 2;
  }
  return 0;
}
