// rescnn/backend/cuda/loss.cuh — softmax cross-entropy over logits, and accuracy counts, on the GPU.
//
// One warp per row of logits: classes is small (10 for Fashion-MNIST, up to
// about a thousand), so a warp covers a row in a few strided passes and
// combines its lanes with shuffles. As in the CPU twin (cpu/loss.hpp), the
// exponentials, their sum and the logarithm are taken in double, and the
// per-row losses are summed in double.
//
// Results must be the same from run to run (a resumed training run
// reproduces its losses bit for bit), so nothing uses atomics or an
// order-dependent reduction: a row's sum of exponentials is combined in a
// fixed shuffle pattern, and the per-row losses (or hits) are summed by a
// single block in a fixed tree order. The sums are not taken in the CPU's
// sequential order, so a loss can differ from the CPU's in its last bits.
//
// The arg-max of a row is exactly std::max_element's (the CPU twin's), which
// is torch.argmax's first-maximum-wins rule: a fold `if (z[best] < z[k]) best
// = k` that never moves onto a NaN, and never moves off a NaN in z[0]. That is
// the first index of the largest non-NaN value (+0 and -0 compare equal, so
// the earlier wins), or 0 when z[0] is NaN or every value is. Stated that way
// it is associative, so lanes can be combined in any order.
//
// The loss and the count are host out-parameters: the result is copied back
// on the compute stream, which is then synchronised.
#pragma once

#include <cmath>
#include <cstdint>

#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/backend/cuda/launch.cuh"
#include "rescnn/backend/cuda/reduce.cuh"
#include "rescnn/core/config.hpp"
#include "rescnn/core/shape.hpp"
#include "rescnn/core/tensor.hpp"

