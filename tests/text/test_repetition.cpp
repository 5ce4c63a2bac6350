#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "p4lm/text/repetition.hpp"

using p4lm::text::repeated_ngram_share;
using Ids = std::vector<std::int32_t>;

TEST_CASE("repeated_ngram_share counts the n-grams said before, by hand", "[text][repetition]") {
  CHECK(repeated_ngram_share(Ids{1, 2, 3, 4}, 2) == 0.0);
  // Bigrams 12 21 12 21 12: the last three were said before.
  CHECK(repeated_ngram_share(Ids{1, 2, 1, 2, 1, 2}, 2) == Approx(3.0 / 5.0));
  // Unigrams: 3 3 3 repeats twice.
  CHECK(repeated_ngram_share(Ids{3, 3, 3}, 1) == Approx(2.0 / 3.0));
  // A sentence of L = 4 tokens said twice, n = 4: 5 four-grams, one said before; with L = 20 it is
  // (L - n + 1) / (2L - n + 1) = 17 / 37, near one half.
  CHECK(repeated_ngram_share(Ids{5, 6, 7, 8, 5, 6, 7, 8}, 4) == Approx(1.0 / 5.0));
  Ids twenty;
  for (std::int32_t i = 0; i < 20; ++i) twenty.push_back(100 + i);
  Ids twice = twenty;
  twice.insert(twice.end(), twenty.begin(), twenty.end());
  CHECK(repeated_ngram_share(twice, 4) == Approx(17.0 / 37.0));
  // Fewer items than n, or none: nothing to repeat.
  CHECK(repeated_ngram_share(Ids{7, 7}, 3) == 0.0);
  CHECK(repeated_ngram_share(Ids{}, 1) == 0.0);
  CHECK_THROWS_WITH(repeated_ngram_share(Ids{1}, 0), Catch::Contains("n must be >= 1"));
}

TEST_CASE("repeated_ngram_share on words, as the gold judge counts them", "[text][repetition]") {
  // "you love it you love it so": trigrams you-love-it, love-it-you, it-you-love, you-love-it,
  // love-it-so; one of the five was said before.
  const std::vector<std::string> words{"you", "love", "it", "you", "love", "it", "so"};
  CHECK(repeated_ngram_share(words, 3) == Approx(1.0 / 5.0));
  CHECK(repeated_ngram_share(words, 1) == Approx(3.0 / 7.0));
}

TEST_CASE("repeated_ngram_completions names the next items that would repeat an n-gram",
          "[text][repetition]") {
  using p4lm::text::repeated_ngram_completions;
  const std::vector<int> seq{1, 2, 3, 1, 2};
  std::vector<int> out{99};
  repeated_ngram_completions(seq, 3, out);  // "1 2" came before, followed by 3
  CHECK(out == std::vector<int>{3});
  repeated_ngram_completions(seq, 2, out);  // "2" came before, followed by 3
  CHECK(out == std::vector<int>{3});
  repeated_ngram_completions(seq, 1, out);  // every item said so far
  CHECK(out == seq);
  repeated_ngram_completions(seq, 4, out);  // "3 1 2" never came before
  CHECK(out.empty());
  repeated_ngram_completions(std::vector<int>{7, 7, 7}, 2, out);  // "7" followed by 7, twice
  CHECK(out == std::vector<int>{7, 7});
  repeated_ngram_completions(std::vector<int>{5}, 2, out);
  CHECK(out.empty());
  CHECK_THROWS_WITH(repeated_ngram_completions(seq, 0, out), Catch::Contains("n must be >= 1"));
}

TEST_CASE("refusing the completions keeps the repeated share at 0, taking one makes it positive",
          "[text][repetition]") {
  using p4lm::text::repeated_ngram_completions;
  using p4lm::text::repeated_ngram_share;
  std::mt19937 gen(3);
  for (std::size_t n : {1u, 2u, 3u}) {
    std::vector<int> seq, banned;
    std::size_t refused = 0;
    for (int step = 0; step < 60; ++step) {
      repeated_ngram_completions(seq, n, banned);
      std::vector<int> allowed;
      for (int t = 0; t < 80; ++t) {
        auto next = seq;
        next.push_back(t);
        const bool is_banned = std::find(banned.begin(), banned.end(), t) != banned.end();
        // The share of seq + t is 0 exactly when t is not a completion (seq itself has none repeated).
        REQUIRE((repeated_ngram_share(next, n) > 0) == is_banned);
        if (!is_banned) allowed.push_back(t);
      }
      refused += 80 - allowed.size();
      // From a small alphabet, so that the bans have something to refuse.
      std::vector<int> small;
      for (int t : allowed)
        if (t < 6) small.push_back(t);
      const auto& pool = small.empty() ? allowed : small;
      seq.push_back(pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(gen)]);
    }
    CHECK(repeated_ngram_share(seq, n) == 0.0);
    CHECK(refused > 0);  // the bans had something to refuse
  }
}
