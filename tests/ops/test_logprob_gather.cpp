#include <cmath>

#include <catch2/catch.hpp>

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
