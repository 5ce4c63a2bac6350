#pragma once
// Finite-difference gradient checks (central differences, in double), used by p4lm's tests for
// every op and module, and by users who write their own.
//
//   auto report = p4lm::check_gradient([&] { return loss_of(x); }, x, analytic_grad_of_x);
//   REQUIRE(report.max_relative_error < 1e-6);

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <sstream>
#include <string>

#include "p4lm/core/tensor.hpp"

namespace p4lm {

struct GradientReport {
  double max_relative_error = 0;  // max over elements of |a - n| / max(|a| + |n|, floor)
  double max_absolute_error = 0;
  std::size_t worst_index = 0;
  double analytic_at_worst = 0;
  double numeric_at_worst = 0;
  std::string str() const {
    std::ostringstream os;
    os << "max relative error " << max_relative_error << " (absolute " << max_absolute_error
       << ") at element " << worst_index << ": analytic " << analytic_at_worst << ", numeric "
       << numeric_at_worst;
    return os.str();
  }
};

// `loss()` recomputes a scalar from the current contents of `x`; `analytic` holds d loss / d x.
// Elements where both gradients are below `floor` in magnitude are compared absolutely (a relative
// error of two near-zeros says nothing).
template <class Loss>
GradientReport check_gradient(Loss&& loss, TensorView<backend::cpu, double> x,
                              const TensorView<backend::cpu, double>& analytic, double eps = 1e-6,
                              double floor = 1e-8) {
  expect_shape("check_gradient: analytic gradient", analytic.shape(), x.shape());
  GradientReport report;
  double* values = x.data();
  for (std::size_t i = 0; i < x.numel(); ++i) {
    const double saved = values[i];
    values[i] = saved + eps;
    const double plus = loss();
    values[i] = saved - eps;
    const double minus = loss();
    values[i] = saved;
    const double numeric = (plus - minus) / (2 * eps);
    const double a = analytic.data()[i];
    const double absolute = std::abs(a - numeric);
    const double relative = absolute / std::max(std::abs(a) + std::abs(numeric), floor);
    report.max_absolute_error = std::max(report.max_absolute_error, absolute);
    if (relative > report.max_relative_error || (i == 0 && report.max_relative_error == 0)) {
      report.max_relative_error = std::max(report.max_relative_error, relative);
      report.worst_index = i;
      report.analytic_at_worst = a;
      report.numeric_at_worst = numeric;
    }
  }
  return report;
}

}  // namespace p4lm
