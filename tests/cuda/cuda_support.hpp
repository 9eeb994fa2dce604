// tests/cuda/cuda_support.hpp — comparing a CUDA result with the CPU's.
//
// Every CUDA test runs the same computation on both devices from the same
// inputs and weights and compares the two results. The CPU backend is the
// reference: it is itself checked against PyTorch (golden tests) and finite
// differences (gradcheck), so agreement with it is what "correct" means here.
//
// The tolerance is relative to the SCALE of the tensor, its largest |value|
// on the CPU: |gpu - cpu| <= rtol * max|cpu| for every element. Both devices
// round every sum differently (cuDNN and cuBLAS reduce in their own order
// and, for some convolution algorithms, through transforms), and the error
// of a sum is proportional to the magnitude of its terms, not of its result:
// an element that is small because of cancellation carries the absolute
// error of the large ones. An element-wise relative test would fail on those
// elements for any correct implementation; a test relative to the tensor's
// scale does not, and a real bug (a wrong index, a missing term, an
// overwritten accumulator) is an error of the order of the scale itself,
// orders of magnitude above rtol. The failure message names the worst
// element, both values, the scale and how many elements are out of bounds.
//
// rtol is 1e-4 for float (a few hundred ulps at the scale: the rounding of
// sums of thousands of terms plus cuDNN's transform-based algorithms, with
// TF32 turned off by cuda_main.cu) and 1e-10 for double (the same reasoning,
// with a mantissa 2^29 times longer, leaves a wide margin).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "rescnn/core/tensor.hpp"
#include "rescnn/nn/module.hpp"

namespace rescnn::cuda_testing {

// Agreement bound for one forward/backward of a layer or block.
template <class T>
inline constexpr double kRtol = std::is_same_v<T, float> ? 1e-4 : 1e-10;

struct Agreement {
  bool ok = true;
  std::string message;
};

// |gpu - cpu| <= rtol * scale for every element, scale = max(max|cpu|,
// floor). `floor` lets a caller judge a tensor on the scale of a related one
// (see module_agreement). NaN agrees only with NaN and an infinity only with
// the same infinity: NaN propagation is part of the semantics.
template <class T>
Agreement agree(const std::vector<T>& cpu, const std::vector<T>& gpu, double rtol, double floor = 0) {
  Agreement a;
  std::ostringstream os;
  os.precision(9);
  if (cpu.size() != gpu.size()) {
    os << "the CPU has " << cpu.size() << " elements, the GPU " << gpu.size();
    return {false, os.str()};
  }
  double max_abs = 0;
  for (T v : cpu)
    if (std::isfinite(static_cast<double>(v))) max_abs = std::max(max_abs, std::abs(static_cast<double>(v)));
  const double scale = std::max({max_abs, floor, std::numeric_limits<double>::min()});
  double worst_err = 0;
  std::size_t worst = 0, beyond = 0;
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    const double c = static_cast<double>(cpu[i]), g = static_cast<double>(gpu[i]);
    double err;
    if (std::isnan(c) || std::isnan(g))
      err = std::isnan(c) && std::isnan(g) ? 0 : INFINITY;
    else if (c == g)
      err = 0;  // also equal infinities
    else
      err = std::abs(g - c) / scale;  // infinite when only one is infinite
    if (!(err <= rtol)) ++beyond;
    if (err > worst_err) {
      worst_err = err;
      worst = i;
    }
  }
  a.ok = beyond == 0;
  os << "max |gpu - cpu| / scale = " << worst_err;
  if (!cpu.empty())
    os << " at element " << worst << " (cpu " << static_cast<double>(cpu[worst]) << ", gpu "
       << static_cast<double>(gpu[worst]) << ")";
  os << "; scale " << scale << " (max |cpu| " << max_abs << ", floor " << floor << "); " << beyond << " of "
     << cpu.size() << " elements beyond rtol " << rtol;
  a.message = os.str();
  return a;
}

template <class T>
Agreement agree(const Tensor<T, Cpu>& cpu, const Tensor<T, Cuda>& gpu, double rtol, double floor = 0) {
  if (cpu.defined() != gpu.defined())
    return {false, std::string("defined on the CPU: ") + (cpu.defined() ? "yes" : "no") +
                       ", on the GPU: " + (gpu.defined() ? "yes" : "no")};
  if (!(cpu.shape() == gpu.shape()))
    return {false, "shape " + gpu.shape().to_string() + " on the GPU, " + cpu.shape().to_string() + " on the CPU"};
  return agree(cpu.to_vector(), gpu.to_vector(), rtol, floor);
}

