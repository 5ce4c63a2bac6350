#include <cmath>

#include <omp.h>
#include <catch2/catch.hpp>

#include <p4lm/ops/dropout.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

TEST_CASE("dropout keeps element i iff Rng::uniform_at(seed, stream, i) >= p, scaled by 1/(1-p)",
          "[ops][dropout]") {
  const double p = 0.3;
  for (std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{100003}}) {
    const auto x = uniform(Shape{n}, 1, 0.5, 1.5);  // never 0, so dropped = exactly 0
    CpuTensor<double> y(x.shape());
    ops::dropout_forward(y, x, p, 1234, 7);
    std::size_t kept = 0, wrong = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const bool keep = Rng::uniform_at(1234, 7, i) >= float(p);
      kept += keep;
      wrong += y.data()[i] != (keep ? x.data()[i] * (1.0 / (1.0 - p)) : 0.0);
    }
    CHECK(wrong == 0);
    if (n > 100000) CHECK(std::abs(double(kept) / double(n) - (1 - p)) < 0.01);
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

TEST_CASE("dropout in float: every size and offset keeps exactly the elements uniform_at says",
          "[ops][dropout]") {
  // Sizes around the 32-element vector step and the 16-element thread split, and p on both sides of
  // a 2^-24 step (the integer threshold must agree with the float comparison); 1 - 2^-24 is the
  // largest threshold the word comparison sees, 1 - 1e-9 rounds to 1.0f and drops everything.
  for (double p : {0.1, 0.5, 0.3 + 1e-9, 1.0 - 0x1p-24, 1.0 - 1e-9})
    for (std::size_t n : {std::size_t{1}, std::size_t{31}, std::size_t{33}, std::size_t{70000}}) {
      const auto x = cast<float>(uniform(Shape{n}, 5, 0.5, 1.5));
      CpuTensor<float> y(x.shape()), d(x.shape());
      ops::dropout_forward(y, x, p, 42, 3);
      for (std::size_t i = 0; i < n; ++i) d.data()[i] = 1.0f;
      ops::dropout_backward(d, x, p, 42, 3);
      const float scale = float(1.0 / (1.0 - p));
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const bool keep = Rng::uniform_at(42, 3, i) >= float(p);
        wrong += y.data()[i] != (keep ? x.data()[i] * scale : 0.0f);
        // backward may fuse the multiply-add (one rounding fewer); the mask is what must agree
        wrong += std::abs(d.data()[i] - (1.0f + (keep ? x.data()[i] * scale : 0.0f))) > 1e-6f;
      }
      INFO("p = " << p << ", n = " << n);
      CHECK(wrong == 0);
    }
}