namespace rescnn::cuda {
namespace detail {

inline constexpr int kWarp = 32;
inline constexpr unsigned kFullMask = 0xffffffffu;

// A candidate for a row's arg-max; at < 0 means none yet (the identity).
template <class T>
struct ArgBest {
  index_t at;
  T value;
};

// The better of two candidates: the larger value, the smaller index on equal
// values. Neither may hold a NaN (NaNs never become candidates).
template <class T>
RESCNN_HOST_DEVICE ArgBest<T> arg_better(const ArgBest<T>& a, const ArgBest<T>& b) {
  if (b.at < 0) return a;
  if (a.at < 0) return b;
  if (a.value < b.value) return b;
  if (b.value < a.value) return a;
  return b.at < a.at ? b : a;
}

// One lane's candidate over its classes k = lane, lane + lanes, ...
template <class T>
RESCNN_HOST_DEVICE ArgBest<T> arg_best_strided(const T* z, index_t classes, index_t lane, index_t lanes) {
  ArgBest<T> best{-1, T(0)};
  for (index_t k = lane; k < classes; k += lanes) {
    const T v = z[k];
    if (v == v) best = arg_better(best, ArgBest<T>{k, v});  // v == v: not a NaN
  }
  return best;
}

// The combined candidate as std::max_element's index (see the top of the file).
template <class T>
RESCNN_HOST_DEVICE index_t arg_best_index(const ArgBest<T>& best, const T* z) {
  const T first = z[0];
  return (best.at < 0 || first != first) ? 0 : best.at;
}

// Arg-max of row z; every lane of the warp gets the same answer.
template <class T>
__device__ index_t warp_row_argmax(const T* z, index_t classes, int lane) {
  ArgBest<T> best = arg_best_strided(z, classes, lane, kWarp);
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    ArgBest<T> other;
    other.at = __shfl_xor_sync(kFullMask, best.at, offset);
    other.value = __shfl_xor_sync(kFullMask, best.value, offset);
    best = arg_better(best, other);
  }
  return arg_best_index(best, z);
}

// Butterfly sum: the two partners of each step add the same two numbers, so
// every lane ends with the same bits.
__device__ inline double warp_sum(double v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// The first row of this thread's warp and the distance to its next row: rows
// go to warps in a grid-stride loop. The loop condition is the same for every
// lane of a warp, so full-mask shuffles inside it are safe.
__device__ inline index_t warp_first_row() {
  return static_cast<index_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
}
__device__ inline index_t warp_row_stride() { return static_cast<index_t>(gridDim.x) * (blockDim.x / kWarp); }

template <class T>
__global__ void softmax_cross_entropy_rows_kernel(index_t batch, index_t classes, const T* logits,
                                                  const std::int64_t* labels, T* probs, double* row_loss,
                                                  double smoothing) {
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  for (index_t n = warp_first_row(); n < batch; n += warp_row_stride()) {
    const T* z = logits + n * classes;
    T* p = probs + n * classes;
    // Subtracting the row's maximum keeps exp() finite for any logits.
    const T zmax = z[warp_row_argmax(z, classes, lane)];
    double sum = 0, shifted = 0;
    for (index_t k = lane; k < classes; k += kWarp) {
      sum += ::exp(static_cast<double>(z[k] - zmax));
      shifted += static_cast<double>(z[k] - zmax);
    }
    const double log_sum = ::log(warp_sum(sum));
    const double shifted_sum = warp_sum(shifted);
    for (index_t k = lane; k < classes; k += kWarp)
      p[k] = static_cast<T>(::exp(static_cast<double>(z[k] - zmax) - log_sum));
    const double nll = log_sum - static_cast<double>(z[labels[n]] - zmax);
    if (lane == 0)
      row_loss[n] = smoothing == 0
                        ? nll
                        : (1 - smoothing) * nll + smoothing * (log_sum - shifted_sum / static_cast<double>(classes));
  }
}

template <class T>
__global__ void correct_rows_kernel(index_t batch, index_t classes, const T* logits, const std::int64_t* labels,
                                    index_t* hit) {
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  for (index_t n = warp_first_row(); n < batch; n += warp_row_stride()) {
    const index_t best = warp_row_argmax(logits + n * classes, classes, lane);
    if (lane == 0) hit[n] = best == labels[n] ? 1 : 0;
  }
}

// *out = sum of v[0..n) in a fixed order: thread t adds v[t], v[t + kThreads],
// ... in turn, then the threads' sums meet in a fixed tree (block_reduce).
// One block of kThreads threads.
template <class Acc>
__global__ void fixed_order_sum_kernel(index_t n, const Acc* v, Acc* out) {
  Acc s = 0;
  for (index_t i = threadIdx.x; i < n; i += kThreads) s += v[i];
  s = block_reduce(s, SumOp{});
  if (threadIdx.x == 0) *out = s;
}

template <class T>
__global__ void cross_entropy_backward_kernel(index_t batch, index_t classes, const T* probs,
                                              const std::int64_t* labels, T factor, T on, T off, T* dlogits) {
  RESCNN_GRID_STRIDE_LOOP(i, batch * classes) {
    const index_t n = i / classes, k = i % classes;
    dlogits[i] = (probs[i] - (k == labels[n] ? on : off)) * factor;
  }
}

// Sums v[0..n) on the device in a fixed order and returns the sum on the host.
template <class Acc>
Acc sum_to_host(index_t n, const Acc* v, Acc* device_result) {
  const cudaStream_t stream = context().compute_stream();
  fixed_order_sum_kernel<Acc><<<1, kThreads, 0, stream>>>(n, v, device_result);
  RESCNN_CUDA_CHECK_LAUNCH();
  Acc host = 0;
  RESCNN_CUDA_CHECK(cudaMemcpyAsync(&host, device_result, sizeof(Acc), cudaMemcpyDeviceToHost, stream));
  RESCNN_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

}  // namespace detail

// Mean over the batch of -log softmax(logits)[label] (label-smoothed as in
// cpu/loss.hpp); stores the softmax probabilities for backward. *loss is a
// host variable.
template <class T>
void cross_entropy_forward(index_t batch, index_t classes, const T* logits, const std::int64_t* labels, T* probs,
                           T* loss, double smoothing = 0) {
  // Per-row losses, then their sum in the last slot.
  auto scratch = Tensor<double, Cuda>::empty({batch + 1});
  double* row_loss = scratch.data();
  if (batch > 0 && classes > 0) {
    detail::softmax_cross_entropy_rows_kernel<<<detail::grid_for(batch * detail::kWarp), detail::kThreads, 0,
                                                context().compute_stream()>>>(batch, classes, logits, labels, probs,
                                                                              row_loss, smoothing);
    RESCNN_CUDA_CHECK_LAUNCH();
  }
  const double total = detail::sum_to_host(batch, row_loss, row_loss + batch);
  *loss = static_cast<T>(total / static_cast<double>(batch));
}

// d(mean loss)/d logits = (softmax - target) / batch, times `scale` (the
// upstream gradient of the loss, 1 for a plain backward); target as in the forward.
template <class T>
void cross_entropy_backward(index_t batch, index_t classes, const T* probs, const std::int64_t* labels, T scale,
                            T* dlogits, double smoothing = 0) {
  const index_t n = batch * classes;
  if (n <= 0) return;
  const T factor = scale / static_cast<T>(batch);
  const T on = static_cast<T>(1 - smoothing + smoothing / static_cast<double>(classes));
  const T off = static_cast<T>(smoothing / static_cast<double>(classes));
  detail::cross_entropy_backward_kernel<<<detail::grid_for(n), detail::kThreads, 0, context().compute_stream()>>>(
      batch, classes, probs, labels, factor, on, off, dlogits);
  RESCNN_CUDA_CHECK_LAUNCH();
}

// Number of rows whose arg-max equals the label (first maximum wins, as
// torch.argmax). *result is a host variable.
template <class T>
void count_correct(index_t batch, index_t classes, const T* logits, const std::int64_t* labels, index_t* result) {
  // Per-row hits (0 or 1), then their count in the last slot.
  auto scratch = Tensor<index_t, Cuda>::empty({batch + 1});
  index_t* hit = scratch.data();
  if (batch > 0 && classes > 0) {
    detail::correct_rows_kernel<<<detail::grid_for(batch * detail::kWarp), detail::kThreads, 0,
                                  context().compute_stream()>>>(batch, classes, logits, labels, hit);
    RESCNN_CUDA_CHECK_LAUNCH();
  }
  *result = detail::sum_to_host(batch, hit, hit + batch);
}

}  // namespace rescnn::cuda
