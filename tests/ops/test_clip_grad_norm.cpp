#include <cmath>
#include <limits>
#include <vector>

#include <omp.h>
#include <catch2/catch.hpp>

#include <p4lm/ops/clip_grad_norm.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

TEMPLATE_TEST_CASE("clip_grad_norm returns the global L2 norm and scales every tensor to max_norm",
                   "[ops][clip_grad_norm]", float, double) {
  using T = TestType;
  // Sizes from one element to one that is summed on several threads.
  auto a = cast<T>(uniform(Shape{1}, 1)), b = cast<T>(uniform(Shape{3, 7}, 2)),
       c = cast<T>(uniform(Shape{300001}, 3));
  long double direct = 0;
  for (const auto* t : {&a, &b, &c})
    for (T x : t->span()) direct += (long double)x * x;
  const double norm = std::sqrt(double(direct));
  const CpuTensor<T> a0(a), c0(c);
  std::vector<ops::CpuView<T>> grads{a, b, c};
  CHECK(ops::global_grad_norm(grads) == Approx(norm).epsilon(1e-12));
  const double returned = ops::clip_grad_norm(grads, 2.0);
  CHECK(returned == Approx(norm).epsilon(1e-12));
  CHECK(ops::global_grad_norm(grads) == Approx(2.0).epsilon(std::is_same_v<T, float> ? 1e-5 : 1e-6));
  const double scale = 2.0 / (norm + 1e-6);
  CHECK(double(a.data()[0]) == Approx(double(a0.data()[0]) * scale).epsilon(1e-6));
  CHECK(double(c.data()[12345]) == Approx(double(c0.data()[12345]) * scale).epsilon(1e-6));
}

TEST_CASE("clip_grad_norm leaves small and non-finite gradients alone; its sum ignores thread count",
          "[ops][clip_grad_norm]") {
  auto a = uniform(Shape{10}, 1, -0.01, 0.01);
  const CpuTensor<double> a0(a);
  std::vector<ops::CpuView<double>> grads{a};
  CHECK(ops::clip_grad_norm(grads, 1.0) < 1.0);
  CHECK(closeness(a, a0, 0, 0) <= 1);
  a.data()[3] = std::numeric_limits<double>::quiet_NaN();
  CHECK(std::isnan(ops::clip_grad_norm(grads, 1.0)));
  CHECK(a.data()[0] == a0.data()[0]);
  CHECK_THROWS_AS(ops::clip_grad_norm(grads, 0.0), InvalidArgument);

  auto big = cast<float>(uniform(Shape{500009}, 4));
  std::vector<ops::CpuView<float>> one{big};
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double n1 = ops::global_grad_norm(one);
  omp_set_num_threads(std::max(threads, 2));
  const double n2 = ops::global_grad_norm(one);
  omp_set_num_threads(threads);
  CHECK(n1 == n2);
}

TEMPLATE_TEST_CASE("global_grad_norm: every tail length, many small tensors and extreme magnitudes",
                   "[ops][clip_grad_norm]", float, double) {
  using T = TestType;
  // Lengths around the 16-element vector step and the 64-block split; 300 small tensors (summed one
  // per task) next to a large one (split into blocks); sums of squares a float accumulator could not
  // hold (65537 squares of ~1e36) and squares it could not represent (~1e-60): double keeps both.
  std::vector<CpuTensor<T>> owned;
  for (std::size_t n = 1; n <= 40; ++n) owned.push_back(cast<T>(uniform(Shape{n}, 100 + n)));
  for (std::size_t k = 0; k < 300; ++k) owned.push_back(cast<T>(uniform(Shape{768}, 200 + k)));
  owned.push_back(cast<T>(uniform(Shape{1000003}, 7)));
  owned.push_back(cast<T>(uniform(Shape{65537}, 8, 1e18, 2e18)));
  owned.push_back(cast<T>(uniform(Shape{65537}, 9, -2e-30, 2e-30)));
  std::vector<ops::CpuView<T>> views(owned.begin(), owned.end());
  long double big = 0, rest = 0;  // the 1e18 tensor dwarfs the others: check it and the rest apart
  for (std::size_t k = 0; k < owned.size(); ++k)
    for (T x : owned[k].span()) (k + 2 == owned.size() ? big : rest) += (long double)x * x;
  CHECK(ops::global_grad_norm(views) == Approx(std::sqrt(double(big + rest))).epsilon(1e-12));
  std::vector<ops::CpuView<T>> small_only(views.begin(), views.end() - 2);
  CHECK(ops::global_grad_norm(small_only) == Approx(std::sqrt(double(rest))).epsilon(1e-12));
  std::vector<ops::CpuView<T>> tiny{views.back()};
  long double t = 0;
  for (T x : owned.back().span()) t += (long double)x * x;
  CHECK(ops::global_grad_norm(tiny) == Approx(std::sqrt(double(t))).epsilon(1e-12));
  CHECK(ops::global_grad_norm(tiny) > 0);

  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double n1 = ops::global_grad_norm(views);
  omp_set_num_threads(std::max(threads, 3));
  const double n3 = ops::global_grad_norm(views);
  omp_set_num_threads(threads);
  CHECK(n1 == n3);
}
