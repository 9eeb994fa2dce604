// rescnn/backend/cuda/conv2d.hpp — convolution through cuDNN: forward,
// backward-data and backward-filter, groups and dilation included.
//
// The first call for a geometry (sizes, strides, groups, dtype, the TF32
// setting, the workspace limit and the deterministic mode) chooses cuDNN's
// algorithm for each of the three passes and caches it:
//   - by default it benchmarks them with cudnnFind*Ex, as
//     torch.backends.cudnn.benchmark = True does, and takes the fastest one
//     whose workspace fits the limit (cuda::set_conv_workspace_limit, 1 GiB
//     by default);
//   - in deterministic mode (cuda::set_deterministic(true), context.hpp) it
//     takes cuDNN's heuristic order (cudnnGet*Algorithm_v7, no timing, so the
//     same in every process) and only algorithms cuDNN reports as
//     deterministic.
// conv_algorithm.hpp holds the choice itself and the math-type rules. Every
// later call with that geometry reuses the cached descriptors and algorithms:
// no search, no descriptor set-up. The workspace itself comes from the
// caching allocator, so after the first step a training loop asks the driver
// for nothing.
//
// The search needs scratch memory of its own (up to the workspace limit); it
// is taken with plain cudaMalloc and freed right after, so that a block of
// that size does not sit unused in the caching allocator for the rest of the
// run. This happens once per geometry, normally in the first step.
//
// Numerics follow PyTorch: float convolutions may use TF32 tensor cores
// unless cuda::set_allow_tf32(false) (or MathSettings::conv_tf32 = false)
// forbids it, in which case only full-fp32 (FMA) algorithms are considered.
// double convolutions compute in double.
//
// Under bf16 or fp16 autocast (core/precision.hpp) a float convolution runs
// on 16-bit copies of its operands (autocast.cuh) with float accumulation on
// tensor cores: cuDNN's PSEUDO_BFLOAT16 / PSEUDO_HALF configurations, whose
// tensors are all 16-bit. So its result is rounded to 16 bits once, as
// PyTorch's autocast output is, then widened back to float; a weight
// gradient is rounded once and added to the float gradient. The bias and its
// gradient stay float. The plan cache keys on the 16-bit type, so fp32,
// bf16 and fp16 plans of one geometry live side by side.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "rescnn/backend/cuda/autocast.cuh"
#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/backend/cuda/conv_algorithm.hpp"
#include "rescnn/backend/cuda/memory.hpp"
#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/precision.hpp"
#include "rescnn/core/tensor.hpp"

