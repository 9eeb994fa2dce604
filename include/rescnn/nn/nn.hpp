// rescnn/nn/nn.hpp — all layers.
#pragma once

#include "rescnn/nn/activation.hpp"
#include "rescnn/nn/batchnorm2d.hpp"
#include "rescnn/nn/blocks.hpp"
#include "rescnn/nn/conv2d.hpp"
#include "rescnn/nn/fuse.hpp"
#include "rescnn/nn/init.hpp"
#include "rescnn/nn/linear.hpp"
#include "rescnn/nn/loss.hpp"
#include "rescnn/nn/module.hpp"
#include "rescnn/nn/pooling.hpp"
#include "rescnn/nn/reshape.hpp"
#include "rescnn/nn/residual.hpp"
#include "rescnn/nn/sequential.hpp"
