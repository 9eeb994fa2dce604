// rescnn/backend/cuda/elementwise.cuh — ReLU and element-wise sums on the GPU.
//
// These kernels are bound by memory bandwidth, so each thread moves 16 bytes
// at a time (four floats, two doubles) when every operand allows it. A tensor
// starts 64-byte aligned only at the start of its allocation and a view may
// begin anywhere, so the 16-byte path is taken only after checking every
// pointer; otherwise a plain element-per-thread loop runs. The arithmetic is
// the same expression as the CPU twin's (cpu/elementwise.hpp), element by
// element, so both backends give identical bits, NaNs included.
#pragma once

#include <cstdint>

#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/backend/cuda/launch.cuh"
#include "rescnn/core/config.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cuda {
namespace detail {

// Written as in the CPU twin so that a NaN passes through (NaN < 0 is false).
struct ReluOp {
  template <class T>
  RESCNN_HOST_DEVICE T operator()(T x) const {
    return x < T(0) ? T(0) : x;
  }
};

// Gradient zeroed where y <= 0 and passed elsewhere (a NaN output passes it).
struct ReluBackwardOp {
  template <class T>
  RESCNN_HOST_DEVICE T operator()(T y, T dy) const {
    return y <= T(0) ? T(0) : dy;
  }
};

struct AddOp {
  template <class T>
  RESCNN_HOST_DEVICE T operator()(T a, T b) const {
    return a + b;
  }
};

struct AddReluOp {
  template <class T>
  RESCNN_HOST_DEVICE T operator()(T a, T b) const {
    const T v = a + b;
    return v < T(0) ? T(0) : v;
  }
};

// 16 bytes of T: one 128-bit load or store.
template <class T>
struct alignas(16) Pack {
  static constexpr int width = 16 / static_cast<int>(sizeof(T));
  T v[width];
};

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

template <class T, class Op, class... P>
__device__ Pack<T> apply_pack(Op op, P... in) {
  Pack<T> r;
#pragma unroll
  for (int w = 0; w < Pack<T>::width; ++w) r.v[w] = op(in.v[w]...);
  return r;
}

// out[i] = op(src[i]...). `out` may be one of the sources (in-place forms):
// each element is read before it is written, by the same thread.
template <class T, class Op, class... Src>
__global__ void map_kernel(index_t n, T* out, Op op, Src... src) {
  RESCNN_GRID_STRIDE_LOOP(i, n) out[i] = op(src[i]...);
}

// The same with 16-byte packs; the last n % width elements, if any, are done
// one by one. Launched only when every pointer is 16-byte aligned.
template <class T, class Op, class... Src>
__global__ void map_packed_kernel(index_t n, T* out, Op op, Src... src) {
  constexpr int width = Pack<T>::width;
  const index_t packs = n / width;
  Pack<T>* out_packs = reinterpret_cast<Pack<T>*>(out);
  RESCNN_GRID_STRIDE_LOOP(i, packs) out_packs[i] = apply_pack<T>(op, reinterpret_cast<const Pack<T>*>(src)[i]...);
  const index_t tail = n - packs * width;
  RESCNN_GRID_STRIDE_LOOP(j, tail) {
    const index_t i = packs * width + j;
    out[i] = op(src[i]...);
  }
}

template <class T, class Op, class... Src>
void launch_map(index_t n, T* out, Op op, Src... src) {
  if (n <= 0) return;
  const cudaStream_t stream = context().compute_stream();
  if (aligned16(out) && (aligned16(src) && ...)) {
    constexpr int width = Pack<T>::width;
    map_packed_kernel<<<grid_for((n + width - 1) / width), kThreads, 0, stream>>>(n, out, op, src...);
  } else {
    map_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, out, op, src...);
  }
  RESCNN_CUDA_CHECK_LAUNCH();
}

}  // namespace detail

template <class T>
void relu_forward(index_t n, const T* x, T* y) {
  detail::launch_map(n, y, detail::ReluOp{}, x);
}

template <class T>
void relu_backward(index_t n, const T* y, const T* dy, T* dx) {
  detail::launch_map(n, dx, detail::ReluBackwardOp{}, y, dy);
}

// out = a + b
template <class T>
void add(index_t n, const T* a, const T* b, T* out) {
  detail::launch_map(n, out, detail::AddOp{}, a, b);
}

// out += a
template <class T>
void add_inplace(index_t n, T* out, const T* a) {
  detail::launch_map(n, out, detail::AddOp{}, static_cast<const T*>(out), a);
}

// out = relu(out + a), NaN-propagating as relu_forward.
template <class T>
void add_relu_inplace(index_t n, T* out, const T* a) {
  detail::launch_map(n, out, detail::AddReluOp{}, static_cast<const T*>(out), a);
}

}  // namespace rescnn::cuda
