// rescnn/dist/dist.hpp — data-parallel training over processes and hosts.
#pragma once

#include "rescnn/dist/ddp.hpp"
#include "rescnn/dist/init.hpp"
#include "rescnn/dist/mpi.hpp"
#include "rescnn/dist/nccl.hpp"
#include "rescnn/dist/process_group.hpp"
#include "rescnn/dist/sync_batchnorm.hpp"