// Two scalars (losses): relative to the CPU's value.
inline Agreement agree_scalar(double cpu, double gpu, double rtol) {
  std::ostringstream os;
  os.precision(12);
  const double err = cpu == gpu ? 0 : std::abs(gpu - cpu) / std::max(std::abs(cpu), std::numeric_limits<double>::min());
  os << "cpu " << cpu << ", gpu " << gpu << ", relative difference " << err << ", rtol " << rtol;
  return {err <= rtol, os.str()};
}

// The largest |value| of a tensor (its scale).
template <class T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (T x : v)
    if (std::isfinite(static_cast<double>(x))) m = std::max(m, std::abs(static_cast<double>(x)));
  return m;
}

// Copies every parameter (value and grad) and buffer of `from` into `to`, a
// module of the same architecture on the GPU: the names, their order and the
// shapes must match.
template <class T>
void copy_state(nn::Module<T, Cpu>& from, nn::Module<T, Cuda>& to) {
  auto src = from.named_parameters();
  auto dst = to.named_parameters();
  REQUIRE(src.size() == dst.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    REQUIRE(src[i].first == dst[i].first);
    REQUIRE(src[i].second->value.shape() == dst[i].second->value.shape());
    dst[i].second->value.copy_(src[i].second->value.template to<Cuda>());
    dst[i].second->grad.copy_(src[i].second->grad.template to<Cuda>());
  }
  auto src_b = from.named_buffers();
  auto dst_b = to.named_buffers();
  REQUIRE(src_b.size() == dst_b.size());
  for (std::size_t i = 0; i < src_b.size(); ++i) {
    REQUIRE(src_b[i].first == dst_b[i].first);
    REQUIRE(src_b[i].second->shape() == dst_b[i].second->shape());
    dst_b[i].second->copy_(src_b[i].second->template to<Cuda>());
  }
}

// Non-trivial affine parameters and running statistics (a fresh BatchNorm is
// gamma 1, beta 0, mean 0, var 1, under which many index bugs cancel), as
// tests/support/gradcheck.hpp's randomise_statistics does for double.
template <class T>
void randomise_statistics(nn::Module<T, Cpu>& m, Generator& gen) {
  for (auto& [name, p] : m.named_parameters())
    if (p->value.rank() == 1) p->value = Tensor<T, Cpu>::uniform(p->value.shape(), 0.5, 1.5, gen);
  for (auto& [name, b] : m.named_buffers()) {
    const bool var = name.size() >= 3 && name.compare(name.size() - 3, 3, "var") == 0;
    *b = var ? Tensor<T, Cpu>::uniform(b->shape(), 0.5, 2.0, gen) : Tensor<T, Cpu>::normal(b->shape(), 0, 0.5, gen);
  }
}

// The layer a parameter belongs to: "layer1.0.conv1.weight" -> "layer1.0.conv1".
inline std::string owner_of(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? std::string() : name.substr(0, dot);
}

