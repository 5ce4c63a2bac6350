#pragma once
// The data order of a data-parallel run: the single-process order split by rank. An objective's
// batch(step, micro) reads the data positions of single-process batch number `step` (train-lm's
// windows, SFT's sequences: consecutive positions step·b .. step·b + b - 1 for a batch of b). On N
// ranks with per-rank batch b, rank r's share of global step g is the single-process batch g·N + r:
// the N shares of step g are batches g·N .. g·N + N - 1, i.e. exactly the data of single-process step
// g with batch N·b. The Trainer asks objectives for batch(shard.batch_step(g), micro).
//
//   p4lm::dist::Shard s{.rank = 1, .ranks = 4};
//   s.batch_step(10);                   // 41
//   auto [begin, end] = s.range(1000);  // [250, 500): a contiguous quarter (evaluation, rollouts)

#include <algorithm>
#include <cstddef>
#include <utility>

#include "p4lm/core/error.hpp"
#include "p4lm/dist/communicator.hpp"

namespace p4lm::dist {

struct Shard {
  std::size_t rank = 0;
  std::size_t ranks = 1;

  static Shard of(const Communicator& c) {
    return {static_cast<std::size_t>(c.rank()), static_cast<std::size_t>(c.size())};
  }

  // The single-process batch number this rank reads at global step g.
  std::size_t batch_step(std::size_t g) const noexcept { return g * ranks + rank; }

  // This rank's contiguous part [begin, end) of n items; parts in rank order, sizes differ by at most 1
  // (the first n mod ranks ranks get one more).
  std::pair<std::size_t, std::size_t> range(std::size_t n) const {
    if (ranks == 0 || rank >= ranks) fail<InvalidArgument>("Shard: rank ", rank, " of ", ranks);
    const std::size_t base = n / ranks, extra = n % ranks;
    const std::size_t begin = rank * base + std::min(rank, extra);
    return {begin, begin + base + (rank < extra ? 1 : 0)};
  }
};

}  // namespace p4lm::dist
