// rescnn/backend/cpu/level_prelude.hpp — what the level kernels
// (kernels/*.inc) use, included before any level's target region so that
// none of it is compiled with a level's target: the standard library,
// the intrinsics, and rescnn's helpers shared with the generic level.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "rescnn/backend/cpu/im2col.hpp"
#include "rescnn/backend/cpu/isa.hpp"
#include "rescnn/backend/cpu/scratch.hpp"
#include "rescnn/backend/geometry.hpp"
#include "rescnn/core/half.hpp"
#include "rescnn/core/shape.hpp"
