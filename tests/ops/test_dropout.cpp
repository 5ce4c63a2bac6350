#include <cmath>

#include <omp.h>
#include <catch2/catch.hpp>

#include <p4lm/ops/dropout.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

TEST_CASE("DropoutMask: 16-bit draws from the halves of Philox words, p rounded to 2^-16, unbiased scale",
          "[ops][dropout]") {
  for (std::uint64_t i :
       {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{6}, std::uint64_t{7}, std::uint64_t{123457}}) {
    const std::uint32_t word = Rng::u32_at(1234, 7, i / 2);
    CHECK(ops::DropoutMask::draw(1234, 7, i) == (i % 2 == 0 ? word & 0xFFFFu : word >> 16));
  }
  CHECK(ops::DropoutMask::for_probability(0.0).drop_below == 0);
  CHECK(ops::DropoutMask::for_probability(0.0).scale == 1.0);
  CHECK(ops::DropoutMask::for_probability(0.1).drop_below == 6554);  // 6553.6 rounds up
  CHECK(ops::DropoutMask::for_probability(0.5).drop_below == 32768);
  CHECK(ops::DropoutMask::for_probability(0.5).scale == 2.0);
  CHECK(ops::DropoutMask::for_probability(0x1p-18).drop_below == 0);  // below 2^-17: nothing dropped
  CHECK(ops::DropoutMask::for_probability(0x1p-16).drop_below == 1);
  CHECK(ops::DropoutMask::for_probability(1.0 - 0x1p-18).drop_below == 65536);  // everything dropped
  CHECK(ops::DropoutMask::for_probability(1.0 - 0x1p-18).scale == 0.0);
  // keep probability times scale is exactly 1: E[out] = inp
  for (double p : {0.1, 0.3, 0.77, 1.0 - 0x1p-16}) {
    const auto mask = ops::DropoutMask::for_probability(p);
    CHECK(double(65536 - mask.drop_below) / 65536.0 * mask.scale == Approx(1.0).epsilon(1e-15));
    CHECK(std::abs(double(mask.drop_below) / 65536.0 - p) <= 0x1p-17);
  }
}

TEST_CASE("dropout keeps exactly the elements DropoutMask keeps, scaled by its scale", "[ops][dropout]") {
  const double p = 0.3;
  const auto mask = ops::DropoutMask::for_probability(p);
  for (std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{100003}}) {
    const auto x = uniform(Shape{n}, 1, 0.5, 1.5);  // never 0, so dropped = exactly 0
    CpuTensor<double> y(x.shape());
    ops::dropout_forward(y, x, p, 1234, 7);
    std::size_t kept = 0, wrong = 0;
    double sum_x = 0, sum_y = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const bool keep = mask.keeps(1234, 7, i);
      kept += keep;
      wrong += y.data()[i] != (keep ? x.data()[i] * mask.scale : 0.0);
      sum_x += x.data()[i];
      sum_y += y.data()[i];
    }
    CHECK(wrong == 0);
    if (n > 100000) {
      CHECK(std::abs(double(kept) / double(n) - (1 - p)) < 0.01);
      CHECK(std::abs(sum_y / sum_x - 1.0) < 0.01);  // inverted dropout keeps the mean
    }
  }
}

TEST_CASE("dropout's mask does not depend on the thread count", "[ops][dropout]") {
  const auto x = cast<float>(uniform(Shape{200003}, 2));
  CpuTensor<float> y1(x.shape()), y2(x.shape());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  ops::dropout_forward(y1, x, 0.5, 9, 3);
  omp_set_num_threads(std::max(threads, 2));
  ops::dropout_forward(y2, x, 0.5, 9, 3);
  omp_set_num_threads(threads);
  CHECK(closeness(y1, y2, 0, 0) <= 1);
  CpuTensor<float> other(x.shape());
  ops::dropout_forward(other, x, 0.5, 9, 4);  // another stream, another mask
  CHECK(closeness(other, y1, 0, 0) > 1);
}

