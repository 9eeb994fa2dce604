// rescnn/backend/cuda/pooling.cuh — max, average and adaptive average pooling on the GPU.
//
// Forward passes give one thread to each output element and loop over its
// window exactly as the CPU twin (cpu/pooling.hpp) does. Backward passes are
// written as gathers, one thread per input element summing the outputs whose
// window covers it, instead of scattering with atomicAdd: no atomics, and the
// sum is taken in the CPU twin's order (outputs in ascending row-major order),
// so a gradient is the same from run to run and equal in bits to the CPU's.
// Every dx is overwritten, as on the CPU.
//
// The per-element bodies are __host__ __device__ so that tests can compare
// them on the host with the CPU twin; the kernels only loop over them.
#pragma once

#include <cmath>
#include <cstdint>

#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/backend/cuda/launch.cuh"
#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/config.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cuda {
namespace detail {

// std::min/max are host functions; these serve host and device alike.
RESCNN_HOST_DEVICE inline index_t pool_min(index_t a, index_t b) { return a < b ? a : b; }
RESCNN_HOST_DEVICE inline index_t pool_max(index_t a, index_t b) { return a < b ? b : a; }

// v != v is the NaN test that means the same on host and device.
template <class T>
RESCNN_HOST_DEVICE bool pool_is_nan(T v) {
  return v != v;
}

// ---- max pooling --------------------------------------------------------------------------------

// Output element o (flat over N, C, out_h, out_w).
template <class T>
RESCNN_HOST_DEVICE void maxpool_forward_at(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax, index_t o) {
  const index_t ow = o % g.out_w, oh = (o / g.out_w) % g.out_h, nc = o / (g.out_w * g.out_h);
  const T* p = x + nc * g.in_h * g.in_w;
  // Padding counts as -infinity; a window entirely in the padding keeps it, with argmax -1.
  T best = static_cast<T>(-INFINITY);
  index_t best_at = -1;
  for (index_t i = 0; i < g.kernel.h; ++i) {
    const index_t ih = oh * g.stride.h - g.padding.h + i * g.dilation.h;
    if (ih < 0 || ih >= g.in_h) continue;
    for (index_t j = 0; j < g.kernel.w; ++j) {
      const index_t iw = ow * g.stride.w - g.padding.w + j * g.dilation.w;
      if (iw < 0 || iw >= g.in_w) continue;
      const T v = p[ih * g.in_w + iw];
      // A NaN wins and then stays (nothing compares greater than it).
      if (best_at < 0 || v > best || (pool_is_nan(v) && !pool_is_nan(best))) {
        best = v;
        best_at = ih * g.in_w + iw;
      }
    }
  }
  y[o] = best;
  argmax[o] = static_cast<std::int32_t>(best_at);
}

// Input element e (flat over N, C, in_h, in_w): the sum of dy over the outputs
// whose argmax is e. Output row oh reaches ih through kernel row i when
// ih = oh*stride - pad + i*dilation; distinct i give distinct oh, so each
// output is visited at most once, and i descending visits oh ascending.
template <class T>
RESCNN_HOST_DEVICE void maxpool_backward_at(const Pool2dGeometry& g, const T* dy, const std::int32_t* argmax, T* dx,
                                            index_t e) {
  const index_t iw = e % g.in_w, ih = (e / g.in_w) % g.in_h, nc = e / (g.in_w * g.in_h);
  const index_t out_plane = g.out_h * g.out_w;
  const std::int32_t self = static_cast<std::int32_t>(ih * g.in_w + iw);
  const T* dy_plane = dy + nc * out_plane;
  const std::int32_t* arg_plane = argmax + nc * out_plane;
  T sum = 0;
  for (index_t i = g.kernel.h - 1; i >= 0; --i) {
    const index_t th = ih + g.padding.h - i * g.dilation.h;
    if (th < 0 || th % g.stride.h != 0) continue;
    const index_t oh = th / g.stride.h;
    if (oh >= g.out_h) continue;
    for (index_t j = g.kernel.w - 1; j >= 0; --j) {
      const index_t tw = iw + g.padding.w - j * g.dilation.w;
      if (tw < 0 || tw % g.stride.w != 0) continue;
      const index_t ow = tw / g.stride.w;
      if (ow >= g.out_w) continue;
      const index_t o = oh * g.out_w + ow;
      if (arg_plane[o] == self) sum += dy_plane[o];
    }
  }
  dx[e] = sum;
}

// ---- average pooling ----------------------------------------------------------------------------

// The CPU twin's avgpool_divisor: with count_include_pad every window divides
// by its extent clipped to the padded input, otherwise by its in-bounds count.
RESCNN_HOST_DEVICE inline index_t avgpool_divisor(const Pool2dGeometry& g, index_t oh, index_t ow,
                                                  bool count_include_pad) {
  const index_t h0 = oh * g.stride.h - g.padding.h, w0 = ow * g.stride.w - g.padding.w;
  if (count_include_pad) {
    const index_t h1 = pool_min(h0 + g.kernel.h, g.in_h + g.padding.h);
    const index_t w1 = pool_min(w0 + g.kernel.w, g.in_w + g.padding.w);
    return (h1 - h0) * (w1 - w0);
  }
  const index_t h1 = pool_min(h0 + g.kernel.h, g.in_h), w1 = pool_min(w0 + g.kernel.w, g.in_w);
  return (h1 - pool_max(h0, 0)) * (w1 - pool_max(w0, 0));
}

template <class T>
RESCNN_HOST_DEVICE void avgpool_forward_at(const Pool2dGeometry& g, bool count_include_pad, const T* x, T* y,
                                           index_t o) {
  const index_t ow = o % g.out_w, oh = (o / g.out_w) % g.out_h, nc = o / (g.out_w * g.out_h);
  const T* p = x + nc * g.in_h * g.in_w;
  const index_t h0 = oh * g.stride.h - g.padding.h, w0 = ow * g.stride.w - g.padding.w;
  const index_t h_end = pool_min(h0 + g.kernel.h, g.in_h), w_end = pool_min(w0 + g.kernel.w, g.in_w);
  T sum = 0;
  for (index_t ih = pool_max(h0, 0); ih < h_end; ++ih)
    for (index_t iw = pool_max(w0, 0); iw < w_end; ++iw) sum += p[ih * g.in_w + iw];
  y[o] = sum / static_cast<T>(avgpool_divisor(g, oh, ow, count_include_pad));
}

// Outputs along one axis whose window [o*stride - pad, o*stride - pad + kernel)
// holds input position i: o*stride <= i + pad < o*stride + kernel.
RESCNN_HOST_DEVICE inline index_t avgpool_first_output(index_t i, index_t kernel, index_t stride, index_t pad) {
  const index_t t = i + pad - kernel + 1;  // o*stride >= t
  return t <= 0 ? 0 : (t + stride - 1) / stride;
}
RESCNN_HOST_DEVICE inline index_t avgpool_last_output(index_t i, index_t stride, index_t pad, index_t out) {
  return pool_min((i + pad) / stride, out - 1);  // i + pad >= 0 for an input position
}

template <class T>
RESCNN_HOST_DEVICE void avgpool_backward_at(const Pool2dGeometry& g, bool count_include_pad, const T* dy, T* dx,
                                            index_t e) {
  const index_t iw = e % g.in_w, ih = (e / g.in_w) % g.in_h, nc = e / (g.in_w * g.in_h);
  const T* dy_plane = dy + nc * g.out_h * g.out_w;
  const index_t oh0 = avgpool_first_output(ih, g.kernel.h, g.stride.h, g.padding.h);
  const index_t oh1 = avgpool_last_output(ih, g.stride.h, g.padding.h, g.out_h);
  const index_t ow0 = avgpool_first_output(iw, g.kernel.w, g.stride.w, g.padding.w);
  const index_t ow1 = avgpool_last_output(iw, g.stride.w, g.padding.w, g.out_w);
  T sum = 0;
  for (index_t oh = oh0; oh <= oh1; ++oh)
    for (index_t ow = ow0; ow <= ow1; ++ow)
      sum += dy_plane[oh * g.out_w + ow] / static_cast<T>(avgpool_divisor(g, oh, ow, count_include_pad));
  dx[e] = sum;
}

// ---- adaptive average pooling -------------------------------------------------------------------

// PyTorch's bin edges: floor(o*in/out) to ceil((o+1)*in/out).
RESCNN_HOST_DEVICE inline index_t adaptive_start(index_t o, index_t out, index_t in) { return (o * in) / out; }
RESCNN_HOST_DEVICE inline index_t adaptive_end(index_t o, index_t out, index_t in) {
  return ((o + 1) * in + out - 1) / out;
}

// Bins along one axis holding input position i, from the edges above:
//   start(o) <= i  <=>  o*in < (i+1)*out  <=>  o <= ((i+1)*out - 1) / in
//   end(o)   >  i  <=>  (o+1)*in > i*out  <=>  o >= (i*out) / in
RESCNN_HOST_DEVICE inline index_t adaptive_first_output(index_t i, index_t out, index_t in) { return (i * out) / in; }
RESCNN_HOST_DEVICE inline index_t adaptive_last_output(index_t i, index_t out, index_t in) {
  return pool_min(((i + 1) * out - 1) / in, out - 1);
}

template <class T>
RESCNN_HOST_DEVICE void adaptive_avgpool_forward_at(const Pool2dGeometry& g, const T* x, T* y, index_t o) {
  const index_t ow = o % g.out_w, oh = (o / g.out_w) % g.out_h, nc = o / (g.out_w * g.out_h);
  const T* p = x + nc * g.in_h * g.in_w;
  const index_t h0 = adaptive_start(oh, g.out_h, g.in_h), h1 = adaptive_end(oh, g.out_h, g.in_h);
  const index_t w0 = adaptive_start(ow, g.out_w, g.in_w), w1 = adaptive_end(ow, g.out_w, g.in_w);
  T sum = 0;
  for (index_t ih = h0; ih < h1; ++ih)
    for (index_t iw = w0; iw < w1; ++iw) sum += p[ih * g.in_w + iw];
  y[o] = sum / static_cast<T>((h1 - h0) * (w1 - w0));
}

template <class T>
RESCNN_HOST_DEVICE void adaptive_avgpool_backward_at(const Pool2dGeometry& g, const T* dy, T* dx, index_t e) {
  const index_t iw = e % g.in_w, ih = (e / g.in_w) % g.in_h, nc = e / (g.in_w * g.in_h);
  const T* dy_plane = dy + nc * g.out_h * g.out_w;
  const index_t oh0 = adaptive_first_output(ih, g.out_h, g.in_h), oh1 = adaptive_last_output(ih, g.out_h, g.in_h);
  const index_t ow0 = adaptive_first_output(iw, g.out_w, g.in_w), ow1 = adaptive_last_output(iw, g.out_w, g.in_w);
  T sum = 0;
  for (index_t oh = oh0; oh <= oh1; ++oh) {
    const index_t h0 = adaptive_start(oh, g.out_h, g.in_h), h1 = adaptive_end(oh, g.out_h, g.in_h);
    for (index_t ow = ow0; ow <= ow1; ++ow) {
      const index_t w0 = adaptive_start(ow, g.out_w, g.in_w), w1 = adaptive_end(ow, g.out_w, g.in_w);
      sum += dy_plane[oh * g.out_w + ow] / static_cast<T>((h1 - h0) * (w1 - w0));
    }
  }
  dx[e] = sum;
}

// ---- kernels ------------------------------------------------------------------------------------

template <class T>
__global__ void maxpool_forward_kernel(Pool2dGeometry g, index_t n, const T* x, T* y, std::int32_t* argmax) {
  RESCNN_GRID_STRIDE_LOOP(o, n) maxpool_forward_at(g, x, y, argmax, o);
}

template <class T>
__global__ void maxpool_backward_kernel(Pool2dGeometry g, index_t n, const T* dy, const std::int32_t* argmax, T* dx) {
  RESCNN_GRID_STRIDE_LOOP(e, n) maxpool_backward_at(g, dy, argmax, dx, e);
}

template <class T>
__global__ void avgpool_forward_kernel(Pool2dGeometry g, bool count_include_pad, index_t n, const T* x, T* y) {
  RESCNN_GRID_STRIDE_LOOP(o, n) avgpool_forward_at(g, count_include_pad, x, y, o);
}

template <class T>
__global__ void avgpool_backward_kernel(Pool2dGeometry g, bool count_include_pad, index_t n, const T* dy, T* dx) {
  RESCNN_GRID_STRIDE_LOOP(e, n) avgpool_backward_at(g, count_include_pad, dy, dx, e);
}

template <class T>
__global__ void adaptive_avgpool_forward_kernel(Pool2dGeometry g, index_t n, const T* x, T* y) {
  RESCNN_GRID_STRIDE_LOOP(o, n) adaptive_avgpool_forward_at(g, x, y, o);
}

template <class T>
__global__ void adaptive_avgpool_backward_kernel(Pool2dGeometry g, index_t n, const T* dy, T* dx) {
  RESCNN_GRID_STRIDE_LOOP(e, n) adaptive_avgpool_backward_at(g, dy, dx, e);
}

inline index_t pool_outputs(const Pool2dGeometry& g) { return g.batch * g.channels * g.out_h * g.out_w; }
inline index_t pool_inputs(const Pool2dGeometry& g) { return g.batch * g.channels * g.in_h * g.in_w; }

}  // namespace detail

