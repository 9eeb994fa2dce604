// rescnn::dist in one process (no MPI needed): the distributed sampler's
// shards, SyncBatchNorm against BatchNorm2d, DDP in a world of one, and the
// errors for bad ranks and groups. The multi-process tests are tests/mpi/.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <set>
#include <span>
#include <vector>

#include "rescnn/data/distributed_sampler.hpp"
#include "rescnn/dist/ddp.hpp"
#include "rescnn/dist/init.hpp"
#include "rescnn/dist/nccl.hpp"
#include "rescnn/dist/sync_batchnorm.hpp"
#include "rescnn/nn/batchnorm2d.hpp"

using namespace rescnn;

TEST_CASE("Training shards are disjoint, equal, and tile the global batches of one process") {
  for (std::int64_t n : {1, 7, 45, 67, 100}) {
    for (std::int64_t world : {1, 2, 3, 4}) {
      for (std::int64_t batch : {1, 4, 5}) {
        std::vector<std::int64_t> order(static_cast<std::size_t>(n));
        std::iota(order.begin(), order.end(), 0);
        std::reverse(order.begin(), order.end());
        std::vector<std::vector<std::vector<std::int64_t>>> shards;
        for (std::int64_t r = 0; r < world; ++r) shards.push_back(data::shard_training_batches(order, batch, world, r));
        const std::int64_t used = n - n % world;
        std::set<std::int64_t> seen;
        for (std::size_t k = 0; k < shards[0].size(); ++k) {
          // Step k of all ranks, rank after rank, is global batch k of one process.
          std::vector<std::int64_t> step;
          for (std::int64_t r = 0; r < world; ++r) {
            REQUIRE(shards[static_cast<std::size_t>(r)].size() == shards[0].size());  // equal step counts
            const auto& b = shards[static_cast<std::size_t>(r)][k];
            REQUIRE(b.size() == shards[0][k].size());  // equal batch sizes
            step.insert(step.end(), b.begin(), b.end());
          }
          const auto first = static_cast<std::ptrdiff_t>(k) * batch * world;
          REQUIRE(step == std::vector<std::int64_t>(order.begin() + first,
                                                    order.begin() + first + static_cast<std::ptrdiff_t>(step.size())));
          for (auto s : step) REQUIRE(seen.insert(s).second);  // no sample twice
        }
        CHECK(static_cast<std::int64_t>(seen.size()) == used);  // only size mod world dropped
      }
    }
  }
}

TEST_CASE("drop_last drops a partial global batch; evaluation shards cover everything once") {
  std::vector<std::int64_t> order(10);
  std::iota(order.begin(), order.end(), 0);
  CHECK(data::shard_training_batches(order, 2, 2, 0).size() == 3);  // 4 + 4 + 2
  CHECK(data::shard_training_batches(order, 2, 2, 0, true).size() == 2);
  std::int64_t covered = 0, previous_end = 0;
  for (std::int64_t r = 0; r < 3; ++r) {
    const auto [begin, end] = data::shard_evaluation(10, 3, r);
    CHECK(begin == previous_end);
    covered += end - begin;
    previous_end = end;
  }
  CHECK(covered == 10);
  CHECK_THROWS_WITH(data::shard_training_batches(order, 2, 2, 2), Catch::Contains("rank 2 is outside a world of 2"));
  CHECK_THROWS_WITH(data::shard_evaluation(10, 0, 0), Catch::Contains("outside a world of 0"));
}