TEST_CASE("dropout_backward recomputes the mask and matches finite differences", "[ops][dropout][grad]") {
  auto x = uniform(Shape{5, 7}, 3);
  const auto g = weights(x.shape(), 4);
  CpuTensor<double> y(x.shape()), dx(x.shape());
  auto loss = [&] {
    ops::dropout_forward(y, x, 0.4, 77, 1);
    return dot(y, g);
  };
  P4LM_CHECK_GRADIENT(check_input(loss, x, dx, [&] { ops::dropout_backward(dx, g, 0.4, 77, 1); }));
  SECTION("p = 0 is the identity; p outside [0, 1) is refused") {
    ops::dropout_forward(y, x, 0.0, 77, 1);
    CHECK(closeness(y, x, 0, 0) <= 1);
    CHECK_THROWS_AS(ops::dropout_forward(y, x, 1.0, 77, 1), InvalidArgument);
    CHECK_THROWS_WITH(ops::dropout_backward(dx, g, -0.1, 77, 1), Catch::Contains("dropout_backward"));
  }
}

TEST_CASE("philox_blocks gives Rng::u32_at's words, across the 2^32-block carry too", "[ops][dropout]") {
  const Philox4x32::Key key{0x9abcdef0u, 0x12345678u};
  const std::uint64_t seed = 0x123456789abcdef0ull;
  for (std::uint64_t stream : {std::uint64_t{0}, std::uint64_t{7}, std::uint64_t{0xfedcba9876543210ull}})
    for (std::uint64_t block : {std::uint64_t{0}, std::uint64_t{12345}, (std::uint64_t{1} << 32) - 5,
                                std::uint64_t{0x3fffffff00000000ull}}) {  // index 4 · block fits in 64 bits
      std::uint32_t words[32];
      ops::detail::philox_blocks<8>(block, stream, key, words);
      std::size_t wrong = 0;
      for (std::uint64_t j = 0; j < 32; ++j) wrong += words[j] != Rng::u32_at(seed, stream, 4 * block + j);
      INFO("stream " << stream << ", block " << block);
      CHECK(wrong == 0);
    }
}

TEST_CASE("dropout in float: every size and offset keeps exactly the elements DropoutMask keeps",
          "[ops][dropout]") {
  // Sizes around the 64-element step, the 8-element Philox block and the 16-element thread split, and
  // past the 8192 elements from which the op splits across threads; p at a 2^-16 step's edges, one
  // level below dropping everything, and one that drops everything.
  for (double p : {0.1, 0.5, 0.3 + 1e-9, 1.0 - 0x1p-16, 1.0 - 1e-9})
    for (std::size_t n :
         {std::size_t{1}, std::size_t{7}, std::size_t{63}, std::size_t{65}, std::size_t{70001}}) {
      const auto mask = ops::DropoutMask::for_probability(p);
      const auto x = cast<float>(uniform(Shape{n}, 5, 0.5, 1.5));
      CpuTensor<float> y(x.shape()), d(x.shape());
      ops::dropout_forward(y, x, p, 42, 3);
      for (std::size_t i = 0; i < n; ++i) d.data()[i] = 1.0f;
      ops::dropout_backward(d, x, p, 42, 3);
      const float scale = float(mask.scale);
      std::size_t wrong = 0, kept = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const bool keep = mask.keeps(42, 3, i);
        kept += keep;
        wrong += y.data()[i] != (keep ? x.data()[i] * scale : 0.0f);
        // backward may fuse the multiply-add (one rounding fewer); the mask is what must agree
        wrong += std::abs(d.data()[i] - (1.0f + (keep ? x.data()[i] * scale : 0.0f))) > 1e-6f;
      }
      INFO("p = " << p << ", n = " << n);
      CHECK(wrong == 0);
      if (p > 1.0 - 0x1p-17) CHECK(kept == 0);
      if (n > 70000 && p < 0.9) CHECK(kept > 0);
    }
}