// Max pooling; records the flat input index (within its plane) of each
// maximum for backward, -1 for a window entirely in the padding.
template <class T>
void maxpool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  const index_t n = detail::pool_outputs(g);
  if (n <= 0) return;
  detail::maxpool_forward_kernel<<<detail::grid_for(n), detail::kThreads, 0, context().compute_stream()>>>(g, n, x, y,
                                                                                                           argmax);
  RESCNN_CUDA_CHECK_LAUNCH();
}

template <class T>
void maxpool2d_backward(const Pool2dGeometry& g, const T* dy, const std::int32_t* argmax, T* dx) {
  const index_t n = detail::pool_inputs(g);
  if (n <= 0) return;
  detail::maxpool_backward_kernel<<<detail::grid_for(n), detail::kThreads, 0, context().compute_stream()>>>(g, n, dy,
                                                                                                            argmax, dx);
  RESCNN_CUDA_CHECK_LAUNCH();
}

template <class T>
void avgpool2d_forward(const Pool2dGeometry& g, bool count_include_pad, const T* x, T* y) {
  const index_t n = detail::pool_outputs(g);
  if (n <= 0) return;
  detail::avgpool_forward_kernel<<<detail::grid_for(n), detail::kThreads, 0, context().compute_stream()>>>(
      g, count_include_pad, n, x, y);
  RESCNN_CUDA_CHECK_LAUNCH();
}

