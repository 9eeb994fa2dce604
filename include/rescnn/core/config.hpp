// rescnn/core/config.hpp — what this translation unit is built with.
//
// RESCNN_WITH_CUDA is 1 when the CUDA backend is compiled in: the macro
// RESCNN_CUDA is set (the rescnn::cuda CMake target sets it for CUDA sources)
// and nvcc compiles the translation unit, since the backend's kernels are
// `__global__` functions in headers. Host-only sources of a CUDA project see
// RESCNN_WITH_CUDA == 0 and the CPU backend only.
#pragma once

#if defined(RESCNN_CUDA) && RESCNN_CUDA
#if !defined(__CUDACC__)
#error \
    "rescnn: RESCNN_CUDA is set, so this translation unit must be compiled by nvcc (a .cu file, or LANGUAGE CUDA in CMake)"
#endif
#define RESCNN_WITH_CUDA 1
#else
#define RESCNN_WITH_CUDA 0
#endif

// Small element-wise functions (an optimizer's update of one element, say)
// are written once and called from CPU loops and from CUDA kernels.
#if defined(__CUDACC__)
#define RESCNN_HOST_DEVICE __host__ __device__
#else
#define RESCNN_HOST_DEVICE
#endif
