#pragma once
// Masked reductions over per-token arrays (B, R): R response positions per sequence, mask 1 where a
// token was generated and 0 on padding. PPO's statistics (advantage whitening, the losses' means,
// the metrics) only ever count real tokens.
//
//   double m = rl::masked_mean(adv, mask);
//   rl::whiten(adv, mask);                   // in place: zero mean, unit variance over the mask
//   rl::whiten(adv, mask, comm);             // the same over every rank's tokens (data parallel)
//
// With a dist::Communicator the sums and counts are all-reduced, so each rank's rows, a share of
// the batch, are reduced as if one process held them all; without one (a single process) the
// arithmetic is the same, in the same order.

#include <cmath>
#include <cstddef>
#include <span>

#include "p4lm/core/error.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/dist/communicator.hpp"

namespace p4lm::rl {

template <class T>
using TokenView = TensorView<backend::cpu, T>;

namespace detail {
template <class T>
void check_same(const char* what, const TokenView<T>& x, const TokenView<T>& mask) {
  expect_shape(what, mask.shape(), x.shape());
}
}  // namespace detail

// Number of counted tokens (mask > 0).
template <class T>
std::size_t mask_count(const TokenView<T>& mask) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < mask.numel(); ++i) n += mask.data()[i] > T(0);
  return n;
}

// Mean of x over the mask (in double); 0 when the mask is empty.
template <class T>
double masked_mean(const TokenView<T>& x, const TokenView<T>& mask,
                   const dist::Communicator& comm = dist::Communicator()) {
  detail::check_same("masked_mean: mask", x, mask);
  double sum[2] = {0, 0};  // values, count
  for (std::size_t i = 0; i < x.numel(); ++i)
    if (mask.data()[i] > T(0)) sum[0] += static_cast<double>(x.data()[i]), sum[1] += 1;
  comm.all_reduce_sum(std::span<double>(sum));
  return sum[1] > 0 ? sum[0] / sum[1] : 0.0;
}

// Variance of x over the mask, unbiased (n - 1 in the denominator, as TRL's masked_var); 0 for n < 2.
template <class T>
double masked_var(const TokenView<T>& x, const TokenView<T>& mask,
                  const dist::Communicator& comm = dist::Communicator()) {
  const double mean = masked_mean(x, mask, comm);
  double ss[2] = {0, 0};  // squared deviations, count
  for (std::size_t i = 0; i < x.numel(); ++i)
    if (mask.data()[i] > T(0)) {
      const double d = static_cast<double>(x.data()[i]) - mean;
      ss[0] += d * d, ss[1] += 1;
    }
  comm.all_reduce_sum(std::span<double>(ss));
  return ss[1] > 1 ? ss[0] / (ss[1] - 1) : 0.0;
}

// x <- (x - mean) / sqrt(var + eps) over the mask (shift_mean = false keeps the mean: TRL's option
// for rewards); padding becomes 0. With comm: the mean and variance of every rank's tokens.
template <class T>
void whiten(TokenView<T> x, const TokenView<T>& mask, const dist::Communicator& comm, bool shift_mean = true,
            double eps = 1e-8) {
  const double mean = masked_mean(x, mask, comm), var = masked_var(x, mask, comm);
  const double inv = 1.0 / std::sqrt(var + eps);
  for (std::size_t i = 0; i < x.numel(); ++i) {
    double v = (static_cast<double>(x.data()[i]) - mean) * inv;
    if (!shift_mean) v += mean;
    x.data()[i] = mask.data()[i] > T(0) ? static_cast<T>(v) : T(0);
  }
}
template <class T>
void whiten(TokenView<T> x, const TokenView<T>& mask, bool shift_mean = true, double eps = 1e-8) {
  whiten(x, mask, dist::Communicator(), shift_mean, eps);
}

// Mean over sequences of each row's masked sum: the per-sequence totals TRL reports (objective/kl,
// objective/entropy are sums over a sample's tokens, averaged over samples).
template <class T>
double mean_row_sum(const TokenView<T>& x, const TokenView<T>& mask) {
  detail::check_same("mean_row_sum: mask", x, mask);
  if (x.rank() != 2) fail<ShapeError>("mean_row_sum: expected (B, R), got ", x.shape());
  const std::size_t B = x.dim(0), R = x.dim(1);
  if (B == 0) return 0.0;
  double total = 0;
  for (std::size_t i = 0; i < B * R; ++i)
    if (mask.data()[i] > T(0)) total += static_cast<double>(x.data()[i]);
  return total / static_cast<double>(B);
}

}  // namespace p4lm::rl
