// rescnn/backend/cpu/pooling.hpp — max, average and adaptive average
// pooling: float at the level in use (float_kernels.hpp), everything else at
// the generic level.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "rescnn/backend/cpu/float_kernels.hpp"
#include "rescnn/backend/geometry.hpp"

namespace rescnn::cpu {

namespace generic {
#include "rescnn/backend/cpu/kernels/pooling.inc"
}  // namespace generic

template <class T>
void maxpool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  if (!run_float_kernel<T>([&](auto k) { k.maxpool2d_forward(g, x, y, argmax); }))
    generic::maxpool2d_forward(g, x, y, argmax);
}
template <class T>
void maxpool2d_backward(const Pool2dGeometry& g, const T* dy, const std::int32_t* argmax, T* dx) {
  if (!run_float_kernel<T>([&](auto k) { k.maxpool2d_backward(g, dy, argmax, dx); }))
    generic::maxpool2d_backward(g, dy, argmax, dx);
}
template <class T>
void avgpool2d_forward(const Pool2dGeometry& g, bool count_include_pad, const T* x, T* y) {
  if (!run_float_kernel<T>([&](auto k) { k.avgpool2d_forward(g, count_include_pad, x, y); }))
    generic::avgpool2d_forward(g, count_include_pad, x, y);
}
template <class T>
void avgpool2d_backward(const Pool2dGeometry& g, bool count_include_pad, const T* dy, T* dx) {
  if (!run_float_kernel<T>([&](auto k) { k.avgpool2d_backward(g, count_include_pad, dy, dx); }))
    generic::avgpool2d_backward(g, count_include_pad, dy, dx);
}
template <class T>
void adaptive_avgpool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  if (!run_float_kernel<T>([&](auto k) { k.adaptive_avgpool2d_forward(g, x, y); }))
    generic::adaptive_avgpool2d_forward(g, x, y);
}
template <class T>
void adaptive_avgpool2d_backward(const Pool2dGeometry& g, const T* dy, T* dx) {
  if (!run_float_kernel<T>([&](auto k) { k.adaptive_avgpool2d_backward(g, dy, dx); }))
    generic::adaptive_avgpool2d_backward(g, dy, dx);
}

}  // namespace rescnn::cpu
