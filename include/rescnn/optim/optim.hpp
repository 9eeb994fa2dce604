// rescnn/optim/optim.hpp — all optimizers and learning-rate schedules.
#pragma once

#include "rescnn/optim/adam.hpp"
#include "rescnn/optim/ema.hpp"
#include "rescnn/optim/grad_scaler.hpp"
#include "rescnn/optim/make_schedule.hpp"
#include "rescnn/optim/optimizer.hpp"
#include "rescnn/optim/param_groups.hpp"
#include "rescnn/optim/schedule.hpp"
#include "rescnn/optim/sgd.hpp"
