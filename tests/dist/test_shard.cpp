// dist/shard.hpp: rank r of N reads single-process batch g·N + r at step g, so the ranks' shares of a
// step are the single-process batches of N steps; range() splits n items into contiguous parts.

#include <catch2/catch.hpp>

#include <cstddef>
#include <set>

#include "p4lm/dist/shard.hpp"

TEST_CASE("shard: the ranks' batches of a step are consecutive single-process batches", "[dist][shard]") {
  for (std::size_t n : {1u, 2u, 3u, 8u}) {
    std::set<std::size_t> seen;
    for (std::size_t g = 0; g < 5; ++g) {
      std::set<std::size_t> step;
      for (std::size_t r = 0; r < n; ++r) step.insert(p4lm::dist::Shard{r, n}.batch_step(g));
      CHECK(step.size() == n);
      CHECK(*step.begin() == g * n);
      CHECK(*step.rbegin() == g * n + n - 1);
      seen.insert(step.begin(), step.end());
    }
    CHECK(seen.size() == 5 * n);  // no batch read twice
  }
  CHECK(p4lm::dist::Shard{}.batch_step(17) == 17);  // one process: the step itself
}

TEST_CASE("shard: range() splits n items in rank order, sizes within one", "[dist][shard]") {
  for (std::size_t ranks : {1u, 2u, 3u, 7u})
    for (std::size_t n : {0u, 1u, 5u, 6u, 100u}) {
      std::size_t next = 0, smallest = n, largest = 0;
      for (std::size_t r = 0; r < ranks; ++r) {
        const auto [b, e] = p4lm::dist::Shard{r, ranks}.range(n);
        CHECK(b == next);
        CHECK(e >= b);
        smallest = std::min(smallest, e - b), largest = std::max(largest, e - b);
        next = e;
      }
      CHECK(next == n);
      CHECK(largest - smallest <= 1);
    }
  CHECK_THROWS_WITH(p4lm::dist::Shard({2, 2}).range(4), Catch::Contains("rank 2 of 2"));
}
