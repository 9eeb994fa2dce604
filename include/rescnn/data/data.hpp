// rescnn/data/data.hpp — everything under rescnn/data: the IDX reader,
// Fashion-MNIST, image transforms and the DataLoader.
#pragma once

#include "rescnn/data/fashion_mnist.hpp"
#include "rescnn/data/fashion_mnist_data.hpp"
#include "rescnn/data/idx.hpp"
#include "rescnn/data/loader.hpp"
#include "rescnn/data/split.hpp"
#include "rescnn/data/transforms.hpp"