TEST_CASE("SyncBatchNorm in a one-process world computes BatchNorm2d's forward, backward and running statistics") {
  Generator gen(3);
  nn::BatchNorm2d<float> plain(5), synced(5);
  // convert_sync_batchnorm leaves a one-process model exactly as it is...
  CHECK(dist::convert_sync_batchnorm(synced, std::make_shared<dist::LocalProcessGroup>()) == 0);
  CHECK(synced.type_name() == "BatchNorm2d");
  // ...so the synchronised path is checked with an identity allreduce: one
  // rank's sums are the global ones.
  synced.synchronize_statistics([](std::span<double>) {});
  CHECK(synced.type_name() == "SyncBatchNorm");
  CHECK(plain.type_name() == "BatchNorm2d");
  plain.weight.value = Tensor<float>::uniform({5}, 0.5, 1.5, gen);
  synced.weight.value = plain.weight.value.clone();
  const auto x = Tensor<float>::normal({4, 5, 3, 3}, 1.5, 2.0, gen);
  const auto dy = Tensor<float>::normal({4, 5, 3, 3}, 0, 1, gen);
  const auto y1 = plain.forward(x).to_vector(), y2 = synced.forward(x).to_vector();
  const auto dx1 = plain.backward(dy).to_vector(), dx2 = synced.backward(dy).to_vector();
  for (std::size_t i = 0; i < y1.size(); ++i) {
    REQUIRE(y2[i] == Approx(y1[i]).margin(1e-5));
    REQUIRE(dx2[i] == Approx(dx1[i]).margin(1e-5));
  }
  const auto check_close = [](const Tensor<float>& a, const Tensor<float>& b) {
    const auto va = a.to_vector(), vb = b.to_vector();
    for (std::size_t i = 0; i < va.size(); ++i) REQUIRE(va[i] == Approx(vb[i]).margin(1e-5));
  };
  check_close(synced.weight.grad, plain.weight.grad);
  check_close(synced.bias.grad, plain.bias.grad);
  check_close(synced.running_mean, plain.running_mean);
  check_close(synced.running_var, plain.running_var);
  // Eval mode does not communicate: the running statistics, as BatchNorm2d.
  plain.eval();
  synced.eval();
  check_close(synced.forward(x), plain.forward(x));
}

TEST_CASE("DDP in a one-process world leaves gradients as they are and views them in its buckets") {
  Generator gen(5);
  auto bn = std::make_shared<nn::BatchNorm2d<float>>(6);
  nn::BatchNorm2d<float> alone(6);
  dist::DistributedDataParallel<float> ddp(bn, std::make_shared<dist::LocalProcessGroup>());
  const auto x = Tensor<float>::normal({2, 6, 2, 2}, 0, 1, gen), dy = Tensor<float>::normal({2, 6, 2, 2}, 0, 1, gen);
  (void)ddp.forward(x);
  (void)ddp.backward(dy);
  (void)alone.forward(x);
  (void)alone.backward(dy);
  CHECK(bn->weight.grad.to_vector() == alone.weight.grad.to_vector());
  CHECK(ddp.named_parameters().front().first == "module.weight");  // PyTorch's DDP names
  CHECK(ddp.reducer().num_buckets() == 1);
  CHECK(ddp.reducer().bucket_parameter_names(0) == std::vector<std::string>{"bias", "weight"});  // reverse order
}

TEST_CASE("Bad process groups and options are named") {
  auto bn = std::make_shared<nn::BatchNorm2d<float>>(2);
  CHECK_THROWS_WITH(dist::DistributedDataParallel<float>(bn, nullptr), Catch::Contains("process group is null"));
  CHECK_THROWS_WITH(
      dist::DistributedDataParallel<float>(bn, std::make_shared<dist::LocalProcessGroup>(), {.bucket_cap_mb = 0}),
      Catch::Contains("bucket_cap_mb=0"));
  dist::LocalProcessGroup local;
  float v = 1;
  CHECK_THROWS_WITH(local.broadcast(&v, 1, dist::DType::f32, 1), Catch::Contains("root rank 1 does not exist"));
  CHECK(dist::init()->size() >= 1);
  // This program does not link rescnn::mpi (nor NCCL): the groups say so.
  CHECK_THROWS_WITH(dist::make_mpi_group(), Catch::Contains("built without MPI"));
  CHECK_THROWS_WITH(dist::make_nccl_group(), Catch::Contains("built without NCCL"));
}
