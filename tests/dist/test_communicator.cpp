// dist/communicator.hpp and dist/environment.hpp: rank and size, sum and max all-reduce, broadcast
// of numbers and strings, on the job's ranks (ctest runs this program alone and as two MPI ranks) and
// on the single-process Communicator, whose collectives leave the data as it is.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "p4lm/dist/communicator.hpp"
#include "p4lm/dist/environment.hpp"

// MPI for the whole program when a launcher started it (Catch2 owns main).
p4lm::dist::Environment p4lm_dist_test_mpi;

TEST_CASE("communicator: world() is the launcher's job, or one process", "[dist][communicator]") {
  const auto c = p4lm::dist::world();
  int expected = 1;
  if (p4lm::dist::with_mpi && p4lm::dist::Environment::wanted())
    if (const char* n = std::getenv("OMPI_COMM_WORLD_SIZE")) expected = std::atoi(n);
  CHECK(c.size() == expected);
  CHECK(c.rank() >= 0);
  CHECK(c.rank() < c.size());
  CHECK(c.is_root() == (c.rank() == 0));
  CHECK(c.distributed() == (c.size() > 1));
  // Every rank has a distinct rank: the sum of 2^rank over the ranks is 2^size - 1.
  CHECK(c.sum<std::int64_t>(std::int64_t{1} << c.rank()) == (std::int64_t{1} << c.size()) - 1);
}

TEST_CASE("communicator: sums and maxima over the ranks", "[dist][communicator]") {
  const auto c = p4lm::dist::world();
  const int n = c.size(), r = c.rank();
  std::vector<float> f{1.5f * float(r + 1), -2.0f, float(r) * 0.25f};
  c.all_reduce_sum(std::span<float>(f));
  const float ranks_sum = float(n * (n - 1)) / 2;  // 0 + 1 + ... + n-1
  CHECK(f[0] == Approx(1.5 * (ranks_sum + n)));
  CHECK(f[1] == Approx(-2.0 * n));
  CHECK(f[2] == Approx(0.25 * ranks_sum));
  std::vector<double> d{double(r), 1e300 * (r + 1)};
  c.all_reduce_max(std::span<double>(d));
  CHECK(d[0] == double(n - 1));
  CHECK(d[1] == 1e300 * n);
  CHECK(c.sum<std::uint64_t>(3) == 3u * std::uint64_t(n));
  CHECK(c.max<int>(-r) == 0);
  // Longer than one bucket of any transport: a million values.
  std::vector<double> big(1 << 20, double(r + 1));
  c.all_reduce_sum(std::span<double>(big));
  CHECK(big.front() == ranks_sum + n);
  CHECK(big.back() == ranks_sum + n);
}

TEST_CASE("communicator: broadcast of numbers and strings from any root", "[dist][communicator]") {
  const auto c = p4lm::dist::world();
  const int last = c.size() - 1;
  std::vector<std::int64_t> v{c.rank(), 10 * c.rank(), 7};
  c.broadcast(std::span<std::int64_t>(v), last);
  CHECK(v == std::vector<std::int64_t>{last, 10 * last, 7});
  std::string s = c.is_root() ? std::string(100000, 'x') + "end" : "stale";
  c.broadcast(s);
  CHECK(s.size() == 100003);
  CHECK(s.substr(s.size() - 3) == "end");
  CHECK(c.broadcast_value(c.rank() + 40) == 40);
}

TEST_CASE("communicator: one process alone leaves the data as it is", "[dist][communicator]") {
  const p4lm::dist::Communicator alone;
  CHECK(alone.rank() == 0);
  CHECK(alone.size() == 1);
  CHECK_FALSE(alone.distributed());
  std::vector<float> f{1, 2, 3};
  alone.all_reduce_sum(std::span<float>(f));
  alone.all_reduce_max(std::span<float>(f));
  alone.broadcast(std::span<float>(f));
  CHECK(f == std::vector<float>{1, 2, 3});
  std::string s = "same";
  alone.broadcast(s);
  CHECK(s == "same");
  alone.barrier();
}

TEST_CASE("communicator: world() is one process while a SingleProcess lives", "[dist][communicator]") {
  const int size = p4lm::dist::world().size();
  {
    const p4lm::dist::SingleProcess alone;
    CHECK(p4lm::dist::world().size() == 1);
    {
      const p4lm::dist::SingleProcess nested;
      CHECK(p4lm::dist::world().rank() == 0);
    }
    CHECK(p4lm::dist::world().size() == 1);
  }
  CHECK(p4lm::dist::world().size() == size);
}

TEST_CASE("communicator: gather collects every rank's string at the root, in rank order",
          "[dist][communicator]") {
  const auto world = p4lm::dist::world();
  // Rank r sends r × 1000 copies of the letter 'a' + r (rank 0 an empty string).
  const std::string mine(static_cast<std::size_t>(world.rank()) * 1000,
                         static_cast<char>('a' + world.rank()));
  for (int root = 0; root < world.size(); ++root) {
    const auto all = world.gather(mine, root);
    if (world.rank() != root) {
      CHECK(all.empty());
      continue;
    }
    REQUIRE(all.size() == static_cast<std::size_t>(world.size()));
    for (int r = 0; r < world.size(); ++r)
      CHECK(all[static_cast<std::size_t>(r)] ==
            std::string(static_cast<std::size_t>(r) * 1000, static_cast<char>('a' + r)));
  }
  CHECK(p4lm::dist::Communicator().gather("alone") == std::vector<std::string>{"alone"});
}
