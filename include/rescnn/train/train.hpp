// rescnn/train/train.hpp — the trainer and its reporting.
#pragma once

#include "rescnn/train/metrics.hpp"
#include "rescnn/train/plot.hpp"
#include "rescnn/train/progress.hpp"
#include "rescnn/train/report.hpp"
#include "rescnn/train/trainer.hpp"
