// rescnn/dist/sync_batchnorm.hpp — SyncBatchNorm: BatchNorm2d whose
// training statistics cover every rank (ops/sync_batchnorm.hpp).
//
//   rescnn::dist::convert_sync_batchnorm(*model, world);   // torch.nn.SyncBatchNorm.convert_sync_batchnorm
//
// Each BatchNorm2d of the model keeps its parameters, buffers and names (so
// checkpoints load either way) and prints as SyncBatchNorm. With N ranks
// each holding B/N images, training then computes exactly what one process
// with B images computes. In a one-process world it changes nothing.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "rescnn/dist/process_group.hpp"
#include "rescnn/nn/batchnorm2d.hpp"
#include "rescnn/nn/module.hpp"

namespace rescnn::dist {

// The sum over the group's ranks of a host vector of doubles, staged
// through device memory for a group that reduces device memory (NCCL).
template <class D>
ops::AllreduceSum host_allreduce_sum(std::shared_ptr<ProcessGroup> group) {
  check<DistError>(group->memory() == MemoryKind::host || !is_cpu_v<D>, "rescnn::dist: a ", group->backend(),
                   " group reduces device memory; this model is on the CPU (use the MPI group)");
  return [group = std::move(group)](std::span<double> values) {
    if (group->size() == 1) return;
    if (group->memory() == MemoryKind::host || is_cpu_v<D>) {
      group->allreduce_sum(values);
      return;
    }
    auto device = Tensor<double, D>::from_vector({static_cast<index_t>(values.size())},
                                                 std::vector<double>(values.begin(), values.end()));
    group->allreduce_sum_async(device.data(), values.size(), DType::f64)->wait();
    const std::vector<double> back = device.to_vector();
    std::copy(back.begin(), back.end(), values.begin());
  };
}

namespace detail {
template <class T, class D>
std::size_t convert_sync_batchnorm(nn::Module<T, D>& module, const ops::AllreduceSum& allreduce) {
  std::size_t n = 0;
  if (auto* bn = dynamic_cast<nn::BatchNorm2d<T, D>*>(&module)) {
    bn->synchronize_statistics(allreduce);
    ++n;
  }
  for (const auto& [name, child] : module.named_children()) n += convert_sync_batchnorm(*child, allreduce);
  return n;
}
}  // namespace detail

// Synchronises every BatchNorm2d of `model` over `group`; returns how many
// (none in a one-process world, where it changes nothing).
template <class T, class D>
std::size_t convert_sync_batchnorm(nn::Module<T, D>& model, std::shared_ptr<ProcessGroup> group) {
  check<DistError>(group != nullptr, "convert_sync_batchnorm: the process group is null");
  if (group->size() == 1) return 0;  // nothing to synchronise: BatchNorm2d stays exactly itself
  return detail::convert_sync_batchnorm(model, host_allreduce_sum<D>(std::move(group)));
}

}  // namespace rescnn::dist