template <class T>
void avgpool2d_backward(const Pool2dGeometry& g, bool count_include_pad, const T* dy, T* dx) {
  const index_t n = detail::pool_inputs(g);
  if (n <= 0) return;
  detail::avgpool_backward_kernel<<<detail::grid_for(n), detail::kThreads, 0, context().compute_stream()>>>(
      g, count_include_pad, n, dy, dx);
  RESCNN_CUDA_CHECK_LAUNCH();
}

template <class T>
void adaptive_avgpool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  const index_t n = detail::pool_outputs(g);
  if (n <= 0) return;
  detail::adaptive_avgpool_forward_kernel<<<detail::grid_for(n), detail::kThreads, 0, context().compute_stream()>>>(
      g, n, x, y);
  RESCNN_CUDA_CHECK_LAUNCH();
}

template <class T>
void adaptive_avgpool2d_backward(const Pool2dGeometry& g, const T* dy, T* dx) {
  const index_t n = detail::pool_inputs(g);
  if (n <= 0) return;
  detail::adaptive_avgpool_backward_kernel<<<detail::grid_for(n), detail::kThreads, 0, context().compute_stream()>>>(
      g, n, dy, dx);
  RESCNN_CUDA_CHECK_LAUNCH();
}

}  // namespace rescnn::cuda
