// rescnn/backend/cuda/conv2d.hpp — convolution through cuDNN: forward,
// backward-data and backward-filter, groups and dilation included.
//
// The first call for a geometry (sizes, strides, groups, dtype and the TF32
// setting) benchmarks cuDNN's algorithms for each of the three passes with
// cudnnFind*Ex, as torch.backends.cudnn.benchmark = True does, and caches the
// fastest one whose workspace fits the limit (cuda::set_conv_workspace_limit,
// 1 GiB by default). Every later call with that geometry reuses the cached
// descriptors and algorithms: no search, no descriptor set-up. The workspace
// itself comes from the caching allocator, so after the first step a
// training loop asks the driver for nothing.
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
// Plain C++ (no kernels): included by any CUDA translation unit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <vector>

#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/backend/cuda/memory.hpp"
#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/tensor.hpp"

namespace rescnn::cuda {

namespace detail {

inline std::atomic<std::size_t>& conv_workspace_limit() {
  static std::atomic<std::size_t> limit{std::size_t{1} << 30};
  return limit;
}

}  // namespace detail

// The most workspace memory one convolution algorithm may use; algorithms
// needing more are not considered. Geometries already tuned keep their
// choice (call before the first convolution).
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
    RESCNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, type, as_int(n, "batch"),
                                                  as_int(c, "channels"), as_int(h, "height"), as_int(w, "width")));
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

// One algorithm choice: the algorithm, its workspace and the math type it
// was timed with (which must be set on the descriptor before running it).
template <class Algo>
struct Choice {
  Algo algo{};
  std::size_t workspace = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  bool tuned = false;
};

// Everything cuDNN needs for one geometry. The three passes are tuned
// separately and lazily: an inference-only run never benchmarks backward.
struct ConvPlan {
  TensorDesc x, y, bias;
  FilterDesc w;
  ConvDesc conv;
  Choice<cudnnConvolutionFwdAlgo_t> forward;
  Choice<cudnnConvolutionBwdDataAlgo_t> backward_data;
  Choice<cudnnConvolutionBwdFilterAlgo_t> backward_filter;
  bool allow_tf32 = false;  // float only: whether tensor-core (TF32) algorithms may be chosen
};

// The cache key: every field of the geometry, the element type and the
// TF32 switch (a different setting may choose a different algorithm).
using ConvKey = std::tuple<index_t, index_t, index_t, index_t, index_t, index_t, index_t, index_t, index_t, index_t,
                           index_t, index_t, index_t, index_t, int, bool>;

inline ConvKey conv_key(const Conv2dGeometry& g, cudnnDataType_t type, bool tf32) {
  return {g.batch,      g.in_channels, g.in_h,      g.in_w,       g.out_channels, g.kernel.h, g.kernel.w, g.stride.h,
          g.stride.w,   g.padding.h,   g.padding.w, g.dilation.h, g.dilation.w,   g.groups,   static_cast<int>(type),
          tf32};
}

// Whether a benchmarked result may be used: it ran, fits the workspace
// limit, and does not use tensor cores when TF32 is forbidden.
template <class Perf>
bool usable(const Perf& p, bool allow_tensor_ops, std::size_t limit) {
  if (p.status != CUDNN_STATUS_SUCCESS || p.memory > limit) return false;
  if (!allow_tensor_ops && (p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
    return false;
  return true;
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

// Picks the fastest usable result of a cudnnFind*Ex call (results come
// sorted by time) into `choice` and sets its math type on the descriptor.
template <class Algo, class Perf>
void choose(const char* pass, const Perf* results, int count, ConvPlan& plan, std::size_t limit, Choice<Algo>& choice) {
  for (int i = 0; i < count; ++i) {
    if (!usable(results[i], plan.allow_tf32, limit)) continue;
    choice.algo = results[i].algo;
    choice.workspace = results[i].memory;
    // Without TF32, keep the descriptor's FMA math even if cuDNN reports
    // the default math type for an algorithm timed under it.
    choice.math = plan.allow_tf32 ? results[i].mathType : CUDNN_FMA_MATH;
    choice.tuned = true;
    return;
  }
  throw CudaError(rescnn::detail::concat("conv2d (cuDNN): no ", pass, " algorithm ran within the workspace limit of ",
                                         limit, " bytes (", count, " tried); raise it with "
                                         "rescnn::cuda::set_conv_workspace_limit"));
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

  // The plan for this geometry, made (descriptors only, no tuning) on first use.
  template <class T>
  ConvPlan& plan(const Conv2dGeometry& g) {
    constexpr cudnnDataType_t type = cudnn_type<T>();
    const bool tf32 = std::is_same_v<T, float> && math_settings().conv_tf32;
    std::lock_guard lock(mutex_);
    auto& slot = plans_[conv_key(g, type, tf32)];
    if (!slot) slot = make_plan(g, type, tf32);
    return *slot;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return plans_.size();
  }

 private:
  static std::unique_ptr<ConvPlan> make_plan(const Conv2dGeometry& g, cudnnDataType_t type, bool tf32) {
    auto p = std::make_unique<ConvPlan>();
    p->allow_tf32 = tf32;
    p->x.set(type, g.batch, g.in_channels, g.in_h, g.in_w);
    p->y.set(type, g.batch, g.out_channels, g.out_h, g.out_w);
    p->bias.set(type, 1, g.out_channels, 1, 1);
    RESCNN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w.d, type, CUDNN_TENSOR_NCHW, as_int(g.out_channels, "out_channels"),
                                                  as_int(g.in_channels_per_group(), "in_channels / groups"),
                                                  as_int(g.kernel.h, "kernel height"), as_int(g.kernel.w, "kernel width")));
    // Cross-correlation, as every deep learning framework's "convolution".
    RESCNN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        p->conv.d, as_int(g.padding.h, "padding"), as_int(g.padding.w, "padding"), as_int(g.stride.h, "stride"),
        as_int(g.stride.w, "stride"), as_int(g.dilation.h, "dilation"), as_int(g.dilation.w, "dilation"),
        CUDNN_CROSS_CORRELATION, type));
    RESCNN_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p->conv.d, as_int(g.groups, "groups")));
    // The math type searched under: FMA only (no tensor cores) for float
    // without TF32, cuDNN's default (TF32 allowed on Ampere and later) otherwise.
    const bool fma_only = type == CUDNN_DATA_FLOAT && !tf32;
    RESCNN_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv.d, fma_only ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
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

}  // namespace detail

