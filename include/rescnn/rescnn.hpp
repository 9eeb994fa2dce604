// rescnn/rescnn.hpp — everything: include this one header.
#pragma once

#include "rescnn/backend/cpu/parallel.hpp"
#include "rescnn/backend/precision_support.hpp"
#include "rescnn/core/error.hpp"
#include "rescnn/core/precision.hpp"
#include "rescnn/core/rng.hpp"
#include "rescnn/core/shape.hpp"
#include "rescnn/core/tensor.hpp"
#include "rescnn/data/data.hpp"
#include "rescnn/io/checkpoint.hpp"
#include "rescnn/io/onnx.hpp"
#include "rescnn/io/state_dict.hpp"
#include "rescnn/models/models.hpp"
#include "rescnn/nn/nn.hpp"
#include "rescnn/optim/optim.hpp"
#include "rescnn/train/train.hpp"