namespace rescnn::cuda {

namespace detail {

inline std::atomic<std::size_t>& conv_workspace_limit() {
  static std::atomic<std::size_t> limit{std::size_t{1} << 30};
  return limit;
}

}  // namespace detail

// The most workspace memory one convolution algorithm may use; algorithms
// needing more are not considered. Part of the algorithm cache's key: a
// geometry first seen under another limit is chosen again.
inline void set_conv_workspace_limit(std::size_t bytes) { detail::conv_workspace_limit().store(bytes); }
inline std::size_t conv_workspace_limit() { return detail::conv_workspace_limit().load(); }

namespace detail {

template <class T>
constexpr cudnnDataType_t cudnn_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuDNN convolutions: float or double");
  return std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

// cuDNN's descriptors take int extents.
inline int as_int(index_t v, const char* what) {
  check<ShapeError>(v >= 0 && v <= std::numeric_limits<int>::max(), "conv2d (cuDNN): ", what, " = ", v,
                    " exceeds the int range cuDNN accepts");
  return static_cast<int>(v);
}

// Owning wrappers: a descriptor is destroyed with its plan.
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc() { RESCNN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d)); }
  ~TensorDesc() { (void)cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  void set(cudnnDataType_t type, index_t n, index_t c, index_t h, index_t w) {
    RESCNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, type, as_int(n, "batch"), as_int(c, "channels"),
                                                  as_int(h, "height"), as_int(w, "width")));
  }
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc() { RESCNN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d)); }
  ~FilterDesc() { (void)cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc() { RESCNN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d)); }
  ~ConvDesc() { (void)cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

inline const char* cudnn_type_name(cudnnDataType_t type) {
  switch (type) {
    case CUDNN_DATA_FLOAT: return "float";
    case CUDNN_DATA_DOUBLE: return "double";
    case CUDNN_DATA_BFLOAT16: return "bf16 (autocast)";
    case CUDNN_DATA_HALF: return "fp16 (autocast)";
    default: return "unknown type";
  }
}

inline std::size_t cudnn_type_bytes(cudnnDataType_t type) {
  return type == CUDNN_DATA_DOUBLE ? 8 : type == CUDNN_DATA_FLOAT ? 4 : 2;
}

// Everything cuDNN needs for one geometry. The three passes are tuned
// separately and lazily: an inference-only run never benchmarks backward.
// x, y and w are in the type cuDNN computes on (16-bit under autocast);
// bias and y_caller describe the caller's T, which the bias is added in.
struct ConvPlan {
  TensorDesc x, y, bias, y_caller;
  FilterDesc w;
  std::size_t element_bytes = 0;  // of x, y and w
  ConvDesc conv;
  Choice<cudnnConvolutionFwdAlgo_t> forward;
  Choice<cudnnConvolutionBwdDataAlgo_t> backward_data;
  Choice<cudnnConvolutionBwdFilterAlgo_t> backward_filter;
  AlgoConstraints constraints;      // what a chosen algorithm must satisfy
  cudnnMathType_t searched_math{};  // the math type every pass is searched under
  std::string geometry;             // for error messages
};

// The cache key: every field of the geometry, the element type, and every
// setting that changes the choice (TF32, determinism, workspace limit).
using ConvKey = std::tuple<index_t, index_t, index_t, index_t, index_t, index_t, index_t, index_t, index_t, index_t,
                           index_t, index_t, index_t, index_t, int, bool, bool, std::size_t>;

inline ConvKey conv_key(const Conv2dGeometry& g, cudnnDataType_t type, bool tf32, bool deterministic,
                        std::size_t workspace_limit) {
  return {g.batch,     g.in_channels, g.in_h,         g.in_w,     g.out_channels,
          g.kernel.h,  g.kernel.w,    g.stride.h,     g.stride.w, g.padding.h,
          g.padding.w, g.dilation.h,  g.dilation.w,   g.groups,   static_cast<int>(type),
          tf32,        deterministic, workspace_limit};
}

// Device scratch for cudnnFind*Ex, outside the caching allocator (see the
// top of the file). Halves the request until the driver grants it.
class FindScratch {
 public:
  explicit FindScratch(std::size_t wanted) {
    for (std::size_t size = wanted; size > 0; size /= 2) {
      if (cudaMalloc(&ptr_, size) == cudaSuccess) {
        size_ = size;
        return;
      }
      (void)cudaGetLastError();
      ptr_ = nullptr;
    }
  }
  ~FindScratch() {
    if (ptr_) (void)cudaFree(ptr_);
  }
  FindScratch(const FindScratch&) = delete;
  FindScratch& operator=(const FindScratch&) = delete;
  void* data() const { return ptr_; }
  std::size_t size() const { return size_; }

 private:
  void* ptr_ = nullptr;
  std::size_t size_ = 0;
};

// Chooses `choice` for one pass of `plan`. `find(scratch, bytes, results,
// max, &count)` runs the timed search (cudnnFind*Ex); `heuristic(results,
// max, &count)` asks cuDNN's heuristics (cudnnGet*_v7), used in
// deterministic mode. The pass's own search math type is set on the
// descriptor first, so the result never depends on what ran before.
template <class Algo, class Perf, class Find, class Heuristic>
void tune(const char* pass, int max_count, ConvPlan& plan, Choice<Algo>& choice, Find&& find, Heuristic&& heuristic) {
  RESCNN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv.d, plan.searched_math));
  std::vector<Perf> results(static_cast<std::size_t>(std::max(max_count, 1)));
  int count = 0;
  AlgoConstraints c = plan.constraints;
  if (c.deterministic) {
    heuristic(results.data(), max_count, &count);
  } else {
    const FindScratch scratch(c.workspace_limit);
    find(scratch.data(), scratch.size(), results.data(), max_count, &count);
    c.workspace_limit = scratch.size();  // what the search could actually offer
  }
  choice = pick<Algo>(results.data(), count, c, plan.searched_math);
  if (!choice.tuned) throw CudaError(explain_no_algorithm(pass, plan.geometry, results.data(), count, c));
}

inline void set_math(const ConvPlan& plan, cudnnMathType_t math) {
  RESCNN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv.d, math));
}

