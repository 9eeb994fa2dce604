// tests/support/conv_cases.hpp — the convolution geometries the kernel
// tests (test_gemm: float, test_bf16: bf16) run every CPU path with: output
// tiles that straddle samples, strided and dilated kernels, groups, padding
// beyond the kernel, deep and wide products, and the Winograd shapes.
#pragma once

#include <vector>

#include "rescnn/ops/conv2d.hpp"

namespace rescnn::testing {

// One convolution geometry of the kernel tests.
struct ConvCase {
  const char* name;
  Shape input, weight;
  ops::Conv2dParams params;
};

// Names starting "Winograd" take Winograd in float (test_gemm checks that).
inline std::vector<ConvCase> kernel_conv_cases() {
  return {
      // Output planes of 49, 16, 4 and 1 positions: 48-column tiles straddle samples.
      {"3x3 pad 1 on 7x7 (tiles straddle samples)", {9, 12, 7, 7}, {24, 12, 3, 3}, {1, 1, 1, 1}},
      {"3x3 pad 1 on 4x4", {13, 8, 4, 4}, {16, 8, 3, 3}, {1, 1, 1, 1}},
      {"3x3 pad 1 on 1x1", {50, 32, 1, 1}, {16, 32, 3, 3}, {1, 1, 1, 1}},
      {"3x3 pad 1 on 24x24, deep (K > 256)", {3, 40, 24, 24}, {12, 40, 3, 3}, {1, 1, 1, 1}},
      {"3x3 stride 2 pad 1 (strided input gradient)", {4, 8, 13, 11}, {12, 8, 3, 3}, {2, 1, 1, 1}},
      {"1x1 stride 2 (projection shortcut)", {4, 16, 9, 9}, {32, 16, 1, 1}, {2, 0, 1, 1}},
      {"1x1 stride 1", {5, 16, 6, 6}, {8, 16, 1, 1}, {1, 0, 1, 1}},
      {"1x1 pad 1 (padding beyond the kernel)", {2, 4, 5, 5}, {6, 4, 1, 1}, {1, 1, 1, 1}},
      {"7x7 stride 2 pad 3 stem", {3, 1, 28, 28}, {64, 1, 7, 7}, {2, 3, 1, 1}},
      {"dilation 2", {2, 6, 12, 10}, {8, 6, 3, 3}, {1, 2, 2, 1}},
      {"groups 4", {3, 16, 8, 8}, {16, 4, 3, 3}, {1, 1, 1, 4}},
      {"asymmetric kernel, stride and padding", {2, 4, 9, 11}, {6, 4, 3, 5}, {Size2(2, 1), Size2(1, 2), 1, 1}},
      {"many output channels (M > 128 rows)", {2, 8, 6, 6}, {136, 8, 3, 3}, {1, 1, 1, 1}},
      // Winograd F(2x2, 3x3) (winograd.hpp): forward and the stride-1 input gradient.
      {"Winograd: 3x3 pad 1 on 24x24", {3, 16, 24, 24}, {24, 16, 3, 3}, {1, 1, 1, 1}},
      {"Winograd: 4x4 plane (2x2 tiles, most taps padding)", {13, 16, 4, 4}, {16, 16, 3, 3}, {1, 1, 1, 1}},
      {"Winograd: odd plane 7x9 (tiles overhang the edges)", {5, 16, 7, 9}, {16, 16, 3, 3}, {1, 1, 1, 1}},
      {"Winograd: pad 0", {2, 20, 10, 8}, {18, 20, 3, 3}, {1, 0, 1, 1}},
      {"Winograd: pad 2 (windows entirely in the padding)", {2, 16, 6, 7}, {16, 16, 3, 3}, {1, 2, 1, 1}},
      {"Winograd: asymmetric padding", {2, 16, 8, 8}, {16, 16, 3, 3}, {1, Size2(1, 0), 1, 1}},
      {"Winograd: deep (C > 256) and wide (OC > 128)", {2, 272, 6, 6}, {136, 272, 3, 3}, {1, 1, 1, 1}},
      {"Winograd: many chunks of tiles across samples", {40, 16, 12, 12}, {16, 16, 3, 3}, {1, 1, 1, 1}},
      // Tile rows of 8 tiles or more take the row-wise transforms: rows longer
      // than one vector (17 tiles), odd sizes, a chunk boundary mid-row.
      {"Winograd rows: 35x33 (17 tiles a row, chunk ends mid-row)", {2, 16, 35, 33}, {16, 16, 3, 3}, {1, 1, 1, 1}},
      {"Winograd rows: pad 0, 16 columns", {3, 24, 20, 18}, {16, 24, 3, 3}, {1, 0, 1, 1}},
      {"Winograd rows: pad 2, odd plane", {2, 16, 13, 15}, {20, 16, 3, 3}, {1, 2, 1, 1}},
      // Rows with padding (h, w) unequal: a transform that takes one for the
      // other reads the wrong columns (forward: (1, 0) and (0, 2); the input
      // gradient runs with (1, 2) and (2, 0)).
      {"Winograd rows: asymmetric padding (1, 0), 9 tiles a row",
       {2, 16, 18, 20},
       {16, 16, 3, 3},
       {1, Size2(1, 0), 1, 1}},
      {"Winograd rows: asymmetric padding (0, 2), 11 tiles a row",
       {2, 16, 18, 18},
       {16, 16, 3, 3},
       {1, Size2(0, 2), 1, 1}},
  };
}

}  // namespace rescnn::testing
