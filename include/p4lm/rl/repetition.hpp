#pragma once
// How much of a response repeats itself: the share of its token n-grams that already occurred
// earlier in it, Welleck et al.'s rep-n (1 - unique n-grams / n-grams; "Neural Text Generation with
// Unlikelihood Training", 2019). 0 for a response with no repeated n-gram or fewer than n tokens;
// a sentence of L tokens said twice gives (L - n + 1) / (2L - n + 1), near one half. The rollout can subtract
// a multiple of it from a sample's score: the reward models score pitches sentence by sentence, so without it
// PPO may pad a pitch to the length floor by saying its best sentence again.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "p4lm/core/error.hpp"

namespace p4lm::rl {

// Share of the n-grams of `tokens` equal to an earlier one; InvalidArgument for n = 0. Quadratic in
// the length, which for a response of a few hundred tokens costs less than one decoder step.
inline double repeated_ngram_share(std::span<const std::int32_t> tokens, std::size_t n) {
  if (n == 0) fail<InvalidArgument>("repeated_ngram_share: n must be >= 1");
  if (tokens.size() < n) return 0.0;
  const std::size_t count = tokens.size() - n + 1;
  std::size_t repeated = 0;
  for (std::size_t i = 1; i < count; ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (std::equal(tokens.begin() + static_cast<std::ptrdiff_t>(i),
                     tokens.begin() + static_cast<std::ptrdiff_t>(i + n),
                     tokens.begin() + static_cast<std::ptrdiff_t>(j))) {
        ++repeated;
        break;
      }
  return static_cast<double>(repeated) / static_cast<double>(count);
}

}  // namespace p4lm::rl
