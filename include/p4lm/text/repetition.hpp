#pragma once
// How much of a sequence repeats itself: the share of its n-grams that already occurred earlier in
// it, Welleck et al.'s rep-n (1 - unique n-grams / n-grams; "Neural Text Generation with Unlikelihood
// Training", 2019). 0 for a sequence with no repeated n-gram or fewer than n items; a sentence of L
// items said twice gives (L - n + 1) / (2L - n + 1), near one half. One definition for every caller:
// the gold judge's fluency counts word n-grams with it, the RL rollout's repetition penalty token ids.

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <ranges>

#include "p4lm/core/error.hpp"

namespace p4lm::text {

// Share of the n-grams of `items` (token ids, words: anything with ==) equal to an earlier one;
// InvalidArgument for n = 0. Quadratic in the length, no allocation: for a pitch of a few hundred
// items it costs less than one decoder step.
template <std::ranges::random_access_range Items>
double repeated_ngram_share(const Items& items, std::size_t n) {
  if (n == 0) fail<InvalidArgument>("repeated_ngram_share: n must be >= 1");
  const auto size = static_cast<std::size_t>(std::ranges::size(items));
  if (size < n) return 0.0;
  const auto at = [&](std::size_t k) { return std::ranges::begin(items) + static_cast<std::ptrdiff_t>(k); };
  const std::size_t count = size - n + 1;
  std::size_t repeated = 0;
  for (std::size_t i = 1; i < count; ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (std::equal(at(i), at(i + n), at(j))) {
        ++repeated;
        break;
      }
  return static_cast<double>(repeated) / static_cast<double>(count);
}

}  // namespace p4lm::text
