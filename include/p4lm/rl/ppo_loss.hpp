#pragma once
// PPO's clipped surrogate losses (Schulman et al. 2017) over one minibatch of tokens, forward and
// backward, with the statistics TRL logs. Means run over the mask (padding counts for nothing).
//
// Policy (per token, ratio ρ = exp(logprob - old_logprob), advantage A, clip range ε):
//   loss = mean( max(-A ρ, -A clip(ρ, 1 - ε, 1 + ε)) )
//   d loss / d logprob = -A ρ / n where the unclipped term is the larger (or they tie), else 0
//   clipfrac = share of tokens where the clipped term is strictly larger (no gradient there)
//   approxkl = mean( (logprob - old_logprob)² ) / 2   (k2 between the new and the rollout policy)
//
// Value (prediction v, rollout value v_old, return G, clip range ε_v):
//   loss = mean( max((v - G)², (clip(v, v_old - ε_v, v_old + ε_v) - G)²) ) / 2
//   d loss / d v = (v - G) / n where the unclipped term is the larger (or they tie), else 0

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "p4lm/core/error.hpp"
#include "p4lm/rl/masked.hpp"

namespace p4lm::rl {

struct PolicyLoss {
  double loss = 0;
  double clipfrac = 0;
  double approxkl = 0;
  double ratio_mean = 0;
};

struct ValueLoss {
  double loss = 0;
  double clipfrac = 0;
};

// logprobs, old_logprobs, advantages, mask (N...) -> PolicyLoss; dlogprobs (N...) = d loss / d logprobs
// (overwritten; pass {} to skip).
template <class T>
PolicyLoss policy_loss(TokenView<T> dlogprobs, const TokenView<T>& logprobs, const TokenView<T>& old_logprobs,
                       const TokenView<T>& advantages, const TokenView<T>& mask, double cliprange) {
  expect_shape("policy_loss: old_logprobs", old_logprobs.shape(), logprobs.shape());
  expect_shape("policy_loss: advantages", advantages.shape(), logprobs.shape());
  expect_shape("policy_loss: mask", mask.shape(), logprobs.shape());
  const bool grad = dlogprobs.data() != nullptr;  // {} (no gradient wanted)
  if (grad) expect_shape("policy_loss: dlogprobs", dlogprobs.shape(), logprobs.shape());
  if (!(cliprange >= 0)) fail<InvalidArgument>("policy_loss: cliprange must be >= 0, got ", cliprange);
  const std::size_t n = mask_count(mask);
  const double inv_n = n ? 1.0 / static_cast<double>(n) : 0.0;
  PolicyLoss out;
  for (std::size_t i = 0; i < logprobs.numel(); ++i) {
    if (!(mask.data()[i] > T(0))) {
      if (grad) dlogprobs.data()[i] = T(0);
      continue;
    }
    const double diff = static_cast<double>(logprobs.data()[i]) - static_cast<double>(old_logprobs.data()[i]);
    const double ratio = std::exp(diff), a = static_cast<double>(advantages.data()[i]);
    const double unclipped = -a * ratio;
    const double clipped = -a * std::clamp(ratio, 1.0 - cliprange, 1.0 + cliprange);
    const bool clip_wins = clipped > unclipped;
    out.loss += std::max(unclipped, clipped);
    out.clipfrac += clip_wins;
    out.approxkl += 0.5 * diff * diff;
    out.ratio_mean += ratio;
    if (grad) dlogprobs.data()[i] = clip_wins ? T(0) : static_cast<T>(-a * ratio * inv_n);
  }
  out.loss *= inv_n, out.clipfrac *= inv_n, out.approxkl *= inv_n, out.ratio_mean *= inv_n;
  return out;
}

// values (predictions), old_values, returns, mask (N...) -> ValueLoss; dvalues = d loss / d values
// (overwritten; pass {} to skip).
template <class T>
ValueLoss value_loss(TokenView<T> dvalues, const TokenView<T>& values, const TokenView<T>& old_values,
                     const TokenView<T>& returns, const TokenView<T>& mask, double cliprange_value) {
  expect_shape("value_loss: old_values", old_values.shape(), values.shape());
  expect_shape("value_loss: returns", returns.shape(), values.shape());
  expect_shape("value_loss: mask", mask.shape(), values.shape());
  const bool grad = dvalues.data() != nullptr;
  if (grad) expect_shape("value_loss: dvalues", dvalues.shape(), values.shape());
  if (!(cliprange_value >= 0))
    fail<InvalidArgument>("value_loss: cliprange_value must be >= 0, got ", cliprange_value);
  const std::size_t n = mask_count(mask);
  const double inv_n = n ? 1.0 / static_cast<double>(n) : 0.0;
  ValueLoss out;
  for (std::size_t i = 0; i < values.numel(); ++i) {
    if (!(mask.data()[i] > T(0))) {
      if (grad) dvalues.data()[i] = T(0);
      continue;
    }
    const double v = values.data()[i], old = old_values.data()[i], g = returns.data()[i];
    const double vc = std::clamp(v, old - cliprange_value, old + cliprange_value);
    const double l1 = (v - g) * (v - g), l2 = (vc - g) * (vc - g);
    const bool clip_wins = l2 > l1;
    out.loss += 0.5 * std::max(l1, l2);
    out.clipfrac += clip_wins;
    if (grad) dvalues.data()[i] = clip_wins ? T(0) : static_cast<T>((v - g) * inv_n);
  }
  out.loss *= inv_n, out.clipfrac *= inv_n;
  return out;
}

}  // namespace p4lm::rl
