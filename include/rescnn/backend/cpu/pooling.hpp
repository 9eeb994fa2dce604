// rescnn/backend/cpu/pooling.hpp — max, average and adaptive average pooling.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "rescnn/backend/geometry.hpp"

namespace rescnn::cpu {

// Max pooling; records the flat input index (within its plane) of each
// maximum for backward. Padding counts as -infinity, as in PyTorch.
//
// A NaN wins and then stays (nothing compares greater than it), as in
// PyTorch: a NaN must propagate, not be skipped. With `best` the first
// in-bounds value of the window, that rule is "take v when !(v <= best) and
// best is not NaN", which needs no isnan call and no branch on the window's
// position: each output's in-bounds window rows and columns are computed
// once, before its loop.
template <class T>
void maxpool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  const index_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  // The kernel rows (columns) [lo, hi) whose input row (column) is in bounds.
  const auto taps_inside = [](index_t start, index_t kernel, index_t dilation, index_t extent, index_t& lo,
                              index_t& hi) {
    lo = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
    hi = start + (kernel - 1) * dilation < extent ? kernel : (extent - 1 - start) / dilation + 1;
    if (hi < lo) hi = lo;
  };
#pragma omp parallel for schedule(static)
  for (index_t nc = 0; nc < g.batch * g.channels; ++nc) {
    const T* p = x + nc * in_plane;
    for (index_t oh = 0; oh < g.out_h; ++oh) {
      const index_t h0 = oh * g.stride.h - g.padding.h;
      index_t i_lo, i_hi;
      taps_inside(h0, g.kernel.h, g.dilation.h, g.in_h, i_lo, i_hi);
      for (index_t ow = 0; ow < g.out_w; ++ow) {
        const index_t w0 = ow * g.stride.w - g.padding.w;
        index_t j_lo, j_hi;
        taps_inside(w0, g.kernel.w, g.dilation.w, g.in_w, j_lo, j_hi);
        T best = -std::numeric_limits<T>::infinity();
        index_t best_at = -1;
        if (i_lo < i_hi && j_lo < j_hi) {
          best_at = (h0 + i_lo * g.dilation.h) * g.in_w + w0 + j_lo * g.dilation.w;
          best = p[best_at];
          for (index_t i = i_lo; i < i_hi; ++i) {
            const index_t row = (h0 + i * g.dilation.h) * g.in_w + w0;
            for (index_t j = j_lo; j < j_hi; ++j) {
              const index_t at = row + j * g.dilation.w;
              const T v = p[at];
              const bool take = !(v <= best) && best == best;
              best = take ? v : best;
              best_at = take ? at : best_at;
            }
          }
        }
        const index_t o = nc * out_plane + oh * g.out_w + ow;
        y[o] = best;
        argmax[o] = static_cast<std::int32_t>(best_at);
      }
    }
  }
}

template <class T>
void maxpool2d_backward(const Pool2dGeometry& g, const T* dy, const std::int32_t* argmax, T* dx) {
  const index_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static)
  for (index_t nc = 0; nc < g.batch * g.channels; ++nc) {
    T* q = dx + nc * in_plane;
    std::fill(q, q + in_plane, T(0));
    for (index_t o = 0; o < out_plane; ++o) {
      const std::int32_t at = argmax[nc * out_plane + o];
      if (at >= 0) q[at] += dy[nc * out_plane + o];
    }
  }
}

// Average pooling with count_include_pad (PyTorch's default): every window
// divides by kh*kw, padding counting as zeros. With count_include_pad off,
// only the in-bounds elements are counted.
template <class T>
index_t avgpool_divisor(const Pool2dGeometry& g, index_t oh, index_t ow, bool count_include_pad) {
  const index_t h0 = oh * g.stride.h - g.padding.h, w0 = ow * g.stride.w - g.padding.w;
  if (count_include_pad) {
    const index_t h1 = std::min(h0 + g.kernel.h, g.in_h + g.padding.h);
    const index_t w1 = std::min(w0 + g.kernel.w, g.in_w + g.padding.w);
    return (h1 - h0) * (w1 - w0);
  }
  const index_t h1 = std::min(h0 + g.kernel.h, g.in_h), w1 = std::min(w0 + g.kernel.w, g.in_w);
  return (h1 - std::max<index_t>(h0, 0)) * (w1 - std::max<index_t>(w0, 0));
}