class ConvPlanCache {
 public:
  static ConvPlanCache& instance() {
    static ConvPlanCache* cache = new ConvPlanCache();  // leaked: see context.hpp
    return *cache;
  }

  // The plan for this geometry in the current autocast precision, made
  // (descriptors only, no tuning) on first use.
  template <class T>
  ConvPlan& plan(const Conv2dGeometry& g) {
    const Precision precision = compute_precision<T>();
    const bool autocast = precision != Precision::fp32;
    const cudnnDataType_t type = autocast ? cudnn_half_type(precision) : cudnn_type<T>();
    const bool tf32 = std::is_same_v<T, float> && !autocast && math_settings().conv_tf32;
    // Tensor cores are the point of 16-bit data, and exact for double.
    const AlgoConstraints constraints{.allow_tensor_ops = tf32 || autocast || std::is_same_v<T, double>,
                                      .deterministic = cuda::deterministic(),
                                      .workspace_limit = conv_workspace_limit()};
    std::lock_guard lock(mutex_);
    auto& slot = plans_[conv_key(g, type, tf32, constraints.deterministic, constraints.workspace_limit)];
    if (!slot) slot = make_plan(g, type, cudnn_type<T>(), tf32, constraints);
    return *slot;
  }

  // Forgets every plan (tests: a new choice as in a new process).
  void clear() {
    std::lock_guard lock(mutex_);
    plans_.clear();
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return plans_.size();
  }

 private:
  // `type`: what cuDNN computes on; `caller_type`: the caller's T.
  static std::unique_ptr<ConvPlan> make_plan(const Conv2dGeometry& g, cudnnDataType_t type, cudnnDataType_t caller_type,
                                             bool tf32, const AlgoConstraints& constraints) {
    auto p = std::make_unique<ConvPlan>();
    p->constraints = constraints;
    p->searched_math = search_math(type, tf32);
    p->element_bytes = cudnn_type_bytes(type);
    p->geometry =
        rescnn::detail::concat(cudnn_type_name(type), " input ", g.input_shape(), ", weight ", g.weight_shape(),
                               ", stride (", g.stride.h, ", ", g.stride.w, "), padding (", g.padding.h, ", ",
                               g.padding.w, "), dilation (", g.dilation.h, ", ", g.dilation.w, "), groups ", g.groups);
    p->x.set(type, g.batch, g.in_channels, g.in_h, g.in_w);
    p->y.set(type, g.batch, g.out_channels, g.out_h, g.out_w);
    p->bias.set(caller_type, 1, g.out_channels, 1, 1);
    p->y_caller.set(caller_type, g.batch, g.out_channels, g.out_h, g.out_w);
    RESCNN_CUDNN_CHECK(
        cudnnSetFilter4dDescriptor(p->w.d, type, CUDNN_TENSOR_NCHW, as_int(g.out_channels, "out_channels"),
                                   as_int(g.in_channels_per_group(), "in_channels / groups"),
                                   as_int(g.kernel.h, "kernel height"), as_int(g.kernel.w, "kernel width")));
    // Cross-correlation, as every deep learning framework's "convolution".
    // 16-bit data accumulates in float (the PSEUDO_* configurations).
    const cudnnDataType_t compute_type = cudnn_type_bytes(type) == 2 ? CUDNN_DATA_FLOAT : type;
    RESCNN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        p->conv.d, as_int(g.padding.h, "padding"), as_int(g.padding.w, "padding"), as_int(g.stride.h, "stride"),
        as_int(g.stride.w, "stride"), as_int(g.dilation.h, "dilation"), as_int(g.dilation.w, "dilation"),
        CUDNN_CROSS_CORRELATION, compute_type));
    RESCNN_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p->conv.d, as_int(g.groups, "groups")));
    RESCNN_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv.d, p->searched_math));
    // The output extent cuDNN computes must be ours (ops:: validated it).
    int n = 0, c = 0, h = 0, w = 0;
    RESCNN_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv.d, p->x.d, p->w.d, &n, &c, &h, &w));
    check<CudaError>(n == g.batch && c == g.out_channels && h == g.out_h && w == g.out_w,
                     "conv2d (cuDNN): cuDNN computes output (", n, ", ", c, ", ", h, ", ", w, ") for geometry ",
                     g.input_shape(), " -> ", g.output_shape());
    return p;
  }

  mutable std::mutex mutex_;
  std::map<ConvKey, std::unique_ptr<ConvPlan>> plans_;
};

