#pragma once
// How much of a sequence repeats itself: the share of its n-grams that already occurred earlier in
// it, Welleck et al.'s rep-n (1 - unique n-grams / n-grams; "Neural Text Generation with Unlikelihood
// Training", 2019). 0 for a sequence with no repeated n-gram or fewer than n items; a sentence of L
// items said twice gives (L - n + 1) / (2L - n + 1), near one half. One definition for every caller:
// the gold judge's fluency counts word n-grams with it, the RL rollout's repetition penalty token ids.
// repeated_ngram_completions is the decoder's side of the same definition: the next items that would
// repeat an n-gram, which a decoder with no_repeat_ngram_size refuses (model/generate.hpp).

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <ranges>
#include <vector>

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

// The items that would make `items` repeat an n-gram if appended: for every earlier occurrence of its
// last n - 1 items, the item that followed it (n = 1: every item it holds). Written to `out` (cleared
// first; an item may appear more than once); InvalidArgument for n = 0. Appending none of them keeps
// repeated_ngram_share(items, n) at 0.
template <std::ranges::random_access_range Items>
void repeated_ngram_completions(const Items& items, std::size_t n,
                                std::vector<std::ranges::range_value_t<Items>>& out) {
  if (n == 0) fail<InvalidArgument>("repeated_ngram_completions: n must be >= 1");
  out.clear();
  const auto size = static_cast<std::size_t>(std::ranges::size(items));
  if (size < n) return;
  const auto at = [&](std::size_t k) { return std::ranges::begin(items) + static_cast<std::ptrdiff_t>(k); };
  const auto tail = at(size - (n - 1));  // the last n - 1 items
  for (std::size_t i = 0; i + n <= size; ++i)
    if (std::equal(at(i), at(i + n - 1), tail)) out.push_back(*at(i + n - 1));
}

}  // namespace p4lm::text
