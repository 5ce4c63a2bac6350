#pragma once
// Scalar losses for the reward models: mean squared error (text -> CF regression), logistic loss on
// logits (NLI precision classifier), Bradley-Terry -log σ(r_w - r_l) (appeal, personalization).
// Each forward returns the mean over elements; each backward adds dloss · d(mean)/d(input).

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

namespace detail {
// log(1 + exp(x)) without overflow or loss of precision for large |x|.
template <class T>
T softplus(T x) {
  return x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
template <class T>
T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}
}  // namespace detail

// pred, target (any shape, equal) -> mean (pred - target)²
template <Scalar T>
T mse_forward(const CpuView<T>& pred, const CpuView<T>& target) {
  check::paired("mse_forward", "target", pred, target);
  const std::size_t n = pred.numel();
  if (n == 0) return T(0);
  const T *p = pred.data(), *t = target.data();
  return T(detail::deterministic_sum(n,
                                     [&](std::size_t i) {
                                       const double d = double(p[i]) - double(t[i]);
                                       return d * d;
                                     }) /
           double(n));
}

// -> dpred += dloss · 2 (pred - target) / n
template <Scalar T>
void mse_backward(CpuView<T> dpred, const CpuView<T>& pred, const CpuView<T>& target,
                  std::type_identity_t<T> dloss = T(1)) {
  check::paired("mse_backward", "target", pred, target);
  check::paired("mse_backward", "dpred", pred, dpred);
  const std::size_t n = pred.numel();
  if (n == 0) return;
  const T s = T(2) * dloss / T(n);
  detail::simd_map(
      n, [s](auto d, auto p, auto t) { return d + s * (p - t); }, dpred.data(), dpred.data(), pred.data(),
      target.data());
}

// logits, labels in [0, 1] (any shape, equal) -> mean of -[y log σ(x) + (1-y) log(1-σ(x))]
//   = mean of softplus(x) - x·y (stable for any x)
template <Scalar T>
T bce_with_logits_forward(const CpuView<T>& logits, const CpuView<T>& labels) {
  check::paired("bce_with_logits_forward", "labels", logits, labels);
  const std::size_t n = logits.numel();
  if (n == 0) return T(0);
  const T *x = logits.data(), *y = labels.data();
  return T(
      detail::deterministic_sum(
          n, [&](std::size_t i) { return double(detail::softplus(x[i])) - double(x[i]) * double(y[i]); }) /
      double(n));
}

// -> dlogits += dloss · (σ(x) - y) / n
template <Scalar T>
void bce_with_logits_backward(CpuView<T> dlogits, const CpuView<T>& logits, const CpuView<T>& labels,
                              std::type_identity_t<T> dloss = T(1)) {
  check::paired("bce_with_logits_backward", "labels", logits, labels);
  check::paired("bce_with_logits_backward", "dlogits", logits, dlogits);
  const std::size_t n = logits.numel();
  if (n == 0) return;
  const T s = dloss / T(n);
  const T *x = logits.data(), *y = labels.data();
  T* d = dlogits.data();
  detail::parallel_ranges(n, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) d[i] += s * (detail::sigmoid(x[i]) - y[i]);
  });
}

// chosen, rejected rewards (any shape, equal) -> mean of -log σ(chosen - rejected)
//   = mean of softplus(rejected - chosen)
template <Scalar T>
T bradley_terry_forward(const CpuView<T>& chosen, const CpuView<T>& rejected) {
  check::paired("bradley_terry_forward", "rejected", chosen, rejected);
  const std::size_t n = chosen.numel();
  if (n == 0) return T(0);
  const T *w = chosen.data(), *l = rejected.data();
  return T(
      detail::deterministic_sum(n, [&](std::size_t i) { return double(detail::softplus(l[i] - w[i])); }) /
      double(n));
}

// -> dchosen += -dloss · σ(rejected - chosen) / n,  drejected += dloss · σ(rejected - chosen) / n
// Either gradient may be {} (skipped).
template <Scalar T>
void bradley_terry_backward(CpuView<T> dchosen, CpuView<T> drejected, const CpuView<T>& chosen,
                            const CpuView<T>& rejected, std::type_identity_t<T> dloss = T(1)) {
  check::paired("bradley_terry_backward", "rejected", chosen, rejected);
  check::paired_grad("bradley_terry_backward", "dchosen", dchosen, chosen);
  check::paired_grad("bradley_terry_backward", "drejected", drejected, chosen);
  const bool dw = is_given(dchosen), dl = is_given(drejected);
  const std::size_t n = chosen.numel();
  if (n == 0) return;
  const T s = dloss / T(n);
  const T *w = chosen.data(), *l = rejected.data();
  T *gw = dw ? dchosen.data() : nullptr, *gl = dl ? drejected.data() : nullptr;
  detail::parallel_ranges(n, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) {
      const T g = s * detail::sigmoid(l[i] - w[i]);
      if (gw) gw[i] -= g;
      if (gl) gl[i] += g;
    }
  });
}

}  // namespace p4lm::ops