// The workspace of the chosen algorithm, from the caching allocator; freed
// (back to the cache) when it goes out of scope, after the call is queued:
// later work on the same stream runs after the convolution.
inline Tensor<std::uint8_t, Cuda> workspace(std::size_t bytes) {
  return Tensor<std::uint8_t, Cuda>::empty({static_cast<index_t>(bytes)});
}

// alpha and beta scalars: double for double data, float otherwise (cuDNN's rule).
template <class T>
struct Scalars {
  T one = 1, zero = 0;
};

// The three passes on cuDNN's own operands (T's, or 16-bit copies under
// autocast); each is tuned on its first call. `beta` 0 overwrites the
// output, 1 adds to it.
template <class T>
void forward_pass(Context& ctx, ConvPlan& plan, const void* x, const void* w, void* y) {
  if (!plan.forward.tuned) {
    int max_count = 0;
    RESCNN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(ctx.cudnn(), &max_count));
    tune<cudnnConvolutionFwdAlgo_t, cudnnConvolutionFwdAlgoPerf_t>(
        "forward", max_count, plan, plan.forward,
        [&](void* scratch, std::size_t bytes, cudnnConvolutionFwdAlgoPerf_t* results, int max, int* count) {
          // Writes y, which this call overwrites anyway.
          RESCNN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(ctx.cudnn(), plan.x.d, x, plan.w.d, w, plan.conv.d,
                                                                    plan.y.d, y, max, count, results, scratch, bytes));
        },
        [&](cudnnConvolutionFwdAlgoPerf_t* results, int max, int* count) {
          RESCNN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(ctx.cudnn(), plan.x.d, plan.w.d, plan.conv.d,
                                                                    plan.y.d, max, count, results));
        });
  }
  set_math(plan, plan.forward.math);
  const Scalars<T> s;
  auto ws = workspace(plan.forward.workspace);
  RESCNN_CUDNN_CHECK(cudnnConvolutionForward(ctx.cudnn(), &s.one, plan.x.d, x, plan.w.d, w, plan.conv.d,
                                             plan.forward.algo, ws.data(), plan.forward.workspace, &s.zero, plan.y.d,
                                             y));
}

// dx = conv^T(dy, w), overwritten.
template <class T>
void backward_data_pass(Context& ctx, ConvPlan& plan, const void* w, const void* dy, void* dx) {
  if (!plan.backward_data.tuned) {
    int max_count = 0;
    RESCNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(ctx.cudnn(), &max_count));
    tune<cudnnConvolutionBwdDataAlgo_t, cudnnConvolutionBwdDataAlgoPerf_t>(
        "backward-data", max_count, plan, plan.backward_data,
        [&](void* scratch, std::size_t bytes, cudnnConvolutionBwdDataAlgoPerf_t* results, int max, int* count) {
          // Writes dx, which this call overwrites anyway.
          RESCNN_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
              ctx.cudnn(), plan.w.d, w, plan.y.d, dy, plan.conv.d, plan.x.d, dx, max, count, results, scratch, bytes));
        },
        [&](cudnnConvolutionBwdDataAlgoPerf_t* results, int max, int* count) {
          RESCNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx.cudnn(), plan.w.d, plan.y.d, plan.conv.d,
                                                                         plan.x.d, max, count, results));
        });
  }
  set_math(plan, plan.backward_data.math);
  const Scalars<T> s;
  auto ws = workspace(plan.backward_data.workspace);
  RESCNN_CUDNN_CHECK(cudnnConvolutionBackwardData(ctx.cudnn(), &s.one, plan.w.d, w, plan.y.d, dy, plan.conv.d,
                                                  plan.backward_data.algo, ws.data(), plan.backward_data.workspace,
                                                  &s.zero, plan.x.d, dx));
}