// Compares every parameter value, every parameter gradient and every buffer
// of the two modules; `what` prefixes the messages.
//
// A gradient is judged on the scale of the largest gradient of its layer
// (floor = max |grad| over the layer's parameters on the CPU), not only on
// its own. The parameter gradients of one layer are sums over the same
// output gradient dy (a conv's dW = sum x * dy and db = sum dy; BatchNorm's
// dgamma = sum dy * xhat and dbeta = sum dy), so their rounding errors share
// one scale, ~eps * sum |dy|. This matters for a convolution bias followed
// by a training-mode BatchNorm (d2l's Residual and ResNeXtBlock, the d2l
// stem): BatchNorm subtracts the batch mean, so that bias's gradient is
// exactly zero in exact arithmetic and pure rounding noise on either device,
// different on each; judged on its own (zero) scale it would fail for any
// correct implementation, judged on its layer's it agrees.
template <class T>
void check_module_agrees(const std::string& what, nn::Module<T, Cpu>& cpu, nn::Module<T, Cuda>& gpu, double rtol) {
  auto cp = cpu.named_parameters();
  auto gp = gpu.named_parameters();
  REQUIRE(cp.size() == gp.size());
  std::map<std::string, double> layer_grad_scale;
  for (auto& [name, p] : cp) {
    double& s = layer_grad_scale[owner_of(name)];
    s = std::max(s, max_abs(p->grad.to_vector()));
  }
  for (std::size_t i = 0; i < cp.size(); ++i) {
    const std::string& name = cp[i].first;
    REQUIRE(name == gp[i].first);
    {
      const auto a = agree(cp[i].second->value, gp[i].second->value, rtol);
      INFO(what << ": parameter " << name << ": " << a.message);
      CHECK(a.ok);
    }
    {
      const auto a = agree(cp[i].second->grad, gp[i].second->grad, rtol, layer_grad_scale[owner_of(name)]);
      INFO(what << ": gradient of " << name << ": " << a.message);
      CHECK(a.ok);
    }
  }
  auto cb = cpu.named_buffers();
  auto gb = gpu.named_buffers();
  REQUIRE(cb.size() == gb.size());
  for (std::size_t i = 0; i < cb.size(); ++i) {
    REQUIRE(cb[i].first == gb[i].first);
    const auto a = agree(*cb[i].second, *gb[i].second, rtol);
    INFO(what << ": buffer " << cb[i].first << ": " << a.message);
    CHECK(a.ok);
  }
}

// Runs `passes` forward/backward passes of both modules on the same input
// and the same random output gradient, WITHOUT zeroing the gradients in
// between, and compares the output, the input gradient and the whole module
// state after each pass. The second pass checks that backward ADDS to .grad
// (a kernel that overwrites its gradient agrees after one pass, not two) and,
// in training mode, that running statistics are updated from updated ones.
template <class T>
void check_forward_backward(const std::string& what, nn::Module<T, Cpu>& cpu, nn::Module<T, Cuda>& gpu,
                            const Tensor<T, Cpu>& x, double rtol, std::uint64_t seed = 7, int passes = 2) {
  Generator gen(seed);
  const auto x_gpu = x.template to<Cuda>();
  for (int pass = 1; pass <= passes; ++pass) {
    const std::string where = what + " (pass " + std::to_string(pass) + ")";
    const auto y_cpu = cpu.forward(x);
    const auto y_gpu = gpu.forward(x_gpu);
    {
      const auto a = agree(y_cpu, y_gpu, rtol);
      INFO(where << ": output: " << a.message);
      CHECK(a.ok);
    }
    const auto dy = Tensor<T, Cpu>::normal(y_cpu.shape(), 0, 1, gen);
    const auto dx_cpu = cpu.backward(dy);
    const auto dx_gpu = gpu.backward(dy.template to<Cuda>());
    {
      const auto a = agree(dx_cpu, dx_gpu, rtol);
      INFO(where << ": input gradient: " << a.message);
      CHECK(a.ok);
    }
    check_module_agrees(where, cpu, gpu, rtol);
  }
}

}  // namespace rescnn::cuda_testing

// CHECK_AGREE("output", cpu_tensor, gpu_tensor, rtol): a failure names the
// worst element. CHECK_AGREE_FLOOR also takes the floor of the scale.
#define CHECK_AGREE_FLOOR(what, cpu, gpu, rtol, floor)                                           \
  do {                                                                                           \
    const auto rescnn_agreement_ = ::rescnn::cuda_testing::agree((cpu), (gpu), (rtol), (floor)); \
    INFO(what << ": " << rescnn_agreement_.message);                                             \
    CHECK(rescnn_agreement_.ok);                                                                 \
  } while (false)
#define CHECK_AGREE(what, cpu, gpu, rtol) CHECK_AGREE_FLOOR(what, cpu, gpu, rtol, 0.0)
#define CHECK_SCALAR_AGREE(what, cpu, gpu, rtol)                                                          \
  do {                                                                                                    \
    const auto rescnn_agreement_ =                                                                        \
        ::rescnn::cuda_testing::agree_scalar(static_cast<double>(cpu), static_cast<double>(gpu), (rtol)); \
    INFO(what << ": " << rescnn_agreement_.message);                                                      \
    CHECK(rescnn_agreement_.ok);                                                                          \
  } while (false)