// y = conv(x, w) (+ bias per output channel).
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  Context& ctx = context();
  detail::ConvPlan& plan = detail::ConvPlanCache::instance().plan<T>(g);
  if (!plan.forward.tuned) {
    int max_count = 0;
    RESCNN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(ctx.cudnn(), &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> results(static_cast<std::size_t>(max_count));
    const detail::FindScratch scratch(conv_workspace_limit());
    int count = 0;
    // Writes y, which this call overwrites anyway.
    RESCNN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(ctx.cudnn(), plan.x.d, x, plan.w.d, w, plan.conv.d,
                                                              plan.y.d, y, max_count, &count, results.data(),
                                                              scratch.data(), scratch.size()));
    detail::choose("forward", results.data(), count, plan, scratch.size(), plan.forward);
  }
  detail::set_math(plan, plan.forward.math);
  const detail::Scalars<T> s;
  auto ws = detail::workspace(plan.forward.workspace);
  RESCNN_CUDNN_CHECK(cudnnConvolutionForward(ctx.cudnn(), &s.one, plan.x.d, x, plan.w.d, w, plan.conv.d,
                                             plan.forward.algo, ws.data(), plan.forward.workspace, &s.zero, plan.y.d,
                                             y));
  if (bias) RESCNN_CUDNN_CHECK(cudnnAddTensor(ctx.cudnn(), &s.one, plan.bias.d, bias, &s.one, plan.y.d, y));
}

// dx = conv^T(dy, w) (overwritten; skipped when dx is null), dw += dW,
// *db += the sum of dy per channel (when db is non-null).
template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  Context& ctx = context();
  detail::ConvPlan& plan = detail::ConvPlanCache::instance().plan<T>(g);
  const detail::Scalars<T> s;
  if (dx) {
    if (!plan.backward_data.tuned) {
      int max_count = 0;
      RESCNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(ctx.cudnn(), &max_count));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> results(static_cast<std::size_t>(max_count));
      const detail::FindScratch scratch(conv_workspace_limit());
      int count = 0;
      // Writes dx, which this call overwrites anyway.
      RESCNN_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(ctx.cudnn(), plan.w.d, w, plan.y.d, dy,
                                                                     plan.conv.d, plan.x.d, dx, max_count, &count,
                                                                     results.data(), scratch.data(), scratch.size()));
      detail::choose("backward-data", results.data(), count, plan, scratch.size(), plan.backward_data);
    }
    detail::set_math(plan, plan.backward_data.math);
    auto ws = detail::workspace(plan.backward_data.workspace);
    RESCNN_CUDNN_CHECK(cudnnConvolutionBackwardData(ctx.cudnn(), &s.one, plan.w.d, w, plan.y.d, dy, plan.conv.d,
                                                    plan.backward_data.algo, ws.data(), plan.backward_data.workspace,
                                                    &s.zero, plan.x.d, dx));
  }
  if (!plan.backward_filter.tuned) {
    int max_count = 0;
    RESCNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(ctx.cudnn(), &max_count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> results(static_cast<std::size_t>(max_count));
    // The search overwrites its output, and dw is accumulated into: it
    // searches on a scratch filter instead.
    auto dw_scratch = Tensor<T, Cuda>::empty(g.weight_shape());
    const detail::FindScratch scratch(conv_workspace_limit());
    int count = 0;
    RESCNN_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        ctx.cudnn(), plan.x.d, x, plan.y.d, dy, plan.conv.d, plan.w.d, dw_scratch.data(), max_count, &count,
        results.data(), scratch.data(), scratch.size()));
    detail::choose("backward-filter", results.data(), count, plan, scratch.size(), plan.backward_filter);
  }
  detail::set_math(plan, plan.backward_filter.math);
  auto ws = detail::workspace(plan.backward_filter.workspace);
  RESCNN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(ctx.cudnn(), &s.one, plan.x.d, x, plan.y.d, dy, plan.conv.d,
                                                    plan.backward_filter.algo, ws.data(),
                                                    plan.backward_filter.workspace, &s.one, plan.w.d, dw));
  if (db) RESCNN_CUDNN_CHECK(cudnnConvolutionBackwardBias(ctx.cudnn(), &s.one, plan.y.d, dy, &s.one, plan.bias.d, db));
}

}  // namespace rescnn::cuda