// dw = beta * dw + dW.
template <class T>
void backward_filter_pass(Context& ctx, ConvPlan& plan, const Conv2dGeometry& g, const void* x, const void* dy,
                          void* dw, bool accumulate) {
  if (!plan.backward_filter.tuned) {
    int max_count = 0;
    RESCNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(ctx.cudnn(), &max_count));
    tune<cudnnConvolutionBwdFilterAlgo_t, cudnnConvolutionBwdFilterAlgoPerf_t>(
        "backward-filter", max_count, plan, plan.backward_filter,
        [&](void* scratch, std::size_t bytes, cudnnConvolutionBwdFilterAlgoPerf_t* results, int max, int* count) {
          // The search overwrites its output, and dw may be accumulated
          // into: it searches on a scratch filter instead.
          auto dw_scratch = workspace(static_cast<std::size_t>(g.weight_shape().numel()) * plan.element_bytes);
          RESCNN_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(ctx.cudnn(), plan.x.d, x, plan.y.d, dy,
                                                                           plan.conv.d, plan.w.d, dw_scratch.data(),
                                                                           max, count, results, scratch, bytes));
        },
        [&](cudnnConvolutionBwdFilterAlgoPerf_t* results, int max, int* count) {
          RESCNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(ctx.cudnn(), plan.x.d, plan.y.d, plan.conv.d,
                                                                           plan.w.d, max, count, results));
        });
  }
  set_math(plan, plan.backward_filter.math);
  const Scalars<T> s;
  auto ws = workspace(plan.backward_filter.workspace);
  RESCNN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      ctx.cudnn(), &s.one, plan.x.d, x, plan.y.d, dy, plan.conv.d, plan.backward_filter.algo, ws.data(),
      plan.backward_filter.workspace, accumulate ? &s.one : &s.zero, plan.w.d, dw));
}

}  // namespace detail

// y = conv(x, w) (+ bias per output channel).
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  Context& ctx = context();
  detail::ConvPlan& plan = detail::ConvPlanCache::instance().plan<T>(g);
  const Precision p = detail::compute_precision<T>();
  if (p == Precision::fp32) {
    detail::forward_pass<T>(ctx, plan, x, w, y);
  } else if constexpr (std::is_same_v<T, float>) {
    const index_t y_numel = g.output_shape().numel();
    const auto xh = detail::rounded_copy(p, x, g.input_shape().numel());
    const auto wh = detail::rounded_copy(p, w, g.weight_shape().numel());
    detail::HalfBuffer yh(y_numel);
    detail::forward_pass<T>(ctx, plan, xh.data(), wh.data(), yh.data());
    detail::widen_into(p, yh, y, y_numel, /*accumulate=*/false);
  }
  const detail::Scalars<T> s;
  if (bias) RESCNN_CUDNN_CHECK(cudnnAddTensor(ctx.cudnn(), &s.one, plan.bias.d, bias, &s.one, plan.y_caller.d, y));
}

// dx = conv^T(dy, w) (overwritten; skipped when dx is null), dw += dW
// (skipped when dw is null: a frozen layer), *db += the sum of dy per
// channel (when db is non-null).
template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  Context& ctx = context();
  detail::ConvPlan& plan = detail::ConvPlanCache::instance().plan<T>(g);
  const Precision p = detail::compute_precision<T>();
  if (p == Precision::fp32) {
    if (dx) detail::backward_data_pass<T>(ctx, plan, w, dy, dx);
    if (dw) detail::backward_filter_pass<T>(ctx, plan, g, x, dy, dw, /*accumulate=*/true);
  } else if constexpr (std::is_same_v<T, float>) {
    const index_t x_numel = g.input_shape().numel(), w_numel = g.weight_shape().numel();
    const auto dyh = detail::rounded_copy(p, dy, g.output_shape().numel());
    if (dx) {
      const auto wh = detail::rounded_copy(p, w, w_numel);
      detail::HalfBuffer dxh(x_numel);
      detail::backward_data_pass<T>(ctx, plan, wh.data(), dyh.data(), dxh.data());
      detail::widen_into(p, dxh, dx, x_numel, /*accumulate=*/false);
    }
    if (dw) {
      const auto xh = detail::rounded_copy(p, x, x_numel);
      detail::HalfBuffer dwh(w_numel);
      detail::backward_filter_pass<T>(ctx, plan, g, xh.data(), dyh.data(), dwh.data(), /*accumulate=*/false);
      detail::widen_into(p, dwh, dw, w_numel, /*accumulate=*/true);
    }
  }
  const detail::Scalars<T> s;
  if (db)
    RESCNN_CUDNN_CHECK(cudnnConvolutionBackwardBias(ctx.cudnn(), &s.one, plan.y_caller.d, dy, &s.one, plan.bias.d, db));
}

}  // namespace rescnn::cuda
