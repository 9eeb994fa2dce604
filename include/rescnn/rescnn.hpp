// rescnn/rescnn.hpp — umbrella header: includes the whole public API.
//
// For now only the core (Tensor and the random generator); further modules
// (ops, nn, models, data, optim, io, train) are added here as they land.
#pragma once

#include "rescnn/core/rng.hpp"
#include "rescnn/core/tensor.hpp"
