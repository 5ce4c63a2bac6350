#include <catch2/catch.hpp>

#include <p4lm/core/gradcheck.hpp>

TEST_CASE("check_gradient accepts a right gradient and rejects a wrong one", "[core][gradcheck]") {
  p4lm::CpuTensor<double> x(p4lm::Shape{3}, {0.5, -1.0, 2.0});
  auto loss = [&] {  // sum of sin(x_i) * x_i
    double s = 0;
    for (double v : x.span()) s += std::sin(v) * v;
    return s;
  };
  p4lm::CpuTensor<double> right(p4lm::Shape{3});
  for (std::size_t i = 0; i < 3; ++i) right.data()[i] = std::cos(x.data()[i]) * x.data()[i] + std::sin(x.data()[i]);
  CHECK(p4lm::check_gradient(loss, x, right).max_relative_error < 1e-8);
  p4lm::CpuTensor<double> wrong = right;
  wrong.data()[1] *= 1.01;
  const auto report = p4lm::check_gradient(loss, x, wrong);
  CHECK(report.max_relative_error > 1e-3);
  CHECK(report.worst_index == 1);
}
