#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include <p4lm/core/rng.hpp>

using p4lm::Philox4x32;
using p4lm::Rng;

TEST_CASE("Philox4x32-10 reproduces the Random123 known-answer vectors", "[core][rng]") {
  CHECK(Philox4x32::generate({0, 0, 0, 0}, {0, 0}) ==
        Philox4x32::Block{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(Philox4x32::generate({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                             {0xffffffffu, 0xffffffffu}) ==
        Philox4x32::Block{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CHECK(Philox4x32::generate({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                             {0xa4093822u, 0x299f31d0u}) ==
        Philox4x32::Block{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("sequential draws equal the stateless per-index function", "[core][rng]") {
  Rng rng(1234, 5);
  for (std::uint64_t i = 0; i < 37; ++i) CHECK(rng.next_u32() == Rng::u32_at(1234, 5, i));
  Rng resumed(1234, 5);
  resumed.set_position(20);
  Rng reference(1234, 5);
  for (int i = 0; i < 20; ++i) reference.next_u32();
  for (int i = 0; i < 10; ++i) CHECK(resumed.next_u32() == reference.next_u32());
}

TEST_CASE("streams and seeds are independent; uniform and below stay in range", "[core][rng]") {
  Rng a(1), b(2), c = Rng(1).split(1);
  std::set<std::uint32_t> firsts{a.next_u32(), b.next_u32(), c.next_u32()};
  CHECK(firsts.size() == 3);
  Rng rng(7);
  double sum = 0;
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 100000; ++i) {
    const float u = rng.uniform();
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    sum += u;
    ++counts[rng.below(10)];
  }
  CHECK(sum / 100000 == Approx(0.5).margin(0.01));
  for (int n : counts) CHECK(n == Approx(10000).margin(500));
}
