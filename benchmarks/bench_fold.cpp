// bench_fold — inference time with and without BatchNorm folding
// (nn/fuse.hpp), alternating in one process so both see the same machine.
//   bench_fold [model channels size batch rounds]
// defaults: d2l_resnet18 1 28 128 7. Two copies of the model with the same
// weights, one folded; each round times one forward of each, in turn. Prints
// the median of each and their ratio.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <rescnn/rescnn.hpp>

namespace rn = rescnn;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double time_forward(rn::nn::Module<float>& model, const rn::Tensor<float>& x) {
  const auto t0 = std::chrono::steady_clock::now();
  auto y = model.forward(x);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "d2l_resnet18";
  const auto arg = [&](int i, long fallback) { return argc > i ? std::atol(argv[i]) : fallback; };
  const long c = arg(2, 1), s = arg(3, 28), n = arg(4, 128);
  const int rounds = static_cast<int>(arg(5, 7));
  try {
    rn::Generator g1(1), g2(1);
    auto plain = rn::models::create<float>(name, {.num_classes = 10, .in_channels = c}, g1);
    auto folded = rn::models::create<float>(name, {.num_classes = 10, .in_channels = c}, g2);
    plain->eval();
    const std::size_t count = rn::nn::fuse_conv_bn(*folded);
    auto x = rn::Tensor<float>::normal({n, c, s, s}, 0, 1);
    rn::nn::NoGradGuard no_grad;
    time_forward(*plain, x);  // warm-up: allocator pools, kernel choice
    time_forward(*folded, x);
    std::vector<double> t_plain, t_folded;
    for (int r = 0; r < rounds; ++r) {
      t_plain.push_back(time_forward(*plain, x));
      t_folded.push_back(time_forward(*folded, x));
    }
    const double a = median(t_plain), b = median(t_folded);
    std::printf("case=%s batch=%ld size=%ldx%ld threads=%d folded=%zu unfolded_ms=%.2f folded_ms=%.2f speedup=%.3f\n",
                name.c_str(), n, s, s, rn::get_num_threads(), count, a * 1e3, b * 1e3, a / b);
  } catch (const rn::Error& e) {
    std::fprintf(stderr, "bench_fold: %s\n", e.what());
    return 2;
  }
  return 0;
}
