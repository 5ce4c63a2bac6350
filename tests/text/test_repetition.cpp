#include <catch2/catch.hpp>

#include <cstdint>
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
