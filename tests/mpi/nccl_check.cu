// nccl_check — the NCCL process group and DDP on CUDA tensors, under
// mpirun with one GPU per rank (tests/mpi/CMakeLists.txt, built with
// -DRESCNN_CUDA=ON -DRESCNN_NCCL=ON):
//
//   mpirun -np N nccl_check
//
// 1. allreduce, broadcast, allgather and barrier on device memory give what
//    their definitions say (sums of rank-dependent values, rank 0's data,
//    rank order);
// 2. DDP with SyncBatchNorm on CUDA: the averaged gradient equals the mean
//    of the per-rank gradients of the same model computed alone
//    (gathered over NCCL), within 1e-5;
// 3. the Trainer's host-side sums over a device group (host_allreduce_sum).
// With one GPU it runs as one rank (NCCL allows no two ranks on one
// device), which still initialises NCCL and runs every call. Without a CUDA
// device it prints "SKIPPED" and exits 77.
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include <rescnn/dist/dist.hpp>
#include <rescnn/rescnn.hpp>

namespace rn = rescnn;

namespace {

void expect(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("check failed: " + what);
}

void collectives(rn::dist::ProcessGroup& g) {
  const int r = g.rank(), n = g.size();
  auto t = rn::Tensor<float, rn::Cuda>::from_vector({3}, {float(r + 1), float(2 * r), 1.0f});
  g.allreduce_sum_async(t.data(), 3, rn::dist::DType::f32)->wait();
  const auto sum = t.to_vector();
  expect(sum[0] == float(n * (n + 1) / 2) && sum[1] == float(n * (n - 1)) && sum[2] == float(n), "allreduce sums");

  auto b = rn::Tensor<double, rn::Cuda>::from_vector({2}, {double(r) + 0.5, double(-r)});
  g.broadcast(b.data(), 2, rn::dist::DType::f64, 0);
  expect(b.to_vector() == std::vector<double>{0.5, 0.0}, "broadcast carries rank 0's values");

  auto in = rn::Tensor<float, rn::Cuda>::from_vector({2}, {float(r), float(10 * r)});
  auto out = rn::Tensor<float, rn::Cuda>::zeros({2 * n});
  g.allgather(in.data(), out.data(), 2, rn::dist::DType::f32);
  const auto all = out.to_vector();
  for (int k = 0; k < n; ++k) expect(all[2 * k] == float(k) && all[2 * k + 1] == float(10 * k), "allgather order");
  g.barrier();
}

void ddp_gradient_mean(const std::shared_ptr<rn::dist::ProcessGroup>& g) {
  const int r = g->rank(), n = g->size();
  const auto make = [] {
    rn::manual_seed(4);
    return rn::models::create<float, rn::Cuda>("d2l_resnet18", {.num_classes = 10, .in_channels = 1});
  };
  auto alone = make(), local = make();
  alone->eval();  // batch-independent BatchNorm: each rank's gradient is its own
  local->eval();
  rn::dist::DistributedDataParallel<float, rn::Cuda> ddp(local, g);
  rn::manual_seed(100 + static_cast<std::uint64_t>(r));
  const auto x = rn::Tensor<float>::normal({4, 1, 28, 28}, 0, 1).to<rn::Cuda>();
  const auto y = rn::Tensor<std::int64_t>::from_vector({4}, {r % 10, 1, 2, 3}).to<rn::Cuda>();
  rn::nn::CrossEntropyLoss<float, rn::Cuda> l1, l2;
  (void)l1(alone->forward(x), y);
  alone->backward(l1.backward());
  (void)l2(ddp.forward(x), y);
  ddp.backward(l2.backward());
  double worst = 0;
  auto pa = alone->named_parameters(), pd = local->named_parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const auto& mine = pa[i].second->grad;
    const auto count = static_cast<std::size_t>(mine.numel());
    auto gathered = rn::Tensor<float, rn::Cuda>::zeros({static_cast<rn::index_t>(count) * n});
    g->allgather(mine.data(), gathered.data(), count, rn::dist::DType::f32);
    const auto all = gathered.to_vector();
    const auto reduced = pd[i].second->grad.to_vector();
    for (std::size_t k = 0; k < count; ++k) {
      double mean = 0;
      for (int q = 0; q < n; ++q) mean += all[static_cast<std::size_t>(q) * count + k];
      mean /= n;
      worst = std::max(worst, std::abs(reduced[k] - mean) / std::max(std::abs(mean), 1e-3));
    }
  }
  expect(worst <= 1e-5, "DDP's gradient differs from the mean of the ranks' by " + std::to_string(worst));
  if (g->is_main()) std::printf("DDP gradient mean over %d GPU rank(s): worst %.2e\n", n, worst);
}

void host_sums(const std::shared_ptr<rn::dist::ProcessGroup>& g) {
  std::vector<double> v{1.0, double(g->rank())};
  rn::dist::host_allreduce_sum<rn::Cuda>(g)(v);
  const int n = g->size();
  expect(v[0] == n && v[1] == n * (n - 1) / 2.0, "host sums staged through the device");
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return 77;
  }
  std::shared_ptr<rn::dist::ProcessGroup> g;
  try {
    g = rn::dist::make_nccl_group();
    collectives(*g);
    ddp_gradient_mean(g);
    host_sums(g);
    if (g->is_main()) std::printf("PASS nccl: %d rank(s), backend %s\n", g->size(), g->backend().c_str());
    return 0;
  } catch (const std::exception& e) {
    if (g && g->size() > 1) g->abort_job(e.what());
    std::fprintf(stderr, "nccl_check: %s\n", e.what());
    return 1;
  }
}
