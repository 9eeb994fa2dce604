// tests/support/reference_conv.hpp — the textbook convolution, seven nested
// loops, used only as an independent reference in tests.
#pragma once

#include "rescnn/core/tensor.hpp"
#include "rescnn/ops/conv2d.hpp"

namespace rescnn::testing {

inline Tensor<double> reference_conv2d(const Tensor<double>& x, const Tensor<double>& w, const Tensor<double>* bias,
                                       const ops::Conv2dParams& p) {
  const Conv2dGeometry g = ops::conv2d_geometry(x.shape(), w.shape(), p);
  auto y = Tensor<double>::zeros(g.output_shape());
  const index_t cpg = g.in_channels_per_group(), ocpg = g.out_channels_per_group();
  for (index_t n = 0; n < g.batch; ++n)
    for (index_t o = 0; o < g.out_channels; ++o) {
      const index_t grp = o / ocpg;
      for (index_t oh = 0; oh < g.out_h; ++oh)
        for (index_t ow = 0; ow < g.out_w; ++ow) {
          double acc = bias ? (*bias)(o) : 0.0;
          for (index_t c = 0; c < cpg; ++c)
            for (index_t i = 0; i < g.kernel.h; ++i)
              for (index_t j = 0; j < g.kernel.w; ++j) {
                const index_t ih = oh * p.stride.h - p.padding.h + i * p.dilation.h;
                const index_t iw = ow * p.stride.w - p.padding.w + j * p.dilation.w;
                if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) continue;
                acc += x(n, grp * cpg + c, ih, iw) * w(o, c, i, j);
              }
          y(n, o, oh, ow) = acc;
        }
    }
  return y;
}

}  // namespace rescnn::testing
