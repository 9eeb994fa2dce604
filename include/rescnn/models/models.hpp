// rescnn/models/models.hpp — the model family and its tools.
#pragma once

#include "rescnn/models/d2l_resnet.hpp"
#include "rescnn/models/registry.hpp"
#include "rescnn/models/resnet.hpp"
#include "rescnn/models/summary.hpp"
#include "rescnn/models/transfer.hpp"
