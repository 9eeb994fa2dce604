// rescnn/data/distributed_sampler.hpp — which samples each rank of a
// data-parallel job takes (PyTorch's DistributedSampler, arranged so that
// N ranks reproduce one process).
//
// Training (shard_training_batches): the epoch's permutation is cut into
// global batches of batch_size * world samples, as one process with that
// batch would cut it, and rank r takes the r-th equal slice of each. So
// step k of N ranks together sees exactly step k of one process. The
// permutation's last (size mod world) samples are DROPPED, not padded, so
// every rank has the same number of samples and steps (collectives need
// equal step counts) and no sample counts twice; the dropped ones change
// every epoch with the permutation. The last global batch may be partial; its
// size is a multiple of the world size, split equally.
//
// Validation (shard_evaluation): contiguous, nearly equal slices of the
// whole set, nothing dropped or repeated; sums of loss and correct counts
// over the ranks then give exactly the single-process metrics.
//
// The DataLoader applies either rule (LoaderOptions::shard) to positions of
// its epoch order, so augmentation, keyed by the position, is the same
// whatever the number of ranks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "rescnn/core/error.hpp"

namespace rescnn::data {

inline void check_shard(std::int64_t rank, std::int64_t world) {
  check<ValueError>(world >= 1 && rank >= 0 && rank < world, "DistributedSampler: rank ", rank,
                    " is outside a world of ", world, " processes");
}

// Which of the two rules above a loader's shard follows.
enum class ShardMode { training, evaluation };

// The part of every epoch one process of a data-parallel job loads.
struct Shard {
  std::int64_t rank = 0;
  std::int64_t world = 1;  // 1: the whole epoch, exactly as without sharding
  ShardMode mode = ShardMode::training;
};

// Positions [begin, end) of one batch in its epoch's order.
struct PositionRange {
  std::int64_t begin = 0, end = 0;
  std::int64_t size() const { return end - begin; }
};

// This rank's training batches out of an epoch of `size` samples, as
// positions in the epoch's permutation; `batch_size` is the per-rank batch.
inline std::vector<PositionRange> training_batch_ranges(std::int64_t size, std::int64_t batch_size, std::int64_t world,
                                                        std::int64_t rank, bool drop_last = false) {
  check_shard(rank, world);
  check<ValueError>(batch_size >= 1, "DistributedSampler: batch_size ", batch_size, " must be at least 1");
  check<ValueError>(size >= 0, "DistributedSampler: size ", size, " is negative");
  const std::int64_t used = size - size % world;
  const std::int64_t global = batch_size * world;
  std::vector<PositionRange> batches;
  for (std::int64_t first = 0; first < used; first += global) {
    const std::int64_t len = std::min(global, used - first);
    if (drop_last && len < global) break;
    const std::int64_t share = len / world;  // len is a multiple of world
    batches.push_back({first + rank * share, first + (rank + 1) * share});
  }
  return batches;
}

// The samples of each of this rank's training batches, in order: `order`
// is the epoch's permutation, `batch_size` the per-rank batch.
inline std::vector<std::vector<std::int64_t>> shard_training_batches(std::span<const std::int64_t> order,
                                                                     std::int64_t batch_size, std::int64_t world,
                                                                     std::int64_t rank, bool drop_last = false) {
  std::vector<std::vector<std::int64_t>> batches;
  for (const PositionRange r :
       training_batch_ranges(static_cast<std::int64_t>(order.size()), batch_size, world, rank, drop_last))
    batches.emplace_back(order.begin() + r.begin, order.begin() + r.end);
  return batches;
}

// [begin, end) of the positions rank `rank` evaluates out of `size`.
inline std::pair<std::int64_t, std::int64_t> shard_evaluation(std::int64_t size, std::int64_t world,
                                                              std::int64_t rank) {
  check_shard(rank, world);
  return {size * rank / world, size * (rank + 1) / world};
}

// This rank's evaluation slice cut into batches of `batch_size` (the last
// one smaller).
inline std::vector<PositionRange> evaluation_batch_ranges(std::int64_t size, std::int64_t batch_size,
                                                          std::int64_t world, std::int64_t rank,
                                                          bool drop_last = false) {
  check<ValueError>(batch_size >= 1, "DistributedSampler: batch_size ", batch_size, " must be at least 1");
  const auto [begin, end] = shard_evaluation(size, world, rank);
  std::vector<PositionRange> batches;
  for (std::int64_t first = begin; first < end; first += batch_size) {
    const std::int64_t last = std::min(end, first + batch_size);
    if (drop_last && last - first < batch_size) break;
    batches.push_back({first, last});
  }
  return batches;
}

}  // namespace rescnn::data
