// rescnn/data/split.hpp — a seeded, stratified train/validation split of a
// labelled data set, by sample index.
//
//   auto split = rn::data::split_by_class(labels, 0.1, seed);  // split.train, split.val
//
// Of each class, round(val_fraction * n) samples are held out (at least one
// when val_fraction > 0, never all of them), chosen by a generator of
// (seed, class) only, so the split does not depend on the order of classes
// or on anything else the run does. Both lists are in sample order.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/core/rng.hpp"
#include "rescnn/data/loader.hpp"

namespace rescnn::data {

struct IndexSplit {
  std::vector<std::int64_t> train, val;
};

inline IndexSplit split_by_class(std::span<const std::int64_t> labels, double val_fraction, std::uint64_t seed = 0) {
  check<ValueError>(val_fraction >= 0 && val_fraction < 1, "split_by_class: val_fraction must be in [0, 1), got ",
                    val_fraction);
  std::vector<std::vector<std::int64_t>> by_class;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    check<ValueError>(labels[i] >= 0, "split_by_class: label ", labels[i], " at index ", i, " is negative");
    const auto c = static_cast<std::size_t>(labels[i]);
    if (c >= by_class.size()) by_class.resize(c + 1);
    by_class[c].push_back(static_cast<std::int64_t>(i));
  }
  std::vector<bool> held(labels.size(), false);
  for (std::size_t c = 0; c < by_class.size(); ++c) {
    auto members = by_class[c];
    const auto n = static_cast<std::int64_t>(members.size());
    if (val_fraction == 0 || n < 2) continue;
    const auto k = std::clamp<std::int64_t>(std::llround(val_fraction * static_cast<double>(n)), 1, n - 1);
    Generator gen(detail::stream_seed(seed, 0x53504c4954303031ULL /* "SPLIT001" */, c));
    for (std::size_t i = members.size(); i > 1; --i)
      std::swap(members[i - 1], members[static_cast<std::size_t>(gen.uniform_int(i))]);
    for (std::int64_t j = 0; j < k; ++j) held[static_cast<std::size_t>(members[static_cast<std::size_t>(j)])] = true;
  }
  IndexSplit split;
  for (std::size_t i = 0; i < labels.size(); ++i)
    (held[i] ? split.val : split.train).push_back(static_cast<std::int64_t>(i));
  return split;
}

}  // namespace rescnn::data
