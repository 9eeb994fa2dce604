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
// PyTorch: a NaN must propagate, not be skipped. For each output the window
// is visited in row-major order and a value v is taken when the output has
// none yet, or when !(v <= best) and best is not NaN: the first maximum
// wins ties, and no isnan call is needed.
//
// The loops run tap by tap over a whole output row (outputs of one row are
// independent), so the compiler vectorises the row; visiting one output's
// window at a time made every step wait on the previous comparison.
template <class T>
void maxpool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  const index_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  // Output columns [lo, hi) whose input column for kernel column j is in bounds.
  const auto columns_inside = [&](index_t j, index_t& lo, index_t& hi) {
    const index_t off = j * g.dilation.w - g.padding.w;  // iw = ow * stride + off
    lo = off >= 0 ? 0 : (-off + g.stride.w - 1) / g.stride.w;
    hi = g.in_w - off <= 0 ? 0 : std::min(g.out_w, (g.in_w - 1 - off) / g.stride.w + 1);
    if (hi < lo) hi = lo;
  };
#pragma omp parallel for schedule(static)
  for (index_t nc = 0; nc < g.batch * g.channels; ++nc) {
    const T* p = x + nc * in_plane;
    for (index_t oh = 0; oh < g.out_h; ++oh) {
      T* best = y + nc * out_plane + oh * g.out_w;
      std::int32_t* at = argmax + nc * out_plane + oh * g.out_w;
      for (index_t ow = 0; ow < g.out_w; ++ow) {
        best[ow] = -std::numeric_limits<T>::infinity();
        at[ow] = -1;
      }
      for (index_t i = 0; i < g.kernel.h; ++i) {
        const index_t ih = oh * g.stride.h - g.padding.h + i * g.dilation.h;
        if (ih < 0 || ih >= g.in_h) continue;
        const T* row = p + ih * g.in_w;
        for (index_t j = 0; j < g.kernel.w; ++j) {
          index_t lo, hi;
          columns_inside(j, lo, hi);
          const index_t off = j * g.dilation.w - g.padding.w;
          const auto row_at = static_cast<std::int32_t>(ih * g.in_w + off);
#pragma omp simd
          for (index_t ow = lo; ow < hi; ++ow) {
            const T v = row[ow * g.stride.w + off];
            const bool take = at[ow] < 0 || (!(v <= best[ow]) && best[ow] == best[ow]);
            best[ow] = take ? v : best[ow];
            at[ow] = take ? row_at + static_cast<std::int32_t>(ow * g.stride.w) : at[ow];
          }
        }
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
