// rescnn/backend/cpu/parallel.hpp — the CPU's thread count, for OpenMP and
// Eigen together.
//
// Our kernels parallelise their outer loops with OpenMP and call Eigen's GEMM
// outside those regions, where Eigen uses its own OpenMP threads. Eigen skips
// its parallelisation when called from inside a parallel region, so the two
// never nest. set_num_threads() sets both to the same count.
#pragma once

#include <Eigen/Core>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "rescnn/core/error.hpp"

namespace rescnn {

inline int get_num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline void set_num_threads(int n) {
  check(n >= 1, "set_num_threads: thread count must be at least 1, got ", n);
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

}  // namespace rescnn