template <class T>
void avgpool2d_forward(const Pool2dGeometry& g, bool count_include_pad, const T* x, T* y) {
  const index_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static)
  for (index_t nc = 0; nc < g.batch * g.channels; ++nc) {
    const T* p = x + nc * in_plane;
    for (index_t oh = 0; oh < g.out_h; ++oh) {
      for (index_t ow = 0; ow < g.out_w; ++ow) {
        const index_t h0 = oh * g.stride.h - g.padding.h, w0 = ow * g.stride.w - g.padding.w;
        T sum = 0;
        for (index_t ih = std::max<index_t>(h0, 0); ih < std::min(h0 + g.kernel.h, g.in_h); ++ih)
          for (index_t iw = std::max<index_t>(w0, 0); iw < std::min(w0 + g.kernel.w, g.in_w); ++iw)
            sum += p[ih * g.in_w + iw];
        y[nc * out_plane + oh * g.out_w + ow] = sum / static_cast<T>(avgpool_divisor<T>(g, oh, ow, count_include_pad));
      }
    }
  }
}

template <class T>
void avgpool2d_backward(const Pool2dGeometry& g, bool count_include_pad, const T* dy, T* dx) {
  const index_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static)
  for (index_t nc = 0; nc < g.batch * g.channels; ++nc) {
    T* q = dx + nc * in_plane;
    std::fill(q, q + in_plane, T(0));
    for (index_t oh = 0; oh < g.out_h; ++oh) {
      for (index_t ow = 0; ow < g.out_w; ++ow) {
        const index_t h0 = oh * g.stride.h - g.padding.h, w0 = ow * g.stride.w - g.padding.w;
        const T share = dy[nc * out_plane + oh * g.out_w + ow] /
                        static_cast<T>(avgpool_divisor<T>(g, oh, ow, count_include_pad));
        for (index_t ih = std::max<index_t>(h0, 0); ih < std::min(h0 + g.kernel.h, g.in_h); ++ih)
          for (index_t iw = std::max<index_t>(w0, 0); iw < std::min(w0 + g.kernel.w, g.in_w); ++iw)
            q[ih * g.in_w + iw] += share;
      }
    }
  }
}

// Adaptive average pooling (PyTorch's bin edges: floor(i*H/OH) to
// ceil((i+1)*H/OH)). Global average pooling is the 1x1 case.
inline index_t adaptive_start(index_t i, index_t out, index_t in) { return (i * in) / out; }
inline index_t adaptive_end(index_t i, index_t out, index_t in) { return ((i + 1) * in + out - 1) / out; }

template <class T>
void adaptive_avgpool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  const index_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static)
  for (index_t nc = 0; nc < g.batch * g.channels; ++nc) {
    const T* p = x + nc * in_plane;
    for (index_t oh = 0; oh < g.out_h; ++oh) {
      const index_t h0 = adaptive_start(oh, g.out_h, g.in_h), h1 = adaptive_end(oh, g.out_h, g.in_h);
      for (index_t ow = 0; ow < g.out_w; ++ow) {
        const index_t w0 = adaptive_start(ow, g.out_w, g.in_w), w1 = adaptive_end(ow, g.out_w, g.in_w);
        T sum = 0;
        for (index_t ih = h0; ih < h1; ++ih)
          for (index_t iw = w0; iw < w1; ++iw) sum += p[ih * g.in_w + iw];
        y[nc * out_plane + oh * g.out_w + ow] = sum / static_cast<T>((h1 - h0) * (w1 - w0));
      }
    }
  }
}

template <class T>
void adaptive_avgpool2d_backward(const Pool2dGeometry& g, const T* dy, T* dx) {
  const index_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static)
  for (index_t nc = 0; nc < g.batch * g.channels; ++nc) {
    T* q = dx + nc * in_plane;
    std::fill(q, q + in_plane, T(0));
    for (index_t oh = 0; oh < g.out_h; ++oh) {
      const index_t h0 = adaptive_start(oh, g.out_h, g.in_h), h1 = adaptive_end(oh, g.out_h, g.in_h);
      for (index_t ow = 0; ow < g.out_w; ++ow) {
        const index_t w0 = adaptive_start(ow, g.out_w, g.in_w), w1 = adaptive_end(ow, g.out_w, g.in_w);
        const T share = dy[nc * out_plane + oh * g.out_w + ow] / static_cast<T>((h1 - h0) * (w1 - w0));
        for (index_t ih = h0; ih < h1; ++ih)
          for (index_t iw = w0; iw < w1; ++iw) q[ih * g.in_w + iw] += share;
      }
    }
  }
}

}  // namespace rescnn::cpu
