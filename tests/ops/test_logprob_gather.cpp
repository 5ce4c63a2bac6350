#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <p4lm/ops/detail/row_softmax.hpp>
#include <p4lm/ops/logprob_gather.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;
using Ids = Tensor<backend::cpu, std::int32_t>;

TEST_CASE("logprob_gather_forward: log-softmax at the chosen ids, logsumexp and entropy",
          "[ops][logprob_gather]") {
  const std::size_t V = 9;
  const auto logits = uniform(Shape{2, 2, V}, 1, -3.0, 3.0);
  const Ids ids(Shape{2, 2}, {0, 8, ops::ignore_index_default, 4});
  CpuTensor<double> lp(Shape{2, 2}), lse(Shape{2, 2}), ent(Shape{2, 2});
  ops::logprob_gather_forward(lp, lse, ent, logits, ids);
  for (std::size_t r = 0; r < 4; ++r) {
    const double* x = logits.data() + r * V;
    double s = 0;
    for (std::size_t j = 0; j < V; ++j) s += std::exp(x[j]);
    const double l = std::log(s);
    double h = 0;
    for (std::size_t j = 0; j < V; ++j) h -= std::exp(x[j] - l) * (x[j] - l);
    CHECK(lse.data()[r] == Approx(l).epsilon(1e-14));
    CHECK(ent.data()[r] == Approx(h).epsilon(1e-13));
    const auto id = ids.data()[r];
    if (id == ops::ignore_index_default)
      CHECK(lp.data()[r] == 0.0);
    else
      CHECK(lp.data()[r] == Approx(x[id] - l).epsilon(1e-14));
  }
}

TEST_CASE("logprob_gather_backward matches finite differences, with and without the cached lse",
          "[ops][logprob_gather][grad]") {
  const std::size_t V = 6;
  auto logits = uniform(Shape{5, V}, 3, -2.0, 2.0);
  const Ids ids(Shape{5}, {5, 0, 0, ops::ignore_index_default, 3});
  const auto g = weights(Shape{5}, 4);
  CpuTensor<double> lp(Shape{5}), lse(Shape{5}), dlogits(logits.shape());
  auto loss = [&] {
    ops::logprob_gather_forward(lp, {}, {}, logits, ids);
    return dot(lp, g);
  };
  ops::logprob_gather_forward(lp, lse, {}, logits, ids);
  P4LM_CHECK_GRADIENT(check_input(loss, logits, dlogits,
                                  [&] { ops::logprob_gather_backward(dlogits, g, logits, ids, lse); }));
  P4LM_CHECK_GRADIENT(
      check_input(loss, logits, dlogits, [&] { ops::logprob_gather_backward(dlogits, g, logits, ids); }));
}

TEST_CASE("logprob_gather in float agrees with double; bad ids are refused", "[ops][logprob_gather]") {
  const std::size_t N = 3, V = 1001;
  const auto logits = uniform(Shape{N, V}, 5, -8.0, 8.0);
  const Ids ids(Shape{N}, {1000, 0, 500});
  const auto g = uniform(Shape{N}, 6);
  CpuTensor<double> lp(Shape{N}), d(logits.shape());
  CpuTensor<float> lpf(Shape{N}), df(logits.shape());
  ops::logprob_gather_forward(lp, {}, {}, logits, ids);
  ops::logprob_gather_forward(lpf, {}, {}, cast<float>(logits), ids);
  CHECK(closeness(lpf, lp, 1e-5, 1e-5) <= 1);
  ops::logprob_gather_backward(d, g, logits, ids);
  ops::logprob_gather_backward(df, cast<float>(g), cast<float>(logits), ids);
  CHECK(closeness(df, d, 1e-7, 1e-4) <= 1);
  CHECK_THROWS_AS(ops::logprob_gather_forward(lp, {}, {}, logits, Ids(Shape{N}, {0, 1001, 2})),
                  InvalidArgument);
  CpuTensor<double> wrong(Shape{N + 1});
  CHECK_THROWS_WITH(ops::logprob_gather_forward(wrong, {}, {}, logits, ids),
                    Catch::Contains("logprob_gather_forward: logprobs"));
}

TEMPLATE_TEST_CASE("row_max_sum_exp (one read) gives the two-pass max and sum of exps",
                   "[ops][logprob_gather]", float, double) {
  using T = TestType;
  // Float: ~3000 sequential adds per lane at n = 50257 cost up to ~3e-6 relative, in the two-pass sum
  // as much as here (measured 2.8e-6 and 3.1e-6 on the shuffled row).
  const T tol = std::is_same_v<T, float> ? T(1e-5) : T(1e-13);
  const T ninf = -std::numeric_limits<T>::infinity();
  // Lengths below, at and around the 2-batch chunk, and a vocabulary row; orders that raise the lanes'
  // maxima in every chunk (ascending: a rescale each time), never (descending) or at random.
  for (std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{15}, std::size_t{16}, std::size_t{17},
                        std::size_t{33}, std::size_t{1000}, std::size_t{50257}})
    for (int order = 0; order < 4; ++order) {
      std::vector<T> x(n);
      const auto u = uniform(Shape{n}, 20 + order, -8.0, 8.0);
      for (std::size_t j = 0; j < n; ++j) {
        const double t = double(j) / double(n);
        x[j] = order == 0   ? T(u.data()[j])
               : order == 1 ? T(-30 + 40 * t)
               : order == 2 ? T(10 - 40 * t)
                            : T(u.data()[j] + 1e4);
      }
      if (n >= 33) x[0] = x[5] = x[9] = ninf;  // masked logits: some lanes start at -inf
      const auto [m, s] = ops::detail::row_max_sum_exp(x.data(), n);
      long double mx = ninf, sum = 0;
      for (T v : x) mx = std::max<long double>(mx, v);
      for (T v : x) sum += std::exp((long double)v - mx);
      INFO("n = " << n << ", order " << order);
      CHECK(m == T(mx));
      CHECK(double(s) == Approx(double(sum)).epsilon(double(tol)));
    }
  SECTION("a NaN anywhere makes the sum NaN") {
    std::vector<T> x(100, T(1));
    x[57] = std::numeric_limits<T>::quiet_NaN();
    CHECK(std::isnan(ops::detail::row_max_sum_exp(x.data(), x.size()).sum));
  }
}
